"""Logging out, leaving a group and deactivation close the sockets they concern, across processes.

The websockets are served by ``manage.py runtornado`` in a subprocess; the logout and the changes
happen here, in the test process, as in a Django view of another server: the command reaches the
server through Redis.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connections
from django.test import Client, override_settings
from websockets.sync.client import ClientConnection, connect

from django_bridge.conf import DEFAULT_HEALTH_URL
from django_bridge.publisher import RedisPublisher
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.revocation import CLOSE_ACCESS_CHANGED, CLOSE_SIGNED_OUT

from ..utils import MS
from ..wsclient import closed_with_blocking
from .conftest import PASSWORD
from .processes import ManageCommand, write_settings

FACILITY = "revocation"
SIGNED_OUT = (CLOSE_SIGNED_OUT, "signed out")
ACCESS_CHANGED = (CLOSE_ACCESS_CHANGED, "access changed")


@pytest.fixture(scope="module")
def server_prefix(tmp_path_factory) -> str:
    return tmp_path_factory.mktemp("revocation").name


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis_url, server_prefix, database) -> Iterator[str]:
    """``runtornado`` in a subprocess, for the whole module: return its websocket URL's start."""
    directory = tmp_path_factory.mktemp("server")
    module = write_settings(directory, "revocation", WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=server_prefix)
    port = free_port()
    with ManageCommand("runtornado", "--port", str(port), settings=module, directory=directory) as command:
        command.wait_for_url(f"http://127.0.0.1:{port}{DEFAULT_HEALTH_URL}")
        yield f"ws://127.0.0.1:{port}/ws/{FACILITY}"
    assert "Traceback" not in command.stderr, command.output


@pytest.fixture(autouse=True)
def same_prefix(server_prefix) -> Iterator[None]:
    """Publish under the server's prefix: its control channel and its channels."""
    with override_settings(WS4REDIS_PREFIX=server_prefix):
        yield


@pytest.fixture
def group(database) -> Iterator[Group]:
    group = Group.objects.create(name=f"team-{uuid.uuid4().hex[:8]}")
    yield group
    Group.objects.filter(pk=group.pk).delete()


@pytest.fixture
def member(users, group) -> Iterator[User]:
    """A user of this test's own, in its group and in 'chatters'."""
    user = User.objects.create_user(f"member-{group.name}", password=PASSWORD)
    user.groups.add(group, Group.objects.get(name="chatters"))
    yield user
    User.objects.filter(pk=user.pk).delete()
    connections.close_all()


def log_in(user: User) -> tuple[Client, str]:
    client = Client()
    assert client.login(username=user.get_username(), password=PASSWORD)
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def websocket(server: str, query: str, session: str) -> ClientConnection:
    return connect(f"{server}?{query}", additional_headers={"Cookie": f"sessionid={session}"}, open_timeout=5)


def received(ws: ClientConnection, *publishers: Callable[[], object]) -> str:
    """Publish in order (without persisting), and return the first message ``ws`` receives."""
    for publish in publishers:
        publish()
    return ws.recv(timeout=5000 * MS)


def to_user(user: User, text: str) -> Callable[[], object]:
    return lambda: RedisPublisher(facility=FACILITY, users=[user.get_username()]).publish_message(text, expire=0)


def to_group(name: str, text: str) -> Callable[[], object]:
    return lambda: RedisPublisher(facility=FACILITY, groups=[name]).publish_message(text, expire=0)


def to_everybody(text: str) -> Callable[[], object]:
    return lambda: RedisPublisher(facility=FACILITY, broadcast=True).publish_message(text, expire=0)


def test_logout_closes_that_sessions_sockets_and_not_the_users_other_sessions(server, member):
    laptop_client, laptop = log_in(member)
    _, phone = log_in(member)
    with (
        websocket(server, "subscribe-user", laptop) as on_laptop,
        websocket(server, "subscribe-user", laptop) as second_tab,
        websocket(server, "subscribe-user", phone) as on_phone,
    ):
        assert laptop_client.post("/accounts/logout/").status_code == 302
        assert closed_with_blocking(on_laptop) == SIGNED_OUT
        assert closed_with_blocking(second_tab) == SIGNED_OUT
        assert received(on_phone, to_user(member, "still signed in")) == "still signed in"
        # The laptop's reconnection, with the cookie it had, is anonymous now: no user channel.
        with websocket(server, "subscribe-user&subscribe-broadcast", laptop) as reconnected:
            assert received(reconnected, to_user(member, "private"), to_everybody("public")) == "public"


@pytest.mark.parametrize(
    "leave",
    [
        pytest.param(lambda user, group: user.groups.remove(group), id="user.groups.remove"),
        pytest.param(lambda user, group: group.user_set.remove(user), id="group.user_set.remove"),
        pytest.param(lambda user, group: user.groups.set([]), id="user.groups.set"),
        pytest.param(lambda user, group: user.groups.clear(), id="user.groups.clear"),
        pytest.param(lambda user, group: group.user_set.clear(), id="group.user_set.clear"),
        pytest.param(lambda user, group: group.delete(), id="group.delete"),
    ],
)
def test_leaving_a_group_closes_the_users_sockets_and_the_new_handshake_lacks_the_group(server, member, group, leave):
    _, session = log_in(member)
    with websocket(server, "subscribe-group", session) as ws:
        assert received(ws, to_group(group.name, "members only")) == "members only"
        leave(member, group)
        assert closed_with_blocking(ws) == ACCESS_CHANGED
    # The same session, whose ws4redis:memberof still names the group.
    with websocket(server, "subscribe-group&subscribe-broadcast", session) as again:
        assert received(again, to_group(group.name, "members only"), to_everybody("public")) == "public"


def test_joining_a_group_closes_the_users_sockets_so_the_new_handshake_has_it(server, member, database):
    newcomers = Group.objects.create(name=f"newcomers-{member.get_username()}")
    try:
        _, session = log_in(member)
        with websocket(server, "subscribe-group", session) as ws:
            member.groups.add(newcomers)
            assert closed_with_blocking(ws) == ACCESS_CHANGED
        with websocket(server, "subscribe-group", session) as again:
            assert received(again, to_group(newcomers.name, "welcome")) == "welcome"
    finally:
        newcomers.delete()


@pytest.mark.parametrize(
    "remove",
    [
        pytest.param(lambda user: setattr(user, "is_active", False) or user.save(), id="deactivated"),
        pytest.param(lambda user: user.delete(), id="deleted"),
    ],
)
def test_deactivation_and_deletion_close_the_users_sockets(server, member, users, remove):
    _, session = log_in(member)
    _, other = log_in(users["mary"])
    with (
        websocket(server, "subscribe-user&subscribe-group", session) as ws,
        websocket(server, "subscribe-user", other) as mary,
    ):
        remove(member)
        assert closed_with_blocking(ws) == ACCESS_CHANGED
        assert received(mary, to_user(users["mary"], "mary stays")) == "mary stays"
        with websocket(server, "subscribe-user&subscribe-broadcast", session) as again:
            assert received(again, to_user(member, "private"), to_everybody("public")) == "public"


def test_logout_still_succeeds_when_redis_is_down(member, caplog):
    client, _ = log_in(member)
    with override_settings(WS4REDIS_CONNECTION=f"redis://127.0.0.1:{free_port()}/0"):
        assert client.post("/accounts/logout/").status_code == 302
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("cannot close the websockets of 0 users and 1 sessions" in error for error in errors), errors
