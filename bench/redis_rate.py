"""Redis' own PUBLISH ceiling, with 0, 1, 16 ... subscriber connections attached.

``python -m bench publish-rate`` answers the question the scaling estimate needs: how many
messages per second one Redis can take in and hand out when each message goes to K
connections. K = 1 or 16 is a ws4redis-tornado fleet (one subscription per process, 16
processes); K = thousands is ws4redis 0.6.0, which subscribes once per websocket. Redis runs
alone on CPU 1; redis-benchmark and the subscriber sink share CPU 0, so run this while no
server is under test.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bench.procs import SERVER_CPU, Managed
from bench.redis_server import PrivateRedis
from bench.stats import median

CHANNEL = "bench:rate"


async def _sink(port: int, count: int) -> None:
    """Hold ``count`` subscriber connections and discard whatever Redis sends them."""

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"SUBSCRIBE %s\r\n" % CHANNEL.encode())
        while await reader.read(1 << 16):
            pass

    await asyncio.gather(*(one() for _ in range(count)))


def measure(subscribers: list[int], requests: int, repeats: int, log_dir: Path) -> list[dict[str, Any]]:
    """PUBLISH/s for each subscriber count and pipeline depth, median of ``repeats``."""
    redis = PrivateRedis(log_dir)
    rows = []
    try:
        for count in subscribers:
            sink = None
            if count:
                argv = [sys.executable, "-m", "bench.redis_rate", str(redis.port), str(count)]
                sink = Managed(argv, SERVER_CPU, log=log_dir / "sink.log")
                for _ in range(100):  # until every sink connection has subscribed
                    if redis.conn.pubsub_numsub(CHANNEL)[0][1] >= count:
                        break
                    time.sleep(0.1)
            try:
                for pipeline in (1, 16):
                    rates = [redis.publish_rate(requests, pipeline) for _ in range(repeats)]
                    rows.append(
                        {
                            "subscribers": count,
                            "pipeline": pipeline,
                            "publish_per_s": median(rates),
                            "deliveries_per_s": median(rates) * max(count, 1) if count else 0,
                            "runs": rates,
                        }
                    )
                    print(rows[-1], flush=True)
            finally:
                if sink is not None:
                    sink.stop()
    finally:
        redis.stop()
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    out = [
        "| subscriber connections | pipeline | PUBLISH/s (median) | deliveries/s | runs |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{r:,.0f}" for r in row["runs"])
        out.append(
            f"| {row['subscribers']:,} | {row['pipeline']} | {row['publish_per_s']:,.0f} | "
            f"{row['deliveries_per_s']:,.0f} | {runs} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    asyncio.run(_sink(int(sys.argv[1]), int(sys.argv[2])))
