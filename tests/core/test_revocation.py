"""The control channel: a command from another broker closes the sockets of a user or a session.

The server runs on the ``broker`` fixture; the commands come from ``other``, a second broker with
connections of its own, as another server process would send them.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aredis
import websockets

from ws4redis_tornado import Broker, Principal
from ws4redis_tornado.revocation import (
    CLOSE_ACCESS_CHANGED,
    CLOSE_SIGNED_OUT,
    close_command,
    close_sockets,
    control_channel,
)

from ..utils import MS, wait_until, within
from ..wsclient import closed_with, refused_with

FACILITY = "news"


class Identities:
    """The ``process_request`` hook: connect as ``?as=<user>&session=<key>``, as a cookie would say.

    After :meth:`hold`, the hook waits, once it has read the identity, until :meth:`release`.
    """

    def __init__(self) -> None:
        self.read: dict[str, asyncio.Event] = {}
        self._released: asyncio.Event | None = None

    def hold(self, *users: str) -> None:
        self.read = {user: asyncio.Event() for user in users}
        self._released = asyncio.Event()

    def release(self) -> None:
        assert self._released is not None
        self._released.set()

    async def identify(self, request) -> Principal:
        user, session = (request.query_arguments[name][0].decode() for name in ("as", "session"))
        if self._released is not None:
            self.read[user].set()
            await self._released.wait()
        return Principal(user=user, session=session, request=request)


@pytest.fixture
def identities() -> Identities:
    return Identities()


@pytest.fixture
def app_options(identities):
    return {"process_request": identities.identify}


@pytest.fixture
def other(io_loop, config):
    """A second broker, as in another server process."""
    broker = Broker(config)
    io_loop.run_sync(broker.start)
    yield broker
    io_loop.run_sync(broker.aclose)


@pytest.fixture
def connect(ws_url):
    def open_as(user: str, session: str):
        return websockets.connect(ws_url(FACILITY, f"subscribe-broadcast&as={user}&session={session}"))

    return open_as


@pytest.fixture
def publish(io_loop, redis_url, prefix):
    client = aredis.Redis.from_url(redis_url)

    async def broadcast(text: str) -> None:
        await client.publish(f"{prefix}:broadcast:{FACILITY}", text)

    yield broadcast
    io_loop.run_sync(client.aclose)


async def still_open(publish, *sockets) -> None:
    """Publish a message and check that every socket receives it."""
    await publish("still here")
    for ws in sockets:
        assert await within(ws.recv()) == "still here"


@pytest.mark.gen_test
async def test_closing_a_session_closes_its_sockets_and_not_the_users_other_sessions(connect, other, publish, broker):
    async with (
        connect("john", "laptop") as laptop,
        connect("john", "laptop") as second_tab,
        connect("john", "phone") as phone,
        connect("mary", "desk") as mary,
    ):
        # Both brokers subscribe to the control channel: two processes hear the command.
        assert await close_sockets(other, sessions=["laptop"]) == 2
        assert await closed_with(laptop) == (CLOSE_SIGNED_OUT, "signed out")
        assert await closed_with(second_tab) == (CLOSE_SIGNED_OUT, "signed out")
        await still_open(publish, phone, mary)
    assert broker.channel_count == 0


@pytest.mark.gen_test
async def test_closing_a_user_closes_every_socket_of_theirs(connect, other, publish):
    async with (
        connect("john", "laptop") as laptop,
        connect("john", "phone") as phone,
        connect("mary", "desk") as mary,
    ):
        await close_sockets(other, users=["john"])
        assert await closed_with(laptop) == (CLOSE_ACCESS_CHANGED, "access changed")
        assert await closed_with(phone) == (CLOSE_ACCESS_CHANGED, "access changed")
        await still_open(publish, mary)


@pytest.mark.gen_test
async def test_a_signed_out_session_is_refused_when_it_reconnects(connect, other, publish, broker):
    async with connect("john", "laptop") as laptop:
        await close_sockets(other, sessions=["laptop"])
        await closed_with(laptop)
    # The logout may still be deleting the session when the client reconnects with its cookie.
    refused = await refused_with(connect("john", "laptop"))
    assert refused.status_code == 403
    assert refused.reason_phrase == "signed out"
    async with connect("john", "phone") as phone:
        await still_open(publish, phone)


@pytest.mark.gen_test
async def test_a_handshake_under_way_when_the_rights_change_is_refused(identities, connect, other, broker):
    identities.hold("john", "mary")
    john = asyncio.ensure_future(connect("john", "laptop"))
    mary = asyncio.ensure_future(connect("mary", "desk"))
    # Both hooks have read the identity, as a real one reads the groups; then john's change.
    await within(asyncio.gather(*(event.wait() for event in identities.read.values())))
    await close_sockets(other, users=["john"])
    await wait_until(lambda: broker.revocations.generation == 1)
    identities.release()
    refused = await refused_with(within(john))
    assert (refused.status_code, refused.reason_phrase) == (403, "access changed")
    ws = await within(mary)
    await ws.close()
    await wait_until(lambda: broker.channel_count == 0)


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"redis_options": {"client_name": "revocation-reconnects"}}])
async def test_commands_still_arrive_after_the_pubsub_connection_was_lost(connect, other, broker, redis_url, prefix):
    client = aredis.Redis.from_url(redis_url)
    channel = control_channel(prefix)
    try:
        async with connect("john", "laptop") as laptop:
            await client.client_kill_filter(_type="pubsub")
            await wait_until(lambda: not broker.connected)
            await wait_until(lambda: broker.connected and other.connected)

            async def both_subscribed() -> bool:
                return dict(await client.pubsub_numsub(channel))[channel.encode()] == 2

            await wait_until(both_subscribed, step=10 * MS)
            await close_sockets(other, users=["john"])
            assert await closed_with(laptop) == (CLOSE_ACCESS_CHANGED, "access changed")
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_a_command_this_version_does_not_know_is_ignored_with_a_warning(
    connect, publish, redis_url, prefix, caplog
):
    client = aredis.Redis.from_url(redis_url)
    try:
        async with connect("john", "laptop") as laptop:
            for junk in (b"not json", b'{"op": "reboot"}', b'{"op": "close", "users": "john"}'):
                await client.publish(control_channel(prefix), junk)
            # A command in the documented format, from a plain Redis client, still works after them.
            await client.publish(control_channel(prefix), close_command(sessions=["laptop"]))
            assert await closed_with(laptop) == (CLOSE_SIGNED_OUT, "signed out")
    finally:
        await client.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("does not know" in message for message in warnings) == 3, warnings


def test_the_command_is_small_json():
    assert (
        close_command(users=["john", "john"], sessions=["k1"]) == b'{"op":"close","users":["john"],"sessions":["k1"]}'
    )
    assert control_channel("app") == "app:ws4redis-tornado:control"
    assert control_channel() == "ws4redis-tornado:control"
