"""Nothing published is lost, duplicated or reordered, with thousands of sockets over two server processes."""

from __future__ import annotations

import asyncio
import json
import resource
import time
import urllib.request

import pytest
import redis.asyncio as aredis

from ..processes import ServerProcess
from ..rawws import RawClient, open_raw
from ..utils import MS, wait_until, within

pytestmark = pytest.mark.timeout(120)

SOCKETS = 2000  # split evenly over the two processes and the facilities
FACILITIES = ("alpha", "beta", "gamma", "delta")
MESSAGES = 200  # per facility
END = b"end"


def raise_open_files_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE to ``needed`` (within the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        pytest.skip(f"{needed} open files needed, the hard limit allows {soft}")


def open_sockets(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return json.load(response)["sockets"]


async def connect_all(servers: list[ServerProcess]) -> tuple[list[RawClient], list[list[bytes]], list[str]]:
    """Open SOCKETS sockets, alternating servers and, per pair, facilities; at most 100 handshakes at once."""
    inboxes: list[list[bytes]] = [[] for _ in range(SOCKETS)]
    facilities = [FACILITIES[(i // len(servers)) % len(FACILITIES)] for i in range(SOCKETS)]
    slots = asyncio.Semaphore(100)

    async def connect(i: int) -> RawClient:
        port = servers[i % len(servers)].port
        async with slots:
            return await open_raw(
                "127.0.0.1", port, f"/ws/{facilities[i]}?subscribe-broadcast", lambda _, m: inboxes[i].append(m)
            )

    clients = await within(asyncio.gather(*(connect(i) for i in range(SOCKETS))), 60_000 * MS)
    return list(clients), inboxes, facilities


async def publish_interleaved(redis_url: str, prefix: str, receivers: int) -> None:
    """Publish MESSAGES numbered messages per facility, round robin, then an end marker for each."""
    client = aredis.Redis.from_url(redis_url)
    try:
        for first in range(0, MESSAGES, 25):
            pipe = client.pipeline(transaction=False)
            batch = [(facility, seq) for seq in range(first, min(first + 25, MESSAGES)) for facility in FACILITIES]
            for facility, seq in batch:
                pipe.publish(f"{prefix}:broadcast:{facility}", f"{facility}:{seq}")
            # Each message reached both processes: one pub/sub subscriber per process and channel.
            assert await pipe.execute() == [receivers] * len(batch)
        for facility in FACILITIES:
            assert await client.publish(f"{prefix}:broadcast:{facility}", END) == receivers
    finally:
        await client.aclose()


async def run_scenario(servers: list[ServerProcess], redis_url: str, prefix: str) -> dict:
    started = time.monotonic()
    clients, inboxes, facilities = await connect_all(servers)
    connected = time.monotonic()
    try:
        counts = await asyncio.gather(*(asyncio.to_thread(open_sockets, s.port) for s in servers))
        await publish_interleaved(redis_url, prefix, len(servers))
        published = time.monotonic()
        # Everything published before the end marker has arrived once the marker has.
        await wait_until(lambda: all(inbox and inbox[-1] == END for inbox in inboxes), 60_000 * MS, step=50 * MS)
        delivered = time.monotonic()
    finally:
        for client in clients:
            client.abort()
    return {
        "inboxes": inboxes,
        "facilities": facilities,
        "counts": counts,
        "closed_by_server": sum(1 for c in clients if c.close_code is not None),
        "connect_seconds": connected - started,
        "publish_seconds": published - connected,
        "deliver_seconds": delivered - connected,
    }


def test_every_socket_receives_its_facility_messages_once_and_in_order(redis_url, prefix, record_property):
    raise_open_files_limit(SOCKETS + 1024)
    with (
        ServerProcess("--health-detail", redis_url=redis_url, prefix=prefix) as first,
        ServerProcess("--health-detail", redis_url=redis_url, prefix=prefix) as second,
    ):
        result = asyncio.run(run_scenario([first, second], redis_url, prefix))
        logs = first.stderr + second.stderr
    assert result["counts"] == [SOCKETS // 2, SOCKETS // 2]
    assert result["closed_by_server"] == 0
    wrong = []
    for i, (inbox, facility) in enumerate(zip(result["inboxes"], result["facilities"], strict=True)):
        expected = [f"{facility}:{seq}".encode() for seq in range(MESSAGES)] + [END]
        if inbox != expected:
            wrong.append((i, facility, len(inbox), inbox[:3]))
    assert not wrong, f"{len(wrong)} sockets got the wrong messages, e.g. {wrong[:5]}"
    assert "Traceback" not in logs
    figures = {
        "sockets": SOCKETS,
        "messages_per_socket": MESSAGES,
        "frames_delivered": SOCKETS * (MESSAGES + 1),
        **{k: round(v, 2) for k, v in result.items() if k.endswith("_seconds")},
    }
    record_property("figures", figures)
    print(f"\n{figures}")
