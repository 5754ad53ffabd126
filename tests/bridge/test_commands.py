"""``manage.py runserver`` and ``manage.py runtornado`` as real subprocesses on free ports.

Each server talks to the suite's private Redis, or to an embedded one it starts itself; none of
them looks at localhost:6379: WS4REDIS_LOCAL_REDIS_URL points runserver's probe at a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from django_bridge import embedded
from django_bridge.conf import DEFAULT_HEALTH_URL
from django_bridge.publisher import RedisPublisher
from ws4redis_tornado.embedded import free_port

from ..processes import http_get
from ..rawws import handshake, read_frame
from ..utils import MS
from ..wsclient import close_code_blocking
from .processes import ManageCommand, write_settings

FACILITY = "commands"
GOING_AWAY = 1001


@pytest.fixture
def closed_port_url() -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def env(closed_port_url: str) -> dict[str, str | None]:
    """The environment of every command: runserver must never find a Redis on 6379."""
    return {embedded.LOCAL_REDIS_VARIABLE: closed_port_url, embedded.REDIS_URL_VARIABLE: None}


@pytest.fixture
def live_settings_module(tmp_path, redis_url, prefix) -> str:
    return write_settings(tmp_path, "live", WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=prefix)


def open_sockets(stack: contextlib.ExitStack, url: str, count: int) -> list[ClientConnection]:
    """Open ``count`` websockets at once, so that the server processes compete for them."""
    with ThreadPoolExecutor(count) as pool:
        sockets = list(pool.map(lambda _: connect(url, open_timeout=5000 * MS), range(count)))
    for ws in sockets:
        stack.enter_context(ws)
    return sockets


def pubsub_roundtrip(port: int, message: str, facility: str = FACILITY) -> str:
    """Publish ``message`` from one websocket and return what another one receives."""
    base = f"ws://127.0.0.1:{port}/ws/{facility}"
    with (
        connect(f"{base}?subscribe-broadcast", open_timeout=5000 * MS) as listener,
        connect(f"{base}?publish-broadcast", open_timeout=5000 * MS) as speaker,
    ):
        speaker.send(message)
        return listener.recv(timeout=5000 * MS)


def touch_until_reloaded(port: int, path: Path, timeout: float = 20_000 * MS) -> None:
    """Change ``path`` until the autoreloader replaces the serving child.

    The reloader only notices a change after its first look at the files, which may come after
    the server is up, so the file is touched again until the child serving a websocket goes away;
    no touch comes after that, so the next child is not reloaded as well.
    """
    deadline = time.monotonic() + timeout
    with connect(f"ws://127.0.0.1:{port}/ws/reload-watch?subscribe-broadcast") as ws:
        for later in itertools.count(time.time() + 1):
            os.utime(path, (later, later))
            try:
                ws.recv(timeout=1500 * MS)
            except TimeoutError:
                assert time.monotonic() < deadline, f"no reload within {timeout:.1f}s"
            except ConnectionClosed:
                return


# -- runserver -------------------------------------------------------------------------------------


def test_runserver_starts_an_embedded_redis_that_outlives_reloads(tmp_path, env, prefix):
    # Messages stay persisted for as long as the test may take, reload included.
    module = write_settings(
        tmp_path, "unconfigured", WS4REDIS_CONNECTION=None, WS4REDIS_PREFIX=prefix, WS4REDIS_EXPIRE=600
    )
    port = free_port()
    with ManageCommand("runserver", f"127.0.0.1:{port}", settings=module, directory=tmp_path, env=env) as server:
        server.wait_until(lambda: "Websockets at" in server.stdout, "serving child")
        started = re.findall(r"Started an embedded Redis at (redis://\S+) ", server.stdout)
        assert len(started) == 1, server.output
        embedded_url = started[0]
        assert f", Redis at {embedded_url}" in server.stdout
        assert http_get(f"http://127.0.0.1:{port}/hello/")[2] == b"hello from django"
        assert pubsub_roundtrip(port, "via the embedded redis") == "via the embedded redis"
        # The message went through the embedded server (and was persisted there).
        with redis.Redis.from_url(embedded_url) as client:
            assert client.get(f"{prefix}:broadcast:{FACILITY}") == b"via the embedded redis"

        # A code change restarts the serving child; the embedded Redis stays the same.
        touch_until_reloaded(port, tmp_path / f"{module}.py")
        server.wait_until(lambda: server.stdout.count("Websockets at") == 2, "reloaded child")
        assert server.stdout.count("Started an embedded Redis") == 1
        assert server.stdout.count(f", Redis at {embedded_url}") == 2
        with connect(f"ws://127.0.0.1:{port}/ws/{FACILITY}?subscribe-broadcast") as ws:
            assert ws.recv(timeout=5000 * MS) == "via the embedded redis", "persisted before the reload"
        assert pubsub_roundtrip(port, "after the reload", "other") == "after the reload"

        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        assert not embedded.answers(embedded_url), "the embedded Redis outlived runserver"
    assert "Traceback" not in server.stderr


def test_runserver_with_a_configured_redis_that_is_down_exits_with_one_line(tmp_path, env, closed_port_url):
    module = write_settings(tmp_path, "dead", WS4REDIS_CONNECTION=closed_port_url)
    port = free_port()
    with ManageCommand(
        "runserver", f"127.0.0.1:{port}", "--skip-checks", settings=module, directory=tmp_path, env=env
    ) as server:
        assert server.wait() == 1
    assert server.stderr.strip().count("\n") == 0, server.output
    assert server.stderr.startswith(f"Error: redis unreachable at {closed_port_url}"), server.output
    assert "WS4REDIS_CONNECTION" in server.stderr
    assert "embedded" not in server.stdout


def test_runserver_points_to_runtornado_for_production(tmp_path, env, live_settings_module):
    args = ("runserver", f"127.0.0.1:{free_port()}", "--noreload", "--skip-checks")
    env = {**env, "DJANGO_RUNSERVER_HIDE_WARNING": None}
    with ManageCommand(*args, settings=live_settings_module, directory=tmp_path, env=env) as server:
        server.wait_until(lambda: "Websockets at" in server.stdout, "serving")
    assert "Do not use it in a production setting. Use 'manage.py runtornado' instead" in server.stdout
    assert "production WSGI or ASGI server" not in server.stdout


def test_runserver_logs_every_request_as_djangos_runserver_does(tmp_path, env, live_settings_module):
    port = free_port()
    args = ("runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks")
    with ManageCommand(*args, settings=live_settings_module, directory=tmp_path, env=env) as server:
        server.wait_for_url(f"http://127.0.0.1:{port}/hello/")
        assert http_get(f"http://127.0.0.1:{port}/nothing-here/?q=1")[0] == 404
        with connect(f"ws://127.0.0.1:{port}/ws/{FACILITY}?subscribe-broadcast", open_timeout=5000 * MS):
            pass
        expected = [
            '"GET /hello/ HTTP/1.1" 200 17',
            '"GET /nothing-here/?q=1 HTTP/1.1" 404 ',
            f'"GET /ws/{FACILITY}?subscribe-broadcast HTTP/1.1" 101 -',
        ]
        server.wait_until(lambda: all(line in server.stderr for line in expected), "a log line per request")
    # django.server's format: "[05/Dec/2026 10:00:00] " before the message.
    assert re.search(r'^\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\] "GET /hello/ HTTP/1\.1" 200 17$', server.stderr, re.M)
    assert "WARNING: This is a development server" not in server.stdout, "hidden by DJANGO_RUNSERVER_HIDE_WARNING"


@pytest.mark.parametrize(
    ("debug", "option", "status"),
    [(False, "--insecure", 200), (True, "--nostatic", 404)],
    ids=["insecure-without-DEBUG", "nostatic-with-DEBUG"],
)
def test_runserver_static_options_work_as_in_djangos_runserver(tmp_path, env, redis_url, debug, option, status):
    module = write_settings(tmp_path, "static", WS4REDIS_CONNECTION=redis_url, DEBUG=debug)
    port = free_port()
    args = ("runserver", f"127.0.0.1:{port}", option, "--noreload", "--skip-checks")
    with ManageCommand(*args, settings=module, directory=tmp_path, env=env) as server:
        server.wait_for_url(f"http://127.0.0.1:{port}/hello/")
        assert http_get(f"http://127.0.0.1:{port}/static/django_bridge/js/ws4redis.js")[0] == status


def refuses_connections(port: int) -> bool:
    """Whether nothing listens on ``port`` of the loopback address."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1000 * MS).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ({"SESSION_ENGINE": "no_such_engine"}, "No module named 'no_such_engine'"),
        ({"MIDDLEWARE": ["no_such_middleware.Middleware"]}, "No module named 'no_such_middleware'"),
    ],
    ids=["SESSION_ENGINE", "MIDDLEWARE"],
)
def test_runserver_whose_project_fails_to_load_shows_why_and_holds_no_port(tmp_path, env, redis_url, broken, error):
    module = write_settings(tmp_path, "broken", WS4REDIS_CONNECTION=redis_url, **broken)
    port = free_port()
    with ManageCommand(
        "runserver", f"127.0.0.1:{port}", "--skip-checks", settings=module, directory=tmp_path, env=env
    ) as server:
        server.wait_until(lambda: error in server.stderr, "the error")
        # As Django's runserver: the reloader waits for a fix, and nothing accepts connections.
        assert refuses_connections(port), server.output
        assert server.poll() is None


