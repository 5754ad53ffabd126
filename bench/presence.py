"""``python -m bench presence``: what keeping presence costs one server process and Redis.

Presence is upkeep, not traffic: every ``presence_interval`` seconds each process rewrites its
entry of every channel it has sockets on (one script per channel), whether anything changed or
not. So the figures are taken on idle sockets, twice, on fresh servers that differ only in
``--presence``:

- *CPU*: the server (``bench/targets/presence_server.py``, pinned to CPU 0, named users in rooms)
  holds ``sockets`` sockets, ``sockets / channels`` distinct users per channel; its utime+stime
  over a window of whole refresh intervals, with presence on minus with it off, is what
  presence costs. Redis' ``cmdstat_eval`` and ``cmdstat_evalsha`` count the refreshes in the window, so the cost is
  also given per refresh, which does not depend on where the window's edges fall.
- *Stall*: a probe socket pings every ``probe_every`` seconds and times the pongs: the longest
  wait is how long a refresh holds the event loop, which every socket of the process feels.
- *Redis memory*: with the server stopped (SIGSTOP, so no refresh runs meanwhile), the presence
  keys are deleted and ``used_memory`` before minus after, divided by the users present, is the
  memory per present user; ``MEMORY USAGE`` of the keys cross-checks it. The same entries are
  also written straight with the server's script for a few other shapes (many users per channel
  switches the hash from a listpack to a hashtable), with no server at all.

The harness, its sockets (asyncio, bench/client.py's raw protocol) and Redis share CPU 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import socket as socket_module
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import redis

from bench import procs, procstat
from bench.client import Subscriber
from bench.procs import LOAD_CPU, SERVER_CPU, Managed, free_port, wait_port
from bench.redis_server import PrivateRedis
from bench.registry import REPO
from bench.stats import percentile
from ws4redis_tornado.channels import Audience, channel_key
from ws4redis_tornado.presence import EXPIRY_INTERVALS
from ws4redis_tornado.redis_commands import presence_refresh_command, read_presence

FACILITY = "chat"
SERVER = REPO / "bench" / "targets" / "presence_server.py"
PRESENCE_KEYS = "*group:room*:ws4redis-presence*"  # the rooms' keys, not the probe's
QUIET_PCT = 15.0  # wait for the server's core to be this idle before a window starts


@dataclass(frozen=True)
class PresencePlan:
    """The shape measured and the windows; ``quick()`` shrinks everything for a smoke run."""

    sockets: int = 10_000
    channels: int = 1_000
    interval: float = 10.0  # the default WS4REDIS_PRESENCE_INTERVAL
    cpu_intervals: int = 5
    stall_intervals: int = 2
    probe_every: float = 0.01
    settle: float = 1.0
    inflight: int = 32
    # (channels, users per channel) written straight with the refresh script, no server.
    scripted_shapes: tuple[tuple[int, int], ...] = ((1000, 10), (100, 100), (10, 1000))

    @classmethod
    def quick(cls) -> PresencePlan:
        return cls(sockets=1000, channels=100, interval=1.0, cpu_intervals=3, stall_intervals=1, settle=0.5)

    def room(self, socket: int) -> str:
        return f"room{socket % self.channels:04d}"

    def path(self, socket: int) -> str:
        return f"/ws/{FACILITY}?subscribe-group&as=user{socket:05d}&room={self.room(socket)}"

    def channel_keys(self) -> list[str]:
        return [channel_key(Audience.GROUP, FACILITY, f"room{c:04d}") for c in range(self.channels)]


# -- sockets -----------------------------------------------------------------------------------------


class _Sink:
    """What bench/client.py's Subscriber hands frames to; nothing is published here, so it only counts."""

    frames = 0

    def deliver(self, payload: bytes, now: int) -> None:
        self.frames += 1


def _upgrade(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:%d\r\n\r\n"
    ) % (path.encode(), port, key, port)


