"""Several serving processes on one port: binding it, forking them, and watching over them.

The parent binds the address first, so a wrong one fails before anything forks, then forks N
children; each child builds its own broker, application and IOLoop after the fork, because none
of them survives one. The parent only supervises: it forwards SIGTERM and SIGINT to the children
and exits once they have. A child that dies on its own is not restarted: the parent stops the
others and exits with 1, and the process manager (systemd, Kubernetes ...) starts it again.

On Linux each child listens on a socket of its own with SO_REUSEPORT, so the kernel spreads new
connections evenly over the processes; websockets live long, and one shared socket lets whichever
process wakes first take a whole burst of them. Elsewhere (SO_REUSEPORT does not balance there)
the children share the sockets the parent bound. Either way SO_REUSEPORT also lets a new server
start on the port before the old one is sent SIGTERM, for a restart without refused connections.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from tornado import netutil

from .exceptions import CannotListen

__all__ = [
    "BALANCING_REUSE_PORT",
    "STOP_SIGNALS",
    "Supervisor",
    "bind_sockets",
    "describe",
    "exit_now",
    "run_processes",
]

logger = logging.getLogger(__name__)

BALANCING_REUSE_PORT = sys.platform.startswith("linux")
"""Whether SO_REUSEPORT spreads connections over the sockets sharing a port (Linux does)."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""The signals that make a server drain and exit."""

Serve = Callable[[Sequence[socket.socket]], int]
"""Serves on the listening sockets it is given until told to stop; returns the exit code."""


def bind_sockets(
    host: str | None, port: int, *, family: socket.AddressFamily = socket.AF_UNSPEC
) -> list[socket.socket]:
    """Bind and listen on ``host`` (None: every interface) and ``port``, with SO_REUSEPORT where it exists.

    Raises:
        CannotListen: naming the address and the reason (its ``errno`` is the bind's).
    """
    try:
        return netutil.bind_sockets(port, host, family=family, reuse_port=hasattr(socket, "SO_REUSEPORT"))
    except OSError as exc:
        error = CannotListen(f"cannot listen on {host or '*'}:{port}: {exc.strerror or exc}")
        error.errno = exc.errno
        raise error from None


def describe(sockets: Sequence[socket.socket]) -> str:
    """``host:port`` of the first of ``sockets`` (``[host]:port`` for IPv6), for log lines."""
    host, port = sockets[0].getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run_processes(count: int, sockets: list[socket.socket], serve: Serve, *, host: str | None) -> int:
    """Run ``serve`` here if ``count`` is 1, else in ``count`` forked processes; return the exit code.

    ``sockets`` were bound by :func:`bind_sockets` on ``host``. With several processes on Linux they
    are closed here and each child binds its own (see the module's docstring).
    """
    if count == 1:
        return serve(sockets)
    if not BALANCING_REUSE_PORT:
        return Supervisor(count, lambda: serve(sockets)).run()
    port = sockets[0].getsockname()[1]
    for sock in sockets:
        sock.close()

    def serve_own_sockets() -> int:
        try:
            own = bind_sockets(host, port)
        except CannotListen as exc:
            logger.error("%s", exc)
            return 1
        return serve(own)

    return Supervisor(count, serve_own_sockets).run()


_process_index = 0


def process_index() -> int:
    """This process's index among the serving processes: 0 to N-1 (0 when there is one)."""
    return _process_index


def exit_now(code: int) -> NoReturn:
    """Flush the logs and the console, then end the process without waiting for any thread."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Supervisor:
    """Forks ``count`` children running ``target`` and waits for them.

    SIGTERM or SIGINT is forwarded to every child. A child that exits while nothing asked it to
    is not restarted: the others are stopped too and the parent exits non-zero, so the process
    manager (systemd, Kubernetes, supervisord) restarts the whole server.
    """

    def __init__(self, count: int, target: Callable[[], int]) -> None:
        self.count = count
        self.target = target
        self.children: dict[int, int] = {}
        self.stopping = False
        self.failed = False
        self._pid = os.getpid()

    def run(self) -> int:
        """Fork the children, wait for all of them, and return the parent's exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            for index in range(self.count):
                self._fork(index)
            while self.children:
                self._reap()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        logger.info("all processes exited")
        return 1 if self.failed else 0

    def _fork(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            global _process_index
            _process_index = index
            self._run_child()
        self.children[pid] = index
        logger.debug("started process %d (pid %d)", index, pid)

    def _run_child(self) -> NoReturn:
        code = 1
        try:
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            code = self.target()
        except BaseException:
            logger.exception("process %d crashed", os.getpid())
        finally:
            exit_now(code)

    def _reap(self) -> None:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            self.children.clear()
            return
        index = self.children.pop(pid, None)
        if index is None:
            return
        code = os.waitstatus_to_exitcode(status)
        # A child still starting when the SIGTERM came had no handler of its own yet and ended by it:
        # stopped as asked, not failed.
        if self.stopping and code in (-signal.SIGTERM, 128 + signal.SIGTERM):
            code = 0
        if code != 0:
            self.failed = True
        if not self.stopping:
            logger.error("process %d (pid %d) exited with code %d; stopping the others", index, pid, code)
            self.failed = True
            self._stop_children()
        elif code != 0:
            logger.warning("process %d (pid %d) exited with code %d", index, pid, code)

    def _on_signal(self, signum: int, frame: object) -> None:
        if os.getpid() != self._pid:
            # A child between fork and resetting its handlers: act like the default handler.
            os._exit(128 + signum)
        logger.info("received %s; stopping %d process(es)", signal.Signals(signum).name, len(self.children))
        self._stop_children()

    def _stop_children(self) -> None:
        self.stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
