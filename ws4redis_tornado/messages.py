"""Messages as they travel between websockets and Redis.

Redis carries bytes. A text message is stored as its UTF-8 bytes, exactly as ws4redis stored it, so
old and new processes can share channels. A binary message is stored as is when it is not valid
UTF-8, and behind :data:`BINARY_MARKER` when it is, so that it stays binary end to end. The marker
starts with 0xFF, which never occurs in UTF-8 text. Every payload that starts with
:data:`RESERVED_PREFIX` is the server's own (a message with its history id, a presence event): a
message that starts so itself is stored behind the binary marker too, so that no client can pass
its message off as one of those.

A message's websocket frame is built by :func:`ws4redis_tornado.frames.encode_frame` (also
importable from here).
"""

from __future__ import annotations

from .frames import encode_frame

__all__ = ["BINARY_MARKER", "RESERVED_PREFIX", "RedisMessage", "decode_payload", "encode_frame", "is_heartbeat"]

BINARY_MARKER = b"\xffws4redis:binary\x00"
RESERVED_PREFIX = b"\xffws4redis:"
"""Starts every payload the server gives a meaning of its own (see :data:`BINARY_MARKER`)."""


class RedisMessage(bytes):
    """A message for websockets: bytes, with a flag saying whether it goes out as a binary frame.

    ``RedisMessage("hi")`` is text. ``RedisMessage(b"...")`` is text when the bytes are valid UTF-8
    (ws4redis published bytes as text frames) and binary otherwise; pass ``binary=True`` to force a
    binary frame.
    """

    binary: bool

    def __new__(cls, value: str | bytes | bytearray | memoryview, binary: bool | None = None) -> RedisMessage:
        if isinstance(value, str):
            if binary:
                raise ValueError("a str message is text; pass bytes for a binary message")
            message = super().__new__(cls, value.encode("utf-8"))
            message.binary = False
            return message
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"a message is str or bytes, not {type(value).__name__}")
        message = super().__new__(cls, value)
        message.binary = (not _is_utf8(message)) if binary is None else binary
        return message

    @property
    def payload(self) -> bytes:
        """The bytes to PUBLISH and persist in Redis."""
        if self.startswith(RESERVED_PREFIX) or (self.binary and _is_utf8(self)):
            return BINARY_MARKER + self
        return bytes(self)

    def __repr__(self) -> str:
        kind = "binary" if self.binary else "text"
        return f"RedisMessage({bytes(self)!r}, {kind})"


def decode_payload(payload: bytes) -> RedisMessage:
    """Turn bytes read from Redis back into a message; the inverse of :attr:`RedisMessage.payload`."""
    if payload.startswith(BINARY_MARKER):
        return RedisMessage(payload[len(BINARY_MARKER) :], binary=True)
    return RedisMessage(payload)


def is_heartbeat(data: str | bytes, heartbeat: str | None) -> bool:
    """Tell whether ``data`` is the configured heartbeat string (which is never published)."""
    if heartbeat is None:
        return False
    if isinstance(data, str):
        return data == heartbeat
    return data == heartbeat.encode("utf-8")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
