"""Connections that stall, and a process out of file descriptors, against ``python -m ws4redis_tornado``.

The server runs as a child process, as an attacker meets it; the descriptor limit is lowered on
the running child, and its CPU time is read from /proc. The last test checks that an application
started with ``app.listen()`` gets the same bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from websockets.sync.client import connect

from ws4redis_tornado import WebSocketApplication
from ws4redis_tornado.embedded import free_port

from ..processes import ServerProcess
from ..rawws import HALF_HANDSHAKE, all_closed_by_server, run_out_of_descriptors, stalled_connection
from ..utils import MS, within

HOST = "127.0.0.1"


def websocket_url(server: ServerProcess, facility: str) -> str:
    return f"ws://{HOST}:{server.port}/ws/{facility}?subscribe-broadcast"


def test_connections_stalling_in_their_request_are_closed_after_the_handshake_timeout(redis_url, prefix):
    server = ServerProcess("--handshake-timeout", "0.5", redis_url=redis_url, prefix=prefix)
    with server, contextlib.ExitStack() as stack:
        idle = stack.enter_context(stalled_connection(server.port, b""))
        halves = [stack.enter_context(stalled_connection(server.port)) for _ in range(20)]
        # All headers, then a body promised but never sent: nothing served here takes a body.
        body = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
        promised = stack.enter_context(stalled_connection(server.port, body))
        started = time.monotonic()
        assert all_closed_by_server([idle, *halves, promised], 5000 * MS)
        # Tornado's default would have kept them for an hour.
        assert time.monotonic() - started < 3
    assert "Traceback" not in server.stderr


def test_an_open_websocket_is_not_bound_by_the_handshake_timeout(redis_url, prefix, redis_client):
    server = ServerProcess("--handshake-timeout", "0.2", redis_url=redis_url, prefix=prefix)
    with server, connect(websocket_url(server, "quiet")) as ws:
        # Quiet for five handshake timeouts: an upgraded connection reads no more requests.
        time.sleep(1000 * MS)
        redis_client.publish(f"{prefix}:broadcast:quiet", "still open")
        assert ws.recv(timeout=5000 * MS) == "still open"


def test_out_of_descriptors_the_server_pauses_accepting_quietly_and_recovers(redis_url, prefix, redis_client):
    with ServerProcess("--handshake-timeout", "3", redis_url=redis_url, prefix=prefix) as server:
        log = run_out_of_descriptors(server, server.port, redis_client, prefix)
    text = "\n".join(log)
    assert "Traceback" not in text
    warnings = [line for line in log if "cannot accept connections" in line]
    assert 1 <= len(warnings) <= 2, text  # one per episode; a second round of accepts may start one
    assert "open files limit: 64" in warnings[0]
    assert len(log) <= 10, text


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"handshake_timeout": 0.2}])
async def test_an_application_listening_by_itself_closes_stalled_connections_too(broker):
    app = WebSocketApplication(broker)
    port = free_port()
    server = app.listen(port, HOST)
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(HALF_HANDSHAKE)
        assert await within(reader.read(), 3000 * MS) == b""
        writer.close()
    finally:
        server.stop()
        await server.close_all_connections()
