"""Websockets for Django with Redis as the message queue, on a Tornado IOLoop."""

__version__ = "0.1.0"
