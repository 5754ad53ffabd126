"""Redis publisher: one ``PUBLISH <channel> <payload>`` per stdin line.

Fed by the load client with sequence numbers. The payload (its kind named by
``BENCH_PAYLOAD``, see ``payload.py``) is stamped immediately before the PUBLISH, so the pipe
hop from the client is not part of any measured latency; each PUBLISH is timed (see
``roundtrips.py``).
Usage: ``python -m bench.publisher REDIS_URL CHANNEL``.
"""

from __future__ import annotations

import sys

import redis

from bench import payload, roundtrips


def main() -> None:
    url, channel = sys.argv[1], sys.argv[2]
    conn = redis.Redis.from_url(url)
    roundtrips.serve(
        lambda message: conn.publish(channel, message), sys.stdin.buffer, sys.stdout.buffer, payload.maker_from_env()
    )


if __name__ == "__main__":
    main()
