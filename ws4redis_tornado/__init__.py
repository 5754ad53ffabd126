"""Websockets whose messages travel through Redis pub/sub, on a Tornado IOLoop.

The framework-agnostic core of ws4redis-tornado; it never imports Django.
"""

from .broker import Broker
from .channels import SELF, Audience, Principal
from .config import Config
from .handler import RedisWebSocketHandler
from .messages import RedisMessage
from .server import WebSocketApplication
from .subscriber import RedisSubscriber

__version__ = "0.1.0"

__all__ = [
    "SELF",
    "Audience",
    "Broker",
    "Config",
    "Principal",
    "RedisMessage",
    "RedisSubscriber",
    "RedisWebSocketHandler",
    "WebSocketApplication",
    "__version__",
]
