"""A bare-bones websocket client over a plain socket, for tests that must misbehave on purpose."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
from websockets.sync.client import connect

from .processes import ManagedProcess
from .utils import MS, cpu_seconds, limit_open_files


async def handshake(host: str, port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a websocket and return the raw streams; the reader is positioned after the 101 answer."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    return reader, writer


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """Encode one masked client frame."""
    mask = os.urandom(4)
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one unmasked server frame and return its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


# -- helpers for tests that open thousands of sockets ----------------------------------------------

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_value(key: str) -> str:
    """Return the ``Sec-WebSocket-Accept`` a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()


def upgrade_request(host: str, port: int, path: str, *, key: str | None = None) -> bytes:
    """Return a well-formed websocket upgrade request for ``path``."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def raw_frame(first: int, payload: bytes, *, masked: bool = True, length: int | None = None) -> bytes:
    """Encode a client frame with any first byte (FIN, RSV bits, opcode), masked or not.

    ``length`` is the length the header declares, the payload's by default: a larger one lies.
    """
    length = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class FrameParser:
    """Split what a server sends into frames: ``feed(data)`` returns the complete ones as (opcode, payload)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer
        buffer += data
        frames = []
        offset = 0
        while len(buffer) - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length, start = second & 0x7F, offset + 2
            if length == 126:
                if len(buffer) - start < 2:
                    break
                (length,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif length == 127:
                if len(buffer) - start < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            if second & 0x80:
                start += 4  # servers never mask; tolerated so a broken server is reported, not misparsed
            if len(buffer) < start + length:
                break
            frames.append((first & 0x0F, bytes(buffer[start : start + length])))
            offset = start + length
        del buffer[:offset]
        return frames


class RawClient(asyncio.Protocol):
    """One websocket on a bare asyncio transport: thousands fit in one event loop.

    ``opened`` resolves once the 101 answer arrived (it raises ConnectionError for any other
    answer), ``closed`` when the connection ends. Text and binary frames go to
    ``on_message(opcode, payload)``; pings are answered; ``close_code`` keeps the server's close code.
    """

    def __init__(self, request: bytes, on_message: Callable[[int, bytes], None]) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        self._request = request
        self._on_message = on_message
        self._head = b""
        self._parser = FrameParser()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self._head += data
            head, found, data = self._head.partition(b"\r\n\r\n")
            if not found:
                return
            if not head.startswith(b"HTTP/1.1 101 "):
                self.opened.set_exception(ConnectionError(head.decode(errors="replace")))
                self.abort()
                return
            self.opened.set_result(None)
        for opcode, payload in self._parser.feed(data):
            if opcode in (0x1, 0x2):
                self._on_message(opcode, payload)
            elif opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.send(0x8, payload[:2])
                self.abort()

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost before the 101 answer: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)


async def open_raw(
    host: str, port: int, path: str, on_message: Callable[[int, bytes], None], **create_connection: Any
) -> RawClient:
    """Open a :class:`RawClient` and wait for its 101 answer."""
    loop = asyncio.get_running_loop()
    request = upgrade_request(host, port, path)
    _, client = await loop.create_connection(lambda: RawClient(request, on_message), host, port, **create_connection)
    await client.opened
    return client


HALF_HANDSHAKE = b"GET /ws/stalled?subscribe-broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
"""The start of a websocket handshake: its headers never end."""


@contextlib.contextmanager
def stalled_connection(port: int, request: bytes = HALF_HANDSHAKE, host: str = "127.0.0.1") -> Iterator[socket.socket]:
    """A connection that sends ``request`` (by default half a handshake) and then nothing."""
    with socket.create_connection((host, port), timeout=5000 * MS) as sock:
        sock.sendall(request)
        yield sock


def all_closed_by_server(socks: Iterable[socket.socket], timeout: float) -> bool:
    """Whether the server closes every one of ``socks`` within ``timeout`` seconds, answering nothing."""
    deadline = time.monotonic() + timeout
    return all(_closed_by_server(sock, deadline) for sock in socks)


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def run_out_of_descriptors(server: ManagedProcess, port: int, redis_client: redis.Redis, prefix: str) -> list[str]:
    """Stall more connections than ``server`` has descriptors for; check it idles, serves and recovers.

    ``server`` is given 64 descriptors; a socket open before goes on receiving, the CPU stays idle
    while accepts fail, every stalled connection is closed in the end (``server``'s handshake
    timeout must be at most 3 s) and a new socket is served. Returns the lines ``server`` logged
    meanwhile, for the caller's own checks.
    """
    websocket_url = f"ws://127.0.0.1:{port}/ws/{{}}?subscribe-broadcast"
    with contextlib.ExitStack() as stack:
        calm = stack.enter_context(connect(websocket_url.format("calm")))
        limit_open_files(server.pid, 64)
        log_mark = len(server.stderr)
        stalled = [stack.enter_context(stalled_connection(port)) for _ in range(80)]
        server.wait_until(lambda: "Too many open files" in server.stderr, "running out of descriptors")

        # Out of descriptors: the IOLoop idles, and the sockets already open are served.
        cpu_before = cpu_seconds(server.pid)
        redis_client.publish(f"{prefix}:broadcast:calm", "still served")
        assert calm.recv(timeout=2000 * MS) == "still served"
        time.sleep(2000 * MS)  # a window to measure CPU in, well within the 3 s timeout
        cpu = cpu_seconds(server.pid) - cpu_before
        assert cpu < 0.5, f"{cpu:.2f}s of CPU in 2 s while out of descriptors"

        # The stalled ones are closed (those accepted late, a timeout later); then all is well.
        assert all_closed_by_server(stalled, 15_000 * MS)
        with connect(websocket_url.format("fresh"), open_timeout=5000 * MS) as fresh:
            redis_client.publish(f"{prefix}:broadcast:fresh", "served again")
            assert fresh.recv(timeout=5000 * MS) == "served again"
    return server.stderr[log_mark:].splitlines()
