"""Hostile input: random handshakes and frames thrown at a running server, which answers each sensibly.

The server runs as ``python -m ws4redis_tornado`` in a child process. Throughout each property test a
few well-behaved sockets receive a message published every 20 ms; afterwards they must have received
every one, the process must still run, and its log must hold no traceback and no error.

Each input is classified by a small model of the expected answer (a handshake status, or for frames:
the echo, a close code, or a dropped connection). Inputs the server answers wrongly today are left
out of the properties and pinned, one by one, by strict xfail tests at the end of this module.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
import string
import struct
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote, unquote_to_bytes, urlsplit

import pytest
import redis
import redis.asyncio as aredis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ws4redis_tornado.channels import validate_facility
from ws4redis_tornado.exceptions import InvalidFacility
from ws4redis_tornado.origins import normalise_origin

from ..processes import ServerProcess
from ..rawws import FrameParser, accept_value, open_raw, raw_frame, upgrade_request
from ..utils import MS, wait_until, wait_until_blocking

pytestmark = pytest.mark.timeout(180)

HOST = "127.0.0.1"
MAX_HEADER_SIZE = 65536  # Tornado's HTTPServer default
MAX_MESSAGE_SIZE = 1024 * 1024  # Config.max_message_size default
SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")  # Tornado's RequestHandler
ANSWER_TIMEOUT = 5000 * MS
CALM_SOCKETS = 5
END = b"end"
PROPERTY_SETTINGS = settings(
    deadline=timedelta(seconds=20),
    database=None,
    # No shrinking: each try of a hanging example costs ANSWER_TIMEOUT; the failing example is
    # reported as generated, and the tally shows which kinds of input got which answers.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_facilities = itertools.count()


@dataclass(frozen=True)
class Target:
    server: ServerProcess
    redis_url: str
    prefix: str

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture(scope="module")
def target(redis_url) -> Iterator[Target]:
    prefix = f"hostile{os.getpid()}"
    # The counts of /health tell when every hostile socket is gone.
    with ServerProcess("--client-publish", "--health-detail", redis_url=redis_url, prefix=prefix) as server:
        yield Target(server, redis_url, prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- what every property test checks around itself -------------------------------------------------


class CalmSockets:
    """Well-behaved sockets on facility ``calm``, and a message published to it every 20 ms, in a thread."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.inboxes: list[list[bytes]] = [[] for _ in range(CALM_SOCKETS)]
        self.published = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CalmSockets:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise AssertionError(f"the well-behaved sockets did not connect: {self._error!r}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive() and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the well-behaved sockets did not finish"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        path = "/ws/calm?subscribe-broadcast"
        clients = [
            await open_raw(HOST, self.target.port, path, lambda _, m, inbox=inbox: inbox.append(m))
            for inbox in self.inboxes
        ]
        publisher = aredis.Redis.from_url(self.target.redis_url)
        channel = f"{self.target.prefix}:broadcast:calm"
        try:
            self._ready.set()
            while not self._stop.is_set():
                await publisher.publish(channel, str(self.published))
                self.published += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 20 * MS)
            await publisher.publish(channel, END)
            await wait_until(lambda: all(inbox[-1:] == [END] for inbox in self.inboxes), 10_000 * MS)
        finally:
            await publisher.aclose()
            for client in clients:
                client.abort()

    def check(self) -> None:
        expected = [str(i).encode() for i in range(self.published)] + [END]
        for inbox in self.inboxes:
            assert inbox == expected, f"a well-behaved socket got {len(inbox)} of {len(expected)} messages"


class Tally:
    """Which kind of input got which answer, printed after the test (run with -s to see it)."""

    def __init__(self) -> None:
        self.answers: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(self, kind: str, answer: str) -> None:
        self.answers[kind][answer] += 1

    def __str__(self) -> str:
        return "\n".join(
            f"  {kind}: " + ", ".join(f"{answer} x{n}" for answer, n in sorted(counter.items()))
            for kind, counter in sorted(self.answers.items())
        )


