"""unittest integration: a live websocket server per test class, a websocket client per test.

:class:`WebsocketTestCase` is to websockets what Django's ``LiveServerTestCase`` is to pages: a
``TransactionTestCase``, because the server's threads read what the test wrote, which a
``TestCase``'s transaction would keep from them. :class:`WebsocketTestMixin` adds the same to any
``unittest.TestCase`` subclass that gives the server a database it can see.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.test import TransactionTestCase

from .client import WebsocketClient
from .server import LiveWebsocketServer

__all__ = ["WebsocketTestCase", "WebsocketTestMixin"]


class WebsocketTestMixin:
    """Starts a :class:`LiveWebsocketServer` for the class; gives each test a fresh ``ws_client``.

    Attributes:
        ws_server: the class's server (``ws_server.url`` serves the project's views too).
        ws_client: this test's :class:`WebsocketClient`; its sockets are closed after the test.
        ws_server_options: arguments of :class:`LiveWebsocketServer`, e.g. ``{"redis_url": ...}``.

    Each test starts with the server as new (:meth:`LiveWebsocketServer.reset`): no socket left
    open, nothing in its Redis. A subclass that overrides ``setUp`` calls ``super().setUp()``.
    """

    ws_server: ClassVar[LiveWebsocketServer]
    ws_server_options: ClassVar[dict[str, Any]] = {}
    ws_client: WebsocketClient

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()  # type: ignore[misc]
        cls.ws_server = LiveWebsocketServer(**cls.ws_server_options).start()
        cls.addClassCleanup(cls.ws_server.stop)  # type: ignore[attr-defined]

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.ws_server.reset()
        self.ws_client = self.ws_server.client()
        self.addCleanup(self.ws_client.close)  # type: ignore[attr-defined]


class WebsocketTestCase(WebsocketTestMixin, TransactionTestCase):
    """A ``TransactionTestCase`` with a live websocket server for the class and a client per test.

    ``self.client`` (Django's) calls views in the test's thread; ``self.ws_client`` opens
    websockets on ``self.ws_server``, which serves the project's views as well.
    """
