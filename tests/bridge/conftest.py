"""Django for the django_bridge tests: settings, a database, users, and a live Tornado server.

Django is configured when this module is imported, which pytest does before collecting the test
modules of this directory; tests/core never imports Django.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import import_module

import django

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.bridge.settings"
os.environ["WS4REDIS_BRIDGE_DB_DIR"] = tempfile.mkdtemp(prefix="ws4redis-bridge-")
django.setup()

import pytest  # noqa: E402
import redis.connection  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from django_bridge import publisher  # noqa: E402
from django_bridge.server import build_broker, make_app  # noqa: E402

PASSWORD = "secret"


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[None]:
    """Create the tables once; remove the database file at the end."""
    call_command("migrate", verbosity=0)
    yield
    publisher.close_pools()
    connections.close_all()
    shutil.rmtree(settings.DATABASE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def users(database) -> dict[str, User]:
    """john and mary, both in the group 'chatters'; only john is also in 'admins'."""
    chatters, _ = Group.objects.get_or_create(name="chatters")
    admins, _ = Group.objects.get_or_create(name="admins")
    found = {}
    for name in ("john", "mary"):
        user = User.objects.create_user(name, password=PASSWORD)
        user.groups.add(chatters)
        found[name] = user
    found["john"].groups.add(admins)
    connections.close_all()
    return found


@pytest.fixture(scope="session")
def ws_redis_url(redis_url) -> str:
    """The live websocket server (``ws_server``, ``ws_client``) uses the suite's Redis, under a prefix of its own."""
    return redis_url


@pytest.fixture
def prefix(prefix, request) -> str:
    """The test's key prefix; the live websocket server's own when the test uses it.

    That server's prefix is fixed when it starts, so a test that talks to it publishes under it.
    """
    if "ws_server" in request.fixturenames:
        return request.getfixturevalue("ws_server").redis.prefix
    return prefix


@pytest.fixture
def bridge_settings() -> dict:
    """Extra settings for one test: ``@pytest.mark.parametrize("bridge_settings", [{...}])``."""
    return {}


@pytest.fixture(autouse=True)
def live_settings(redis_url, redis_client, prefix, bridge_settings) -> Iterator[None]:
    """Point django_bridge at the private Redis, under the test's own key prefix."""
    with override_settings(WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=prefix, **bridge_settings):
        yield
    connections.close_all()


@pytest.fixture(autouse=True)
def _async_pools(request) -> Iterator[None]:
    """Close the publisher's pools of an async test's loop before the io_loop fixture closes the loop."""
    io_loop = request.getfixturevalue("io_loop") if request.node.get_closest_marker("gen_test") else None
    yield
    if io_loop is not None:
        io_loop.run_sync(publisher.aclose_pools)


def session_cookie(username: str) -> str:
    """Log ``username`` in through the test client and return its session key."""
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    connections.close_all()
    return key


@pytest.fixture
def john(users) -> str:
    """The session key of a fresh login of john."""
    return session_cookie("john")


@pytest.fixture
def mary(users) -> str:
    return session_cookie("mary")


@pytest.fixture
def anonymous(database) -> str:
    """The key of a saved session without a user."""
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session["visited"] = True
    session.save()
    connections.close_all()
    return session.session_key


@pytest.fixture
def broker(io_loop, live_settings):
    broker = build_broker()
    io_loop.run_sync(broker.start)
    yield broker
    io_loop.run_sync(broker.aclose)


@pytest.fixture
def app_options() -> dict:
    """Arguments of make_app() for one test: ``@pytest.mark.parametrize("app_options", [{...}])``."""
    return {}


@pytest.fixture
def app(broker, app_options):
    application = make_app(broker=broker, **app_options)
    application.start()
    yield application
    application.stop()
    application.close()


@pytest.fixture
def ws_url(http_server, http_port):
    """Build a websocket URL on the running server: ``ws_url("chat", "subscribe-broadcast")``."""

    def build(facility: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{http_port}/ws/{facility}" + (f"?{query}" if query else "")

    return build


@pytest.fixture
def http_url(http_server, http_port):
    def build(path: str) -> str:
        return f"http://127.0.0.1:{http_port}{path}"

    return build


@pytest.fixture
def packets_sent(monkeypatch) -> list[bytes]:
    """Every packet a synchronous redis-py connection sends from now on: one per round trip."""
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent
