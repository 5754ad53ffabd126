"""pytest fixtures for django_bridge's live websocket server: ``ws_server`` and ``ws_client``.

Not registered for every project that installs this package; enable it in the top ``conftest.py``::

    pytest_plugins = ["django_bridge.testing.pytest_plugin"]

The server is started once per session, on the first test that asks for it, and reset before each
such test. With pytest-django, a test that uses ``ws_server`` or ``ws_client`` gets the
``transactional_db`` fixture, as one using pytest-django's ``live_server`` does: the server's
threads must see what the test wrote. Without pytest-django, configure Django yourself.

Fixtures:
    ws_server: the :class:`~django_bridge.testing.LiveWebsocketServer`, as new for each test.
    ws_client: a :class:`~django_bridge.testing.WebsocketClient`; its sockets close after the test.
    ws_redis_url: the Redis URL the server uses (session scope); None, the default, starts an
        embedded one. Override it to use your own (the server keeps to a key prefix there).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_bridge.testing import LiveWebsocketServer, WebsocketClient

_USERS = ("ws_server", "ws_client")


@pytest.fixture(scope="session")
def ws_redis_url() -> str | None:
    """The Redis the live server uses: None starts an embedded one (or ``$WS4REDIS_TEST_REDIS_URL``)."""
    return None


@pytest.fixture(scope="session")
def _ws_live_server(request: pytest.FixtureRequest, ws_redis_url: str | None) -> Iterator[LiveWebsocketServer]:
    from django_bridge.testing import LiveWebsocketServer

    if _pytest_django_active(request.config):
        # The test database must exist first: its connection, if in memory, is shared with the server.
        request.getfixturevalue("django_db_setup")
    server = LiveWebsocketServer(redis_url=ws_redis_url).start()
    yield server
    server.stop()


@pytest.fixture
def ws_server(_ws_live_server: LiveWebsocketServer) -> LiveWebsocketServer:
    """The session's live websocket server, with no socket open and an empty Redis."""
    _ws_live_server.reset()
    return _ws_live_server


@pytest.fixture
def ws_client(ws_server: LiveWebsocketServer) -> Iterator[WebsocketClient]:
    """A websocket client on ``ws_server``; the sockets it opened are closed after the test."""
    client = ws_server.client()
    yield client
    client.close()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the tests that use the live server pytest-django's ``transactional_db``.

    Done at collection, as for pytest-django's own ``live_server``, so that pytest-django both
    sets up their database as a TransactionTestCase does and orders them after the other tests.
    """
    if not _pytest_django_active(config):
        return
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is not None and "transactional_db" not in names and any(name in names for name in _USERS):
            names.append("transactional_db")


def _pytest_django_active(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("django")
