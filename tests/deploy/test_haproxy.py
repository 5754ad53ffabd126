"""The deployment example behind a real HAProxy: fan-out over two websocket servers, failover on SIGTERM.

Every part is a real process: redis-server, two ``runtornado --ws-only``, one ``runtornado`` for
the Django views, and HAProxy configured from examples/deploy/haproxy.cfg.template. Clients go
through HAProxy's single port only; the servers' own ports are used to read their health JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..processes import ManagedProcess
from ..utils import MS, free_ports, wait_until
from ..wsclient import assert_silent, recv
from .clients import FACILITY, GOING_AWAY, ReconnectingClient, publish
from .launcher import DEPLOY_DIR, Stack, find_prometheus, http_get

CLIENTS = 20


def socket_counts(stack: Stack) -> list[int]:
    """How many websockets each websocket server holds, from its own health JSON."""
    counts = []
    for server in stack.websocket_servers:
        health = stack.health(server)
        counts.append(health["sockets"] if health else 0)
    return counts


def haproxy_sessions(stack: Stack) -> dict[str, int]:
    """Current sessions per websocket server, as HAProxy's statistics count them."""
    names = {server.name for server in stack.websocket_servers}
    return {row["svname"]: int(row["scur"]) for row in stack.stats() if row["svname"] in names}


