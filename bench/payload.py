"""The benchmark message: ~100 bytes carrying its sequence number and send time.

Layout ``SSSSSSSS TTTTTTTTTTTTTTTTTTT xxx...``: fixed offsets, so the load client reads the
two numbers by slicing instead of parsing JSON for every one of millions of frames. The
time is ``time.monotonic_ns()`` (CLOCK_MONOTONIC), shared by all processes on the machine.
This module has no dependencies: the Channels publisher imports it from another venv.
"""

from __future__ import annotations

import time

SIZE = 100
_PAD = b"x" * (SIZE - 29)


def make(seq: int) -> bytes:
    """Payload for message ``seq``, stamped now; call it right before publishing."""
    return b"%08d %019d " % (seq, time.monotonic_ns()) + _PAD
