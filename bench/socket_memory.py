"""``python -m bench socket-memory``: what one idle websocket costs a ws4redis_tornado process, and where.

Starts a private Redis and one ``python -m ws4redis_tornado`` process (through
``bench/targets/traced_server.py``, which writes a snapshot on ``SIGUSR1``), opens and closes a few
sockets to warm it up, takes a snapshot, opens N idle sockets subscribed to
``?subscribe-broadcast`` on one facility, and takes another. Per socket it reports:

- Python allocations (tracemalloc, ``-X tracemalloc=25``): the difference of the two snapshots
  divided by N, by who allocated (the innermost frame in ws4redis_tornado or in Tornado), by file
  and by line. tracemalloc counts blocks and bytes as Python asks for them, so the figures do not
  move with the machine's load;
- RSS: the VmRSS difference divided by N, from runs without tracemalloc (its own bookkeeping
  would be counted otherwise). RSS also holds allocator slack and freed-but-kept pages, so it
  moves from run to run: it is taken ``--repeats`` times and shown as median (min-max).

``--baseline-rev`` measures an exported revision too, interleaved, for before/after figures from
one invocation. ``--deflate`` adds sockets that offer permessage-deflate in their upgrade
request; the report says how many the server agreed with.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import linecache
import os
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.procs import LOAD_CPU, SERVER_CPU, Managed, free_port, pin_self, raise_nofile, wait_port
from bench.redis_server import PrivateRedis

REPO = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = REPO / "bench" / "targets" / "traced_server.py"
FACILITY = "bench"
PATH = f"/ws/{FACILITY}?subscribe-broadcast"
TRACE_FRAMES = 25
WARMUP_SOCKETS = 50
IN_FLIGHT = 32
SETTLE_S = 1.0  # after opening or closing sockets, before a snapshot
TOP_LINES = 15
TOP_FILES = 10
OWNERS = ("ws4redis_tornado", "tornado")

OFFER_DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
VARIANTS: dict[str, bytes] = {"plain": b"", "deflate": OFFER_DEFLATE}


@dataclasses.dataclass(frozen=True)
class Source:
    """Which ws4redis_tornado runs: ``path`` is the folder put on PYTHONPATH (it holds the package)."""

    label: str
    path: Path


class IdleSocket(asyncio.Protocol):
    """One websocket that upgrades, then only drops what the server sends."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.head = b""
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.head[:end].decode("latin-1")
        self.head = b""
        if " 101 " not in head.split("\r\n", 1)[0]:
            self.opened.set_exception(ConnectionError(head.split("\r\n", 1)[0]))
        else:
            self.opened.set_result(head)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))


async def open_sockets(n: int, port: int, extra_headers: bytes) -> tuple[list[IdleSocket], int, list[str]]:
    """Open ``n`` sockets, ``IN_FLIGHT`` handshakes at a time.

    Returns the sockets that opened, how many of them agreed to deflate, and why the others did
    not (a server slowed down by tracemalloc on a busy machine may refuse a few): the figures are
    per socket that opened.
    """
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(IN_FLIGHT)
    sockets: list[IdleSocket] = []
    failures: list[str] = []

    async def one() -> None:
        key = base64.b64encode(os.urandom(16))
        request = (
            b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
        ) % (PATH.encode(), port, key, extra_headers)
        async with limit:
            transport, socket = await loop.create_connection(lambda: IdleSocket(request), "127.0.0.1", port)
            try:
                await asyncio.wait_for(socket.opened, 30)
            except (ConnectionError, TimeoutError) as exc:
                transport.close()
                failures.append(str(exc))
                return
            sockets.append(socket)

    await asyncio.gather(*(one() for _ in range(n)))
    agreed = sum("permessage-deflate" in s.opened.result().lower() for s in sockets)
    return sockets, agreed, failures


def close_sockets(sockets: list[IdleSocket]) -> None:
    for socket in sockets:
        if socket.transport is not None:
            socket.transport.abort()


