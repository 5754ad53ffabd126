"""Tornado's websocket protocol, held to RFC 6455 where Tornado is lenient.

Tornado drops the TCP connection on invalid UTF-8, accepts unmasked client frames, and echoes any
close code it receives. This server answers with the close codes RFC 6455 names instead, and
releases a socket's channels as soon as it has sent a close frame.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketProtocol13

if TYPE_CHECKING:
    from .handler import RedisWebSocketHandler

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INVALID_PAYLOAD",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TRY_AGAIN_LATER",
    "StrictProtocol",
    "close_frame_problem",
]

CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013

_OPCODE_TEXT = 0x1
_OPCODE_CLOSE = 0x8
_OPCODE_PING = 0x9
_OPCODE_PONG = 0xA
_PING_PONG = (_OPCODE_PING, _OPCODE_PONG)
_MASK_BIT = 0x80


def close_code_is_valid(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455 section 7.4, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_frame_problem(payload: bytes) -> tuple[int, str] | None:
    """Return the ``(code, reason)`` to answer a malformed close frame with, or None if it is fine."""
    if len(payload) == 1:
        return CLOSE_PROTOCOL_ERROR, "a close frame cannot carry one byte"
    if len(payload) >= 2:
        (code,) = struct.unpack("!H", payload[:2])
        if not close_code_is_valid(code):
            return CLOSE_PROTOCOL_ERROR, f"invalid close code {code}"
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            return CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in the close reason"
    return None


class StrictProtocol(WebSocketProtocol13):
    """Tornado's server-side protocol with RFC 6455's answers to bad frames."""

    # A slot, so that Tornado's own attributes keep the instance __dict__ small and shared.
    __slots__ = ("_reading_header",)
    handler: RedisWebSocketHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_header = False

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if not self.server_terminated and not self.stream.closed():
            # For the close event: Tornado keeps only the code the peer sent, if it answers at all.
            self.handler.sent_close_code = 1000 if code is None and reason is not None else code
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
            if not data[1] & _MASK_BIT:
                # RFC 6455 section 5.1: the server must fail the connection.
                self.close(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
                raise StreamClosedError()
        return data

    def _handle_message(self, opcode: int, data: bytes) -> Any:
        if self.client_terminated or self._frame_compressed:
            return super()._handle_message(opcode, data)
        if opcode == _OPCODE_TEXT:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                # Tornado would drop the TCP connection without a word.
                self.close(CLOSE_INVALID_PAYLOAD, "invalid UTF-8 in a text frame")
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