def idle(port: int) -> bool:
    """Whether the server has no socket open and no channel subscribed, per its /health answer."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=5) as response:
        health = json.load(response)
    return health["sockets"] == 0 and health["channels"] == 0


@contextlib.contextmanager
def under_watch(target: Target, record_property) -> Iterator[Tally]:
    """Run the body with calm sockets alongside; then check the server survived it unharmed."""
    log_mark = len(target.server.stderr)
    tally = Tally()
    with CalmSockets(target) as calm:
        yield tally
    print(f"\nanswers:\n{tally}\ncalm sockets received {calm.published} messages each")
    record_property("answers", {kind: dict(counter) for kind, counter in tally.answers.items()})
    assert target.server.alive, "the server process died"
    calm.check()
    log = target.server.stderr[log_mark:]
    assert "Traceback" not in log, log
    assert " ERROR " not in log, log
    # Every hostile socket was released: nothing stays subscribed.
    wait_until_blocking(lambda: idle(target.port))


# -- handshakes ------------------------------------------------------------------------------------

TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-_.!$*+^`|~", min_size=1, max_size=12)
# Header values as Tornado reads them: latin-1, no control characters.
VALUE = st.text(alphabet=st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=40)
SAME_ORIGIN = "<same origin>"


def _netloc(url: str) -> str | None:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return None


PATHS = st.one_of(
    st.text(max_size=16).map(lambda text: "/ws/" + quote(text, safe="")),
    st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%#", max_size=16).map("/ws/".__add__),
    st.sampled_from(
        [
            "/",
            "/health",
            "/ws",
            "/ws/",
            "/WS/chat",
            "//ws/chat",
            "/wss/chat",
            "*",
            "http://127.0.0.1/ws/chat",
            "/ws/%ff",
            "/ws/%",
            "/ws/%zz",
            "/ws/chat%0a",
            "/ws/a%3ab",
            "/ws/..",
            "/ws/%C3%A9t%C3%A9",
        ]
    ),
)
QUERIES = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "subscribe-broadcast",
                    "publish-broadcast",
                    "subscribe-user",
                    "subscribe-group",
                    "subscribe-session",
                    "publish-user",
                    "echo",
                    "SUBSCRIBE-BROADCAST",
                    "subscribe-broadcast=1",
                    "=",
                    "&",
                ]
            ),
            st.text(max_size=10).map(lambda text: quote(text, safe="=&")),
        ),
        max_size=5,
    ).map("&".join),
)


@dataclass(frozen=True)
class Handshake:
    """One request, and the answer the server is expected to give it."""

    method: str = "GET"
    path: str = "/ws/chat"
    query: str | None = "subscribe-broadcast"
    version: str = "HTTP/1.1"
    host: str | None = "ok"
    upgrade: str | None = "websocket"
    connection: str | None = "Upgrade"
    key: str | None = "ok"
    ws_version: str | None = "13"
    origin: str | None = None
    fetch_site: str | None = None
    cookie_size: int | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def headers(self, port: int) -> list[tuple[str, str]]:
        values = {
            "Host": f"{HOST}:{port}" if self.host == "ok" else self.host,
            "Upgrade": self.upgrade,
            "Connection": self.connection,
            "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode() if self.key == "ok" else self.key,
            "Sec-WebSocket-Version": self.ws_version,
            "Origin": f"http://{HOST}:{port}" if self.origin == SAME_ORIGIN else self.origin,
            "Sec-Fetch-Site": self.fetch_site,
            "Cookie": None if self.cookie_size is None else _pattern(b"session=0123456789;", self.cookie_size).decode(),
        }
        return [(name, value) for name, value in values.items() if value is not None] + list(self.extra)

    def raw(self, port: int) -> bytes:
        target = self.path if self.query is None else f"{self.path}?{self.query}"
        lines = [f"{self.method} {target} {self.version}"] + [f"{n}: {v}" for n, v in self.headers(port)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def expected(self, port: int) -> tuple[str, set[str]]:
        """Return the first thing wrong with the request (or "valid"), and the acceptable answers."""
        if len(self.raw(port)) > MAX_HEADER_SIZE:
            return "headers over 64 KiB", {"dropped"}  # Tornado's limit; see the xfail test for 431
        if self.version not in ("HTTP/1.0", "HTTP/1.1"):
            return "bad HTTP version", {"400"}
        headers = {name: value.strip(" \t") for name, value in self.headers(port)}
        if self.version == "HTTP/1.1" and "Host" not in headers:
            return "HTTP/1.1 without Host", {"400"}
        if self.method not in SUPPORTED_METHODS:
            return "unknown method", {"405"}  # whatever the path: Tornado's 404 handler checks it first
        if self.path == "/health":
            return "health", {"200"} if self.method == "GET" else {"405"}
        if not self.path.startswith("/ws/"):
            return "other path", {"404"}
        try:
            facility = unquote_to_bytes(self.path[len("/ws/") :]).decode("utf-8")
        except UnicodeDecodeError:
            return "path not UTF-8", {"400"}
        if self.method != "GET":
            return "not GET", {"405"}
        if headers.get("Upgrade", "").lower() != "websocket":
            return "no Upgrade: websocket", {"400"}
        if not _is_websocket_key(headers.get("Sec-WebSocket-Key", "")):
            return "bad Sec-WebSocket-Key", {"400"}
        try:
            validate_facility(facility)
        except InvalidFacility:
            return "bad facility", {"400"}
        host, origin, fetch_site = headers.get("Host", ""), headers.get("Origin"), headers.get("Sec-Fetch-Site")
        if not _origin_admitted(origin, fetch_site, host):
            return "cross origin", {"403"}
        if "upgrade" not in [part.strip().lower() for part in headers.get("Connection", "").split(",")]:
            return "no Connection: upgrade", {"400"}
        if headers.get("Sec-WebSocket-Version") != "13":
            return "not version 13", {"426"}
        if not host or not headers.get("Sec-WebSocket-Key"):
            return "no Host or no key", {"400"}
        return "valid", {"101"}


def _origin_admitted(origin: str | None, fetch_site: str | None, host: str) -> bool:
    """The project's origin policy, for this plain-HTTP server: its own scheme, host and port only."""
    if origin is None:
        # Not a browser, unless Sec-Fetch-Site (which only browsers send) names another site.
        return fetch_site in (None, "same-origin")
    normalised = normalise_origin(origin)
    if normalised is None:
        return False
    own = f"http://{host.lower().removesuffix(':80')}"
    return normalised == own or (fetch_site == "same-origin" and _netloc(normalised) == _netloc(own))


