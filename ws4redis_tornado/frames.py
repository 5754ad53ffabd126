"""Websocket frames as RFC 6455 defines them: opcodes, close codes, and the frames this server builds.

Everything the project knows about the wire format of a frame lives here: the opcodes, the close
codes it sends and accepts, the bits of the header it reads or sets, and the complete frames it
writes without Tornado (a message's frame, built once and written to every subscribed socket, and
the empty ping). Tornado parses the frames clients send; :mod:`ws4redis_tornado.protocol` holds it
to the rules below.
"""

from __future__ import annotations

import struct
from enum import IntEnum

__all__ = [
    "FIN",
    "MASK_BIT",
    "PING_FRAME",
    "RSV_BITS",
    "CloseCode",
    "Opcode",
    "close_code_is_valid",
    "close_frame_problem",
    "encode_frame",
]


class Opcode(IntEnum):
    """The low four bits of a frame's first byte (RFC 6455 section 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(IntEnum):
    """The close codes this server sends or names (RFC 6455 section 7.4, and the project's own 4xxx)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    SERVICE_RESTART = 1012
    """Redis was lost: a client that asked for ids reconnects to recover what it missed meanwhile."""
    TRY_AGAIN_LATER = 1013
    SIGNED_OUT = 4401
    """The socket's session ended (see :mod:`ws4redis_tornado.revocation`)."""
    ACCESS_CHANGED = 4403
    """The socket's user's rights changed (see :mod:`ws4redis_tornado.revocation`)."""


FIN = 0x80
"""The first byte's bit that marks the last frame of a message."""

RSV_BITS = 0x70
"""The first byte's three bits reserved for extensions; permessage-deflate uses the first (0x40)."""

MASK_BIT = 0x80
"""The second byte's bit that says the payload is masked, as every client's must be (section 5.1)."""

PING_FRAME = bytes((FIN | Opcode.PING, 0))
"""A complete, empty, unmasked ping frame."""

# Plain ints, not enum members: encode_frame() runs once per message published.
_OPCODE_TEXT = int(Opcode.TEXT)
_OPCODE_BINARY = int(Opcode.BINARY)
_FIN = FIN


def encode_frame(data: bytes, *, binary: bool) -> bytes:
    """Return one complete, unmasked server-to-client websocket frame carrying ``data``.

    Built once per message and written to every subscribed socket as is.
    """
    first = _FIN | (_OPCODE_BINARY if binary else _OPCODE_TEXT)
    length = len(data)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + data


def close_code_is_valid(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455 section 7.4, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_frame_problem(payload: bytes) -> tuple[int, str] | None:
    """Return the ``(code, reason)`` to answer a malformed close frame with, or None if it is fine."""
    if len(payload) == 1:
        return CloseCode.PROTOCOL_ERROR, "a close frame cannot carry one byte"
    if len(payload) >= 2:
        (code,) = struct.unpack("!H", payload[:2])
        if not close_code_is_valid(code):
            return CloseCode.PROTOCOL_ERROR, f"invalid close code {code}"
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            return CloseCode.INVALID_PAYLOAD, "invalid UTF-8 in the close reason"
    return None
