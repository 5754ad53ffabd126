"""Redis memory a channel's history costs: ``python -m bench history-memory``.

For each history size H and message size B it publishes 2 x H messages of B bytes to C channels
through ws4redis_tornado's own publish path (one EVAL per channel: XADD with MAXLEN H, PEXPIRE,
SET of the persisted copy, PUBLISH), on a private Redis, and reads what that holds. 2 x H, so that
every stream has been trimmed once: a channel that lives long holds that, not a freshly filled
stream (exact trimming frees a listpack node only when all its entries are gone).

It also reads Redis' own time per call from ``INFO commandstats`` over those publishes: the
EVAL (the whole script) and the XADD inside it. Redis runs on the load CPU with the publishing
process, so these are upper bounds on a busy machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.redis_server import PrivateRedis
from ws4redis_tornado.config import Config
from ws4redis_tornado.connections import RedisTopology
from ws4redis_tornado.history import history_key
from ws4redis_tornado.publisher import publish


def _used_memory(redis: PrivateRedis) -> int:
    """``used_memory`` once only the harness' own connection is left.

    A publishing connection's query and reply buffers come and go with its pipelines, so the
    figures are read with it closed, not subtracted (Redis' own client accounting of them moves
    by tens of KiB from one reading to the next).
    """
    deadline = time.monotonic() + 5
    while len(redis.conn.client_list()) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return redis.conn.info("memory")["used_memory"]


def _payload(seq: int, size: int) -> bytes:
    return (b"%08d" % seq + b"0123456789abcdef" * (size // 16 + 1))[:size]


def _publish(redis: PrivateRedis, config: Config, keys: list[str], messages: int, size: int) -> float:
    """Publish ``messages`` messages to ``keys`` on a connection of their own; return the seconds it took."""
    topology = RedisTopology(config)
    try:
        client = topology.sync_command_client()
        started = time.perf_counter()
        for seq in range(messages):
            publish(client, keys, _payload(seq, size), config=config)
        return time.perf_counter() - started
    finally:
        topology.close()


def measure_one(redis: PrivateRedis, history_size: int, size: int, channels: int) -> dict[str, Any]:
    """Publish 2 x ``history_size`` messages of ``size`` bytes to ``channels`` channels; what Redis holds."""
    redis.flush()
    config = Config(redis_url=redis.url, history_size=history_size)
    # Redis allocates a latency histogram per command on its first call after a reset: call
    # every command once (and load the script) before the baseline is taken.
    redis.conn.config_resetstat()
    _publish(redis, config, ["warm-up"], 1, size)
    redis.conn.delete("warm-up", history_key("warm-up"))
    _used_memory(redis)
    keys = [f"broadcast:history-memory-{i}" for i in range(channels)]
    before = _used_memory(redis)
    elapsed = _publish(redis, config, keys, 2 * history_size, size)
    calls = redis.conn.info("commandstats")
    after = _used_memory(redis)
    stream = redis.conn.memory_usage(history_key(keys[0]), samples=0)
    return {
        "history_size": history_size,
        "message_bytes": size,
        "channels": channels,
        "entries": redis.conn.xlen(history_key(keys[0])),
        "stream_bytes": stream,
        "persisted_bytes": redis.conn.memory_usage(keys[0], samples=0),
        "used_memory_per_channel": (after - before) / channels,
        "publishes_per_s": 2 * history_size * channels / elapsed,
        "eval_us_per_call": calls["cmdstat_eval"]["usec_per_call"],
        "xadd_us_per_call": calls["cmdstat_xadd"]["usec_per_call"],
        "redis_version": redis.conn.info("server")["redis_version"],
    }


def measure(sizes: list[int], message_bytes: list[int], channels: int, log_dir: Path) -> list[dict[str, Any]]:
    """One row per (history size, message size), on one private Redis."""
    redis = PrivateRedis(log_dir)
    try:
        return [measure_one(redis, h, b, channels) for h in sizes for b in message_bytes]
    finally:
        redis.stop()


def render(rows: list[dict[str, Any]]) -> str:
    """The table: MEMORY USAGE is Redis' estimate for one key; the used_memory delta is what the
    allocator handed out for all keys of a channel (stream, persisted copy, their dict entries)."""
    out = [
        "| history size H | message B (bytes) | entries kept | stream key, MEMORY USAGE (bytes) | "
        "persisted copy, MEMORY USAGE (bytes) | used_memory delta per channel (bytes) | "
        "delta / H (bytes) | Redis time per publish: EVAL / its XADD (us) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_channel = row["used_memory_per_channel"]
        out.append(
            f"| {row['history_size']:,} | {row['message_bytes']:,} | {row['entries']:,} | "
            f"{row['stream_bytes']:,} | {row['persisted_bytes']:,} | {per_channel:,.0f} | "
            f"{per_channel / row['history_size']:,.0f} | "
            f"{row['eval_us_per_call']:.1f} / {row['xadd_us_per_call']:.1f} |"
        )
    return "\n".join(out)