def test_runserver_nows4redis_runs_djangos_wsgi_server(tmp_path, env):
    module = write_settings(tmp_path, "plain", WS4REDIS_CONNECTION=None)
    port = free_port()
    args = ("runserver", f"127.0.0.1:{port}", "--nows4redis", "--noreload", "--skip-checks")
    with ManageCommand(*args, settings=module, directory=tmp_path, env=env) as server:
        url = f"http://127.0.0.1:{port}/hello/"
        server.wait_for_url(url)
        status, headers, _ = http_get(url)
        assert status == 200
        assert headers["Server"].startswith("WSGIServer/")
        assert http_get(f"http://127.0.0.1:{port}/ws/{FACILITY}")[0] == 404
    assert "embedded" not in server.stdout


# -- runtornado ------------------------------------------------------------------------------------


def test_runtornado_processes_share_the_port_and_close_websockets_with_1001_on_sigterm(
    tmp_path, env, redis_url, prefix
):
    port = free_port()
    count = 40
    # The health check's counts show how the processes shared the sockets.
    module = write_settings(
        tmp_path, "detailed", WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=prefix, WS4REDIS_HEALTH_DETAIL=True
    )
    args = ("runtornado", "--port", str(port), "--processes", "2", "--grace-period", "5")
    with ManageCommand(*args, settings=module, directory=tmp_path, env=env) as server:
        health = f"http://127.0.0.1:{port}{DEFAULT_HEALTH_URL}"
        server.wait_for_url(health)
        assert http_get(f"http://127.0.0.1:{port}/hello/")[2] == b"hello from django"
        with contextlib.ExitStack() as stack:
            sockets = open_sockets(stack, f"ws://127.0.0.1:{port}/ws/{FACILITY}?subscribe-broadcast", count)
            # Persisted, so that a socket whose subscription is not yet confirmed gets it on opening.
            RedisPublisher(facility=FACILITY, broadcast=True).publish_message("to all")
            # Delivery also means each socket finished opening and is counted by its process.
            assert [ws.recv(timeout=5000 * MS) for ws in sockets] == ["to all"] * count

            # Each process counts only its own sockets: a count between 0 and 40 means both hold some.
            counts = {json.loads(http_get(health)[2])["sockets"] for _ in range(20)}
            assert counts & set(range(1, count)), f"one process took every socket: {counts}"

            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            assert [close_code_blocking(ws) for ws in sockets] == [GOING_AWAY] * count
            assert server.wait(5000 * MS) == 0
            assert time.monotonic() - started < 5
    assert "Traceback" not in server.stderr


