"""Helpers for tests: one time unit, bounded waits, deliberate pauses, free ports, /proc figures."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import resource
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ws4redis_tornado.embedded import free_port

MS = 0.001 * float(os.environ.get("WS4REDIS_TESTS_TIMEOUT_FACTOR", "1"))
"""One millisecond, scaled for slow machines; write every interval and timeout in it."""

Predicate = Callable[[], Any]
"""A check polled until it returns something true; it may return an awaitable (an async check)."""


async def wait_until(
    predicate: Predicate,
    timeout: float = 5000 * MS,
    *,
    step: float = 5 * MS,
    what: str = "",
    ignore: tuple[type[BaseException], ...] = (),
    details: Callable[[], str] | None = None,
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something true, and return that.

    An exception of a type in ``ignore`` counts as "not yet". Fails the test if the condition does
    not hold within ``timeout``: the message names ``what`` and ends with ``details()``, a log say.
    """
    for _ in _attempts(predicate, timeout, what, details):
        with contextlib.suppress(*ignore):
            outcome = predicate()
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if outcome:
                return outcome
        await asyncio.sleep(step)


def wait_until_blocking(
    predicate: Callable[[], Any],
    timeout: float = 5000 * MS,
    *,
    step: float = 20 * MS,
    what: str = "",
    ignore: tuple[type[BaseException], ...] = (),
    details: Callable[[], str] | None = None,
    pause: Callable[[float], object] = time.sleep,
) -> Any:
    """:func:`wait_until` for code that runs no event loop of its own: it blocks the thread.

    ``pause(seconds)`` waits between polls; Playwright's page.wait_for_timeout, for one, delivers
    the page's events meanwhile.
    """
    for _ in _attempts(predicate, timeout, what, details):
        with contextlib.suppress(*ignore):
            if outcome := predicate():
                return outcome
        pause(step)


def _attempts(predicate: Predicate, timeout: float, what: str, details: Callable[[], str] | None) -> Iterator[None]:
    """One item per poll until ``timeout`` has passed; then fail, naming the condition."""
    deadline = time.monotonic() + timeout
    yield
    while time.monotonic() <= deadline:
        yield
    message = f"{what or getattr(predicate, '__qualname__', predicate)} not within {timeout:.2f}s"
    raise AssertionError(f"{message}\n{details()}" if details is not None else message)


async def within(awaitable: Awaitable, timeout: float = 5000 * MS):
    """Await ``awaitable`` for at most ``timeout`` seconds."""
    return await asyncio.wait_for(awaitable, timeout)


async def quiet_window(seconds: float) -> None:
    """Let ``seconds`` pass on purpose: a window in which something must not happen.

    Not a way to wait for something that does happen: :func:`wait_until` is.
    """
    await asyncio.sleep(seconds)


def free_ports(count: int) -> list[int]:
    """``count`` different ports that were free a moment ago (see :func:`free_port`)."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


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


def memory(pid: int) -> dict[str, int]:
    """The ``Vm*`` figures of /proc/<pid>/status in bytes (``VmRSS``, ``VmHWM`` ...)."""
    figures = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name.startswith("Vm") and value.strip().endswith("kB"):
                figures[name] = int(value.split()[0]) * 1024
    return figures
