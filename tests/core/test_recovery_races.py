"""Recovery under concurrency: handshakes and reconnections racing a publisher that never pauses.

The server runs in-process on a real Redis; the publisher is the core's synchronous
:class:`~ws4redis_tornado.publisher.Publisher` in a thread of its own, so messages arrive at any
point of a handshake: before the subscription, between it and the history read, during the read.
Whatever the timing, a client gets each message once, in order, and none is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from urllib.parse import quote

import pytest
import redis.asyncio as aredis
import websockets

from ws4redis_tornado.history import history_key, recover_value
from ws4redis_tornado.publisher import Publisher

from ..recovering import Received, RecoveringClient, Report, parse_frame, running
from ..utils import MS, wait_until, within

pytestmark = pytest.mark.timeout(60)

HISTORY = 100_000  # more than a test publishes: nothing is trimmed
RECONNECTIONS = 20  # per client, while the publisher runs
CLIENTS = 20
INTERVAL = 1 * MS  # the server and the clients share this process: they must keep up


@pytest.fixture
def config_options() -> dict:
    return {"history_size": HISTORY}


class HotPublisher:
    """Publishes 0, 1, 2 ... to a facility's broadcast channel until stopped, one every ``interval`` or back to back.

    A task on the server's own loop: each publish waits for Redis' answer, and meanwhile the server
    reads its pub/sub connection and runs handshakes, so messages land at every point of theirs.
    """

    def __init__(self, config, facility: str, *, interval: float = 0) -> None:
        self.publisher = Publisher(config)
        self.facility = facility
        self.interval = interval
        self.published = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.publisher.apublish(self.facility, str(self.published), broadcast=True)
            self.published += 1
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> HotPublisher:
        self._task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> int:
        """Stop after the publish under way; return how many numbers went out (0 .. n-1)."""
        self._stopping.set()
        assert self._task is not None
        await self._task  # raises what made the publisher fail
        return self.published

    async def __aexit__(self, *exc_info: object) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.publisher.aclose()


@pytest.mark.gen_test(timeout=60)
async def test_clients_reconnecting_over_and_over_during_a_hot_publish_get_every_message_once_in_order(config, ws_url):
    clients = [RecoveringClient(ws_url("hot", "subscribe-broadcast"), retry_delay=0) for _ in range(CLIENTS)]
    async with running(clients):
        async with HotPublisher(config, "hot", interval=INTERVAL) as hot:
            started = time.monotonic()
            # Round robin: each client closes and comes back with its positions, many times over.
            for client in itertools.cycle(clients):
                if min(c.connections for c in clients) > RECONNECTIONS:
                    break
                if client.caught_up:
                    await client.reconnect()
                await asyncio.sleep(1 * MS)
            published = await hot.stop()
        published_in = time.monotonic() - started
        await wait_until(
            lambda: all(c.caught_up and c.payloads()[-1:] == [str(published - 1)] for c in clients),
            15_000 * MS,
            what="the last message at every client",
        )
    expected = [str(n) for n in range(published)]
    assert [c.problems for c in clients if c.problems] == []
    assert [c.not_recovered for c in clients if c.not_recovered] == []
    wrong = [i for i, c in enumerate(clients) if c.payloads() != expected]
    assert not wrong, f"{len(wrong)} clients got the wrong messages, e.g. {summary(clients[wrong[0]], published)}"
    reconnections = sum(c.connections - 1 for c in clients)
    from_history = sum(1 for c in clients for m in c.received if m.before_report and m.connection > 1)
    assert from_history > 0
    print(
        f"\n{published} messages in {published_in:.2f}s; {reconnections} reconnections;"
        f" {from_history} messages recovered from history"
    )


def summary(client: RecoveringClient, published: int) -> str:
    got = [int(p) for p in client.payloads()]
    missing = sorted(set(range(published)) - set(got))
    duplicated = sorted({n for n in got if got.count(n) > 1})
    return f"{len(got)} messages, missing {missing[:10]}, duplicated {duplicated[:10]}, reports {client.reports[-3:]}"


# -- the seam between subscribing and reading the history ------------------------------------------

HANDSHAKES = 100
AT_ONCE = 4
FOLLOW = 20  # live messages each socket reads after its report


async def open_and_follow(url: str) -> tuple[list[Received], Report]:
    """Open ``url``, read the opening and FOLLOW live messages; return the messages and the report."""
    received: list[Received] = []
    report: Report | None = None
    # No flow control: with reading paused once 16 frames wait unread, the server's answer to our
    # close would sit behind live messages until websockets' close timeout (10 s).
    async with websockets.connect(url, max_queue=None) as ws:
        while report is None or sum(1 for m in received if not m.before_report) < FOLLOW:
            item = parse_frame(await within(ws.recv(), 3000 * MS))
            if isinstance(item, Report):
                assert report is None, f"a second report: {item}"
                report = item
            else:
                received.append(Received(item.label, item.id, item.payload, 1, report is None))
    return received, report


@pytest.mark.gen_test(timeout=60)
async def test_what_is_published_between_subscribing_and_reading_the_history_arrives_once_in_order(
    config, ws_url, redis_url
):
    key = history_key(f"{config.prefix}:broadcast:seam")
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(i: int) -> tuple[str, int | None, int, list[Received], Report]:
        async with slots:
            recent = await client.xrevrange(key, count=101)
            top = int(recent[0][1]["d"])
            back = (None, 0, 10, 100)[i % 4]  # None: a first connection, without a position
            if back is None:
                position, after = None, None
                query = "recover"
            else:
                position, fields = recent[back]
                after = int(fields["d"])
                query = "recover=" + quote(recover_value({"broadcast": position}), safe="")
            received, report = await open_and_follow(ws_url("seam", f"subscribe-broadcast&{query}"))
            return query, after, top, received, report

    try:
        async with HotPublisher(config, "seam") as hot:
            await wait_until(lambda: hot.published > 200)
            started = time.monotonic()
            results = await asyncio.gather(*(one(i) for i in range(HANDSHAKES)))
            took = time.monotonic() - started
            published = await hot.stop()
        history = {entry_id: int(fields["d"]) for entry_id, fields in await client.xrange(key)}
    finally:
        await client.aclose()

    assert len(history) == published
    wrong = []
    for query, after, top, received, report in results:
        numbers = [int(m.payload) for m in received]
        first = numbers[0] if after is None else after + 1
        problems = []
        if numbers != list(range(first, first + len(numbers))):
            problems.append("not each number once in order")
        if after is None and numbers[0] < top:
            problems.append("a first connection got an older message than the persisted one")
        if any(history.get(m.id) != int(m.payload) for m in received):
            problems.append("an id that is not the message's")
        if report.channels != {"broadcast": (report.channels["broadcast"][0], True)}:
            problems.append("not recovered")
        if problems:
            wrong.append((query, after, top, numbers[:5], report, problems))
    assert not wrong, f"{len(wrong)} of {HANDSHAKES} sockets broke the contract, e.g. {wrong[:3]}"
    gaps = sum(1 for _, after, _, received, _ in results if after is not None and received[0].before_report)
    print(f"\n{HANDSHAKES} handshakes in {took:.2f}s while {published} messages went out; {gaps} had a gap to fill")
