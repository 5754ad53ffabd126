"""Redis connections of one server process per cluster node, as its channels and the cluster's masters grow.

``python -m bench cluster-connections`` starts a Redis Cluster of 3 (then 6) masters (the tests'
``ClusterSetup``), and on it ``python -m ws4redis_tornado --redis cluster://...``, once with
``--sharded-pubsub`` and once without ("classic"). It opens websockets subscribed to 1, 10, 100
and 1,000 distinct channels (one socket per channel, added up to each count), and after each
step counts, on every node, the CLIENT LIST entries whose port is a local port of the server
process (``redis_server.clients_of``, as the fan-out harness counts them), and which of them are
pub/sub connections (SUBSCRIBE or SSUBSCRIBE).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import redis
import websockets

from bench.procs import SERVER_CPU, Managed, free_port, wait_port
from bench.redis_server import clients_of
from tests.redis_topologies import ClusterSetup

MODES = ("classic", "sharded")


def server_argv(cluster: ClusterSetup, mode: str, port: int) -> list[str]:
    nodes = ",".join(f"{host}:{p}" for host, p in cluster.addresses)
    argv = [sys.executable, "-m", "ws4redis_tornado", "--redis", f"cluster://{nodes}", "--port", str(port)]
    return [*argv, "--prefix", "bench", *(["--sharded-pubsub"] if mode == "sharded" else [])]


def count_connections(cluster: ClusterSetup, pid: int) -> list[dict[str, int]]:
    """Per node: the server's connections, and how many of them are pub/sub."""
    counts = []
    for node in cluster.nodes:
        with redis.Redis(host=node.address[0], port=node.port, decode_responses=True) as conn:
            mine = clients_of(pid, conn, node.port)
        pubsub = sum(1 for c in mine if int(c.get("sub", 0)) or int(c.get("ssub", 0)))
        counts.append({"connections": len(mine), "pubsub": pubsub})
    return counts


async def _open(port: int, first: int, last: int, stack: contextlib.AsyncExitStack) -> None:
    """Open sockets on channels ``first`` to ``last - 1``, a few at a time; each opens once subscribed."""
    for start in range(first, last, 50):
        urls = [f"ws://127.0.0.1:{port}/ws/c{i}?subscribe-broadcast" for i in range(start, min(start + 50, last))]
        sockets = await asyncio.gather(*(websockets.connect(url, open_timeout=30) for url in urls))
        for ws in sockets:
            stack.push_async_callback(ws.close)


async def _steps(cluster: ClusterSetup, server: Managed, port: int, channels: list[int]) -> list[dict[str, Any]]:
    rows = []
    async with contextlib.AsyncExitStack() as stack:
        opened = 0
        for count in channels:
            await _open(port, opened, count, stack)
            opened = count
            await asyncio.sleep(0.5)  # an unsubscribe or a connection closing would show by now
            per_node = count_connections(cluster, server.pid)
            rows.append({"channels": count, "per_node": per_node})
    return rows


def measure(masters: list[int], channels: list[int], log_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for size in masters:
        cluster = ClusterSetup(masters=size, settings=("maxclients 20000",)).start()
        try:
            for mode in MODES:
                port = free_port()
                server = Managed(server_argv(cluster, mode, port), SERVER_CPU, log=log_dir / f"server-{mode}.log")
                try:
                    wait_port(port, server.proc, 30)
                    for step in asyncio.run(_steps(cluster, server, port, channels)):
                        rows.append({"masters": size, "mode": mode, **step})
                        print(f"[done] {size} masters, {mode}, {_summary(rows[-1])}", flush=True)
                finally:
                    server.stop()
        finally:
            cluster.stop()
    return rows


def _summary(row: dict[str, Any]) -> str:
    per_node = " / ".join(f"{n['connections']} ({n['pubsub']})" for n in row["per_node"])
    return f"{row['channels']} channels: {per_node}"


def render(rows: list[dict[str, Any]]) -> str:
    """One row per cluster size, mode and channel count: connections per node (pub/sub among them)."""
    out = [
        "| masters | mode | channels | connections per node (of which pub/sub) | total | pub/sub total |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        per_node = " / ".join(f"{n['connections']} ({n['pubsub']})" for n in row["per_node"])
        total = sum(n["connections"] for n in row["per_node"])
        pubsub = sum(n["pubsub"] for n in row["per_node"])
        out.append(f"| {row['masters']} | {row['mode']} | {row['channels']:,} | {per_node} | {total} | {pubsub} |")
    return "\n".join(out)
