"""Recovery behind a real HAProxy: a rolling restart and a Redis restart cost a recovering client nothing.

Every part is a real process: two ``runtornado --ws-only`` keeping HISTORY_SIZE messages per
channel, one ``runtornado`` for the Django views, HAProxy in front, the stack's redis-server, and
a publisher process (tests/deploy/numbered_publisher.py) that broadcasts numbered messages through
django_bridge's RedisPublisher with the stack's settings, as a Django view would. The clients
(tests/recovering.py) connect through HAProxy with ``recover``, all in this process's event loop,
and reconnect with their positions after every close, as ws4redis.js does.

The publisher sends MESSAGES numbers, one every INTERVAL, then holds until the test lets it send
FINAL more: the test does so once every client is connected again, so that the last numbers
reach every client live, behind whatever it recovered. CLIENTS sockets receiving a frame every
INTERVAL each keep this process busy, so its clients may read well behind the servers; that is
why the restarts run in threads, timed by the publisher's progress rather than by the clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from ws4redis_tornado.channels import Audience, channel_key
from ws4redis_tornado.frames import CloseCode
from ws4redis_tornado.history import history_key, order

from ..processes import ManagedProcess
from ..recovering import RecoveringClient, Report, running
from ..utils import MS, wait_until, wait_until_blocking
from .clients import FACILITY, GOING_AWAY
from .conftest import start_stack
from .launcher import Service, Stack

pytestmark = pytest.mark.timeout(60)

HISTORY_SIZE = 20_000  # more than the whole run publishes: nothing is trimmed away
CLIENTS = 200
MESSAGES = 1000
INTERVAL = 0.005  # seconds between two publications: MESSAGES of them take 5 s
FINAL = 20
PUBLISHER = Path(__file__).with_name("numbered_publisher.py")


@contextlib.contextmanager
def history_stack(haproxy: str, prefix: str, workdir: Path, **options: object) -> Iterator[Stack]:
    stack = start_stack(haproxy, prefix, workdir, **options)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def history_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example's settings read STACK_HISTORY_SIZE; the stack's processes and the publisher inherit it."""
    monkeypatch.setenv("STACK_HISTORY_SIZE", str(HISTORY_SIZE))


@pytest.fixture
def volatile_stack(history_settings: None, haproxy: str, prefix: str, tmp_path: Path) -> Iterator[Stack]:
    """The stack, its Redis keeping nothing on disk: a restart empties it."""
    with history_stack(haproxy, prefix, tmp_path) as stack:
        yield stack


@pytest.fixture
def persistent_stack(history_settings: None, haproxy: str, prefix: str, tmp_path: Path) -> Iterator[Stack]:
    """The stack, its Redis writing every change to an append-only file: a restart keeps the history."""
    with history_stack(haproxy, prefix, tmp_path, redis_persistence=True) as stack:
        yield stack


def recovering_clients(stack: Stack) -> list[RecoveringClient]:
    """CLIENTS recovering clients of the facility's broadcast channel, through HAProxy."""
    return [RecoveringClient(f"{stack.websocket_url}{FACILITY}?subscribe-broadcast") for _ in range(CLIENTS)]


# -- the publisher process -------------------------------------------------------------------------


class NumberedPublisher(ManagedProcess):
    """tests/deploy/numbered_publisher.py with the environment of the stack's servers; its stdout is its record."""

    def __init__(self, stack: Stack, log_dir: Path) -> None:
        argv = [sys.executable, str(PUBLISHER), "--count", str(MESSAGES), "--interval", str(INTERVAL)]
        argv += ["--final", str(FINAL), "--facility", FACILITY]
        super().__init__(argv, env=stack.websocket_servers[0].env, log_dir=log_dir, log_name="publisher")

    def wait_ready(self) -> None:
        self.wait_for_output("ready", 15_000 * MS)

    def _numbers(self, outcome: str) -> list[int]:
        return [int(line.split()[1]) for line in self.stdout.splitlines() if line.startswith(outcome + " ")]

    def ok(self) -> list[int]:
        """The numbers Redis acknowledged, in the order they were sent."""
        return self._numbers("ok")

    def failed(self) -> list[int]:
        """The numbers that raised BrokerUnavailable: not sent, or sent with the answer lost."""
        return self._numbers("failed")

    def attempted(self) -> int:
        return len(self.ok()) + len(self.failed())

    def holding(self) -> bool:
        return "holding" in self.stdout.splitlines()

    def done(self) -> bool:
        return self.stdout.splitlines()[-1:] == ["done"]

    def send_final(self) -> None:
        self.send_signal(signal.SIGUSR1)


