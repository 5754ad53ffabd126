"""What one process counts: plain numbers, kept whether or not anybody reads them. Pure.

Counting costs integer additions where it happens: per message from Redis (messages, deliveries),
per loop turn of the frame writer (bytes, the fan-out time), and, while the writer flushes, one
per socket to its local total of bytes written. No container or record is made for it, per frame
or per socket. :mod:`ws4redis_tornado.prometheus` turns these numbers into Prometheus series when
a scrape asks, and :mod:`ws4redis_tornado.status` reads some of them for its report.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["FANOUT_BUCKETS", "FanoutHistogram", "Metrics"]

FANOUT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds, in seconds, of the fan-out time histogram's buckets (+Inf is implied)."""


@dataclass(slots=True)
class FanoutHistogram:
    """Time from reading a batch of messages from Redis to writing the batch's last frame."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(FANOUT_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(FANOUT_BUCKETS, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, observations at most that long)`` per bucket, as Prometheus lists them."""
        running = 0
        buckets = []
        for bound, count in zip((*map(str, FANOUT_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets


@dataclass(slots=True)
class Metrics:
    """Counters of one process since it started; gauges (sockets, channels) are read where they live.

    Attributes:
        handshakes: handshakes by the HTTP status they were answered with (101 for a socket).
        closes: closes of open sockets by the close code this server sent or echoed.
        redis_messages: messages read from the pub/sub connection for at least one local socket.
        deliveries: those messages times the sockets they were handed to.
        bytes_sent: bytes the frame writer wrote to sockets.
        client_publishes: messages sockets published (``publish-*`` or a control socket's publish).
        slow_consumer_closes: sockets closed for not reading (1008).
        rate_limit_closes: sockets closed for sending too fast (1008).
        redis_reconnects: times the pub/sub connection came back after it was lost.
        redis_down_seconds: seconds without the pub/sub connection, outages that ended.
        redis_down_since: when the current outage began (IOLoop time), or None.
        persisted_fetches: reads of persisted messages (each MGET of a batch of handshakes).
        recoveries: channels of recovering clients by outcome: ``recovered`` or ``not_recovered``.
        fanout: the fan-out time histogram.
    """

    handshakes: Counter[int] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    redis_messages: int = 0
    deliveries: int = 0
    bytes_sent: int = 0
    client_publishes: int = 0
    slow_consumer_closes: int = 0
    rate_limit_closes: int = 0
    redis_reconnects: int = 0
    redis_down_seconds: float = 0.0
    redis_down_since: float | None = None
    persisted_fetches: int = 0
    recoveries: Counter[str] = field(default_factory=Counter)
    fanout: FanoutHistogram = field(default_factory=FanoutHistogram)

    def redis_lost(self, now: float) -> None:
        if self.redis_down_since is None:
            self.redis_down_since = now

    def redis_back(self, now: float) -> None:
        if self.redis_down_since is not None:
            self.redis_down_seconds += now - self.redis_down_since
            self.redis_down_since = None
            self.redis_reconnects += 1

    def down_seconds(self, now: float) -> float:
        """Seconds without Redis so far, the current outage included."""
        ongoing = now - self.redis_down_since if self.redis_down_since is not None else 0.0
        return self.redis_down_seconds + ongoing