def test_runtornado_logs_the_code_it_closed_a_websocket_with_though_the_peer_never_answers(
    tmp_path, env, redis_url, prefix
):
    port = free_port()
    # The health check's count shows when the socket is open.
    module = write_settings(
        tmp_path, "detailed", WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=prefix, WS4REDIS_HEALTH_DETAIL=True
    )
    args = ("runtornado", "--port", str(port), "--skip-checks")
    with ManageCommand(*args, settings=module, directory=tmp_path, env=env) as server:
        health = f"http://127.0.0.1:{port}{DEFAULT_HEALTH_URL}"
        server.wait_for_url(health)

        async def drain_a_silent_peer() -> tuple[int, bytes]:
            reader, writer = await handshake("127.0.0.1", port, f"/ws/{FACILITY}?subscribe-broadcast")
            server.wait_until(lambda: json.loads(http_get(health)[2])["sockets"] == 1, "an open socket")
            server.send_signal(signal.SIGTERM)
            frame = await read_frame(reader)
            # The close frame stays unanswered and the connection open until the server exits.
            assert await asyncio.to_thread(server.wait) == 0
            writer.close()
            return frame

        opcode, payload = asyncio.run(drain_a_silent_peer())
        assert (opcode, int.from_bytes(payload[:2])) == (0x8, GOING_AWAY)
    assert f"close peer=127.0.0.1 facility={FACILITY} code={GOING_AWAY} " in server.stderr, server.output