async def connect(plan: PresencePlan, port: int, sink: _Sink) -> tuple[list[Subscriber], dict[str, Any]]:
    """Open ``plan.sockets`` sockets, ``plan.inflight`` handshakes at a time."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(plan.inflight)
    opened: list[Subscriber] = []
    failures: list[str] = []

    async def one(i: int) -> None:
        async with slots:
            try:
                request = _upgrade(plan.path(i), port)
                _, proto = await loop.create_connection(lambda: Subscriber(sink, request), "127.0.0.1", port)  # type: ignore[arg-type]
                await asyncio.wait_for(proto.handshake, 30)
            except (TimeoutError, OSError) as exc:
                failures.append(repr(exc))
                return
            opened.append(proto)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(plan.sockets)))
    summary = {"connected": len(opened), "failed": len(failures), "failures_sample": failures[:3]}
    return opened, {**summary, "handshake_s": time.perf_counter() - started}


class Probe(asyncio.Protocol):
    """One more socket that pings and times each pong: how long the server's loop kept it waiting."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waits_ms: list[float] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]
        self._acknowledge_at_once()

    def _acknowledge_at_once(self) -> None:
        # The server's sockets keep Nagle's algorithm: a pong written while the last one is
        # unacknowledged waits for this side's next packet, and delayed acknowledgements would then
        # add one ping period to every later pong (tests/core/test_tcp_nodelay.py). Acknowledging at
        # once (Linux resets the flag after each read) keeps the waits to what the loop holds.
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is not None and hasattr(socket_module, "TCP_QUICKACK"):
            sock.setsockopt(socket_module.IPPROTO_TCP, socket_module.TCP_QUICKACK, 1)

    def ping(self) -> None:
        # Masked with an all-zero key: the payload goes as it is.
        assert self.transport is not None
        self.transport.write(b"\x89\x88\0\0\0\0" + struct.pack("!Q", time.monotonic_ns()))

    def data_received(self, data: bytes) -> None:
        data = self.buf + data
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            if b" 101 " not in data[: data.find(b"\r\n")]:
                self.handshake.set_exception(ConnectionError(data[:80].decode("latin-1")))
                return
            self.upgraded = True
            self.handshake.set_result(None)
            data = data[end + 4 :]
        now = time.monotonic_ns()
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F):  # server frames here are short
            size = data[1] & 0x7F
            if data[0] & 0x0F == 0x0A and size == 8:
                self.waits_ms.append((now - struct.unpack("!Q", data[2:10])[0]) / 1e6)
            data = data[2 + size :]
        self.buf = data
        self._acknowledge_at_once()


async def probe(port: int, seconds: float, every: float) -> dict[str, Any]:
    """Ping for ``seconds``, one ping every ``every`` seconds; the pong waits in ms."""
    loop = asyncio.get_running_loop()
    path = f"/ws/{FACILITY}?subscribe-group&as=probe&room=probe"
    transport, proto = await loop.create_connection(lambda: Probe(_upgrade(path, port)), "127.0.0.1", port)
    try:
        await asyncio.wait_for(proto.handshake, 30)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proto.ping()
            await asyncio.sleep(every)
        await asyncio.sleep(0.2)
    finally:
        transport.abort()
    waits = proto.waits_ms
    return {
        "pongs": len(waits),
        "p50_ms": percentile(waits, 50),
        "p99_ms": percentile(waits, 99),
        "max_ms": max(waits) if waits else None,
    }


# -- one server --------------------------------------------------------------------------------------


def _counters(store: PrivateRedis, pid: int) -> dict[str, float]:
    commands = store.conn.info("commandstats")
    return {
        "t": time.monotonic(),
        "server_cpu": procstat.cpu_seconds(pid),
        "redis_cpu": procstat.cpu_seconds(store.server.pid),
        "cpu0_busy": procstat.cpu_busy_seconds(SERVER_CPU),
        "evals": sum(commands.get(name, {}).get("calls", 0) for name in ("cmdstat_eval", "cmdstat_evalsha")),
        "redis_in": store.conn.info("stats")["total_net_input_bytes"],
    }


