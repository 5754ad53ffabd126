"""One measured run: private server on CPU 0, load client (and publisher) on CPU 1.

A run starts a fresh server process, so RSS baselines and Redis connection counts belong to
that run alone, and ends it (and the client) in ``finally`` whatever happens.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procstat, profile
from bench.payload import ENV as PAYLOAD_ENV
from bench.payload import SMALL
from bench.procs import LOAD_CPU, SERVER_CPU, Managed, free_port, wait_port
from bench.redis_server import PrivateRedis
from bench.registry import REPO, Target


@dataclass(frozen=True)
class Plan:
    """Knobs of the method; ``quick()`` shrinks them for smoke runs."""

    messages: int = 50
    interval: float = 0.1
    variant_messages: int = 6
    variant_interval: float = 2.0
    variant_min_n: int = 5000
    drain_cap: float = 20.0
    warmup_tries: int = 3
    warmup_cap: float = 120.0
    quiesce_cap: float = 60.0
    s2_subscribers: int = 100
    s2_window: int = 20
    s2_duration: float = 10.0
    s2_stall: float = 1.0
    inflight: int = 32
    settle: float = 0.5
    quiesce_idle: float = 2.0  # S2 starts once no frame came for this long
    profile: str = ""  # "", "python" or "native": py-spy the server during S1
    payload: str = SMALL  # see bench/payload.py

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            messages=10,
            variant_messages=2,
            variant_interval=0.5,
            variant_min_n=0,
            drain_cap=5.0,
            warmup_cap=20.0,
            quiesce_cap=10.0,
            s2_duration=2.0,
        )

    @classmethod
    def quick_compare(cls) -> Plan:
        """``python -m bench quick``: S1 without the one-message variant, short S2 (~1.5 min in all)."""
        return cls(
            messages=40,
            variant_min_n=1 << 30,
            drain_cap=5.0,
            warmup_cap=20.0,
            quiesce_cap=5.0,
            quiesce_idle=0.5,
            s2_duration=4.0,
            settle=0.3,
        )


class ClientProc:
    """The load client process, spoken to in JSON lines."""

    def __init__(self, target: Target, redis_url: str, log: Path, payload_kind: str) -> None:
        argv = [sys.executable, "-m", "bench.client", json.dumps(target.publisher(redis_url))]
        self.proc = Managed(
            argv,
            LOAD_CPU,
            cwd=REPO,
            # The client and the publisher it starts read the payload kind from here.
            env={**target.env(redis_url), PAYLOAD_ENV: payload_kind},
            log=log,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def call(self, op: str, timeout: float, **args: Any) -> dict[str, Any]:
        proc = self.proc.proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"load client: no answer to {op} within {timeout}s")
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load client exited during {op} (see its log)")
        return json.loads(line)

    def stop(self) -> None:
        proc = self.proc.proc
        if proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.write(b'{"op": "quit"}\n')
                proc.stdin.close()
                proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.proc.stop()


class Session:
    """Server + client for one run; use as a context manager."""

    def __init__(
        self,
        target: Target,
        redis: PrivateRedis,
        log_dir: Path,
        payload_kind: str = SMALL,
        cpus: int | str = SERVER_CPU,
    ) -> None:
        self.target, self.redis, self.log_dir = target, redis, log_dir
        self.payload_kind = payload_kind
        self.cpus = cpus  # where the server may run: one CPU, or a taskset list for several processes
        self.server: Managed | None = None
        self.client: ClientProc | None = None

    def __enter__(self) -> Session:
        self.redis.flush()
        self.port = free_port()
        self.server = Managed(
            self.target.server(self.port, self.redis.url),
            self.cpus,
            cwd=REPO,
            env=self.target.env(self.redis.url),
            log=self.log_dir / f"{self.target.name}.server.log",
            stop_signal=self.target.stop_signal,
        )
        wait_port(self.port, self.server.proc, 60)
        self.pid = self.server.pid
        log = self.log_dir / f"{self.target.name}.client.log"
        self.client = ClientProc(self.target, self.redis.url, log, self.payload_kind)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.client is not None:
                self.client.stop()
        finally:
            if self.server is not None:
                self.server.stop()

    def connect(self, n: int, plan: Plan) -> dict[str, Any]:
        assert self.client is not None
        conn = self.client.call(
            "connect",
            timeout=900,
            n=n,
            port=self.port,
            path=self.target.ws_path,
            inflight=plan.inflight,
            recover=self.target.recover,
            deflate=self.target.deflate,
        )
        if not conn["connected"]:
            raise RuntimeError(f"no websocket connected, e.g. {conn['failures_sample'][:1]}")
        conn["warmup"] = self.client.call(
            "warmup",
            timeout=plan.warmup_tries * plan.warmup_cap + 60,
            tries=plan.warmup_tries,
            idle_s=5.0,
            cap_s=plan.warmup_cap,
        )
        return conn

    def quiesce(self, plan: Plan) -> dict[str, Any]:
        assert self.client is not None
        return self.client.call(
            "quiesce", timeout=plan.quiesce_cap + 30, idle_s=plan.quiesce_idle, cap_s=plan.quiesce_cap
        )


def run_fanout(target: Target, n: int, plan: Plan, redis: PrivateRedis, log_dir: Path) -> dict[str, Any]:
    """S1 (and the one-message variant for large N) on a fresh server."""
    with Session(target, redis, log_dir, plan.payload) as s:
        assert s.client is not None
        time.sleep(plan.settle)
        rss0 = procstat.rss_bytes(s.pid)
        conn = s.connect(n, plan)
        time.sleep(plan.settle)
        rss1 = procstat.rss_bytes(s.pid)
        result: dict[str, Any] = {
            "target": target.name,
            "n": n,
            "connect": conn,
            "rss_before": rss0,
            "rss_after": rss1,
            "rss_per_conn": (rss1 - rss0) / conn["connected"] if conn["connected"] else None,
            "redis_conns": redis.clients_of(s.pid),
            "server_fds": procstat.open_fds(s.pid),
        }
        # The one-message variant goes first: a server that cannot keep up with S1 leaves a
        # backlog that would otherwise spill into it.
        if n >= plan.variant_min_n:
            timeout = plan.variant_messages * plan.variant_interval + plan.drain_cap + 120
            result["variant"] = s.client.call(
                "fanout",
                timeout=timeout,
                messages=plan.variant_messages,
                interval=plan.variant_interval,
                server_pid=s.pid,
                drain_cap=plan.drain_cap,
            )
            result["quiesce"] = s.quiesce(plan)
        timeout = plan.messages * plan.interval + plan.drain_cap + 120
        spy_out = log_dir / f"{target.name}-{n}.pyspy.txt"
        spy = None
        if plan.profile:
            duration = plan.messages * plan.interval
            spy = profile.start(s.pid, duration, spy_out, native=plan.profile == "native")
        result["s1"] = s.client.call(
            "fanout",
            timeout=timeout,
            messages=plan.messages,
            interval=plan.interval,
            server_pid=s.pid,
            drain_cap=plan.drain_cap,
        )
        if spy is not None:
            spy.wait(60)
            if spy_out.exists():
                result["profile"] = profile.summarize(spy_out)
        end = s.client.call("alive", timeout=30)
        result["alive_at_end"] = end["alive"]
        result["recovery_reports"] = end["reports"]
        return result


def run_throughput(target: Target, plan: Plan, redis: PrivateRedis, log_dir: Path) -> dict[str, Any]:
    """S2: closed loop with ``plan.s2_subscribers`` sockets on a fresh server."""
    with Session(target, redis, log_dir, plan.payload) as s:
        assert s.client is not None
        conn = s.connect(plan.s2_subscribers, plan)
        s.quiesce(plan)
        s2 = s.client.call(
            "closed_loop",
            timeout=plan.s2_duration + 120,
            window=plan.s2_window,
            duration=plan.s2_duration,
            server_pid=s.pid,
            stall_s=plan.s2_stall,
        )
        return {"target": target.name, "n": plan.s2_subscribers, "connect": conn, "s2": s2}
