"""Publish round trips, timed by the publisher process around each publish call.

Every publisher (bare PUBLISH, ws4redis_tornado's ``publish``, Channels' ``group_send``) times
its calls and answers a ``stats`` line on stdin with one JSON line on stdout: the round trips
since its previous answer. The load client asks before a phase (which resets the count) and
after it. Standard library only: the Channels publisher imports it from its own venv.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import IO

from bench import payload
from bench.stats import percentile

STATS = b"stats\n"


class RoundTrips:
    """Round trips in ns, handed out (and forgotten) by :meth:`take`."""

    def __init__(self) -> None:
        self.ns: list[int] = []

    def take(self) -> dict[str, float | int | None]:
        ns, self.ns = self.ns, []
        us = [v / 1e3 for v in ns]
        return {
            "count": len(us),
            "p50_us": percentile(us, 50),
            "p99_us": percentile(us, 99),
            "max_us": max(us) if us else None,
        }


def serve(
    publish: Callable[[bytes], object],
    lines: Iterable[bytes],
    out: IO[bytes],
    make: Callable[[int], bytes] = payload.make,
) -> None:
    """Publish one payload ``make(seq)`` per sequence number in ``lines``; answer ``stats`` lines on ``out``.

    ``make`` stamps the send time, so it is called immediately before each publish.
    """
    trips = RoundTrips()
    monotonic_ns = time.monotonic_ns
    for line in lines:
        if line == STATS:
            out.write(json.dumps(trips.take()).encode() + b"\n")
            out.flush()
            continue
        message = make(int(line))
        start = monotonic_ns()
        publish(message)
        trips.ns.append(monotonic_ns() - start)
