"""Presence under churn: hundreds of sockets a second coming and going over two brokers leave nothing behind.

Two brokers on one Redis serve a channel, as two processes would, and rewrite their entries
every INTERVAL, so that many refreshes fall in the middle of the churn. Sockets of a few users
open and close on either of them, dozens at a time, some closing properly and some dropping their
TCP connection; some users keep one socket open past the churn. A watcher on each broker applies
the events to its snapshot as the contract says (set operations): its view must then be who
presence() says is here, once things settle and again when everybody has gone. Every user's
events must alternate join, leave, join ... (a leave without a join is somebody shown gone while
there, or shown there who never came). No presence key may be left in Redis after the expiry.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict

import pytest
import redis.asyncio as aredis

from ws4redis_tornado.presence import EXPIRY_INTERVALS, Presence

from ..rawws import RawClient, open_raw
from ..utils import MS, wait_until, within
from . import test_presence
from .test_presence import as_named

INTERVAL = 0.2  # entries are vouched for three intervals: 0.6 s

# The fixtures of test_presence: a second process on the same Redis, and a reader of presence.
other = test_presence.other
publisher = test_presence.publisher
USERS = 24
STAYING = 8  # users u0 .. u7 also keep one socket open until the churn is over and checked
RATE = 300  # sockets opened per second, in all, if the machine keeps up
SOCKETS = 900
CONCURRENT = 60  # sockets open at once at most
CLOSE_FRAME = b"\x03\xe8"  # 1000, normal closure

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def config_options() -> dict:
    return {"presence": ("room",), "presence_interval": INTERVAL}


@pytest.fixture
def app_options() -> dict:
    return {"process_request": as_named}


class Watcher:
    """An anonymous socket that asked for presence: its snapshot, then every event, in order."""

    def __init__(self) -> None:
        self.snapshot: dict | None = None
        self.events: list[tuple[str, str]] = []
        self.client: RawClient | None = None

    def on_message(self, opcode: int, payload: bytes) -> None:
        body = json.loads(payload)["presence"]
        if "event" in body:
            self.events.append((body["event"], body["user"]))
        else:
            self.snapshot = body

    async def open(self, port: int) -> Watcher:
        self.client = await within(
            open_raw("127.0.0.1", port, "/ws/room?subscribe-broadcast&presence", self.on_message)
        )
        return self

    async def close(self) -> None:
        assert self.client is not None
        self.client.send(0x8, CLOSE_FRAME)
        await within(self.client.closed)

    def view(self) -> set[str]:
        """Who is here, as a client applying the events to the snapshot as set operations sees it."""
        present = set(self.snapshot["users"]) if self.snapshot else set()
        for event, user in self.events:
            (present.add if event == "join" else present.discard)(user)
        return present

    def out_of_turn(self) -> dict[str, list[str]]:
        """Per user, the events that break the alternation join, leave, join ..."""
        present = set(self.snapshot["users"]) if self.snapshot else set()
        wrong: dict[str, list[str]] = defaultdict(list)
        for index, (event, user) in enumerate(self.events):
            if (event == "join") == (user in present):
                wrong[user].append(f"{event} #{index}")
            (present.add if event == "join" else present.discard)(user)
        return dict(wrong)


async def open_as(port: int, user: str) -> RawClient:
    path = f"/ws/room?subscribe-broadcast&as={user}"
    return await within(open_raw("127.0.0.1", port, path, lambda *_: None))


async def churn(ports: list[int], rng: random.Random) -> list[RawClient]:
    """Open SOCKETS sockets at up to RATE a second on the ports in turn, each for up to 0.1 s.

    The staying users' sockets open at random moments of it; they are returned, still open.
    """
    slots = asyncio.Semaphore(CONCURRENT)
    staying: list[RawClient] = []
    stay_at = dict(zip(rng.sample(range(SOCKETS), STAYING), range(STAYING), strict=True))

    async def come_and_go(i: int) -> None:
        async with slots:
            client = await open_as(ports[i % len(ports)], f"u{rng.randrange(USERS)}")
            await asyncio.sleep(rng.uniform(0, 0.1))
            if rng.random() < 0.3:
                client.abort()  # the TCP connection drops, no close frame
            else:
                client.send(0x8, CLOSE_FRAME)
            await within(client.closed)

    async def stay(i: int) -> None:
        staying.append(await open_as(ports[rng.randrange(len(ports))], f"u{i}"))

    started = time.monotonic()
    tasks = []
    for i in range(SOCKETS):
        await asyncio.sleep(max(0.0, started + i / RATE - time.monotonic()))
        tasks.append(asyncio.create_task(come_and_go(i)))
        if i in stay_at:
            tasks.append(asyncio.create_task(stay(stay_at[i])))
    await asyncio.gather(*tasks)
    return staying


@pytest.mark.gen_test(timeout=90)
async def test_churn_over_two_brokers_keeps_events_true_and_leaves_nothing_behind(
    http_server,
    http_port,
    app,
    other,
    publisher,
    redis_url,
    prefix,
):
    watchers = [await Watcher().open(http_port), await Watcher().open(other.port)]
    await wait_until(lambda: all(w.snapshot is not None for w in watchers), 3_000 * MS, what="both snapshots")
    started = time.monotonic()
    staying = await churn([http_port, other.port], random.Random(20261201))
    churned = time.monotonic() - started
    assert churned > 5 * INTERVAL, "the churn must span several refreshes"

    async def presence() -> Presence:
        return await publisher.apresence("room", broadcast=True)

    stayers = Presence({f"u{i}": 1 for i in range(STAYING)}, anonymous=2)

    async def only_stayers() -> bool:
        return await presence() == stayers

    await wait_until(only_stayers, 3_000 * MS, what=f"presence {stayers}", details=lambda: str(watchers[0].events))
    assert watchers[0].events == watchers[1].events
    assert len(watchers[0].events) > 2 * USERS
    # The client's view (snapshot and events as set operations) is who is here.
    assert watchers[0].view() == set(stayers.users), f"after {len(watchers[0].events)} events in {churned:.1f} s"

    for client in staying:
        client.send(0x8, CLOSE_FRAME)
        await within(client.closed)
    await wait_until(lambda: not watchers[0].view() and not watchers[1].view(), 3_000 * MS, what="everybody left")
    assert await presence() == Presence(anonymous=2)
    assert watchers[0].out_of_turn() == {}, watchers[0].events
    for watcher in watchers:
        await watcher.close()

    async def nobody() -> bool:
        # A socket's close is written to Redis in the next batch, not before close() returns.
        return await presence() == Presence()

    await wait_until(nobody, 3_000 * MS, what="nobody present")

    client = aredis.Redis.from_url(redis_url)
    try:

        async def no_key_left() -> bool:
            keys = [key async for key in client.scan_iter(match="*ws4redis-presence*") if prefix.encode() in key]
            return not keys

        # Emptied entries go at once; the index at each process's next refresh, at the latest with
        # its expiry.
        expiry = EXPIRY_INTERVALS * INTERVAL
        await wait_until(no_key_left, expiry + INTERVAL + 1_000 * MS, what="no presence key left")
    finally:
        await client.aclose()