def back(client: RecoveringClient) -> bool:
    return client.caught_up and client.connections >= 2


async def send_final_once_every_client_is_back(publisher: NumberedPublisher, clients: list[RecoveringClient]) -> None:
    """Wait for the publisher's hold and for every client reconnected and caught up; then let the last numbers go.

    Every scenario here closes every client at least once, so a client is back once it is caught
    up on a second connection (or a later one): until its close arrives, the first one still
    looks caught up. Returns once every client has the last number the publisher sent.
    """
    await wait_until(publisher.holding, 20_000 * MS, what="the first numbers sent", details=lambda: publisher.output)
    await wait_until(
        lambda: all(back(client) for client in clients),
        20_000 * MS,
        what="every client connected again",
        details=lambda: describe(clients, back),
    )
    publisher.send_final()
    await wait_until(publisher.done, 10_000 * MS, what="the final numbers", details=lambda: publisher.output)
    last = str(publisher.ok()[-1])

    def has_last(client: RecoveringClient) -> bool:
        return bool(client.received) and client.received[-1].payload == last

    await wait_until(
        lambda: all(has_last(client) for client in clients),
        10_000 * MS,
        what=f"the last number ({last}) at every client",
        details=lambda: describe(clients, has_last),
    )


# -- reading what the clients got ------------------------------------------------------------------


def numbers(client: RecoveringClient) -> list[int]:
    return [int(payload) for payload in client.payloads("broadcast")]


def recovered_from_history(client: RecoveringClient) -> int:
    """How many numbers a client got from history: the ones before the report of a connection after its first."""
    return sum(1 for message in client.received if message.before_report and message.connection > 1)


def describe(clients: list[RecoveringClient], fine: Callable[[RecoveringClient], object]) -> str:
    """How many clients are not ``fine``, and the first of them: what it got and how it connected."""
    wrong = [(i, client) for i, client in enumerate(clients) if not fine(client)]
    if not wrong:
        return "every client as expected"
    i, client = wrong[0]
    got = numbers(client)
    duplicates = sorted({n for n in got if got.count(n) > 1})
    gaps = [(a, b) for a, b in itertools.pairwise(got) if b != a + 1]
    return (
        f"{len(wrong)} clients not as expected; client {i}: caught up {client.caught_up}, {len(got)} numbers"
        f" (last {got[-3:]}), gaps {gaps[:10]}, duplicated {duplicates[:10]}, connections {client.connections},"
        f" reports {[report.channels for report in client.reports]}, close codes {client.close_codes},"
        f" refusals {client.refusals[-3:]}, problems {client.problems[:3]}"
    )


def stream_numbers(stack: Stack) -> list[tuple[str, int]]:
    """The broadcast channel's history as (id, number), oldest first, read from the stack's Redis."""
    key = history_key(channel_key(Audience.BROADCAST, FACILITY, prefix=stack.prefix or ""))
    with redis.Redis.from_url(stack.redis_url) as client:
        return [(entry_id.decode(), int(fields[b"d"])) for entry_id, fields in client.xrange(key)]


def socket_counts(stack: Stack) -> list[int]:
    """How many websockets each websocket server holds, from its own health JSON."""
    return [(stack.health(server) or {}).get("sockets", 0) for server in stack.websocket_servers]


# -- (a) a rolling restart of the websocket servers ------------------------------------------------


def drain(server: Service) -> None:
    """SIGTERM a websocket server and wait until it has exited cleanly, its sockets closed with 1001."""
    server.send_signal(signal.SIGTERM)
    assert server.process is not None
    code = server.process.wait(15)
    assert code == 0, server.tail()


