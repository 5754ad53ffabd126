"""Messages per second a Redis Cluster carries with classic against sharded pub/sub, side by side.

``python -m bench cluster-rate`` starts its own cluster of masters (``tests/redis_topologies.py``'s
``ClusterSetup``, shared with the tests; no replicas), then runs, interleaved, the same load with
PUBLISH/SUBSCRIBE ("classic") and SPUBLISH/SSUBSCRIBE ("sharded"):

* a sink process holds the subscriber connections of S broker processes, each subscribed to all
  C channels, as ws4redis_tornado's broker holds them: classic, one connection per process, on
  node ``i % masters``; sharded, one per master, each holding the channels of that master's slots;
* P publisher processes, each with one connection per master, pipelining as fast as replies come
  back, round robin over the channels: classic sends channel k to node ``k % masters`` (any node
  would do), sharded sends each channel to the master owning its slot;
* over one window after a warm-up: published messages (replies counted by the publishers),
  delivered messages (counted by the sink), and each redis-server's utime+stime from /proc.

On a 2-core machine the absolute rates are bounded by the machine (the nodes, the publishers and the
sink share two cores). The Redis CPU per published message summed over the nodes is the figure that
says how each scales: in classic pub/sub every node handles every message (the cluster bus carries
each PUBLISH to all of them); in sharded pub/sub only the owner of the channel's slot does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from redis.crc import key_slot

from bench import procstat
from bench.stats import median
from tests.redis_topologies import ClusterSetup, cluster_info

MODES = ("classic", "sharded")
PAYLOAD = b"x" * 100
# Subscribers that fall behind must not be cut off mid-measurement.
NODE_SETTINGS = ("client-output-buffer-limit pubsub 0 0 0", "maxclients 20000", "save ''", "appendonly no")
WARMUP = 1.0
DELIVERY_MARK = b"essage\r\n"  # ends the "message" and "smessage" push kinds, once per delivery
CONFIRM_MARK = b"subscribe\r\n"  # ends "subscribe" and "ssubscribe", once per channel confirmed

Address = tuple[str, int]


def channel_names(count: int) -> list[str]:
    return [f"bench:cluster:{i}" for i in range(count)]


def owners(cluster: ClusterSetup, channels: Sequence[str]) -> dict[str, Address]:
    """The master owning each channel's slot, from one CLUSTER SLOTS."""
    ranges = cluster.nodes[0].command("CLUSTER", "SLOTS")
    found = {}
    for channel in channels:
        slot = key_slot(channel.encode())
        master = next(m for start, end, m, *_ in ranges if start <= slot <= end)
        found[channel] = (str(master[0]), int(master[1]))
    return found


def subscriptions(
    mode: str, process: int, nodes: Sequence[Address], owner: dict[str, Address]
) -> dict[Address, list[str]]:
    """The connections of one broker process: node -> the channels it subscribes there."""
    if mode == "classic":
        return {nodes[process % len(nodes)]: list(owner)}
    by_node: dict[Address, list[str]] = {}
    for channel, node in owner.items():
        by_node.setdefault(node, []).append(channel)
    return by_node


def routes(mode: str, nodes: Sequence[Address], owner: dict[str, Address]) -> dict[Address, list[str]]:
    """Where a publisher sends each channel's messages: node -> its channels, in channel order."""
    by_node: dict[Address, list[str]] = {node: [] for node in nodes}
    for k, (channel, node) in enumerate(owner.items()):
        by_node[node if mode == "sharded" else nodes[k % len(nodes)]].append(channel)
    return {node: channels for node, channels in by_node.items() if channels}


def _command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)


# -- the worker processes ---------------------------------------------------------------------------


async def _sink(spec: dict[str, Any]) -> dict[str, Any]:
    """Subscribe as ``spec`` says, say ready, then count deliveries inside the window."""
    verb = b"SSUBSCRIBE" if spec["mode"] == "sharded" else b"SUBSCRIBE"
    readers = []
    for connections in spec["processes"]:
        for (host, port), channels in connections:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"".join(_command(verb, channel.encode()) for channel in channels))
            readers.append((reader, writer, len(channels)))
    leftovers = [await _confirmed(reader, expected) for reader, _, expected in readers]
    print("ready", flush=True)
    cpu = time.process_time()
    counts = await asyncio.gather(
        *(
            _count(reader, leftover, spec["start"], spec["end"])
            for (reader, _, _), leftover in zip(readers, leftovers, strict=True)
        )
    )
    return {"delivered": sum(counts), "cpu_s": time.process_time() - cpu, "connections": len(readers)}


