"""Frames leave at once: a small frame never waits for the client to acknowledge the one before.

Without TCP_NODELAY the kernel holds a small segment while an earlier one is unacknowledged
(Nagle), and a client that also sends delays its acknowledgements (up to 40 ms on Linux, 200 ms
elsewhere) until it has something to send. Once two frames leave close together, say after any
pause of the event loop, every later frame waits for the client's next packet.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
import websockets

from ..utils import MS

PERIOD = 20 * MS  # the client sends a ping this often


@pytest.mark.gen_test(timeout=30)
async def test_pongs_leave_at_once_after_two_pings_arrived_together(ws_url):
    waits: list[float] = []

    def timed(waiter: asyncio.Future, sent: float) -> None:
        waiter.add_done_callback(lambda _: waits.append(time.monotonic() - sent))

    async with websockets.connect(ws_url("a", "subscribe-broadcast")) as ws:
        for n in range(40):
            sent = time.monotonic()
            timed(await ws.ping(b"%d" % n), sent)
            if n == 10:
                timed(await ws.ping(b"right behind"), sent)
            await asyncio.sleep(max(0.0, sent + PERIOD - time.monotonic()))
        await asyncio.sleep(PERIOD)
    later = waits[12:]
    before = [round(w * 1000) for w in waits[:10]]
    assert statistics.median(later) < PERIOD / 2, (
        f"pong waits (ms) before the pair {before}, after {[round(w * 1000) for w in later]}"
    )
