"""Test utilities for Django projects that use django_bridge: a live server and websocket clients.

:class:`LiveWebsocketServer` serves the project's views and websockets on a free port, from a
thread of the test process, with a Redis of its own; :class:`WebsocketClient` and
:class:`AsyncWebsocketClient` open websockets on it as a browser would, logged in as a user or
anonymous. :class:`WebsocketTestCase` (or :class:`WebsocketTestMixin`) runs them under unittest and
``manage.py test``; ``django_bridge.testing.pytest_plugin`` offers them as pytest fixtures. Nothing
here needs pytest, and importing it starts nothing.
"""

from .async_client import (
    DEFAULT_SILENCE,
    DEFAULT_TIMEOUT,
    OWN_ORIGIN,
    AsyncWebsocket,
    AsyncWebsocketClient,
    HandshakeRefused,
    login_cookies,
)
from .cases import WebsocketTestCase, WebsocketTestMixin
from .client import Websocket, WebsocketClient
from .private_redis import REDIS_URL_VARIABLE
from .server import LiveWebsocketServer

__all__ = [
    "DEFAULT_SILENCE",
    "DEFAULT_TIMEOUT",
    "OWN_ORIGIN",
    "REDIS_URL_VARIABLE",
    "AsyncWebsocket",
    "AsyncWebsocketClient",
    "HandshakeRefused",
    "LiveWebsocketServer",
    "Websocket",
    "WebsocketClient",
    "WebsocketTestCase",
    "WebsocketTestMixin",
    "login_cookies",
]