async def _confirmed(reader: asyncio.StreamReader, expected: int) -> bytes:
    """Read until ``expected`` subscriptions are confirmed; return what was read after them."""
    seen, buffer = 0, b""
    while seen < expected:
        buffer += await reader.read(1 << 16)
        seen = buffer.count(CONFIRM_MARK)
    return buffer[buffer.rindex(CONFIRM_MARK) + len(CONFIRM_MARK) :]


async def _count(reader: asyncio.StreamReader, first: bytes, start: float, end: float) -> int:
    counted, tail = 0, first
    while (now := time.time()) < end:
        try:
            data = await asyncio.wait_for(reader.read(1 << 18), end - now)
        except TimeoutError:
            break
        buffer = tail + data
        if now >= start:
            counted += buffer.count(DELIVERY_MARK)
        tail = buffer[-(len(DELIVERY_MARK) - 1) :]
    return counted


async def _publish(spec: dict[str, Any]) -> dict[str, Any]:
    """Publish round robin over each node's channels, ``pipeline`` commands at a time, until the window ends."""
    verb = b"SPUBLISH" if spec["mode"] == "sharded" else b"PUBLISH"
    counts = await asyncio.gather(
        *(_publish_to(tuple(node), channels, verb, spec) for node, channels in spec["routes"])
    )
    return {"published": sum(counts)}


async def _publish_to(node: Address, channels: list[str], verb: bytes, spec: dict[str, Any]) -> int:
    reader, writer = await asyncio.open_connection(*node)
    depth = spec["pipeline"]
    commands = [_command(verb, channel.encode(), PAYLOAD) for channel in channels]
    # Batches that go round the channels: batch i starts where batch i-1 ended.
    batches = [b"".join(commands[(i * depth + j) % len(commands)] for j in range(depth)) for i in range(len(commands))]
    published, i = 0, 0
    while (now := time.time()) < spec["end"]:
        writer.write(batches[i % len(batches)])
        i += 1
        replies = 0
        while replies < depth:
            replies += (await reader.readuntil(b"\r\n")).startswith(b":")
        if now >= spec["start"]:
            published += depth
    writer.close()
    return published


