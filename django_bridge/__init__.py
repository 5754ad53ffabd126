"""The Django app of ws4redis-tornado."""

__version__ = "0.1.0"
