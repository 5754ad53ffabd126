"""Process plumbing: free ports, CPU pinning, readiness checks and sure cleanup.

Everything the harness starts goes through :class:`Managed`, so that every server, Redis and
client is ended in a ``finally`` even when a run fails halfway.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench import procstat

SERVER_CPU = 0
LOAD_CPU = 1
NOFILE = 65536


def raise_nofile(limit: int = NOFILE) -> int:
    """Raise RLIMIT_NOFILE (inherited by every child) so 10k sockets fit on both sides.

    The server side needs two fds per socket for targets that hold one Redis connection per
    websocket (ws4redis), so the limit has to exceed 20k. Raising the hard limit needs root;
    otherwise the soft limit goes as high as the hard one allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), max(hard, limit)))
    except (ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin_self(cpu: int = LOAD_CPU) -> None:
    """Pin the harness (and hence, by inheritance, its helpers) to the load CPU."""
    os.sched_setaffinity(0, {cpu})


def pin_process(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` to ``cpu``; threads it starts later inherit the pinning.

    ``sched_setaffinity`` acts on one thread, so each task of the process is pinned in turn.
    """
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), {cpu})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until something accepts on ``port``; fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {timeout}s")


def wait_quiet(cpu: int, busy_pct: float, timeout: float) -> float:
    """Wait (bounded) until ``cpu`` is below ``busy_pct`` busy over one second.

    The machine is shared: a test suite started by someone else on the server's core would
    be measured as the server's slowness. Returns the last measured busy percentage.
    """
    deadline = time.monotonic() + timeout
    while True:
        before = procstat.cpu_busy_seconds(cpu)
        time.sleep(1.0)
        busy = (procstat.cpu_busy_seconds(cpu) - before) * 100
        if busy < busy_pct or time.monotonic() > deadline:
            return busy


class Managed:
    """A child process pinned to one CPU (or a ``taskset`` list such as ``"0,1"``), stopped for sure on ``stop()``."""

    def __init__(
        self,
        argv: Sequence[str],
        cpu: int | str,
        *,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv = ["taskset", "-c", str(cpu), *argv]
        self.stop_signal = stop_signal
        self._log = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=stdout if stdout is not None else self._log,
            stderr=self._log,
            start_new_session=True,  # its own group, so helpers it forks die with it
        )

    @property
    def pid(self) -> int:
        # taskset execs the command, so the pid is the command's own.
        return self.proc.pid

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(grace)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
