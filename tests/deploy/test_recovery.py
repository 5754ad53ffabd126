"""Recovery behind a real HAProxy: clients that reconnect with positions miss nothing and get nothing twice.

Every part is a real process: two ``runtornado --ws-only`` with a history of HISTORY_SIZE messages
per channel, HAProxy in front, a redis-server, and a publisher process that broadcasts numbered
messages through django_bridge's RedisPublisher with the stack's settings (so through the
history script, as a Django view would). The clients (tests/recovering.py) opt in with
``recover`` and reconnect after every close, as ws4redis.js does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from ws4redis_tornado.channels import Audience, channel_key
from ws4redis_tornado.history import history_key, order

from ..processes import ManagedProcess
from ..recovering import RecoveringClient
from ..redis_topologies import RedisProcess
from ..utils import MS, wait_until
from .clients import FACILITY, GOING_AWAY
from .conftest import start_stack
from .launcher import Stack

pytestmark = pytest.mark.timeout(60)

HISTORY_SIZE = 2000
CLIENTS = 200
MESSAGES = 1000
INTERVAL = 0.005  # seconds between two publications: MESSAGES of them take 5 s
PUBLISHER = Path(__file__).with_name("numbered_publisher.py")


@pytest.fixture
def history_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's settings read STACK_HISTORY_SIZE; the stack's processes inherit the environment."""
    monkeypatch.setenv("STACK_HISTORY_SIZE", str(HISTORY_SIZE))