def test_runtornado_sigterm_lets_an_in_flight_request_finish(tmp_path, env, live_settings_module):
    port = free_port()
    args = ("runtornado", "--port", str(port), "--grace-period", "5")
    with ManageCommand(*args, settings=live_settings_module, directory=tmp_path, env=env) as server:
        health = f"http://127.0.0.1:{port}{DEFAULT_HEALTH_URL}"
        server.wait_for_url(health)
        with (
            connect(f"ws://127.0.0.1:{port}/ws/{FACILITY}?subscribe-broadcast") as ws,
            socket.create_connection(("127.0.0.1", port), timeout=5000 * MS) as slow,
        ):
            # The slow view answers after 2 s. The health answer, on a connection accepted after
            # this one, shows the server has read the slow request by the time SIGTERM comes.
            slow.sendall(b"GET /slow/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert http_get(health)[0] == 200
            server.send_signal(signal.SIGTERM)
            assert close_code_blocking(ws) == GOING_AWAY
            response = b"".join(iter(lambda: slow.recv(65536), b""))
        assert response.startswith(b"HTTP/1.1 200 "), response
        assert response.endswith(b"timed out")
        assert server.wait(5000 * MS) == 0


def test_runtornado_ws_only_serves_websockets_and_health_but_no_views(tmp_path, env, live_settings_module):
    port = free_port()
    args = ("runtornado", "--port", str(port), "--ws-only", "--skip-checks")
    with ManageCommand(*args, settings=live_settings_module, directory=tmp_path, env=env) as server:
        server.wait_for_url(f"http://127.0.0.1:{port}{DEFAULT_HEALTH_URL}")
        assert http_get(f"http://127.0.0.1:{port}/hello/")[0] == 404
        assert pubsub_roundtrip(port, "websockets only") == "websockets only"


def test_runtornado_with_redis_down_exits_with_one_line(tmp_path, env, closed_port_url):
    module = write_settings(tmp_path, "dead", WS4REDIS_CONNECTION=closed_port_url)
    args = ("runtornado", "--port", str(free_port()), "--processes", "2", "--skip-checks")
    with ManageCommand(*args, settings=module, directory=tmp_path, env=env) as server:
        assert server.wait() == 1
    assert server.stderr.strip().count("\n") == 0, server.output
    assert server.stderr.startswith(f"CommandError: redis unreachable at {closed_port_url}"), server.output
