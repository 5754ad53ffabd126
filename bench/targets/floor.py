"""The floor: the least a process can do to fan a Redis message out to N websockets.

No framework and no per-socket objects beyond the kernel's: ``selectors`` (epoll), plain
non-blocking sockets in a list, a fixed 101 answer to the upgrade, one raw Redis connection
SUBSCRIBEd to one channel and read with a tiny RESP reader. Per message it builds the
websocket frame once and calls ``sock.send(frame)`` once per socket. What this costs per
frame is what the kernel and the interpreter's call into it cost; every other target is
compared with it in the same run (``x floor`` rows in the report).

A send the kernel takes only in part (a full socket buffer) is counted and its rest kept in
a per-socket backlog that is flushed when the socket turns writable, frames in order; on
loopback with a client that reads fast this does not happen in a healthy run, and the counts
are logged on exit to show it. Client frames (pongs, a close) are read and dropped; an EOF
closes the socket. Standard library only.

Usage: ``python -m bench.targets.floor --port P --redis redis://127.0.0.1:R/0``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import selectors
import signal
import socket
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

from bench.targets.wsframe import encode_text_frame

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHANNEL = "broadcast:bench"
RECV_SIZE = 1 << 18

Push = list[bytes | int]


class RespError(ValueError):
    """The Redis connection sent something this reader does not handle."""


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip() + WS_GUID).digest())


def upgrade_response(request: bytes) -> bytes:
    """The fixed 101 for a websocket upgrade request, or a 400 if it carries no key."""
    for line in request.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
            ) % accept_key(value)
    return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def read_push(buf: bytes, pos: int = 0) -> tuple[Push, int] | None:
    """One RESP array of bulk strings and integers at ``buf[pos:]``: (items, next pos).

    ``None`` while the array is incomplete. Pub/sub pushes (``subscribe`` confirmations and
    ``message`` deliveries) are all this connection ever receives.
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    if buf[pos] != 0x2A:  # "*"
        raise RespError(f"expected a RESP array, got {bytes(buf[pos:end])!r}")
    count = int(buf[pos + 1 : end])
    pos = end + 2
    items: Push = []
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        kind = buf[pos]
        if kind == 0x3A:  # ":" integer
            items.append(int(buf[pos + 1 : end]))
            pos = end + 2
        elif kind == 0x24:  # "$" bulk string
            start = end + 2
            stop = start + int(buf[pos + 1 : end])
            if stop + 2 > len(buf):
                return None
            items.append(bytes(buf[start:stop]))
            pos = stop + 2
        else:
            raise RespError(f"unexpected RESP item {bytes(buf[pos:end])!r}")
    return items, pos