def start_again(stack: Stack, server: Service) -> None:
    """Start a drained websocket server on its port, and wait until HAProxy sees it UP."""
    server.start()
    wait_until_blocking(
        lambda: stack.server_status().get(server.name) == "UP",
        20_000 * MS,
        step=50 * MS,
        what=f"{server.name} UP again",
        details=server.tail,
    )


def roll(stack: Stack, publisher: NumberedPublisher) -> dict[str, float]:
    """A fifth of the way into the numbers, drain ws1 and start it again, then drain ws2.

    Runs in a thread of its own, so that its timing does not depend on how far behind the
    clients' event loop is. Returns when each step began, in seconds after the first number.
    """
    ws1, ws2 = stack.websocket_servers
    started = time.monotonic()
    publisher.wait_until(lambda: publisher.attempted() >= MESSAGES // 5, "a fifth of the numbers", 10_000 * MS)
    timeline = {"ws1 SIGTERM": time.monotonic() - started}
    drain(ws1)
    start_again(stack, ws1)
    timeline["ws2 SIGTERM"] = time.monotonic() - started
    drain(ws2)
    timeline["ws2 gone"] = time.monotonic() - started
    return timeline


def test_a_rolling_restart_behind_haproxy_costs_recovering_clients_no_message(volatile_stack, tmp_path):
    stack = volatile_stack
    clients = recovering_clients(stack)
    publisher = NumberedPublisher(stack, tmp_path)
    spread: list[int] = []
    timeline: dict[str, float] = {}

    async def scenario() -> None:
        async with running(clients):
            spread.extend(await asyncio.to_thread(socket_counts, stack))
            assert sum(spread) == CLIENTS and min(spread) > 0, f"not spread over both servers: {spread}"
            await asyncio.to_thread(publisher.start)
            try:
                # ws1's clients move to ws2; once ws1 is back, every client moves to ws1. Each move
                # is a close with 1001, a reconnection through HAProxy with the client's
                # positions, and a replay of what it missed.
                timeline.update(await asyncio.to_thread(roll, stack, publisher))
                await send_final_once_every_client_is_back(publisher, clients)
            finally:
                publisher.stop()

    asyncio.run(scenario())
    published = list(range(MESSAGES + FINAL))
    assert publisher.failed() == [] and publisher.ok() == published, publisher.output
    assert [client.problems for client in clients if client.problems] == []
    assert [client.not_recovered for client in clients if client.not_recovered] == []
    assert all(numbers(client) == published for client in clients), describe(clients, lambda c: numbers(c) == published)
    # Every client moved at least once, ws1's maybe twice, and every close was a drain's 1001; one
    # more is a connection the draining server accepted, or one still opening when it drained.
    on_ws1, on_ws2 = spread
    assert all(client.connections >= 2 for client in clients)
    assert all(client.close_codes == [GOING_AWAY] * (client.connections - 1) for client in clients)
    recovered = [recovered_from_history(client) for client in clients]
    assert sum(recovered) > 0, "no client needed the history: the restarts did not test recovery"
    print(
        f"\n{CLIENTS} clients ({on_ws1} on ws1, {on_ws2} on ws2), {len(published)} numbers; seconds after the"
        f" first number: {timeline}; {sum(recovered)} numbers recovered from history by"
        f" {sum(1 for n in recovered if n)} clients, at most {max(recovered)} by one"
    )


# -- (b) and (c) Redis restarts ---------------------------------------------------------------------


def restart_redis_mid_stream(stack: Stack, clients: list[RecoveringClient], publisher: NumberedPublisher) -> None:
    """Restart the stack's Redis a third of the way into the numbers; every client is back for the final ones.

    Every client is caught up before the first number, so each has received some before Redis
    goes. The restart runs in a thread, on the publisher's progress, whatever the clients' lag.
    """

    def restart() -> None:
        publisher.wait_until(lambda: publisher.attempted() >= MESSAGES // 3, "a third of the numbers", 10_000 * MS)
        stack.restart_redis()

    async def scenario() -> None:
        async with running(clients):
            await asyncio.to_thread(publisher.start)
            try:
                await asyncio.to_thread(restart)
                await send_final_once_every_client_is_back(publisher, clients)
            finally:
                publisher.stop()

    asyncio.run(scenario())
    # The server lost Redis: it closed every recovering socket with 1012, and they came back.
    assert [client.problems for client in clients if client.problems] == []

    def closed_by_the_loss(client: RecoveringClient) -> bool:
        return client.close_codes != [] and set(client.close_codes) == {CloseCode.SERVICE_RESTART}

    assert all(closed_by_the_loss(client) for client in clients), describe(clients, closed_by_the_loss)


def test_a_redis_restart_with_persistence_costs_recovering_clients_no_message(persistent_stack, tmp_path):
    stack = persistent_stack
    clients = recovering_clients(stack)
    publisher = NumberedPublisher(stack, tmp_path)
    restart_redis_mid_stream(stack, clients, publisher)

    ok, failed = publisher.ok(), publisher.failed()
    history = [number for _, number in stream_numbers(stack)]
    # The history survived the restart: every acknowledged number is in it, once and in order. A
    # number whose publication failed is in it only if Redis applied it and the answer was lost.
    assert history == sorted(set(history)) and set(ok) <= set(history) <= set(ok) | set(failed), history
    assert history[0] == 0 and history[-1] == MESSAGES + FINAL - 1
    assert [client.not_recovered for client in clients if client.not_recovered] == []
    assert all(numbers(client) == history for client in clients), describe(clients, lambda c: numbers(c) == history)
    recovered = [recovered_from_history(client) for client in clients]
    assert sum(recovered) > 0, "no client needed the history: Redis came back before any client reconnected"
    print(
        f"\n{len(failed)} publications failed while Redis restarted, {len(set(history) & set(failed))} of them"
        f" applied; {sum(recovered)} numbers recovered from history by {sum(1 for n in recovered if n)} clients"
    )


def told_at(client: RecoveringClient) -> Report:
    """The one report that told the client its broadcast history was lost."""
    [report] = [report for report in client.reports if report.not_recovered]
    assert report.not_recovered == ["broadcast"]
    return report


def test_a_redis_restart_without_persistence_tells_recovering_clients_instead_of_replaying_part(
    volatile_stack, tmp_path
):
    stack = volatile_stack
    clients = recovering_clients(stack)
    publisher = NumberedPublisher(stack, tmp_path)
    restart_redis_mid_stream(stack, clients, publisher)

    ok, failed = publisher.ok(), publisher.failed()
    entries = stream_numbers(stack)
    history = [number for _, number in entries]
    # The stream began again after the restart.
    assert history == sorted(set(history)) and history[0] > 0 and history[-1] == MESSAGES + FINAL - 1
    wrong = []
    told = 0
    for i, client in enumerate(clients):
        got = numbers(client)
        if got != sorted(set(got)) or not set(got) <= set(ok) | set(failed):
            wrong.append((i, "a number twice, out of order, or never published", got))
        elif not client.not_recovered:
            # Allowed: a client that got everything needs no report.
            if not set(ok) <= set(got):
                wrong.append((i, "numbers missing without a report", sorted(set(ok) - set(got))[:20]))
        else:
            told += 1
            report = told_at(client)
            before = [int(m.payload) for m in client.received if m.connection < report.connection]
            after = [int(m.payload) for m in client.received if m.connection >= report.connection]
            (position, _) = report.channels["broadcast"]
            owed = [number for entry_id, number in entries if order(entry_id) > order(position or "0-0")]
            # Everything up to its close, nothing of the gap, then everything after where it was told it stands.
            if before != list(range(len(before))) or after != owed:
                wrong.append((i, "not a prefix, the report, then the rest", before[-3:], position, after[:3], owed[:3]))
    assert wrong == [], f"{len(wrong)} clients broke the contract, e.g. {wrong[:3]}"
    # Each came back with an id of the lost stream, which the new one cannot continue from.
    assert told == CLIENTS, f"only {told} of {CLIENTS} clients were told their history was lost"
    print(f"\n{told} of {CLIENTS} clients told the broadcast history was lost; {len(failed)} publications failed")
