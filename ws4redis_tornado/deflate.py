"""permessage-deflate (RFC 7692): what this server agrees to, and each frame compressed once.

A browser offers permessage-deflate on every connection. With the default context takeover, each
socket's compressor would remember the messages before, so the same message would compress to
different bytes on every socket, and fan-out would cost one compression per socket. This server
therefore always answers with ``server_no_context_takeover``: every message is compressed on its
own, the result is the same for every socket that agreed on the same window, and
:class:`FrameCompressor` compresses a frame once per loop turn for all of them.

It also always answers with ``client_no_context_takeover``, which RFC 7692 lets a server require:
the client then compresses each message on its own too, so a socket holds no inflater between
messages (Tornado creates one per compressed message and drops it) and an idle socket costs no
zlib memory. A compressed message is limited by its size after inflating, ``max_message_size``.

:func:`negotiate` is pure: the offer in, the answer out. Tornado's own reading of the offer
loses every parameter without a value (the ``no_context_takeover`` ones), so
:class:`~ws4redis_tornado.protocol.StrictProtocol` hands Tornado the answer instead: Tornado then
writes it as the response header and builds its inflater for the client's messages without
context takeover.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass

__all__ = ["RSV1", "Agreement", "FrameCompressor", "deflate_frame", "negotiate"]

EXTENSION = "permessage-deflate"
RSV1 = 0x40
"""The first byte's bit that marks a compressed message (RFC 7692 section 6)."""

_MAX_WBITS = zlib.MAX_WBITS
# zlib cannot write a raw deflate stream with a 256-byte window (it silently uses 512 bytes), so
# an offer that limits this server's window to 8 bits is declined.
_MIN_SERVER_WBITS = 9
_LEVEL = 6
_TAIL = b"\x00\x00\xff\xff"
_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_BITS = ("server_max_window_bits", "client_max_window_bits")


@dataclass(frozen=True)
class Agreement:
    """What this server agreed to with one client.

    Attributes:
        params: the parameters of the response's permessage-deflate, a flag's value None.
        server_wbits: the window this server compresses with (the client may have limited it).
    """

    params: tuple[tuple[str, str | None], ...]
    server_wbits: int

    @property
    def header(self) -> str:
        """The response's ``Sec-WebSocket-Extensions`` value."""
        rendered = (key if value is None else f"{key}={value}" for key, value in self.params)
        return "; ".join([EXTENSION, *rendered])


def negotiate(offers: str | None) -> Agreement | None:
    """Return the agreement to the first acceptable permessage-deflate offer, or None.

    ``offers`` is the request's ``Sec-WebSocket-Extensions`` value. An offer is declined when it
    has a parameter RFC 7692 does not define, one twice, or a window RFC 7692 does not allow; the
    next offer is tried then, as section 5 asks. Every browser of a kind sends the same offer, so
    the sockets share one agreement instead of holding one each.
    """
    return _negotiate(offers or "")


@functools.lru_cache(maxsize=64)
def _negotiate(offers: str) -> Agreement | None:
    for name, params in _parse_offers(offers):
        if name != EXTENSION:
            continue
        agreement = _accept(params)
        if agreement is not None:
            return agreement
    return None


def _parse_offers(header: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    offers = []
    for element in header.split(","):
        parts = [part.strip() for part in element.split(";")]
        if not parts[0]:
            continue
        params: list[tuple[str, str | None]] = []
        for part in parts[1:]:
            if not part:
                continue
            key, sep, value = part.partition("=")
            value = value.strip().strip('"')
            params.append((key.strip().lower(), value if sep else None))
        offers.append((parts[0].lower(), params))
    return offers


def _accept(params: list[tuple[str, str | None]]) -> Agreement | None:
    seen: dict[str, str | None] = {}
    for key, value in params:
        if key in seen or key not in _FLAGS + _BITS:
            return None
        if key in _FLAGS and value is not None:
            return None
        seen[key] = value
    answer: list[tuple[str, str | None]] = [(flag, None) for flag in _FLAGS]
    server_wbits = _MAX_WBITS
    if "server_max_window_bits" in seen:
        bits = _window_bits(seen["server_max_window_bits"])
        if bits is None or bits < _MIN_SERVER_WBITS:
            return None
        server_wbits = bits
        answer.append(("server_max_window_bits", str(bits)))
    if "client_max_window_bits" in seen and seen["client_max_window_bits"] is not None:
        bits = _window_bits(seen["client_max_window_bits"])
        if bits is None:
            return None
        # The client's messages come without context takeover: any window it chose is fine.
        answer.append(("client_max_window_bits", str(bits)))
    return Agreement(tuple(answer), server_wbits)


def _window_bits(value: str | None) -> int | None:
    # RFC 7692 section 7.1.2: 8 to 15, decimal, no leading zero.
    if value is None or not (value.isascii() and value.isdigit()) or value.startswith("0"):
        return None
    bits = int(value)
    return bits if 8 <= bits <= _MAX_WBITS else None


def deflate_frame(frame: bytes, wbits: int = _MAX_WBITS, *, min_size: int = 0, level: int = _LEVEL) -> bytes:
    """Return ``frame`` (one complete unmasked data frame this server built) compressed, or as is.

    It stays as it is when it is a control frame, when its payload is shorter than ``min_size``,
    or when compressing would not make it shorter: permessage-deflate lets any message go
    uncompressed.
    """
    first = frame[0]
    if first & 0x08 or first & 0x70:  # a control frame, or one already marked
        return frame
    length = frame[1] & 0x7F
    offset = 2 if length < 126 else 4 if length == 126 else 10
    payload = memoryview(frame)[offset:]
    if len(payload) < min_size:
        return frame
    compressor = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    # RFC 7692 section 7.2.1: the empty block the sync flush ends with is left off.
    body = data[: -len(_TAIL)] if data.endswith(_TAIL) else data
    header = _header(first | RSV1, len(body))
    if len(header) + len(body) >= len(frame):
        return frame
    return header + body


def _header(first: int, length: int) -> bytes:
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


class FrameCompressor:
    """Compresses each frame once per loop turn, for every socket that agreed on the same window.

    Owned by the process's :class:`~ws4redis_tornado.writes.FrameWriter`, which asks it for each
    frame it writes to a socket that agreed to compression and forgets the results after its
    flush. The frames of one message are the same ``bytes`` object for every socket, whose hash
    Python computes once, so a look-up after the first costs a dictionary access.
    """

    __slots__ = ("_cache", "compressed", "min_size")

    def __init__(self, min_size: int) -> None:
        self.min_size = min_size
        self._cache: dict[object, bytes] = {}
        # Frames compressed since the process started: one per message and window, not per socket.
        self.compressed = 0

    def compress(self, frame: bytes, wbits: int) -> bytes:
        """The frame to send a socket that agreed to compression with ``wbits``."""
        key: object = frame if wbits == _MAX_WBITS else (frame, wbits)
        cache = self._cache
        compressed = cache.get(key)
        if compressed is None:
            compressed = cache[key] = deflate_frame(frame, wbits, min_size=self.min_size)
            if compressed is not frame:
                self.compressed += 1
        return compressed

    def forget(self) -> None:
        """Drop what this turn compressed (the frame writer calls it after each flush)."""
        if self._cache:
            self._cache.clear()
