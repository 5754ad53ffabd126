"""Recovery through a Sentinel failover: every message once and in order, or ``recovered: false``; never a silent gap.

A real master, replica and three sentinels (tests/redis_topologies.py); the server runs in-process,
its clients are recovering clients (tests/recovering.py), and the publisher is the core's
:class:`~ws4redis_tornado.publisher.Publisher`, which follows Sentinel too. The master is killed
while numbered messages go out every few milliseconds, and more go out once the failover is over.

Redis replicates asynchronously: a message the old master took but had not passed on when it died
is gone from every history (some clients may have had it live). Nothing can restore it, so the
contract is judged against the history that survived, the new master's stream: each of its
messages a client lacks must be covered by a ``recovered: false`` report.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import redis.asyncio as aredis
from redis.asyncio.sentinel import Sentinel

from ws4redis_tornado.compat.redis import aclose_sentinel
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.exceptions import BrokerUnavailable
from ws4redis_tornado.frames import CloseCode
from ws4redis_tornado.history import history_key, order
from ws4redis_tornado.publisher import Publisher

from ..recovering import RecoveringClient, running
from ..redis_topologies import HOST, SentinelSetup
from ..utils import MS, wait_until

pytestmark = pytest.mark.timeout(60)

CLIENTS = 50
INTERVAL = 3 * MS
AFTER_FAILOVER = 200  # messages published once every client is back


@pytest.fixture
def redis_url() -> str:
    """Nothing listens here: the broker must use the topology, never ``redis_url``."""
    return f"redis://{HOST}:{free_port()}/0"


@pytest.fixture
def config_options(sentinel_setup: SentinelSetup) -> dict:
    return {**sentinel_setup.config_options, "reconnect_max_delay": 0.2, "history_size": 5000}


class NumberedPublishing:
    """Publishes 0, 1, 2 ... to the broadcast channel of ``facility`` every ``interval`` until stopped.

    A number whose publish failed is skipped, never sent again: its command may have been
    applied even though the answer was lost.
    """

    def __init__(self, publisher: Publisher, facility: str, interval: float) -> None:
        self.publisher = publisher
        self.facility = facility
        self.interval = interval
        self.ok: list[int] = []
        self.failed: list[int] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        number = 0
        while not self._stop.is_set():
            try:
                await self.publisher.apublish(self.facility, str(number), broadcast=True)
            except BrokerUnavailable:
                self.failed.append(number)
            else:
                self.ok.append(number)
            number += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    def stop(self) -> None:
        self._stop.set()


def contract_breaches(client: RecoveringClient, history: list[tuple[str, int]]) -> list[str]:
    """What ``client`` got that the contract forbids, judged against the surviving ``history``.

    No number twice, none out of order, and every number of the history the client lacks lies
    in a span a ``recovered: false`` report covers: after what the client had before that
    connection, up to the report's id.
    """
    got = [int(message.payload) for message in client.received]
    breaches = list(client.problems)
    if got != sorted(set(got)):
        breaches.append(f"duplicated or out of order: {got}")
    number_at = {entry_id: number for entry_id, number in history}
    spans = []
    for report in client.reports:
        if report.not_recovered:
            before = [int(m.payload) for m in client.received if m.connection < report.connection]
            reached = report.channels["broadcast"][0]
            upto = number_at.get(reached) if reached is not None else None
            spans.append((max(before, default=-1), upto if upto is not None else -1))
    received = set(got)
    for entry_id, number in history:
        if number not in received and not any(low < number <= high for low, high in spans):
            breaches.append(f"silently missed {number} ({entry_id}); reports {client.reports}")
            break
    return breaches


@pytest.mark.gen_test(timeout=60)
async def test_clients_recover_through_a_failover_or_are_told_they_cannot(sentinel_setup, config, ws_url):
    setup = sentinel_setup
    clients = [RecoveringClient(ws_url("news", "subscribe-broadcast")) for _ in range(CLIENTS)]
    publisher = Publisher(config)
    publishing = NumberedPublishing(publisher, "news", INTERVAL)
    sentinel = Sentinel(setup.sentinel_addresses, socket_timeout=1)
    timings: dict[str, float] = {}
    try:
        async with running(clients):
            task = asyncio.create_task(publishing.run())
            try:
                await wait_until(lambda: len(publishing.ok) >= 200 and all(c.received for c in clients))
                killed = time.monotonic()
                await asyncio.get_running_loop().run_in_executor(None, setup.master.kill)

                async def failed_over() -> bool:
                    return await sentinel.discover_master(setup.service_name) == setup.replica.address

                await wait_until(failed_over, 15_000 * MS, step=50 * MS, ignore=(aredis.RedisError,))
                timings["failover after"] = time.monotonic() - killed
                # Every client was closed with 1012 and is back, caught up.
                await wait_until(
                    lambda: all(c.connections >= 2 and c.caught_up for c in clients),
                    15_000 * MS,
                    what="every client back after the failover",
                )
                timings["clients back after"] = time.monotonic() - killed
                first_after = len(publishing.ok) + len(publishing.failed)
                await wait_until(lambda: len(publishing.ok) >= first_after + AFTER_FAILOVER, 10_000 * MS)
            finally:
                publishing.stop()
                await task
            last = publishing.ok[-1]
            await wait_until(
                lambda: all(c.payloads()[-1:] == [str(last)] for c in clients),
                10_000 * MS,
                what=f"the last message ({last}) at every client",
            )
            timings["delivered after"] = time.monotonic() - killed
        async with aredis.Redis(host=HOST, port=setup.replica.port) as new_master:
            key = history_key(f"{config.prefix}:broadcast:news")
            history = [(i.decode(), int(fields[b"d"])) for i, fields in await new_master.xrange(key)]
    finally:
        publishing.stop()
        await publisher.aclose()
        await aclose_sentinel(sentinel)

    numbers = [number for _, number in history]
    assert numbers == sorted(set(numbers)) and [order(i) for i, _ in history] == sorted(order(i) for i, _ in history)
    assert set(numbers) <= set(publishing.ok) | set(publishing.failed)
    after = [n for n in publishing.ok if n >= first_after]
    assert set(after) <= set(numbers), "a message acknowledged by the new master is missing from its history"
    assert publishing.failed, "no publish failed: the master was not down while the publisher ran"

    breaches = {i: contract_breaches(client, history) for i, client in enumerate(clients)}
    assert {i: b for i, b in breaches.items() if b} == {}
    # What was published after the failover, every client has, in order.
    assert all([int(p) for p in client.payloads()][-len(after) :] == after for client in clients)
    assert all(CloseCode.SERVICE_RESTART in client.close_codes for client in clients)
    told = sum(1 for client in clients if client.not_recovered)
    lost = sorted(set(publishing.ok) - set(numbers))
    print(f"\nfailover: {timings}; {told}/{CLIENTS} clients told recovered:false; lost with the old master: {lost}")
