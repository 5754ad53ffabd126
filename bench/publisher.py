"""Redis publisher: one ``PUBLISH broadcast:<facility> <payload>`` per stdin line.

Fed by the load client with sequence numbers. The payload is stamped immediately before
the PUBLISH, so the pipe hop from the client is not part of any measured latency.
Usage: ``python -m bench.publisher REDIS_URL CHANNEL``.
"""

from __future__ import annotations

import sys

import redis

from bench import payload


def main() -> None:
    url, channel = sys.argv[1], sys.argv[2]
    conn = redis.Redis.from_url(url)
    for line in sys.stdin.buffer:
        conn.publish(channel, payload.make(int(line)))


if __name__ == "__main__":
    main()