@pytest.fixture
def recovery_stack(history_settings: None, haproxy: str, prefix: str, tmp_path: Path) -> Iterator[Stack]:
    stack = start_stack(haproxy, prefix, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


# -- the publisher process -------------------------------------------------------------------------


class NumberedPublisher(ManagedProcess):
    """tests/deploy/numbered_publisher.py with the environment of the stack's servers."""

    def __init__(self, stack: Stack, log_dir: Path, *, count: int = MESSAGES, interval: float = INTERVAL) -> None:
        argv = [sys.executable, str(PUBLISHER), "--count", str(count), "--interval", str(interval)]
        argv += ["--facility", FACILITY]
        super().__init__(argv, env=stack.websocket_servers[0].env, log_dir=log_dir, log_name="publisher")

    def wait_ready(self) -> None:
        self.wait_for_output("ready", 15_000 * MS)

    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def attempted(self) -> int:
        """How many numbers it has tried to publish so far."""
        return sum(1 for line in self.lines() if line.startswith(("ok ", "failed ")))

    def ok(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines() if line.startswith("ok ")]

    def failed(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines() if line.startswith("failed ")]

    def done(self) -> bool:
        return self.lines()[-1:] == ["done"]


# -- helpers ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(clients: list[RecoveringClient]) -> AsyncIterator[None]:
    """Run every client until the block ends; fail at once if one reports a problem."""
    tasks = [asyncio.create_task(client.run()) for client in clients]
    try:
        await wait_until(lambda: all(client.caught_up for client in clients), 20_000 * MS, what="every client open")
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def numbers(client: RecoveringClient) -> list[int]:
    return [int(payload) for payload in client.payloads("broadcast")]


def stream_entries(redis_url: str, key: str) -> list[tuple[str, int]]:
    """The channel's history as (id, number) pairs, oldest first."""
    with redis.Redis.from_url(redis_url) as client:
        return [(entry_id.decode(), int(fields[b"d"])) for entry_id, fields in client.xrange(key)]


def broadcast_key(stack: Stack) -> str:
    return channel_key(Audience.BROADCAST, FACILITY, prefix=stack.prefix or "")


def socket_counts(stack: Stack) -> list[int]:
    counts = []
    for server in stack.websocket_servers:
        health = stack.health(server)
        counts.append(health["sockets"] if health else 0)
    return counts


def recovered_from_history(client: RecoveringClient) -> int:
    """How many messages a client got from history: before the report of a connection after its first."""
    return sum(1 for message in client.received if message.before_report and message.connection > 1)


def describe(clients: list[RecoveringClient], expected: list[int]) -> str:
    wrong = [(i, client) for i, client in enumerate(clients) if numbers(client) != expected]
    if not wrong:
        return "all as expected"
    i, client = wrong[0]
    got = numbers(client)
    missing = sorted(set(expected) - set(got))
    duplicates = sorted({n for n in got if got.count(n) > 1})
    return (
        f"{len(wrong)} clients wrong; client {i}: {len(got)} numbers, missing {missing[:20]},"
        f" duplicated {duplicates[:20]}, connections {client.connections}, reports {client.reports},"
        f" close codes {client.close_codes}, refusals {client.refusals[-5:]}"
    )


async def restart(stack: Stack, index: int) -> tuple[float, float]:
    """SIGTERM websocket server ``index``, wait for it to drain and exit, start it again, wait until it is UP.

    Returns the seconds from SIGTERM to its exit and to UP again.
    """
    server = stack.websocket_servers[index]
    signalled = time.monotonic()
    server.send_signal(signal.SIGTERM)
    assert server.process is not None
    code = await asyncio.to_thread(server.process.wait, 10)
    assert code == 0, server.tail()
    exited = time.monotonic() - signalled
    server.start()

    async def up() -> bool:
        return (await asyncio.to_thread(stack.server_status)).get(server.name) == "UP"

    await wait_until(up, 20_000 * MS, step=50 * MS, what=f"{server.name} UP again", details=server.tail)
    return exited, time.monotonic() - signalled


# -- (a) a websocket server restarts ---------------------------------------------------------------


def test_clients_of_a_restarted_server_recover_every_message_once_and_in_order(recovery_stack, tmp_path):
    stack = recovery_stack
    url = f"{stack.websocket_url}{FACILITY}?subscribe-broadcast"
    clients = [RecoveringClient(url) for _ in range(CLIENTS)]
    publisher = NumberedPublisher(stack, tmp_path)
    timings: dict[str, float] = {}
    spread: list[int] = []

    async def scenario() -> None:
        async with running(clients):
            spread.extend(await asyncio.to_thread(socket_counts, stack))
            assert sum(spread) == CLIENTS and min(spread) > 0, f"not spread over both servers: {spread}"
            await asyncio.to_thread(publisher.start)
            started = time.monotonic()
            try:
                # A third of the way in, ws1 drains: its clients reconnect through HAProxy to ws2.
                await wait_until(lambda: publisher.attempted() >= MESSAGES // 3, 10_000 * MS)
                timings["ws1 SIGTERM at"] = time.monotonic() - started
                exited, up = await restart(stack, 0)
                timings["ws1 exited after"], timings["ws1 UP again after"] = exited, up
                await wait_until(publisher.done, 20_000 * MS, details=lambda: publisher.output)
                timings["published in"] = time.monotonic() - started
                assert publisher.failed() == [] and publisher.ok() == list(range(MESSAGES))
                await wait_until(
                    lambda: all(client.payloads()[-1:] == [str(MESSAGES - 1)] for client in clients),
                    20_000 * MS,
                    what="the last message at every client",
                    details=lambda: describe(clients, list(range(MESSAGES))),
                )
                timings["delivered in"] = time.monotonic() - started
            finally:
                publisher.stop()

    asyncio.run(scenario())
    assert [client.problems for client in clients if client.problems] == []
    assert all(numbers(client) == list(range(MESSAGES)) for client in clients), describe(clients, list(range(MESSAGES)))
    assert [client.not_recovered for client in clients if client.not_recovered] == []
    # ws1's clients moved to ws2 after the drain's 1001; ws2's stayed.
    on_ws1, on_ws2 = spread
    moved = [client for client in clients if client.connections == 2]
    assert sorted(client.connections for client in clients) == [1] * on_ws2 + [2] * on_ws1
    assert all(client.close_codes == [GOING_AWAY] for client in moved)
    assert all(len(client.reports) == client.connections for client in clients)
    # What went out between a client's close and its reconnect came from history.
    recovered = [recovered_from_history(client) for client in moved]
    assert sum(recovered) > 0, "no moved client needed the history: the restart did not test recovery"
    print(
        f"\n{CLIENTS} clients ({on_ws1} moved), {MESSAGES} messages: {timings}; {sum(recovered)} messages"
        f" recovered from history by {sum(1 for n in recovered if n)} clients, at most {max(recovered)} by one"
    )


# -- (b) Redis restarts ----------------------------------------------------------------------------


@pytest.fixture(params=["appendonly", "no persistence"])
def restartable_redis(request: pytest.FixtureRequest) -> Iterator[RedisProcess]:
    """A redis-server of the test's own that keeps its data across a restart (AOF), or not."""
    server = RedisProcess(["appendonly yes"] if request.param == "appendonly" else []).start()
    yield server
    server.stop()


@pytest.fixture
def stack_on_restartable_redis(
    history_settings: None, restartable_redis: RedisProcess, haproxy: str, prefix: str, tmp_path: Path
) -> Iterator[Stack]:
    host, port = restartable_redis.address
    stack = start_stack(haproxy, prefix, tmp_path, redis_url=f"redis://{host}:{port}/0")
    try:
        yield stack
    finally:
        stack.stop()


def split_at_loss(client: RecoveringClient) -> tuple[list[int], list[int], str | None]:
    """The numbers a client got before the connection told ``recovered: false``, from it on, and its report id."""
    [report] = [report for report in client.reports if report.not_recovered]
    before = [int(m.payload) for m in client.received if m.connection < report.connection]
    after = [int(m.payload) for m in client.received if m.connection >= report.connection]
    return before, after, report.channels["broadcast"][0]


def test_clients_recover_across_a_redis_restart_or_are_told_they_cannot(
    stack_on_restartable_redis, restartable_redis, tmp_path
):
    """With the stream persisted, every client gets every message once and in order. Without, the
    stream is gone: every client is told ``recovered: false`` once, and from its report on gets
    every message published after it, in order; nothing twice, nothing out of order, ever.
    """
    stack, server = stack_on_restartable_redis, restartable_redis
    persisted = "appendonly yes" in server.settings
    url = f"{stack.websocket_url}{FACILITY}?subscribe-broadcast"
    clients = [RecoveringClient(url) for _ in range(CLIENTS)]
    publisher = NumberedPublisher(stack, tmp_path)
    key = history_key(broadcast_key(stack))
    timings: dict[str, float] = {}

    async def scenario() -> list[tuple[str, int]]:
        async with running(clients):
            await asyncio.to_thread(publisher.start)
            started = time.monotonic()
            try:
                await wait_until(
                    lambda: publisher.attempted() >= MESSAGES // 3 and all(client.received for client in clients),
                    10_000 * MS,
                )
                stopping = time.monotonic()
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
                timings["redis down for"] = time.monotonic() - stopping
                timings["redis back at"] = time.monotonic() - started
                await wait_until(publisher.done, 30_000 * MS, details=lambda: publisher.output)
                timings["published in"] = time.monotonic() - started
                entries = await asyncio.to_thread(stream_entries, stack.redis_url, key)
                last = str(entries[-1][1])
                await wait_until(
                    lambda: all(client.caught_up and client.payloads()[-1:] == [last] for client in clients),
                    20_000 * MS,
                    what=f"the last message ({last}) at every client",
                    details=lambda: describe(clients, [n for _, n in entries]),
                )
                timings["delivered in"] = time.monotonic() - started
                return entries
            finally:
                publisher.stop()

    entries = asyncio.run(scenario())
    ok, failed = publisher.ok(), publisher.failed()
    assert failed, "no publication failed: Redis was not down while the publisher ran"
    assert [client.problems for client in clients if client.problems] == []
    everything = [number for _, number in entries]
    assert everything == sorted(set(everything)), "the history holds a number twice or out of order"
    assert set(everything) <= set(ok) | set(failed)
    if persisted:
        # The stream survived: it holds every acknowledged number, and so does every client.
        assert set(ok) <= set(everything) and everything[0] == 0
        assert [client.not_recovered for client in clients if client.not_recovered] == []
        assert all(numbers(client) == everything for client in clients), describe(clients, everything)
    else:
        # The stream holds only what was published after the restart.
        assert everything[0] > 0
        wrong = []
        for i, client in enumerate(clients):
            got = numbers(client)
            before, after, position = split_at_loss(client)
            owed = [number for entry_id, number in entries if position is None or order(entry_id) > order(position)]
            if not (
                client.not_recovered == ["broadcast"]
                and before == list(range(len(before)))
                and after == everything[len(everything) - len(after) :]
                and len(after) >= len(owed) > 0
                and got == sorted(set(got))
            ):
                wrong.append((i, client.reports, before[-3:], after[:3], position))
        assert not wrong, f"{len(wrong)} clients broke the contract, e.g. {wrong[:3]}"
    recovered = sum(recovered_from_history(client) for client in clients)
    print(
        f"\n{'persisted' if persisted else 'not persisted'}: {timings}; {len(failed)} publications failed"
        f" while Redis was down; {recovered} messages recovered from history"
    )
