"""Presence behind a real HAProxy: both websocket servers agree on who is here, and a killed one's users leave.

Every part is a real process: two ``runtornado --ws-only`` keeping presence on the example's
facility and rewriting it every INTERVAL seconds, HAProxy, a redis-server, and a reader process
that asks django_bridge's RedisPublisher.presence() with the stack's settings every 50 ms, as a
Django view would. Users are named by ``?as=<name>`` (tests/deploy/named_users.py), since the
example keeps none. Some clients go through HAProxy; where a test needs a socket on one server, it
connects to that server's own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from ws4redis_tornado.presence import EXPIRY_INTERVALS

from ..processes import ManagedProcess
from ..utils import MS, wait_until
from ..wsclient import assert_silent, recv
from .clients import FACILITY
from .conftest import start_stack
from .launcher import Stack
from .launcher import stack as stack_module

pytestmark = pytest.mark.timeout(60)

INTERVAL = 0.5  # presence rewritten every 0.5 s, vouched for three intervals
EXPIRY = EXPIRY_INTERVALS * INTERVAL
LATE = 1.05 * INTERVAL  # the timer's jitter lets an interval run 5 % long
SLACK = 300 * MS  # the reader's 50 ms between readings, a loaded machine
READER = Path(__file__).with_name("presence_reader.py")
REPO = Path(__file__).resolve().parents[2]

Reading = dict  # {"users": {"name": sockets}, "anonymous": N}


@pytest.fixture
def presence_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's settings read these; the stack's processes inherit the environment."""
    monkeypatch.setenv("STACK_PRESENCE", FACILITY)
    monkeypatch.setenv("STACK_PRESENCE_INTERVAL", str(INTERVAL))
    monkeypatch.setenv("STACK_PROCESS_REQUEST", "tests.deploy.named_users.from_query")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def presence_stack(presence_settings: None, haproxy: str, prefix: str, tmp_path: Path) -> Iterator[Stack]:
    stack = start_stack(haproxy, prefix, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


class PresenceReader(ManagedProcess):
    """tests/deploy/presence_reader.py with the environment of the stack's servers."""

    def __init__(self, stack: Stack, log_dir: Path) -> None:
        argv = [sys.executable, str(READER), "--facility", FACILITY, "--every", "0.05"]
        super().__init__(argv, env=stack.websocket_servers[0].env, log_dir=log_dir, log_name="presence-reader")

    def wait_ready(self) -> None:
        self.wait_for_output("ready", 15_000 * MS)

    def readings(self, since: float = 0.0) -> list[tuple[float, Reading]]:
        """Every reading taken at ``since`` (a time.monotonic() value) or later, oldest first."""
        readings = []
        for line in self.stdout.splitlines():
            stamp, _, body = line.partition(" ")
            if body.startswith("{") and float(stamp) >= since:
                readings.append((float(stamp), json.loads(body)))
        return readings

    def first(self, holds, since: float) -> float | None:
        """When a reading taken after ``since`` first satisfied ``holds``, or None."""
        return next((stamp for stamp, reading in self.readings(since) if holds(reading)), None)

    def latest(self) -> Reading | None:
        readings = self.readings()
        return readings[-1][1] if readings else None


@pytest.fixture
def reader(presence_stack: Stack, tmp_path: Path) -> Iterator[PresenceReader]:
    with PresenceReader(presence_stack, tmp_path) as reader:
        yield reader


def url_of(server: stack_module.Service, query: str) -> str:
    """A websocket URL on one server's own port, not through HAProxy."""
    return f"ws://127.0.0.1:{server.port}/ws/{FACILITY}?subscribe-broadcast&{query}"


async def snapshot(server: stack_module.Service) -> Reading:
    """Who is here, as a new socket asking for presence on ``server`` is told when it opens."""
    async with connect(url_of(server, "presence"), open_timeout=5000 * MS) as ws:
        body = json.loads(await recv(ws))["presence"]
    return {"users": body["users"], "anonymous": body["anonymous"]}


async def next_event(ws: ClientConnection, timeout: float = 3000 * MS) -> tuple[str, str]:
    body = json.loads(await recv(ws, timeout))["presence"]
    return body["event"], body["user"]


def test_both_servers_and_a_django_reader_agree_on_who_is_here_within_one_interval(presence_stack, reader):
    ws1, ws2 = presence_stack.websocket_servers
    through_haproxy = f"{presence_stack.websocket_url}{FACILITY}?subscribe-broadcast"
    direct = [("alice", ws1), ("alice", ws1), ("bob", ws2), ("carol", ws1), ("carol", ws2), (None, ws2)]
    expected = {"users": {"alice": 2, "bob": 1, "carol": 2, "dave": 3, "erin": 1}, "anonymous": 1}

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as sockets:
            for user, server in direct:
                query = f"as={user}" if user else ""
                await sockets.enter_async_context(connect(url_of(server, query), open_timeout=5000 * MS))
            for user in ("dave", "dave", "dave", "erin"):  # leastconn spreads them over both
                await sockets.enter_async_context(connect(f"{through_haproxy}&as={user}", open_timeout=5000 * MS))
            opened = time.monotonic()
            counts = [presence_stack.health(server)["sockets"] for server in (ws1, ws2)]
            assert min(counts) >= 4, f"not spread over both servers: {counts}"

            # A second socket of a user on the same server is counted at that server's next refresh.
            await wait_until(lambda: reader.latest() == expected, LATE + SLACK + 2000 * MS, what=f"{expected}")
            agreed = reader.first(lambda reading: reading == expected, opened)
            assert agreed is not None
            assert agreed - opened <= LATE + SLACK, f"agreed {agreed - opened:.2f} s after the last socket opened"
            assert all(reading == expected for _, reading in reader.readings(agreed)), "it must stay so"

            async def servers_agree() -> bool:
                return [await snapshot(ws1), await snapshot(ws2)] == [expected, expected]

            await wait_until(servers_agree, 2000 * MS, what="the same snapshot through each server")

    asyncio.run(scenario())
    # Every socket closed: nobody left, anonymous or not.
    reader.wait_until(lambda: reader.latest() == {"users": {}, "anonymous": 0}, "nobody present", 2000 * MS)


def test_a_killed_servers_users_leave_within_the_expiry_and_those_also_on_the_other_server_stay(presence_stack, reader):
    ws1, ws2 = presence_stack.websocket_servers

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as sockets:

            async def open_as(user: str, server: stack_module.Service) -> None:
                await sockets.enter_async_context(connect(url_of(server, f"as={user}"), open_timeout=5000 * MS))

            watcher = await sockets.enter_async_context(connect(url_of(ws2, "presence"), open_timeout=5000 * MS))
            assert json.loads(await recv(watcher))["presence"] == {"channel": "broadcast", "users": {}, "anonymous": 0}
            # Each user's first socket, then the join it causes, before the next socket opens.
            for user, server in [("alice", ws1), ("dan", ws1), ("bob", ws2), ("carol", ws1)]:
                await open_as(user, server)
                assert await next_event(watcher) == ("join", user)
            await open_as("alice", ws1)
            await open_as("carol", ws2)  # carol now on both servers
            before = {"users": {"alice": 2, "bob": 1, "carol": 2, "dan": 1}, "anonymous": 1}
            await wait_until(lambda: reader.latest() == before, LATE + SLACK + 2000 * MS, what=f"{before}")

            killed = time.monotonic()
            ws1.kill()  # SIGKILL: no drain, no goodbye; its entry is left to expire
            leaves = {await next_event(watcher, EXPIRY + LATE + 2000 * MS) for _ in range(2)}
            announced = time.monotonic() - killed
            assert leaves == {("leave", "alice"), ("leave", "dan")}
            # The entry expires three intervals after ws1's last refresh, which came before the kill;
            # the next refresh of ws2 after that announces it.
            assert announced <= EXPIRY + LATE + SLACK, f"leaves announced {announced:.2f} s after the kill"
            # Nothing more: carol, on ws2 too, and bob never leave.
            await assert_silent(watcher, 2 * INTERVAL)
            # The reader is a process of its own, which a loaded machine may hold back: wait for a
            # reading it took after the leaves came.
            left = killed + announced
            await wait_until(lambda: reader.readings(left), 3000 * MS, what="a reading taken after the leaves")
            after = {"users": {"bob": 1, "carol": 1}, "anonymous": 1}
            gone = reader.first(lambda reading: reading == after, killed)
            assert gone is not None, reader.readings(killed)[-3:]
            assert gone - killed <= EXPIRY + INTERVAL, f"gone from presence() {gone - killed:.2f} s after the kill"
            assert all(reading == after for _, reading in reader.readings(gone)), reader.readings(gone)

    asyncio.run(scenario())
