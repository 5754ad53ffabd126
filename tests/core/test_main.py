"""``python -m ws4redis_tornado`` as a user runs it: a real child process."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import random
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect as sync_connect

from ws4redis_tornado.embedded import free_port

from ..processes import ServerProcess
from ..rawws import handshake, read_frame
from ..utils import MS, wait_until, wait_until_blocking
from ..wsclient import assert_silent, close_code, close_code_blocking

EXIT_TIMEOUT = 30_000 * MS
"""How long a server that refuses to start gets to say why and exit."""


def test_unreachable_redis_is_one_clear_error_and_a_non_zero_exit():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    process = ServerProcess(redis_url=dead).launch()
    assert process.wait(EXIT_TIMEOUT) == 1
    assert f"redis unreachable at {dead}" in process.stderr
    assert "Traceback" not in process.stderr


def test_a_wrong_setting_is_named():
    process = ServerProcess("--expire", "-5").launch()
    assert process.wait(EXIT_TIMEOUT) == 2
    assert "'expire'" in process.stderr


def test_a_wrong_handshake_timeout_is_named():
    process = ServerProcess("--handshake-timeout", "0").launch()
    assert process.wait(EXIT_TIMEOUT) == 2
    assert "'handshake_timeout'" in process.stderr


def test_demo_server_relays_and_closes_sockets_with_1001_on_sigterm(redis_url, prefix):
    with ServerProcess("--demo", redis_url=redis_url, prefix=prefix) as process:
        port = process.port
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "ws4redis-tornado" in page and "/ws/demo?subscribe-broadcast" in page
        asyncio.run(_relay_then_sigterm(port, redis_url, prefix, process))
        assert process.wait(15_000 * MS) == 0


async def _relay_then_sigterm(port: int, redis_url: str, prefix: str, process: ServerProcess) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/demo?subscribe-broadcast") as ws:
        client = redis.Redis.from_url(redis_url)
        try:
            assert client.publish(f"{prefix}:broadcast:demo", "Hello from Redis") == 1
        finally:
            client.close()
        assert await asyncio.wait_for(ws.recv(), 5) == "Hello from Redis"
        process.send_signal(signal.SIGTERM)
        assert await close_code(ws, 10_000 * MS) == 1001


def test_a_port_in_use_is_one_clear_error(redis_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = ServerProcess(redis_url=redis_url, port=port).launch()
        assert process.wait(EXIT_TIMEOUT) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in process.stderr
    assert "Traceback" not in process.stderr


@pytest.mark.parametrize(("flags", "published"), [((), False), (("--client-publish",), True), (("--demo",), True)])
def test_clients_publish_only_when_the_server_lets_them(redis_url, prefix, flags, published):
    with ServerProcess(*flags, redis_url=redis_url, prefix=prefix) as process:
        asyncio.run(_publish_from_a_client(process.port, "anybody may write?", delivered=published))
        client = redis.Redis.from_url(redis_url)
        try:
            kept = client.get(f"{prefix}:broadcast:open")
        finally:
            client.close()
        assert kept == (b"anybody may write?" if published else None)


async def _publish_from_a_client(port: int, text: str, *, delivered: bool) -> None:
    url = f"ws://127.0.0.1:{port}/ws/open?subscribe-broadcast&publish-broadcast"
    async with websockets.connect(url) as listener, websockets.connect(url) as ws:
        await ws.send(text)
        if delivered:
            assert await asyncio.wait_for(listener.recv(), 5000 * MS) == text
        else:
            await assert_silent(listener, 500 * MS)


def test_the_server_listens_on_loopback_only_by_default(redis_url):
    # Linux routes all of 127/8 to loopback: a server on every interface would answer here too.
    with ServerProcess(redis_url=redis_url, host=None) as process, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", process.port), timeout=1).close()


def test_the_demo_page_shows_how_to_publish_through_the_embedded_redis():
    with ServerProcess("--embedded-redis", "--demo", prefix="app") as process:
        port = process.port
        page = html.unescape(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode())
        found = re.search(
            r"redis-cli -u (redis://127\.0\.0\.1:\d+/0) publish (app:broadcast:demo) 'Hello from Redis'", page
        )
        assert found, page
        url, channel = found.groups()
        assert not url.startswith("redis://127.0.0.1:6379/"), "the page names the embedded Redis, not the default"
        asyncio.run(_receive_what_the_page_says_to_publish(port, url, channel))
    assert f"started an embedded redis-server at {url}" in process.stderr


async def _receive_what_the_page_says_to_publish(port: int, url: str, channel: str) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/demo?subscribe-broadcast") as ws:
        with redis.Redis.from_url(url) as client:
            assert client.publish(channel, "Hello from Redis") == 1
        assert await asyncio.wait_for(ws.recv(), 5) == "Hello from Redis"


# -- processes and the drain -----------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The pids of the processes ``pid`` forked (Linux)."""
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def listeners(port: int) -> int:
    """How many IPv4 sockets listen on ``port`` (Linux): one per process, each with its own."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if int(row[1].rsplit(":", 1)[1], 16) == port and row[3] == "0A")


def socket_counts(port: int, attempts: int = 20) -> set[int]:
    """The open sockets the processes behind ``port`` report in /health, as many as answer."""
    url = f"http://127.0.0.1:{port}/health"
    return {json.loads(urllib.request.urlopen(url, timeout=5).read())["sockets"] for _ in range(attempts)}


def test_processes_share_the_port_and_sigterm_closes_every_websocket_with_1001(redis_url, prefix):
    count = 40
    args = ("--health-detail", "--processes", "2", "--grace-period", "5")
    with ServerProcess(*args, redis_url=redis_url, prefix=prefix) as process:
        port = process.port
        # Both bound: the kernel spreads connections over the sockets listening when they arrive.
        wait_until_blocking(lambda: listeners(port) == 2)
        url = f"ws://127.0.0.1:{port}/ws/room?subscribe-broadcast"
        with ThreadPoolExecutor(count) as pool:
            sockets = list(pool.map(lambda _: sync_connect(url, open_timeout=5000 * MS), range(count)))
        with contextlib.ExitStack() as stack:
            for ws in sockets:
                stack.enter_context(ws)
            with redis.Redis.from_url(redis_url) as client:
                client.publish(f"{prefix}:broadcast:room", "to all")
            # Delivery also means each socket is counted by its process.
            assert [ws.recv(timeout=5000 * MS) for ws in sockets] == ["to all"] * count
            counts = socket_counts(port)
            assert counts & set(range(1, count)), f"one process took every socket: {counts}"

            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert [close_code_blocking(ws) for ws in sockets] == [1001] * count
            assert process.wait(5000 * MS) == 0
            assert time.monotonic() - started < 5
    assert "Traceback" not in process.stderr


@pytest.mark.parametrize("value", ["auto", "0"])
def test_processes_auto_starts_one_per_usable_cpu(redis_url, value):
    cpus = len(os.sched_getaffinity(0))
    with ServerProcess("--processes", value, redis_url=redis_url) as process:
        wait_until_blocking(lambda: listeners(process.port) == cpus, 15_000 * MS)
        assert len(children(process.pid)) == cpus
    assert process.returncode == 0


def test_processes_must_be_a_number_or_auto(redis_url):
    process = ServerProcess("--processes", "many", redis_url=redis_url).launch()
    assert process.wait(EXIT_TIMEOUT) == 2
    assert "'many' is neither a number of processes nor 'auto'" in process.stderr


def test_a_process_that_dies_stops_the_others_and_the_server_exits_with_1(redis_url):
    with ServerProcess("--processes", "2", redis_url=redis_url) as process:
        wait_until_blocking(lambda: listeners(process.port) == 2)
        dying, other = children(process.pid)
        os.kill(dying, signal.SIGKILL)
        assert process.wait(10_000 * MS) == 1
        assert not os.path.exists(f"/proc/{other}"), "the other process was left running"
    assert "Traceback" not in process.stderr


def test_with_several_processes_unreachable_redis_is_still_one_clear_error():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    process = ServerProcess("--processes", "2", redis_url=dead).launch()
    assert process.wait(EXIT_TIMEOUT) == 1
    assert process.stderr.startswith(f"error: redis unreachable at {dead}"), process.stderr
    assert process.stderr.count("\n") == 1, process.stderr


@pytest.mark.parametrize(("option", "value"), [("--processes", "-1"), ("--grace-period", "-1")])
def test_a_negative_processes_or_grace_period_is_named(redis_url, option, value):
    process = ServerProcess(option, value, redis_url=redis_url).launch()
    assert process.wait(EXIT_TIMEOUT) == 2
    assert f"error: {option} has value -1" in process.stderr, process.stderr


def test_the_grace_period_bounds_the_wait_for_a_peer_that_never_answers_the_close(redis_url, prefix):
    args = ("--health-detail", "--grace-period", "0.5")
    with ServerProcess(*args, redis_url=redis_url, prefix=prefix) as process:
        asyncio.run(_sigterm_with_a_silent_peer(process.port, process))
    assert process.returncode == 0
    assert "code=1001" in process.stderr, process.stderr


async def _sigterm_with_a_silent_peer(port: int, process: ServerProcess) -> None:
    reader, writer = await handshake("127.0.0.1", port, "/ws/room?subscribe-broadcast")
    try:
        await wait_until(lambda: socket_counts(port, attempts=1) == {1})
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert (await asyncio.wait_for(read_frame(reader), 5))[0] == 0x8
        # Tornado would give the peer 5 s to answer; the grace period ends before.
        await asyncio.to_thread(process.wait, 5000 * MS)
        assert time.monotonic() - started < 3
    finally:
        writer.close()


def two_free_ports() -> int:
    """A port that can be bound, and the next one too, below the ephemeral range that outgoing
    connections take their ports from."""
    for port in random.sample(range(20_000, 32_000, 2), 50):
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise AssertionError("no two free ports in a row")


def scrape_sockets(port: int) -> tuple[str, float]:
    """The process label and open-socket count a metrics port reports."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    [sample] = next(f for f in text_string_to_metric_families(text) if f.name == "ws4redis_sockets_open").samples
    return sample.labels["process"], sample.value


