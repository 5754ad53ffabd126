"""``/health``: a real round trip on both of the broker's Redis connections, shared, with details opt-in.

Each test has a Redis of its own: ``DEBUG SLEEP`` makes it hang for everybody connected to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading

import pytest
import websockets
from tornado.httpclient import AsyncHTTPClient

from ws4redis_tornado.server import HEALTH_TIMEOUT

from ..redis_topologies import HOST, RedisProcess, redis_hangs


@pytest.fixture
def redis_url(request, hangable_redis_server: RedisProcess) -> str:
    """This test's own Redis; reached through the relay by a test that asks for ``relay``."""
    if "relay" in request.fixturenames:
        return request.getfixturevalue("relay").url
    return f"redis://{HOST}:{hangable_redis_server.port}/0"


async def health(base_url: str) -> tuple[int, dict]:
    """The status and JSON body of ``/health``."""
    response = await AsyncHTTPClient().fetch(f"{base_url}/health", raise_error=False)
    return response.code, json.loads(response.body)


async def redis_state(base_url: str) -> tuple[int, str]:
    """The status of ``/health`` and what it says of Redis."""
    code, body = await health(base_url)
    return code, body["redis"]


def ping_calls(hangable_redis_server: RedisProcess) -> int:
    return int(hangable_redis_server.command("INFO", "commandstats").get("cmdstat_ping", {}).get("calls", 0))


class Relay:
    """A TCP relay to Redis, run by threads, whose connections can each hold back Redis' replies."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.listener = socket.create_server((HOST, 0))
        self.url = f"redis://{HOST}:{self.listener.getsockname()[1]}/0"
        # Per connection, keyed by the relay's port towards Redis (the one CLIENT LIST shows).
        self.replies_flow: dict[int, threading.Event] = {}
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection((HOST, self.redis_port))
            flowing = self.replies_flow[upstream.getsockname()[1]] = threading.Event()
            flowing.set()
            self._sockets += [client, upstream]
            threading.Thread(target=_copy, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=_copy, args=(upstream, client, flowing), daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for flowing in self.replies_flow.values():
            flowing.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _copy(source: socket.socket, target: socket.socket, flowing: threading.Event | None) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if flowing is not None:
                flowing.wait()
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.fixture
def relay(hangable_redis_server: RedisProcess):
    relay = Relay(hangable_redis_server.port)
    yield relay
    relay.close()


@pytest.mark.gen_test(timeout=30)
async def test_health_answers_503_while_redis_hangs_and_200_once_it_answers_again(
    app, http_server, base_url, hangable_redis_server
):
    assert await redis_state(base_url) == (200, "up")
    async with redis_hangs(hangable_redis_server, 3):
        started = asyncio.get_running_loop().time()
        assert await redis_state(base_url) == (503, "down")
        # The check waited for its round trip, and no longer than that.
        assert asyncio.get_running_loop().time() - started < HEALTH_TIMEOUT + 1
    assert await redis_state(base_url) == (200, "up")


@pytest.mark.gen_test(timeout=30)
async def test_health_answers_503_when_only_the_pubsub_connection_hangs(
    relay, app, http_server, base_url, ws_url, hangable_redis_server
):
    async with websockets.connect(ws_url("held", "subscribe-broadcast")):
        with hangable_redis_server.client() as client:
            [subscriber] = [c for c in client.client_list() if int(c["sub"]) > 0]
        replies = relay.replies_flow[int(subscriber["addr"].rsplit(":", 1)[1])]
        replies.clear()
        # The command connection answers; the pub/sub one, still open, does not.
        assert await redis_state(base_url) == (503, "down")
        replies.set()
        assert await redis_state(base_url) == (200, "up")


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_health_checks_share_one_probe(app, http_server, http_port, hangable_redis_server):
    async def status() -> bytes:
        reader, writer = await asyncio.open_connection(HOST, http_port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer.split(b" ", 2)[1]

    hangable_redis_server.command("CONFIG", "RESETSTAT")
    requests = 20
    # Redis answers late, yet within the timeout: every check arrives while the first probe waits.
    async with redis_hangs(hangable_redis_server, 0.5):
        statuses = await asyncio.gather(*(status() for _ in range(requests)))
    assert statuses == [b"200"] * requests
    # One PING on each connection per probe (two probes at worst, on a slow machine); a probe per
    # check would have sent 40.
    assert 2 <= ping_calls(hangable_redis_server) <= 4


@pytest.mark.gen_test
async def test_health_shows_no_counts_by_default(app, http_server, base_url, ws_url):
    async with websockets.connect(ws_url("counted", "subscribe-broadcast")):
        assert await health(base_url) == (200, {"redis": "up"})


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"health_detail": True}])
async def test_health_detail_adds_the_numbers_of_sockets_and_channels(app, http_server, base_url, ws_url):
    async with websockets.connect(ws_url("counted", "subscribe-broadcast")):
        assert await health(base_url) == (200, {"redis": "up", "sockets": 1, "channels": 1})