class Server:
    """One ws4redis_tornado process that writes a snapshot when asked (``traced_server.py``)."""

    def __init__(self, source: Source, *, traced: bool, redis_url: str, log: Path) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-socket-memory-"))
        self.taken = 0
        tracing = ["-X", f"tracemalloc={TRACE_FRAMES}"] if traced else []
        argv = [
            sys.executable, "-P", *tracing, str(SERVER_SCRIPT), str(self.dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--redis", redis_url, "--log-level", "WARNING",
        ]  # fmt: skip
        # -P and PYTHONPATH: the source's package runs, not the one installed in the venv.
        self.process = Managed(argv, SERVER_CPU, env={"PYTHONPATH": str(source.path)}, log=log)
        wait_port(self.port, self.process.proc, 30)

    async def snapshot(self) -> tuple[dict[str, Any], Path]:
        """Ask for a snapshot and wait for it; return its record and the tracemalloc file's path."""
        self.taken += 1
        record = self.dir / f"snapshot-{self.taken}.json"
        os.kill(self.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not record.exists():
            if self.process.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no snapshot from the server (exit code {self.process.proc.poll()})")
            await asyncio.sleep(0.05)
        return json.loads(record.read_text()), self.dir / f"snapshot-{self.taken}.tracemalloc"

    def stop(self) -> None:
        self.process.stop()
        for path in self.dir.iterdir():
            path.unlink()
        self.dir.rmdir()


async def _idle_sockets(server: Server, n: int, extra_headers: bytes) -> dict[str, Any]:
    warm, _, _ = await open_sockets(WARMUP_SOCKETS, server.port, extra_headers)
    close_sockets(warm)
    await asyncio.sleep(SETTLE_S)
    before, before_file = await server.snapshot()
    sockets, agreed, failures = await open_sockets(n, server.port, extra_headers)
    await asyncio.sleep(SETTLE_S)
    after, after_file = await server.snapshot()
    close_sockets(sockets)
    opened = len(sockets)
    if not opened:
        raise RuntimeError(f"no socket opened: {failures[:3]}")
    record: dict[str, Any] = {
        "n": n,
        "opened": opened,
        "failed": len(failures),
        "failures_sample": failures[:3],
        "deflate_agreed": agreed,
        "module": after["module"],
        "rss_per_socket": (after["rss_bytes"] - before["rss_bytes"]) / opened,
    }
    if after["traced"]:
        record["profile"] = profile(
            tracemalloc.Snapshot.load(str(before_file)), tracemalloc.Snapshot.load(str(after_file)), opened
        )
    return record


def measure(source: Source, variant: str, n: int, *, traced: bool, redis: PrivateRedis, log_dir: Path) -> dict:
    """Start a server of ``source``, open ``n`` idle sockets of ``variant``, and return what they cost."""
    redis.flush()
    log = log_dir / f"server-{len(list(log_dir.iterdir()))}.log"
    server = Server(source, traced=traced, redis_url=redis.url, log=log)
    try:
        record = asyncio.run(_idle_sockets(server, n, VARIANTS[variant]))
    finally:
        server.stop()
    return {"source": source.label, "variant": variant, "traced": traced, **record}


# -- the profile ----------------------------------------------------------------------------------


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/"):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    if "/ws4redis_tornado/" in filename:
        return "ws4redis_tornado/" + filename.rsplit("/ws4redis_tornado/", 1)[1]
    return filename


def _owner_frame(traceback: tracemalloc.Traceback) -> tracemalloc.Frame | None:
    # The innermost frame in ws4redis_tornado or Tornado: whose code asked for the memory.
    for frame in reversed(traceback):  # oldest first, so reversed: innermost first
        if _owner_of(frame.filename) is not None:
            return frame
    return None


def _owner_of(filename: str) -> str | None:
    if "/ws4redis_tornado/" in filename:
        return "ws4redis_tornado"
    if "/tornado/" in filename:
        return "tornado"
    return None


def _where(frame: tracemalloc.Frame) -> str:
    return f"{_short(frame.filename)}:{frame.lineno}"


def _code(frame: tracemalloc.Frame) -> str:
    text = linecache.getline(frame.filename, frame.lineno).strip()
    return text if len(text) <= 70 else text[:67] + "..."


def profile(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int) -> dict[str, Any]:
    """Per socket: bytes and blocks by owner, by file and by line (with the owner's calling line)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    owners: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    files: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    lines: dict[tuple[str, str], list[Any]] = {}
    total = [0.0, 0.0]
    for diff in after.compare_to(before, "traceback"):
        size, count = diff.size_diff / n, diff.count_diff / n
        innermost = diff.traceback[-1]
        owner_frame = _owner_frame(diff.traceback)
        owner = _owner_of(owner_frame.filename) if owner_frame else "other"
        where = _where(innermost)
        via = _where(owner_frame) if owner_frame is not None and owner_frame != innermost else ""
        for bucket in (total, owners[owner or "other"], files[_short(innermost.filename)]):
            bucket[0] += size
            bucket[1] += count
        line = lines.setdefault((where, via), [0.0, 0.0, _code(innermost), owner])
        line[0] += size
        line[1] += count
    top_lines = sorted(lines.items(), key=lambda item: -item[1][0])[:TOP_LINES]
    return {
        "bytes": total[0],
        "blocks": total[1],
        "owners": {name: {"bytes": b, "blocks": c} for name, (b, c) in owners.items()},
        "files": [
            {"file": name, "bytes": b, "blocks": c}
            for name, (b, c) in sorted(files.items(), key=lambda item: -item[1][0])[:TOP_FILES]
        ],
        "lines": [
            {"line": where, "via": via, "code": code, "owner": owner, "bytes": b, "blocks": c}
            for (where, via), (b, c, code, owner) in top_lines
        ],
    }


# -- the report -----------------------------------------------------------------------------------


def _kib(value: float) -> str:
    return f"{value / 1024:.2f}"


def _range(values: list[float]) -> str:
    return f"{_kib(statistics.median(values))} ({_kib(min(values))}-{_kib(max(values))})"


def render(records: list[dict[str, Any]]) -> str:
    """Markdown: a summary row per source and variant, then each traced run's profile."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record["source"], record["variant"]].append(record)
    out = [
        "| source | sockets | Python allocations per socket (KiB, blocks) | ws4redis_tornado / tornado / other (KiB)"
        " | RSS per socket, KiB: median (min-max) | runs | deflate agreed | handshakes refused |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (source, variant), runs in groups.items():
        traced = next((r for r in runs if r["traced"]), None)
        plain = [r["rss_per_socket"] for r in runs if not r["traced"]]
        prof = traced["profile"] if traced else None
        alloc = f"{_kib(prof['bytes'])} ({prof['blocks']:.1f})" if prof else "-"
        split = "-"
        if prof:
            split = " / ".join(_kib(prof["owners"].get(o, {}).get("bytes", 0.0)) for o in (*OWNERS, "other"))
        rss = _range(plain) if plain else "-"
        agreed = f"{runs[0]['deflate_agreed']} of {runs[0]['opened']}"
        refused = sum(r.get("failed", 0) for r in runs)
        row = f"| {source}, {variant} | {runs[0]['n']:,} | {alloc} | {split} | {rss} | {len(plain)} | {agreed} |"
        out.append(f"{row} {refused} |")
    for (source, variant), runs in groups.items():
        traced = next((r for r in runs if r["traced"]), None)
        if traced:
            out += ["", f"#### {source}, {variant}: where the Python allocations of one socket are", ""]
            out += _profile_tables(traced["profile"])
    return "\n".join(out)


def _profile_tables(prof: dict[str, Any]) -> list[str]:
    rows = ["| file (innermost frame) | KiB | blocks |", "|---|---|---|"]
    rows += [f"| {f['file']} | {_kib(f['bytes'])} | {f['blocks']:.1f} |" for f in prof["files"]]
    rows += ["", "| line (innermost frame) | via (innermost ws4redis_tornado or tornado frame) | code | KiB | blocks |"]
    rows += ["|---|---|---|---|---|"]
    for line in prof["lines"]:
        code = line["code"].replace("|", "\\|")
        size = f"{_kib(line['bytes'])} | {line['blocks']:.1f}"
        rows.append(f"| {line['line']} | {line['via'] or '-'} | `{code}` | {size} |")
    return rows


def run(
    sources: list[Source], *, n: int, repeats: int, variants: list[str], log_dir: Path, save: Callable[[Any], None]
) -> list[dict[str, Any]]:
    """Measure every source and variant: one traced run, then ``repeats`` plain ones, interleaved."""
    raise_nofile()
    pin_self(LOAD_CPU)
    records: list[dict[str, Any]] = []
    redis = PrivateRedis(log_dir)
    try:
        for variant in variants:
            for traced in (True, *([False] * repeats)):
                for source in sources:
                    started = time.monotonic()
                    record = measure(source, variant, n, traced=traced, redis=redis, log_dir=log_dir)
                    records.append(record)
                    save(records)
                    kind = "traced" if traced else "plain"
                    took = time.monotonic() - started
                    print(f"[done] {source.label} {variant} {kind} in {took:.1f}s from {record['module']}", flush=True)
    finally:
        redis.stop()
    return records
