"""Tornado's websocket protocol, held to RFC 6455 where Tornado is lenient.

Tornado drops the TCP connection on invalid UTF-8, on reserved bits it does not know and on a
compressed message that does not inflate, accepts unmasked client frames, and echoes any close code
it receives. This server answers with the close codes RFC 6455 names instead, and releases a
socket's channels as soon as it has sent a close frame.

With permessage-deflate, whether a message is compressed is read from its first frame, as RFC 7692
says: Tornado reads it from the latest frame, so a ping between the fragments of a compressed
message would make it hand the compressed bytes on as they are.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any, Protocol

from tornado.iostream import StreamClosedError

# The base class comes from the compat module, which checks at import that the private hooks and
# state StrictProtocol uses (PROTOCOL_HOOKS, PROTOCOL_STATE there) exist in the installed Tornado.
from .compat.tornado import DecompressTooLargeError, WebSocketProtocol13
from .deflate import EXTENSION, RSV1, Agreement
from .frames import MASK_BIT, RSV_BITS, CloseCode, Opcode, close_code_is_valid, close_frame_problem

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INVALID_PAYLOAD",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TRY_AGAIN_LATER",
    "FrameHandler",
    "StrictProtocol",
    "close_code_is_valid",
    "close_frame_problem",
]

# The names these codes had before ws4redis_tornado.frames.CloseCode; kept importable.
CLOSE_GOING_AWAY = CloseCode.GOING_AWAY
CLOSE_PROTOCOL_ERROR = CloseCode.PROTOCOL_ERROR
CLOSE_INVALID_PAYLOAD = CloseCode.INVALID_PAYLOAD
CLOSE_POLICY_VIOLATION = CloseCode.POLICY_VIOLATION
CLOSE_TRY_AGAIN_LATER = CloseCode.TRY_AGAIN_LATER

# Plain ints, compared once per frame a client sends.
_OPCODE_TEXT = int(Opcode.TEXT)
_DATA = (_OPCODE_TEXT, int(Opcode.BINARY))
_OPCODE_CLOSE = int(Opcode.CLOSE)
_OPCODE_PONG = int(Opcode.PONG)
_PING_PONG = (int(Opcode.PING), _OPCODE_PONG)


class FrameHandler(Protocol):
    """What :class:`StrictProtocol` needs of its websocket handler, besides what Tornado needs."""

    sent_close_code: int | None

    def on_message(self, message: str | bytes) -> Any: ...

    def control_frame_allowed(self, *, pong: bool) -> bool: ...

    def release(self) -> None: ...


@functools.cache
def _tornado_extensions(agreement: Agreement) -> list[tuple[str, dict[str, str | None]]]:
    """The extension list Tornado answers with, in the form it parses an offer into."""
    return [(EXTENSION, dict(agreement.params))]


class StrictProtocol(WebSocketProtocol13):
    """Tornado's server-side protocol with RFC 6455's answers to bad frames.

    It overrides private hooks of ``WebSocketProtocol13`` and uses its private state; those are
    listed, and checked at import, in :mod:`ws4redis_tornado.compat.tornado`.
    """

    # A slot, so that Tornado's own attributes keep the instance __dict__ small and shared.
    __slots__ = ("_deflate", "_message_compressed", "_reading_header")
    handler: FrameHandler  # type: ignore[assignment]  # Tornado types it by what it needs itself

    def __init__(self, *args: Any, deflate: Agreement | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_header = False
        self._message_compressed = False
        # What the handler agreed to (see deflate.py): Tornado answers this instead of the offer.
        self._deflate = deflate

    def _parse_extensions_header(self, headers: Any) -> list[tuple[str, dict[str, str | None]]]:
        # Tornado's coroutine that reads this keeps it as long as the socket: one list per agreement.
        return [] if self._deflate is None else _tornado_extensions(self._deflate)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if not self.server_terminated and not self.stream.closed():
            # For the close event: Tornado keeps only the code the peer sent, if it answers at all.
            self.handler.sent_close_code = CloseCode.NORMAL_CLOSURE if code is None and reason is not None else code
        super().close(code, reason)
        # Nothing may follow a close frame, and a dead peer never answers it (Tornado waits 5 s
        # before dropping it): leave the channels now.
        self.handler.release()

    async def _receive_frame(self) -> None:
        self._reading_header = True
        await super()._receive_frame()

    async def _read_bytes(self, n: int) -> bytes:
        data = await super()._read_bytes(n)
        if self._reading_header:
            self._reading_header = False
            if not data[1] & MASK_BIT:
                # RFC 6455 section 5.1: the server must fail the connection.
                self.close(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
                raise StreamClosedError()
            first = data[0]
            reserved = first & RSV_BITS
            starts_message = (first & 0x0F) in _DATA
            if reserved and (reserved != RSV1 or not starts_message or self._decompressor is None):
                # RFC 7692 section 6: only the first frame of a data message may say "compressed".
                self.close(CloseCode.PROTOCOL_ERROR, "reserved bits set that no extension agreed on")
                raise StreamClosedError()
            if starts_message:
                self._message_compressed = bool(reserved)
        return data

    def inflate_message(self, data: bytes) -> bytes | None:
        """Inflate a client's compressed message; on failure close with RFC 7692's answer and return None."""
        self._message_compressed = False
        assert self._decompressor is not None
        try:
            return self._decompressor.decompress(data)
        except DecompressTooLargeError:
            self.close(CloseCode.MESSAGE_TOO_BIG, "message too big after decompression")
        except zlib.error:
            self.close(CloseCode.PROTOCOL_ERROR, "a compressed message that does not inflate")
        return None

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if self.client_terminated:
            return super()._handle_message(opcode, data)
        # Whether it was compressed is this class's to tell (see the module's docstring).
        self._frame_compressed = False
        if self._message_compressed and opcode in _DATA:
            inflated = self.inflate_message(data)
            if inflated is None:
                return None
            data = inflated
        if opcode == _OPCODE_TEXT:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                # Tornado would drop the TCP connection without a word.
                self.close(CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in a text frame")
                return None
            self._message_bytes_in += len(data)
            return self._run_callback(self.handler.on_message, text)
        if opcode in _PING_PONG and not self.handler.control_frame_allowed(pong=opcode == _OPCODE_PONG):
            return None
        if opcode == _OPCODE_CLOSE:
            problem = close_frame_problem(data)
            if problem is not None:
                self.client_terminated = True
                self.close(*problem)
                return None
        return super()._handle_message(opcode, data)