def test_each_process_serves_its_own_metrics_on_the_metrics_port_plus_its_index(redis_url, prefix):
    metrics_port = two_free_ports()
    args = ("--processes", "2", "--metrics-port", str(metrics_port))
    with ServerProcess(*args, redis_url=redis_url, prefix=prefix) as process:
        wait_until_blocking(lambda: listeners(process.port) == 2)
        wait_until_blocking(lambda: listeners(metrics_port) == 1 and listeners(metrics_port + 1) == 1)
        url = f"ws://127.0.0.1:{process.port}/ws/room?subscribe-broadcast"
        with contextlib.ExitStack() as stack:
            for _ in range(6):
                stack.enter_context(sync_connect(url, open_timeout=5000 * MS))
            wait_until_blocking(
                lambda: scrape_sockets(metrics_port)[1] + scrape_sockets(metrics_port + 1)[1] == 6, what="6 sockets"
            )
            assert {scrape_sockets(metrics_port)[0], scrape_sockets(metrics_port + 1)[0]} == {"0", "1"}
        # The websocket port does not expose them.
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{process.port}/metrics", timeout=5)
    assert "Traceback" not in process.stderr


def test_a_metrics_port_in_use_is_one_clear_error(redis_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = ServerProcess("--metrics-port", str(port), redis_url=redis_url).launch()
        assert process.wait(EXIT_TIMEOUT) == 1
    assert f"cannot serve the metrics on 127.0.0.1:{port}" in process.stderr
    assert "Traceback" not in process.stderr
