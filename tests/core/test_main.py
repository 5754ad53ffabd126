"""``python -m ws4redis_tornado`` as a user runs it: a real child process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import redis
import websockets

from ws4redis_tornado.embedded import free_port

from ..utils import MS


def run_server(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ws4redis_tornado", "--host", "127.0.0.1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_serving(port: int, process: subprocess.Popen[str], timeout: float = 15_000 * MS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("server did not start")


def test_unreachable_redis_is_one_clear_error_and_a_non_zero_exit():
    dead = free_port()
    process = run_server("--port", str(free_port()), "--redis", f"redis://127.0.0.1:{dead}/0")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"redis unreachable at redis://127.0.0.1:{dead}/0" in stderr
    assert "Traceback" not in stderr


def test_a_wrong_setting_is_named():
    process = run_server("--expire", "-5")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "'expire'" in stderr


def test_a_wrong_handshake_timeout_is_named():
    process = run_server("--handshake-timeout", "0")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "'handshake_timeout'" in stderr


def test_demo_server_relays_and_closes_sockets_with_1001_on_sigterm(redis_url, prefix):
    port = free_port()
    process = run_server("--port", str(port), "--redis", redis_url, "--prefix", prefix, "--demo")
    try:
        wait_until_serving(port, process)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "ws4redis-tornado" in page and "/ws/demo?subscribe-broadcast" in page
        asyncio.run(_relay_then_sigterm(port, redis_url, prefix, process))
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


async def _relay_then_sigterm(port: int, redis_url: str, prefix: str, process) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/demo?subscribe-broadcast") as ws:
        client = redis.Redis.from_url(redis_url)
        try:
            assert client.publish(f"{prefix}:broadcast:demo", "Hello from Redis") == 1
        finally:
            client.close()
        assert await asyncio.wait_for(ws.recv(), 5) == "Hello from Redis"
        process.send_signal(signal.SIGTERM)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 10)
        assert info.value.rcvd.code == 1001


def test_a_port_in_use_is_one_clear_error(redis_url):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = run_server("--port", str(port), "--redis", redis_url)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr
