"""Presence across processes: two brokers on one Redis, each serving its own sockets, as two processes would."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aredis
import websockets
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from ws4redis_tornado import Broker, Principal, WebSocketApplication
from ws4redis_tornado.presence import Presence, PresenceStats
from ws4redis_tornado.publisher import Publisher
from ws4redis_tornado.redis_commands import presence_index

from ..utils import MS, wait_until, within
from ..wsclient import assert_silent, recv, refused_with

INTERVAL = 0.2  # entries are vouched for three intervals: 0.6 s


@pytest.fixture
def config_options() -> dict:
    return {"presence": ("room",), "presence_interval": INTERVAL}


async def as_named(request) -> Principal:
    """``?as=<name>`` connects as that user; without it, anonymously."""
    name = request.query_arguments.get("as", [b""])[0].decode()
    return Principal(user=name or None)


@pytest.fixture
def app_options() -> dict:
    return {"process_request": as_named}


class OtherProcess:
    """A second broker and application on the same Redis, listening on a port of its own."""

    def __init__(self, config) -> None:
        self.config = config
        self.broker = Broker(config)
        self.app: WebSocketApplication | None = None
        self.server: HTTPServer | None = None
        self.port = 0

    async def start(self) -> OtherProcess:
        await self.broker.start()
        self.app = WebSocketApplication(self.broker, process_request=as_named)
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(self.app)
        self.server.add_sockets([sock])
        self.app.start()
        return self

    def url(self, query: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/room?subscribe-broadcast&{query}"

    def crash(self) -> None:
        """Stop vouching for its entries without removing them, as a killed process would."""
        assert self.app is not None and self.server is not None
        self.app.stop()
        self.server.stop()

    async def stop(self) -> None:
        if self.app is not None:
            self.app.stop()
        if self.server is not None:
            self.server.stop()
        await self.broker.aclose()


@pytest.fixture
def other(io_loop, config):
    process = io_loop.run_sync(OtherProcess(config).start)
    yield process
    io_loop.run_sync(process.stop)


@pytest.fixture
def publisher(io_loop, config):
    publisher = Publisher(config)
    yield publisher
    io_loop.run_sync(publisher.aclose)
    publisher.close()


def url(ws_url, query: str) -> str:
    return ws_url("room", f"subscribe-broadcast&{query}")


async def event(ws) -> dict:
    """The next presence frame a socket receives, skipping nothing."""
    data = await recv(ws)
    assert isinstance(data, str) and "\n" not in data, data
    return json.loads(data)["presence"]


async def present(publisher: Publisher, expected: Presence) -> None:
    async def matches() -> bool:
        return await publisher.apresence("room", broadcast=True) == expected

    await wait_until(matches, 3_000 * MS, what=f"presence {expected}")


@pytest.mark.gen_test(timeout=30)
async def test_both_processes_count_their_sockets_and_anybody_reads_the_sum(ws_url, other, publisher):
    async with (
        websockets.connect(url(ws_url, "as=john")),
        websockets.connect(other.url("as=john")),
        websockets.connect(other.url("as=mary")),
        websockets.connect(url(ws_url, "")),
    ):
        await present(publisher, Presence({"john": 2, "mary": 1}, anonymous=1))
        assert await publisher.apresence_stats("room", broadcast=True) == PresenceStats(users=2, sockets=4, anonymous=1)
        assert await asyncio.get_running_loop().run_in_executor(
            None, lambda: publisher.presence_stats("room", broadcast=True)
        ) == PresenceStats(users=2, sockets=4, anonymous=1)
    await present(publisher, Presence())


@pytest.mark.gen_test(timeout=30)
async def test_a_user_joins_with_their_first_socket_anywhere_and_leaves_with_their_last(ws_url, other):
    async with websockets.connect(url(ws_url, "as=watcher&presence")) as watcher:
        assert await event(watcher) == {"channel": "broadcast", "users": {}, "anonymous": 0}
        assert await event(watcher) == {"channel": "broadcast", "event": "join", "user": "watcher"}
        first = await websockets.connect(other.url("as=john"))
        assert await event(watcher) == {"channel": "broadcast", "event": "join", "user": "john"}
        second = await websockets.connect(url(ws_url, "as=john"))
        await first.close()
        await assert_silent(watcher, 500 * MS)  # john is still here, through the other process
        await second.close()
        assert await event(watcher) == {"channel": "broadcast", "event": "leave", "user": "john"}


@pytest.mark.gen_test(timeout=30)
async def test_a_socket_asking_for_presence_first_learns_who_is_here(ws_url, other, publisher):
    async with websockets.connect(other.url("as=mary")), websockets.connect(other.url("")):
        await present(publisher, Presence({"mary": 1}, anonymous=1))
        async with websockets.connect(url(ws_url, "presence")) as ws:
            assert await event(ws) == {"channel": "broadcast", "users": {"mary": 1}, "anonymous": 1}


@pytest.mark.gen_test(timeout=30)
async def test_a_crashed_processs_users_leave_when_its_entry_expires(ws_url, other, publisher):
    async with websockets.connect(url(ws_url, "as=watcher&presence")) as watcher:
        await event(watcher)
        await event(watcher)
        ghost = await websockets.connect(other.url("as=ghost"))
        assert await event(watcher) == {"channel": "broadcast", "event": "join", "user": "ghost"}
        other.crash()
        # Announced by this process's next refresh once the entry is three intervals old.
        assert await event(watcher) == {"channel": "broadcast", "event": "leave", "user": "ghost"}
        await present(publisher, Presence({"watcher": 1}))
        await ghost.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_plain_socket_gets_no_presence_frame(ws_url, other):
    async with websockets.connect(url(ws_url, "as=plain")) as plain, websockets.connect(other.url("as=john")):
        await assert_silent(plain, 500 * MS)


@pytest.mark.gen_test
async def test_presence_on_a_facility_without_it_is_refused_with_400(ws_url):
    response = await refused_with(websockets.connect(ws_url("elsewhere", "subscribe-broadcast&presence")))
    assert response.status_code == 400
    assert b"presence is not kept" in response.body


@pytest.mark.gen_test(timeout=60)
async def test_churn_leaves_no_stale_entry(ws_url, other, publisher, redis_url, config):
    async def come_and_go(i: int) -> None:
        target = url(ws_url, f"as=u{i % 20}") if i % 2 else other.url(f"as=u{i % 20}")
        async with websockets.connect(target):
            await asyncio.sleep(0.01 * (i % 5))

    for start in range(0, 400, 50):
        await asyncio.gather(*(come_and_go(i) for i in range(start, start + 50)))
    await present(publisher, Presence())
    client = aredis.Redis.from_url(redis_url)
    try:
        index = presence_index(f"{config.prefix}:broadcast:room")

        async def no_entry_left() -> bool:
            return not await client.keys(index + "*")

        # Emptied entries are deleted, and each process drops its index entry at its next refresh.
        await wait_until(no_entry_left, 3_000 * MS, what="no presence key left")
    finally:
        await client.aclose()


class TestGracefulStop:
    @pytest.fixture
    def config_options(self) -> dict:
        return {"presence": ("room",), "presence_interval": 60}  # expiry would take three minutes

    @pytest.mark.gen_test(timeout=30)
    async def test_a_process_stopping_announces_its_users_leaving_at_once(self, ws_url, other):
        async with websockets.connect(url(ws_url, "as=watcher&presence")) as watcher:
            await event(watcher)
            await event(watcher)
            await websockets.connect(other.url("as=john"))
            assert await event(watcher) == {"channel": "broadcast", "event": "join", "user": "john"}
            # A drain closes the sockets first; here the broker closes under them, as it may at exit.
            await other.stop()
            assert await within(event(watcher), 2_000 * MS) == {
                "channel": "broadcast",
                "event": "leave",
                "user": "john",
            }