def _window(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    seconds = after["t"] - before["t"]
    server = after["server_cpu"] - before["server_cpu"]
    foreign = max(0.0, after["cpu0_busy"] - before["cpu0_busy"] - server)
    return {
        "seconds": seconds,
        "server_cpu_s": server,
        "redis_cpu_s": after["redis_cpu"] - before["redis_cpu"],
        "evals": after["evals"] - before["evals"],
        "redis_in_bytes": after["redis_in"] - before["redis_in"],
        "foreign_cpu0_pct": foreign * 100 / seconds,
    }


def _present_users(store: PrivateRedis, plan: PresencePlan) -> int:
    return sum(len(counts) for counts in read_presence(store.conn, plan.channel_keys()))


async def _wait_present(store: PrivateRedis, plan: PresencePlan, expected: int, timeout: float) -> int:
    """Poll until Redis holds ``expected`` users on the plan's channels (or time runs out); return how many."""
    deadline = time.monotonic() + timeout
    while True:
        users = _present_users(store, plan)
        if users == expected or time.monotonic() > deadline:
            return users
        await asyncio.sleep(0.2)


@contextlib.contextmanager
def _server(store: PrivateRedis, log_dir: Path, interval: float, *, presence: bool) -> Iterator[tuple[Managed, int]]:
    """``presence_server.py`` on CPU 0 and a free port, with or without presence; stopped on leaving."""
    port = free_port()
    argv = [sys.executable, str(SERVER), "--port", str(port), "--redis", store.url]
    argv += ["--presence-interval", str(interval)]
    argv += ["--presence", FACILITY] if presence else []
    server = Managed(argv, SERVER_CPU, cwd=REPO, log=log_dir / f"presence-server-{'on' if presence else 'off'}.log")
    try:
        wait_port(port, server.proc, 30)
        yield server, port
    finally:
        server.stop()


async def measure_server(plan: PresencePlan, store: PrivateRedis, log_dir: Path, *, presence: bool) -> dict[str, Any]:
    """One fresh server with ``plan.sockets`` idle sockets: CPU over a window, pong waits, and Redis memory."""
    store.flush()
    store.conn.config_resetstat()
    with _server(store, log_dir, plan.interval, presence=presence) as (server, port):
        rss0 = procstat.rss_bytes(server.pid)
        sockets, conn = await connect(plan, port, _Sink())
        record: dict[str, Any] = {"presence": presence, "connect": conn}
        try:
            expected = conn["connected"] if presence else 0
            record["present_users"] = await _wait_present(store, plan, expected, timeout=30)
            await asyncio.sleep(plan.settle)
            record["rss_per_socket"] = (procstat.rss_bytes(server.pid) - rss0) / max(conn["connected"], 1)
            record["cpu0_busy_before_pct"] = procs.wait_quiet(SERVER_CPU, QUIET_PCT, timeout=10)
            before = _counters(store, server.pid)
            await asyncio.sleep(plan.interval * plan.cpu_intervals)
            record["cpu"] = _window(before, _counters(store, server.pid))
            record["stall"] = await probe(port, plan.interval * plan.stall_intervals, plan.probe_every)
            if presence:
                record["memory"] = _memory_of_presence(store, server, users=record["present_users"])
        finally:
            for sock in sockets:
                if sock.transport is not None:
                    sock.transport.abort()
    return record


def _memory_of_presence(store: PrivateRedis, server: Managed, *, users: int) -> dict[str, Any]:
    """Redis memory the presence keys take, with the server paused so that no refresh runs meanwhile."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        measured = _delete_and_measure(store.conn)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    return {**measured, "users": users, "bytes_per_user": measured["used_memory_delta"] / max(users, 1)}


def _delete_and_measure(conn: redis.Redis) -> dict[str, Any]:
    """Delete every presence key; ``used_memory`` before minus after, and what ``MEMORY USAGE`` said."""
    keys = list(conn.scan_iter(match=PRESENCE_KEYS, count=1000))
    pipe = conn.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    usage = sum(pipe.execute())
    before = conn.info("memory")["used_memory"]
    for start in range(0, len(keys), 1000):
        conn.delete(*keys[start : start + 1000])
    after = conn.info("memory")["used_memory"]
    return {"keys": len(keys), "used_memory_delta": before - after, "memory_usage_sum": usage}


def scripted_memory(store: PrivateRedis, plan: PresencePlan) -> list[dict[str, Any]]:
    """Write one process's entries with the server's own refresh script, for each shape; memory per user."""
    rows = []
    expiry_ms = int(plan.interval * EXPIRY_INTERVALS * 1000)
    process = "bench-host:12345:0123abcd"  # as long as a real one: <hostname>:<pid>:<8 hex digits>
    for channels, per_channel in plan.scripted_shapes:
        store.flush()
        pipe = store.conn.pipeline(transaction=False)
        for c in range(channels):
            users = {f"user{c * per_channel + u:05d}": 1 for u in range(per_channel)}
            key = channel_key(Audience.GROUP, FACILITY, f"room{c:04d}")
            pipe.execute_command(*presence_refresh_command(key, process, users, expiry_ms=expiry_ms))
        pipe.execute()
        measured = _delete_and_measure(store.conn)
        users = channels * per_channel
        rows.append(
            {
                "channels": channels,
                "users_per_channel": per_channel,
                **measured,
                "bytes_per_user": measured["used_memory_delta"] / users,
            }
        )
    return rows


# -- the command -------------------------------------------------------------------------------------


def run(plan: PresencePlan, log_dir: Path) -> dict[str, Any]:
    store = PrivateRedis(log_dir)
    try:
        off = _run_async(measure_server(plan, store, log_dir, presence=False))
        on = _run_async(measure_server(plan, store, log_dir, presence=True))
        scripted = scripted_memory(store, plan)
    finally:
        store.stop()
    return {
        "plan": asdict(plan),
        "off": off,
        "on": on,
        "scripted_memory": scripted,
        "summary": summarize(plan, on, off),
    }


def _run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def summarize(plan: PresencePlan, on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """The figures of the README: CPU attributable to presence, per refresh and per second; memory per user."""
    won, woff = on["cpu"], off["cpu"]
    refreshes = won["evals"] / plan.channels
    extra_cpu_s = won["server_cpu_s"] - woff["server_cpu_s"] * won["seconds"] / woff["seconds"]
    per_refresh = extra_cpu_s / refreshes if refreshes else None
    redis_extra = won["redis_cpu_s"] - woff["redis_cpu_s"] * won["seconds"] / woff["seconds"]
    return {
        "refreshes_in_window": refreshes,
        "server_cpu_pct_on": won["server_cpu_s"] * 100 / won["seconds"],
        "server_cpu_pct_off": woff["server_cpu_s"] * 100 / woff["seconds"],
        "presence_cpu_pct": extra_cpu_s * 100 / won["seconds"],
        "server_ms_per_refresh": None if per_refresh is None else per_refresh * 1000,
        "presence_cpu_pct_at_interval": None if per_refresh is None else per_refresh * 100 / plan.interval,
        "redis_ms_per_refresh": redis_extra * 1000 / refreshes if refreshes else None,
        "redis_in_bytes_per_refresh": won["redis_in_bytes"] / refreshes if refreshes else None,
        "stall_max_ms_on": on["stall"]["max_ms"],
        "stall_max_ms_off": off["stall"]["max_ms"],
        "rss_per_socket_on": on["rss_per_socket"],
        "rss_per_socket_off": off["rss_per_socket"],
        "redis_bytes_per_user": on.get("memory", {}).get("bytes_per_user"),
    }


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _waits(stall: dict[str, Any]) -> str:
    return " / ".join(_num(stall.get(k), 1) for k in ("p50_ms", "p99_ms", "max_ms")) + " ms"


def render(results: dict[str, Any]) -> str:
    """The tables and the lines the README quotes."""
    plan, s, on, off = results["plan"], results["summary"], results["on"], results["off"]
    rows = [
        ("sockets open", f"{off['connect']['connected']:,}", f"{on['connect']['connected']:,}"),
        ("users present in Redis", f"{off['present_users']:,}", f"{on['present_users']:,}"),
        ("window", f"{_num(off['cpu']['seconds'], 1)} s", f"{_num(on['cpu']['seconds'], 1)} s"),
        ("refreshes in the window", "-", _num(s["refreshes_in_window"], 1)),
        ("server CPU, % of one core", _num(s["server_cpu_pct_off"], 3), _num(s["server_cpu_pct_on"], 3)),
        ("other load on CPU 0, %", _num(off["cpu"]["foreign_cpu0_pct"], 1), _num(on["cpu"]["foreign_cpu0_pct"], 1)),
        ("Redis CPU in the window", f"{_num(off['cpu']['redis_cpu_s'])} s", f"{_num(on['cpu']['redis_cpu_s'])} s"),
        ("pong wait p50 / p99 / max", _waits(off["stall"]), _waits(on["stall"])),
        (
            "server RSS per socket",
            f"{_num(s['rss_per_socket_off'] / 1024)} KiB",
            f"{_num(s['rss_per_socket_on'] / 1024)} KiB",
        ),
    ]
    shape = f"{plan['sockets']:,} sockets on {plan['channels']:,} channels, interval {plan['interval']:g} s"
    lines = [f"### Presence upkeep: {shape}", "", "| | presence off | presence on |", "|---|---|---|"]
    lines += [f"| {label} | {a} | {b} |" for label, a, b in rows]
    lines += [
        "",
        f"- **CPU attributable to presence: {_num(s['presence_cpu_pct'], 3)} % of one core** over the window;"
        f" {_num(s['server_ms_per_refresh'], 1)} ms of server CPU per refresh, i.e."
        f" {_num(s['presence_cpu_pct_at_interval'], 3)} % at one refresh every {plan['interval']:g} s.",
        f"- Redis per refresh: {_num(s['redis_ms_per_refresh'], 1)} ms CPU,"
        f" {_num((s['redis_in_bytes_per_refresh'] or 0) / 1024, 0)} KiB received.",
    ]
    memory = on.get("memory")
    if memory:
        per_user = memory["memory_usage_sum"] / max(memory["users"], 1)
        lines.append(
            f"- Redis memory, real server: {memory['keys']:,} keys, used_memory -{memory['used_memory_delta']:,} B"
            f" for {memory['users']:,} users: **{_num(memory['bytes_per_user'], 1)} B per present user**"
            f" (MEMORY USAGE of the keys: {_num(per_user, 1)} B per user)."
        )
    lines += ["", "| written by the refresh script | keys | used_memory delta | per user |", "|---|---|---|---|"]
    for row in results["scripted_memory"]:
        lines.append(
            f"| {row['channels']:,} channels x {row['users_per_channel']:,} users | {row['keys']:,}"
            f" | {row['used_memory_delta']:,} B | {_num(row['bytes_per_user'], 1)} B |"
        )
    return "\n".join(lines)


def cmd_presence(args: argparse.Namespace) -> None:
    """``python -m bench presence``: run, print the tables, save the raw records in bench/results."""
    signal.signal(signal.SIGTERM, _terminate)
    procs.raise_nofile()
    procs.pin_self(LOAD_CPU)
    plan = PresencePlan.quick() if args.quick else PresencePlan()
    chosen = {"sockets": args.sockets, "channels": args.channels, "interval": args.interval}
    chosen["cpu_intervals"] = args.cpu_intervals
    plan = replace(plan, **{k: v for k, v in chosen.items() if v is not None})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = REPO / "bench" / "results"
    log_dir = results_dir / f"logs-{stamp}"
    log_dir.mkdir(parents=True)
    print(
        f"[plan] {plan.sockets} sockets, {plan.channels} channels, interval {plan.interval}s, logs={log_dir}",
        flush=True,
    )
    started = time.monotonic()
    results = run(plan, log_dir)
    results.update(command=" ".join(sys.argv), started=stamp, took_s=time.monotonic() - started, project=_head())
    out = results_dir / f"presence-{stamp}.json"
    out.write_text(json.dumps(results, indent=1))
    report = render(results)
    out.with_suffix(".md").write_text(report + "\n")
    print(report)
    print(f"\nws4redis_tornado at {results['project']['head']}{' (edited)' if results['project']['dirty'] else ''}")
    print(f"took {results['took_s']:.0f} s; raw results: {out}")


def _head() -> dict[str, Any]:
    """Which ws4redis_tornado was measured: the working tree at this commit, and whether it had edits."""

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    dirty = bool(git("status", "--porcelain", "ws4redis_tornado"))
    return {"head": git("rev-parse", "--short", "HEAD"), "dirty": dirty}


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