EXTRA_HEADERS = st.one_of(
    st.tuples(st.sampled_from(["Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"]), VALUE),
    st.tuples(
        st.just("Sec-WebSocket-Extensions"),
        st.sampled_from(["permessage-deflate", "permessage-deflate; client_max_window_bits", 'x; a="b', "; ;,"]),
    ),
    st.tuples(TOKEN.map("X-Fuzz-".__add__), VALUE),
    st.tuples(st.sampled_from(["X-Forwarded-For", "X-Real-Ip", "X-Scheme"]), VALUE),
)
# What each field of a valid Handshake() may be changed to.
CHANGES = {
    "method": st.sampled_from([*SUPPORTED_METHODS, "get", "BREW", "CONNECT"]),
    "path": PATHS,
    "query": QUERIES,
    "version": st.sampled_from(["HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "http/1.1"]),
    "host": st.sampled_from([None, "", "evil.example"]),
    "upgrade": st.one_of(st.none(), st.sampled_from(["WebSocket", "websocket, h2c", "h2c", " websocket"]), VALUE),
    "connection": st.one_of(st.none(), st.sampled_from(["keep-alive, Upgrade", "keep-alive", "upgrade"]), VALUE),
    "key": st.sampled_from([None, ""]),
    "ws_version": st.one_of(st.none(), st.sampled_from(["8", "13, 8", " 13 ", ""]), VALUE),
    "origin": st.one_of(st.sampled_from([SAME_ORIGIN, "null", "http://[", "http://evil.example"]), VALUE),
    "fetch_site": st.one_of(st.sampled_from(["same-origin", "none", "cross-site", "same-site"]), TOKEN),
    "cookie_size": st.integers(16 * 1024, 64 * 1024),
    "extra": st.lists(EXTRA_HEADERS, min_size=1, max_size=4, unique_by=lambda header: header[0].lower()).map(tuple),
}


@st.composite
def handshakes(draw: st.DrawFn) -> Handshake:
    """A valid handshake with up to four of its fields changed."""
    changed = draw(st.lists(st.sampled_from(sorted(CHANGES)), max_size=4, unique=True))
    return Handshake(**{name: draw(CHANGES[name]) for name in changed})


def send_handshake(port: int, raw: bytes) -> tuple[str, bytes]:
    """Send ``raw`` on a new connection; return the status ("dropped", "hang", "garbage") and the head."""
    with socket.create_connection((HOST, port), timeout=ANSWER_TIMEOUT) as sock:
        head = b""
        try:
            sock.sendall(raw)
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            return "hang", head
        except (BrokenPipeError, ConnectionResetError):
            pass
    if not head:
        return "dropped", head
    if not head.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")) or not head[9:12].isdigit():
        return "garbage", head
    return head[9:12].decode(), head


def response_header(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def test_hostile_handshakes_get_a_sensible_status(target, record_property):
    with under_watch(target, record_property) as tally:

        @settings(PROPERTY_SETTINGS, max_examples=1000)
        @given(request=handshakes())
        def answers_sensibly(request: Handshake) -> None:
            kind, expected = request.expected(target.port)
            status, head = send_handshake(target.port, request.raw(target.port))
            tally.add(kind, status)
            assert status in expected, (kind, head[:300])
            assert not status.startswith("5")
            if status == "101":
                # The answer proves the server read the key.
                key = dict(request.headers(target.port))["Sec-WebSocket-Key"].strip(" \t")
                assert response_header(head, "Sec-WebSocket-Accept") == accept_value(key)

        answers_sensibly()


# -- frames ----------------------------------------------------------------------------------------


@dataclass
class Op:
    """Frames to send, and what the model expects of them.

    ``fatal`` is None for input that leaves the connection open, else the answer expected:
    "dropped" (a dropped connection, or a close with 1002), "1007", "1009", or "close" (the client's
    own close, echoed with ``close_echo``). See :func:`acceptable_endings`.
    """

    kind: str
    data: bytes
    fatal: str | None = None
    echo: tuple[int, bytes] | None = None
    pings: tuple[bytes, ...] = ()
    close_echo: bytes = b""
    half_close: bool = False


def _pattern(seed: bytes, size: int) -> bytes:
    return (seed * (size // len(seed) + 1))[:size]


PAYLOADS = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=60).map(str.encode),
    st.tuples(st.binary(min_size=1, max_size=6), st.integers(126, 70_000)).map(lambda args: _pattern(*args)),
)
TEXTS = st.one_of(
    st.text(max_size=60).map(str.encode),
    # Repeated whole characters, so the message stays valid UTF-8.
    st.tuples(st.text(min_size=1, max_size=4), st.integers(126, 70_000)).map(
        lambda args: (args[0] * (args[1] // len(args[0]) + 1)).encode()
    ),
)
INVALID_UTF8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"])
CONTROL_PAYLOADS = st.binary(max_size=125)


@st.composite
def messages(draw: st.DrawFn, *, valid: bool = True) -> Op:
    """A text or binary message, maybe fragmented, maybe with pings and pongs between its fragments.

    With ``valid=False``, a text message with an invalid UTF-8 sequence somewhere.
    """
    opcode = draw(st.sampled_from([0x1, 0x2])) if valid else 0x1
    payload = draw(TEXTS if opcode == 0x1 else PAYLOADS)
    if not valid:
        at = draw(st.integers(0, len(payload)))
        payload = payload[:at] + draw(INVALID_UTF8) + payload[at:]
    # Cuts may fall inside a UTF-8 sequence: only the whole message has to be valid.
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    pieces = [payload[a:b] for a, b in itertools.pairwise([0, *cuts, len(payload)])]
    data, pings = b"", []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        data += raw_frame((0x80 if last else 0) | (opcode if i == 0 else 0x0), piece)
        if not last:
            control = draw(st.one_of(st.none(), st.tuples(st.sampled_from([0x9, 0xA]), CONTROL_PAYLOADS)))
            if control is not None:
                data += raw_frame(0x80 | control[0], control[1])
                if control[0] == 0x9:
                    pings.append(control[1])
    shape = "fragmented " if len(pieces) > 1 else ""
    if opcode == 0x2:
        return Op(f"{shape}binary", data, echo=(0x2, payload), pings=tuple(pings))
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return Op(f"{shape}text, invalid UTF-8", data, fatal="1007", pings=tuple(pings))
    return Op(f"{shape}text", data, echo=(0x1, payload), pings=tuple(pings))


def _ping(payload: bytes) -> Op:
    return Op("ping", raw_frame(0x89, payload), pings=(payload,))


def _close(code: int | None, reason: str) -> Op:
    body = b"" if code is None else struct.pack("!H", code) + reason.encode()
    return Op("close", raw_frame(0x88, body), fatal="close", close_echo=body[:2])


def _oversized(first: bytes, declared: int) -> Op:
    """A frame declaring ``declared`` bytes; after a first fragment of ``first`` when that is not empty."""
    start = raw_frame(0x01, first) if first else b""
    return Op("over max_message_size", start + raw_frame(0x80 | (0x0 if first else 0x1), b"", length=declared), "1009")


def _lying(declared: int, sent: int) -> Op:
    return Op(
        "length that lies, then EOF", raw_frame(0x81, b"", length=declared) + b"x" * sent, "dropped", half_close=True
    )


VALID_CLOSE_CODES = st.one_of(
    st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011]), st.integers(3000, 4999)
)
WELL_FORMED = st.one_of(
    messages(),
    CONTROL_PAYLOADS.map(_ping),
    CONTROL_PAYLOADS.map(lambda payload: Op("pong", raw_frame(0x8A, payload))),
)
# Each ends the connection: the client's own close, or input the server must refuse.
ENDINGS = st.one_of(
    st.one_of(st.tuples(st.none(), st.just("")), st.tuples(VALID_CLOSE_CODES, st.text(max_size=30))).map(
        lambda args: _close(*args)
    ),
    st.tuples(VALID_CLOSE_CODES, INVALID_UTF8).map(
        lambda args: Op("close, reason not UTF-8", raw_frame(0x88, struct.pack("!H", args[0]) + args[1]), "1007")
    ),
    messages(valid=False),
    st.tuples(st.sampled_from([0x10, 0x20, 0x40, 0x70]), st.sampled_from([0x0, 0x1, 0x2, 0x9])).map(
        lambda rsv: Op("RSV bits set", raw_frame(0x80 | rsv[0] | rsv[1], b"rsv"), "dropped")
    ),
    st.tuples(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]), CONTROL_PAYLOADS).map(
        lambda args: Op("reserved opcode", raw_frame(0x80 | args[0], args[1]), "dropped")
    ),
    st.tuples(st.sampled_from([0x8, 0x9, 0xA]), st.integers(126, 1000)).map(
        lambda args: Op("control frame over 125 bytes", raw_frame(0x80 | args[0], b"c" * args[1]), "dropped")
    ),
    st.tuples(st.sampled_from([0x8, 0x9, 0xA]), CONTROL_PAYLOADS).map(
        lambda args: Op("fragmented control frame", raw_frame(args[0], args[1]), "dropped")
    ),
    st.booleans().map(
        lambda fin: Op("continuation without a start", raw_frame((0x80 if fin else 0) | 0x0, b"c"), "dropped")
    ),
    st.tuples(st.sampled_from([0x1, 0x2]), st.sampled_from([0x1, 0x2])).map(
        lambda ops: Op(
            "new message inside a fragmented one", raw_frame(ops[0], b"a") + raw_frame(0x80 | ops[1], b"b"), "dropped"
        )
    ),
    st.integers(1, MAX_MESSAGE_SIZE).flatmap(
        lambda declared: st.integers(0, declared - 1).map(lambda sent: _lying(declared, sent))
    ),
    st.integers(MAX_MESSAGE_SIZE + 1, 2**64 - 1).map(lambda declared: _oversized(b"", declared)),
    st.integers(1, 100).flatmap(
        lambda first: st.integers(MAX_MESSAGE_SIZE - first + 1, MAX_MESSAGE_SIZE).map(
            lambda declared: _oversized(b"f" * first, declared)
        )
    ),
)
# Well-formed traffic, then maybe one ending.
SEQUENCES = st.tuples(st.lists(WELL_FORMED, max_size=5), st.one_of(st.none(), ENDINGS)).map(
    lambda args: args[0] if args[1] is None else [*args[0], args[1]]
)


class Peer:
    """The client side of one raw websocket, read with a deadline."""

    def __init__(self, port: int, facility: str) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=ANSWER_TIMEOUT)
        self.parser = FrameParser()
        self.frames: list[tuple[int, bytes]] = []
        self.sock.sendall(upgrade_request(HOST, port, f"/ws/{facility}?subscribe-broadcast&publish-broadcast&echo"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed during the handshake"
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.frames += self.parser.feed(rest)

    def send(self, data: bytes, *, half_close: bool = False) -> None:
        # The server may already have dropped the connection: what it answered still gets read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(data)
            if half_close:
                self.sock.shutdown(socket.SHUT_WR)

    def next_frame(self) -> tuple[int, bytes] | str:
        """Return the next frame, or how the connection ended: "eof", "reset" or "hang"."""
        while not self.frames:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return "hang"
            except ConnectionResetError:
                return "reset"
            if not chunk:
                return "eof"
            self.frames += self.parser.feed(chunk)
        return self.frames.pop(0)

    def close(self) -> None:
        self.sock.close()


def _is_subsequence(items: list[bytes], of: list[bytes]) -> bool:
    remaining = iter(of)
    return all(any(item == candidate for candidate in remaining) for item in items)


def answer_to(peer: Peer, fatal: str | None, probe: bytes) -> tuple[str, list[tuple[int, bytes]], list[bytes]]:
    """Read what the server answers; return how it ended, the messages and the pong payloads before that."""
    echoes, pongs = [], []
    while True:
        frame = peer.next_frame()
        if isinstance(frame, str):
            return ("dropped" if frame in ("eof", "reset") else frame), echoes, pongs
        opcode, payload = frame
        if opcode == 0xA:
            pongs.append(payload)
        elif opcode in (0x1, 0x2):
            if fatal is None and payload == probe:
                return "open", echoes, pongs
            echoes.append((opcode, payload))
        elif opcode == 0x8:
            code = "none" if len(payload) < 2 else str(struct.unpack("!H", payload[:2])[0])
            peer.send(raw_frame(0x88, payload[:2]))
            ending = peer.next_frame()
            assert ending in ("eof", "reset"), f"still open after the close handshake: {ending!r}"
            return f"close {code}", echoes, pongs
        else:
            return f"unexpected opcode {opcode}", echoes, pongs


def acceptable_endings(op: Op) -> set[str]:
    if op.fatal == "close":
        return {"close " + (str(struct.unpack("!H", op.close_echo)[0]) if op.close_echo else "none")}
    if op.fatal == "1009":
        return {"close 1009"}
    if op.fatal == "1007":
        # Tornado reads a close frame's reason itself, and drops the connection if it is not UTF-8.
        return {"close 1007", "close 1002", "dropped"} if op.kind.startswith("close") else {"close 1007"}
    return {"dropped", "close 1002"}


def test_hostile_frames_get_a_close_code_or_a_dropped_connection(target, record_property):
    with under_watch(target, record_property) as tally:

        @settings(PROPERTY_SETTINGS, max_examples=600)
        @given(ops=SEQUENCES)
        def answers_sensibly(ops: list[Op]) -> None:
            ending_op = ops[-1] if ops and ops[-1].fatal else None
            probe = f"probe {time.monotonic()}".encode()
            peer = Peer(target.port, f"fuzz{next(_facilities)}")
            try:
                for op in ops:
                    peer.send(op.data, half_close=op.half_close)
                if ending_op is None:
                    peer.send(raw_frame(0x81, probe))
                ending, echoes, pongs = answer_to(peer, ending_op and ending_op.fatal, probe)
                if ending_op is None and ending == "open":
                    peer.send(raw_frame(0x88, struct.pack("!H", 1000)))
                    assert answer_to(peer, "close", probe)[0] == "close 1000"
            finally:
                peer.close()
            expected_echoes = [op.echo for op in ops if op.echo]
            pings = [ping for op in ops for ping in op.pings]
            assert _is_subsequence(pongs, pings), (pongs, pings)
            if ending_op is None:
                tally.add("well-formed sequence", ending)
                assert ending == "open"
                assert echoes == expected_echoes
                # RFC 6455 5.5.3: a pong may answer only the latest of several pings, but that one is answered.
                assert not pings or pongs[-1:] == pings[-1:], (pongs, pings)
                for op in ops:
                    tally.add(op.kind, "echoed" if op.echo else "pong" if op.pings else "nothing")
                return
            tally.add(ending_op.kind, ending)
            # Echoes of what came before may be cut short by the close, never altered.
            assert echoes == expected_echoes[: len(echoes)]
            assert ending in acceptable_endings(ending_op), (ending_op.kind, ending)

        answers_sensibly()


# -- single inputs: deviations pinned by strict xfails, and fixed ones kept as regressions ---------


def test_a_valid_handshake_is_accepted(target):
    """The baseline every single-input test below changes one thing of."""
    assert send_handshake(target.port, Handshake().raw(target.port))[0] == "101"


def test_an_unparsable_origin_is_refused_with_403(target):
    log_mark = len(target.server.stderr)
    status, _ = send_handshake(target.port, Handshake(origin="http://[").raw(target.port))
    assert status == "403"
    assert "Traceback" not in target.server.stderr[log_mark:]


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="Tornado's HTTP/1 server drops a connection whose headers exceed max_header_size (64 KiB) "
    "without answering; a 431 would tell the client why",
)
def test_headers_over_64_kib_are_answered_with_431(target):
    assert send_handshake(target.port, Handshake(cookie_size=MAX_HEADER_SIZE).raw(target.port))[0] == "431"


def test_a_malformed_websocket_key_is_refused_with_400(target):
    assert send_handshake(target.port, Handshake(key="not base64 of 16 bytes").raw(target.port))[0] == "400"


def test_an_unmasked_frame_fails_the_connection(target):
    peer = Peer(target.port, f"fuzz{next(_facilities)}")
    try:
        peer.send(raw_frame(0x81, b"unmasked", masked=False))
        answer = peer.next_frame()
    finally:
        peer.close()
    assert answer[0] == 0x8 and answer[1][:2] == struct.pack("!H", 1002), answer


@pytest.mark.parametrize(
    "payload",
    [struct.pack("!H", code) for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)] + [b"\x03"],
    ids=lambda payload: f"close-{payload.hex()}",
)
def test_a_close_frame_with_an_invalid_code_is_answered_with_1002(target, payload):
    peer = Peer(target.port, f"fuzz{next(_facilities)}")
    try:
        peer.send(raw_frame(0x88, payload))
        ending, _, _ = answer_to(peer, "close", b"")
    finally:
        peer.close()
    assert ending == "close 1002", ending


def _is_websocket_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False
