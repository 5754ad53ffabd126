"""The floor target: its handshake and RESP reader alone, then the process with real Redis and sockets."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from websockets.sync.client import connect

from bench.targets.floor import RespError, accept_key, encode_command, read_push, upgrade_response
from tests.processes import ManagedProcess
from tests.rawws import FrameParser, accept_value, upgrade_request
from tests.utils import MS, wait_until_blocking
from ws4redis_tornado.embedded import free_port

REPO = Path(__file__).resolve().parents[2]


def test_the_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_an_upgrade_gets_a_101_with_the_accept_key_and_a_request_without_a_key_a_400() -> None:
    key = "x3JJHMbDL1EzLkh9GBhXDw=="
    request = upgrade_request("127.0.0.1", 80, "/ws/bench", key=key).replace(b"Sec-WebSocket-Key", b"sec-websocket-KEY")

    answer = upgrade_response(request)

    assert answer.startswith(b"HTTP/1.1 101 ")
    assert answer.endswith(f"\r\nSec-WebSocket-Accept: {accept_value(key)}\r\n\r\n".encode())
    assert upgrade_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_the_resp_reader_waits_for_a_whole_push_and_reads_it_exactly() -> None:
    push = b"*3\r\n$7\r\nmessage\r\n$5\r\nchan1\r\n$7\r\nhi\r\nyou\r\n"
    confirmation = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nchan1\r\n:1\r\n"
    stream = confirmation + push

    assert all(read_push(stream[:cut]) is None for cut in range(1, len(confirmation)))
    assert read_push(stream) == ([b"subscribe", b"chan1", 1], len(confirmation))
    assert read_push(stream, len(confirmation)) == ([b"message", b"chan1", b"hi\r\nyou"], len(stream))
    assert encode_command("SUBSCRIBE", "chan1") == b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nchan1\r\n"
    with pytest.raises(RespError):
        read_push(b"-ERR unknown command\r\n")


@pytest.fixture
def floor(redis_url: str, prefix: str) -> Iterator[tuple[ManagedProcess, int, str]]:
    """The floor as the benchmark runs it, subscribed to this test's own channel."""
    port, channel = free_port(), f"{prefix}:bench"
    argv = [sys.executable, "-m", "bench.targets.floor", "--port", str(port), "--redis", redis_url]
    process = ManagedProcess([*argv, "--channel", channel], cwd=REPO, log_name="floor").start()
    try:
        wait_until_blocking(lambda: _accepts(port), what="the floor to listen", details=lambda: process.output)
        yield process, port, channel
    finally:
        process.stop()


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def test_every_socket_gets_every_message_in_order(
    floor: tuple[ManagedProcess, int, str], redis_client: redis.Redis
) -> None:
    _, port, channel = floor
    with contextlib.ExitStack() as stack:
        # The floor drops client frames, a close too: its EOF ends the socket.
        url = f"ws://127.0.0.1:{port}/ws/bench"
        sockets = [stack.enter_context(connect(url, close_timeout=100 * MS)) for _ in range(3)]
        for text in ("first", "second é"):
            redis_client.publish(channel, text)

        received = [[ws.recv(timeout=3000 * MS) for _ in range(2)] for ws in sockets]

    assert received == [["first", "second é"]] * 3


def test_a_short_send_keeps_the_rest_and_the_frames_arrive_whole_and_in_order(
    floor: tuple[ManagedProcess, int, str], redis_client: redis.Redis
) -> None:
    process, port, channel = floor
    messages = [b"%04d" % i + b"x" * 99_996 for i in range(100)]  # 10 MB: more than both socket buffers hold
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    with slow, connect(f"ws://127.0.0.1:{port}/ws/bench", max_size=None, close_timeout=100 * MS) as reader:
        slow.sendall(upgrade_request("127.0.0.1", port, "/ws/bench"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += slow.recv(4096)
        head, _, rest = answer.partition(b"\r\n\r\n")
        for message in messages:
            redis_client.publish(channel, message)
        # Once the socket that reads has the last message, every send to the stalled one is done.
        assert [reader.recv(timeout=10_000 * MS) for _ in messages][-1] == messages[-1].decode()

        parser = FrameParser()
        frames = parser.feed(rest)
        while len(frames) < len(messages):
            data = slow.recv(1 << 20)
            assert data, "the floor closed the slow socket"
            frames += parser.feed(data)

    assert head.startswith(b"HTTP/1.1 101 ")
    assert frames == [(1, m) for m in messages]
    process.stop()
    summary = process.stderr.strip().splitlines()[-1]
    assert "200 frames" in summary
    assert int(summary.split(" short sends")[0].rsplit(" ", 1)[1]) > 0, summary
