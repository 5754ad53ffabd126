"""The private Redis on the load CPU, never the shared one on 6379."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import redis

from bench import procstat
from bench.procs import LOAD_CPU, SERVER_CPU, Managed, free_port, wait_port


class PrivateRedis:
    """``redis-server`` on a free port, no persistence, room for 10k+ clients."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.server = Managed(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.dir,
                "--maxclients", "30000",
                "--tcp-backlog", "1024",
                # Subscribers that fall behind must not be cut off mid-measurement.
                "--client-output-buffer-limit", "pubsub 0 0 0",
            ],
            LOAD_CPU,
            log=log_dir / "redis.log",
        )  # fmt: skip
        wait_port(self.port, self.server.proc, 10)
        self.conn = redis.Redis(port=self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        """Forget keys between runs (Channels' group sets would otherwise pile up)."""
        self.conn.flushall()

    def clients_of(self, pid: int) -> int:
        """Redis connections held by ``pid``."""
        return len(clients_of(pid, self.conn, self.port))

    def publish_rate(self, requests: int, pipeline: int) -> float:
        """PUBLISH requests/s measured by ``redis-benchmark`` (no subscribers attached).

        Run before any server under test starts, with redis-benchmark on the server CPU so
        that Redis has the load CPU to itself: this is Redis' own ceiling, not the tool's.
        """
        out = subprocess.run(
            [
                "taskset", "-c", str(SERVER_CPU), "redis-benchmark",
                "-p", str(self.port), "-n", str(requests), "-c", "50",
                "-P", str(pipeline), "-q", "--csv",
                "PUBLISH", "bench:rate", "x" * 100,
            ],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout  # fmt: skip
        # CSV: "test","rps",... ; the second line holds the figures.
        row = out.strip().splitlines()[-1].split(",")
        return float(row[1].strip('"'))

    def stop(self) -> None:
        try:
            self.conn.close()
        finally:
            self.server.stop()
            shutil.rmtree(self.dir, ignore_errors=True)


def clients_of(pid: int, conn: redis.Redis, port: int) -> list[dict[str, Any]]:
    """The CLIENT LIST entries of the Redis on ``port`` that are connections of ``pid``.

    Redis reports each client's ``addr`` (ip:port): the port is the local port of one of
    ``pid``'s sockets, which /proc lists.
    """
    ports = procstat.tcp_local_ports_to(pid, port)
    return [client for client in conn.client_list() if int(client["addr"].rsplit(":", 1)[1]) in ports]