def _worker_main(role: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    result = asyncio.run(_sink(spec) if role == "sink" else _publish(spec))
    print(json.dumps(result), flush=True)


# -- the harness ------------------------------------------------------------------------------------


def _worker(role: str, spec: dict[str, Any], log: Path) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bench.cluster_rate", role, json.dumps(spec)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log.open("a"), text=True)


def _result(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if process.returncode or not lines:
        raise RuntimeError(f"worker exited with {process.returncode} and no result (see the log)")
    return json.loads(lines[-1])


def _busy() -> float:
    """Busy seconds of every CPU this process may use: the whole machine's load, ours and others'."""
    return sum(procstat.cpu_busy_seconds(cpu) for cpu in sorted(os.sched_getaffinity(0)))


def window(cluster: ClusterSetup, mode: str, plan: dict[str, Any], log: Path) -> dict[str, Any]:
    """Start the sink, wait until it subscribed, start the publishers, measure one window."""
    nodes = list(cluster.addresses)
    owner = owners(cluster, channel_names(plan["channels"]))
    processes = [list(subscriptions(mode, i, nodes, owner).items()) for i in range(plan["subscribers"])]
    # The window is fixed in wall-clock time before anything starts: every process counts inside it.
    setup_allowance = 3.0
    start = time.time() + setup_allowance + WARMUP
    end = start + plan["seconds"]
    sink = _worker("sink", {"mode": mode, "processes": processes, "start": start, "end": end}, log)
    publishers: list[subprocess.Popen[str]] = []
    try:
        assert sink.stdout is not None
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the sink did not subscribe (see the log)")
        if time.time() > start - WARMUP:
            raise RuntimeError("the sink took longer to subscribe than the window allows")
        spec = {"mode": mode, "routes": list(routes(mode, nodes, owner).items()), "pipeline": plan["pipeline"]}
        # Publishers start WARMUP before the window: the window sees a steady state.
        time.sleep(max(0.0, start - WARMUP - time.time()))
        publishers = [_worker("publish", {**spec, "start": start, "end": end}, log) for _ in range(plan["publishers"])]
        time.sleep(max(0.0, start - time.time()))
        cpu0, busy0 = _node_cpu(cluster), _busy()
        time.sleep(max(0.0, end - time.time()))
        cpu1, busy1 = _node_cpu(cluster), _busy()
        published = sum(_result(p, 60)["published"] for p in publishers)
        delivered = _result(sink, 60)
    finally:
        for process in [sink, *publishers]:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = plan["seconds"]
    node_cpu = [after - before for before, after in zip(cpu0, cpu1, strict=True)]
    return {
        "mode": mode,
        "published_per_s": published / seconds,
        "delivered_per_s": delivered["delivered"] / seconds,
        "deliveries_per_message": delivered["delivered"] / published if published else None,
        "redis_cpu_us_per_message": sum(node_cpu) / published * 1e6 if published else None,
        "node_cpu_pct": [100 * cpu / seconds for cpu in node_cpu],
        "node_cpu_us_per_message": [cpu / published * 1e6 for cpu in node_cpu] if published else [],
        "sink_cpu_pct": 100 * delivered["cpu_s"] / seconds,
        "subscriber_connections": delivered["connections"],
        "machine_busy_pct": 100 * (busy1 - busy0) / seconds,
    }


def _node_cpu(cluster: ClusterSetup) -> list[float]:
    return [procstat.cpu_seconds(node.process.pid) for node in cluster.nodes]


def measure(plan: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """Start a cluster, run ``plan["repeats"]`` interleaved windows of each mode, stop the cluster."""
    cluster = ClusterSetup(masters=plan["masters"], settings=NODE_SETTINGS)
    cluster.start()
    try:
        assert all(cluster_info(node)["cluster_state"] == "ok" for node in cluster.nodes)
        version = cluster.nodes[0].command("INFO", "server")["redis_version"]
        runs = []
        for repeat in range(plan["repeats"]):
            for mode in MODES:
                runs.append(window(cluster, mode, plan, log_dir / "cluster-rate.log"))
                print(f"[done] {mode} repeat {repeat + 1}: {_line(runs[-1])}", flush=True)
    finally:
        cluster.stop()
    return {"plan": plan, "redis_version": version, "runs": runs}


def _line(run: dict[str, Any]) -> str:
    return (
        f"{run['published_per_s']:,.0f} published/s, {run['delivered_per_s']:,.0f} delivered/s,"
        f" {run['redis_cpu_us_per_message']:.1f} us Redis CPU per message, machine {run['machine_busy_pct']:.0f}% busy"
    )


def _by_mode(runs: list[dict[str, Any]], key: str) -> Iterator[tuple[str, float]]:
    for mode in MODES:
        yield mode, median([run[key] for run in runs if run["mode"] == mode])


def render(results: dict[str, Any]) -> str:
    """Side by side: the medians of each mode's windows, then every window."""
    runs, plan = results["runs"], results["plan"]
    head = (
        f"Redis {results['redis_version']}, {plan['masters']} masters, {plan['channels']} channels,"
        f" {plan['subscribers']} subscribing processes, {plan['publishers']} publishers pipelining"
        f" {plan['pipeline']}, {plan['seconds']} s windows, {plan['repeats']} interleaved repeats (medians)"
    )
    keys = [
        ("published messages/s", "published_per_s", "{:,.0f}"),
        ("delivered messages/s", "delivered_per_s", "{:,.0f}"),
        ("deliveries per published message", "deliveries_per_message", "{:.2f}"),
        ("Redis CPU per published message, summed over the nodes (us)", "redis_cpu_us_per_message", "{:.2f}"),
        ("sink CPU (%)", "sink_cpu_pct", "{:.0f}"),
        ("machine busy, both cores (%)", "machine_busy_pct", "{:.0f}"),
    ]
    out = [head, "", "| | classic | sharded |", "|---|---|---|"]
    for label, key, fmt in keys:
        values = dict(_by_mode(runs, key))
        out.append(f"| {label} | {fmt.format(values['classic'])} | {fmt.format(values['sharded'])} |")
    out += [
        "",
        "| window | mode | published/s | delivered/s | Redis CPU/msg (us) | per-node CPU % | per-node CPU/msg (us) |",
    ]
    out.append("|---|---|---|---|---|---|---|")
    for i, run in enumerate(runs, start=1):
        nodes_pct = " / ".join(f"{pct:.0f}" for pct in run["node_cpu_pct"])
        nodes_us = " / ".join(f"{us:.2f}" for us in run["node_cpu_us_per_message"])
        out.append(
            f"| {i} | {run['mode']} | {run['published_per_s']:,.0f} | {run['delivered_per_s']:,.0f} |"
            f" {run['redis_cpu_us_per_message']:.2f} | {nodes_pct} | {nodes_us} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    _worker_main(sys.argv[1], sys.argv[2])
