"""The server-to-client text frame both reference servers write (standard library only)."""

from __future__ import annotations

import struct


def encode_text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (server-to-client frames are never masked)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return b"\x81\x7e" + struct.pack("!H", size) + payload
    return b"\x81\x7f" + struct.pack("!Q", size) + payload
