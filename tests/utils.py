"""Helpers for tests: one time unit, bounded waits."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable

MS = 0.001 * float(os.environ.get("WS4REDIS_TESTS_TIMEOUT_FACTOR", "1"))
"""One millisecond, scaled for slow machines; write every interval and timeout in it."""


async def wait_for(predicate: Callable[[], bool], timeout: float = 5000 * MS, step: float = 5 * MS) -> None:
    """Wait until ``predicate()`` is true; fail the test if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.2f}s: {predicate}")
        await asyncio.sleep(step)


async def within(awaitable: Awaitable, timeout: float = 5000 * MS):
    """Await ``awaitable`` for at most ``timeout`` seconds."""
    return await asyncio.wait_for(awaitable, timeout)


def wait_until_serving(
    port: int, process: subprocess.Popen[str], path: str = "/health", timeout: float = 15_000 * MS
) -> None:
    """Wait until the server ``process`` answers ``path`` on ``port``; fail with its output if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.communicate()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).read()
            return
        except OSError:
            time.sleep(20 * MS)
    raise AssertionError(f"server did not answer {path} on port {port} within {timeout:.1f}s")


def limit_open_files(pid: int, count: int) -> None:
    """Give the running process ``pid`` at most ``count`` file descriptors (soft and hard limit).

    Set on the running process (Linux's prlimit) rather than through a ``preexec_fn``, which is
    not safe in a test process that runs threads.
    """
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (count, count))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields after it are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