def exists(pid: int) -> bool:
    """Tell whether process ``pid`` is alive (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def receive(ws: ClientConnection, count: int) -> list[str]:
    return [str(await recv(ws, 5000 * MS)) for _ in range(count)]


def test_a_message_published_once_by_a_django_view_reaches_every_client_on_both_servers_once(stack):
    async def scenario() -> None:
        url = f"{stack.websocket_url}{FACILITY}?subscribe-broadcast"
        async with contextlib.AsyncExitStack() as sockets:
            # One after the other, so that leastconn alternates between the two servers.
            clients = [await sockets.enter_async_context(connect(url, open_timeout=5000 * MS)) for _ in range(CLIENTS)]

            counts = await asyncio.to_thread(socket_counts, stack)
            assert sum(counts) == CLIENTS and min(counts) > 0, f"not spread over both servers: {counts}"
            sessions = await asyncio.to_thread(haproxy_sessions, stack)
            assert sessions == {"ws1": counts[0], "ws2": counts[1]}

            # Redis delivers each publication to both processes (one pub/sub connection each).
            assert await asyncio.to_thread(publish, stack, "first") == 2
            assert await asyncio.to_thread(publish, stack, "second") == 2
            # In order on each socket: a duplicate of "first" would come before "second".
            received = await asyncio.gather(*(receive(ws, 2) for ws in clients))
            assert received == [["first", "second"]] * CLIENTS
            await asyncio.gather(*(assert_silent(ws, 200 * MS) for ws in clients))

    asyncio.run(scenario())


def test_sigterm_to_a_websocket_server_moves_its_clients_to_the_other_one(stack):
    ws1 = stack.websocket_servers[0]

    async def ws1_down() -> bool:
        # HAProxy's statistics are read in a thread: the clients' reconnections go on meanwhile.
        return (await asyncio.to_thread(stack.server_status)).get("ws1") == "DOWN"

    async def scenario() -> None:
        url = f"{stack.websocket_url}{FACILITY}?subscribe-broadcast"
        clients = [ReconnectingClient(url) for _ in range(CLIENTS)]
        tasks = [asyncio.create_task(client.run()) for client in clients]
        try:
            await wait_until(lambda: all(client.open for client in clients), 10_000 * MS)
            counts = await asyncio.to_thread(socket_counts, stack)
            assert sum(counts) == CLIENTS and min(counts) > 0, f"not spread over both servers: {counts}"
            assert await asyncio.to_thread(publish, stack, "before") == 2
            await wait_until(lambda: all(client.messages == ["before"] for client in clients))

            # Timeline: SIGTERM -> ws1 stops listening and closes its sockets with 1001 -> their
            # clients reconnect at once; HAProxy retries a refused connect on ws2 -> two failed
            # checks 100 ms apart mark ws1 DOWN.
            started = time.monotonic()
            ws1.send_signal(signal.SIGTERM)
            await wait_until(lambda: sum(client.connections for client in clients) == CLIENTS + counts[0], 10_000 * MS)
            await wait_until(lambda: all(client.open for client in clients), 10_000 * MS)
            moved_after = time.monotonic() - started
            await wait_until(ws1_down, 5000 * MS, step=20 * MS)
            down_after = time.monotonic() - started

            moved = [client for client in clients if client.connections == 2]
            stayed = [client for client in clients if client.connections == 1]
            assert len(moved) == counts[0] and len(stayed) == counts[1]
            assert [client.close_codes for client in moved] == [[GOING_AWAY]] * len(moved)
            assert [client.close_codes for client in stayed] == [[]] * len(stayed)
            assert await asyncio.to_thread(socket_counts, stack) == [0, CLIENTS]
            assert stack.server_status() == {"ws1": "DOWN", "ws2": "UP", "django1": "UP"}

            # Only ws2 is subscribed now. A moved client got "before" again on reconnecting:
            # ws4redis persists the last message of a channel and sends it to each new socket.
            assert await asyncio.to_thread(publish, stack, "after") == 1
            await wait_until(lambda: all(client.messages[-1:] == ["after"] for client in clients))
            assert [client.messages for client in moved] == [["before", "before", "after"]] * len(moved)
            assert [client.messages for client in stayed] == [["before", "after"]] * len(stayed)
            print(
                f"{len(moved)} clients moved to ws2 {moved_after:.2f}s after SIGTERM; ws1 DOWN after "
                f"{down_after:.2f}s; {sum(len(client.failures) for client in clients)} failed reconnects"
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
    assert ws1.process is not None and ws1.process.wait(5) == 0
    assert "Traceback" not in ws1.log.read_text()


def test_one_command_starts_the_stack_and_sigterm_stops_it_in_order(haproxy, tmp_path: Path):
    """``python examples/deploy/stack.py``: up, serving through HAProxy; SIGTERM drains, then stops all.

    Prometheus too, where a prometheus binary is installed.
    """
    port, stats_port, prometheus_port = free_ports(3)
    command = [sys.executable, str(DEPLOY_DIR / "stack.py"), "--port", str(port), "--stats-port", str(stats_port)]
    command += ["--websocket-servers", "1", "--django-servers", "1", "--grace-period", "2"]
    command += ["--prometheus-port", str(prometheus_port)]
    command += ["--haproxy", haproxy, "--workdir", str(tmp_path / "stack")]
    launcher = ManagedProcess(command, log_dir=tmp_path, log_name="stack", merge_output=True).launch()
    pids: list[int] = []
    try:
        launcher.wait_for_output("Ctrl-C stops it.", 30_000 * MS)
        text = launcher.stdout
        pids = [int(pid) for pid in re.findall(r"pid (\d+)", text)]
        # haproxy, redis-server, ws1, django1, and prometheus where it is installed
        assert len(pids) == (5 if find_prometheus() else 4), text
        if find_prometheus():
            assert (http_get(f"http://127.0.0.1:{prometheus_port}/-/ready") or (None,))[0] == 200

        status, page = http_get(f"http://127.0.0.1:{port}/", timeout=5000 * MS) or (None, b"")
        assert status == 200 and b"ws4redis-tornado behind HAProxy" in page

        async def closed_by_sigterm() -> int | None:
            url = f"ws://127.0.0.1:{port}/ws/{FACILITY}?subscribe-broadcast"
            async with connect(url, open_timeout=5000 * MS) as ws:
                launcher.send_signal(signal.SIGTERM)
                with contextlib.suppress(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10_000 * MS)
                return ws.close_code

        # The websocket server drains before HAProxy stops: the 1001 gets through.
        assert asyncio.run(closed_by_sigterm()) == GOING_AWAY
        assert launcher.wait(20_000 * MS) == 0
        assert launcher.stdout.rstrip().endswith("stopped")
        assert http_get(f"http://127.0.0.1:{port}/") is None
        assert not [pid for pid in pids if exists(pid)]
    finally:
        launcher.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