def encode_command(*args: str) -> bytes:
    """A RESP command (array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class FloorServer:
    """Listener, upgraded sockets and the Redis subscription on one epoll selector."""

    def __init__(self, listener: socket.socket, redis_sock: socket.socket) -> None:
        self.selector = selectors.DefaultSelector()
        self.sockets: list[socket.socket] = []
        self.requests: dict[socket.socket, bytes] = {}  # handshakes still reading their request
        self.backlog: dict[socket.socket, bytearray] = {}  # the unsent rest after a short send
        self.redis_buf = b""
        self.messages = self.frames = self.short_sends = self.backlogged_bytes = 0
        self.selector.register(listener, selectors.EVENT_READ, self._accept)
        self.selector.register(redis_sock, selectors.EVENT_READ, self._redis_readable)

    def run(self) -> None:
        select = self.selector.select
        while True:
            for key, events in select():
                key.data(key.fileobj, events)

    def summary(self) -> str:
        return (
            f"floor: {self.messages} messages, {self.frames} frames, {self.short_sends} short sends, "
            f"{self.backlogged_bytes} bytes backlogged, {len(self.sockets)} sockets open"
        )

    # -- fan-out ---------------------------------------------------------------------------
    def broadcast(self, payload: bytes) -> None:
        """One frame, one ``send`` per socket; only a short send costs more."""
        frame = encode_text_frame(payload)
        self.messages += 1
        if self.backlog:  # keep frames in order behind a socket's unsent rest
            self._broadcast_behind_backlog(frame)
            return
        size = len(frame)
        broken: list[socket.socket] = []
        for sock in self.sockets:
            try:
                sent = sock.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                broken.append(sock)
                continue
            if sent != size:
                self._hold(sock, frame[sent:])
        self.frames += len(self.sockets) - len(broken)
        for sock in broken:
            self._close(sock)

    def _broadcast_behind_backlog(self, frame: bytes) -> None:
        backlog = self.backlog
        for sock in self.sockets:
            rest = backlog.get(sock)
            if rest is not None:
                rest += frame
                self.backlogged_bytes += len(frame)
                continue
            try:
                sent = sock.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                continue  # its EOF or error closes it through the selector
            if sent != len(frame):
                self._hold(sock, frame[sent:])
        self.frames += len(self.sockets)

    def _hold(self, sock: socket.socket, rest: bytes) -> None:
        self.short_sends += 1
        self.backlogged_bytes += len(rest)
        self.backlog[sock] = bytearray(rest)
        self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self._upgraded_event)

    def _flush(self, sock: socket.socket) -> None:
        rest = self.backlog[sock]
        try:
            sent = sock.send(rest)
        except BlockingIOError:
            return
        except OSError:
            self._close(sock)
            return
        del rest[:sent]
        if not rest:
            del self.backlog[sock]
            self.selector.modify(sock, selectors.EVENT_READ, self._upgraded_event)

    # -- Redis -----------------------------------------------------------------------------
    def _redis_readable(self, sock: socket.socket, events: int) -> None:
        data = sock.recv(RECV_SIZE)
        if not data:
            sys.exit("floor: the Redis connection closed")
        buf = self.redis_buf + data if self.redis_buf else data
        pos = 0
        while pos < len(buf):
            parsed = read_push(buf, pos)
            if parsed is None:
                break
            push, pos = parsed
            if push[0] == b"message":
                self.broadcast(push[2])  # type: ignore[arg-type]
        self.redis_buf = buf[pos:]

    # -- sockets ---------------------------------------------------------------------------
    def _accept(self, listener: socket.socket, events: int) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.requests[sock] = b""
            self.selector.register(sock, selectors.EVENT_READ, self._handshake_readable)

    def _handshake_readable(self, sock: socket.socket, events: int) -> None:
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            return
        request = self.requests[sock] + data
        end = request.find(b"\r\n\r\n")
        if end < 0:
            self.requests[sock] = request
            return
        del self.requests[sock]
        response = upgrade_response(request[:end])
        sock.send(response)  # ~160 bytes into an empty socket buffer
        if b" 101 " not in response[:16]:
            self._close(sock)
            return
        self.sockets.append(sock)
        self.selector.modify(sock, selectors.EVENT_READ, self._upgraded_event)

    def _upgraded_event(self, sock: socket.socket, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self._flush(sock)
        if events & selectors.EVENT_READ:
            try:
                data = sock.recv(4096)  # pongs or a close frame: dropped
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        self.requests.pop(sock, None)
        self.backlog.pop(sock, None)
        with contextlib.suppress(ValueError):  # not there if it closed during its handshake
            self.sockets.remove(sock)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        sock.close()


def subscribe(redis_url: str, channel: str) -> socket.socket:
    """A raw connection SUBSCRIBEd to ``channel``, confirmed, then made non-blocking."""
    url = urlsplit(redis_url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), timeout=10)
    sock.sendall(encode_command("SUBSCRIBE", channel))
    buf = b""
    while (parsed := read_push(buf)) is None:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("Redis closed the connection before confirming SUBSCRIBE")
        buf += chunk
    push, _ = parsed
    if push[0] != b"subscribe":
        raise RespError(f"expected a subscribe confirmation, got {push!r}")
    sock.setblocking(False)
    return sock


def listen(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    return listener


def _exit_on(signum: int) -> Callable[[int, object], None]:
    def handler(sig: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    return handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--channel", default=CHANNEL)
    args = parser.parse_args()
    # Subscribe before listening: a socket that connects is live at once.
    server = FloorServer(listen(args.host, args.port), subscribe(args.redis, args.channel))
    signal.signal(signal.SIGTERM, _exit_on(signal.SIGTERM))
    try:
        server.run()
    finally:
        print(server.summary(), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
