"""Process-wide timers that visit every open socket: the heartbeat and the pings.

A timer per socket would cost a callback, a wake-up and memory per socket; one
``PeriodicCallback`` per process walks the sockets instead.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Generic, TypeVar

from tornado.ioloop import IOLoop, PeriodicCallback

__all__ = ["SocketTimer"]

S = TypeVar("S")


class SocketTimer(Generic[S]):
    """Calls :meth:`visit` for each socket in ``sockets`` every ``period`` seconds."""

    def __init__(self, period: float, sockets: Collection[S]) -> None:
        self._sockets = sockets
        # PeriodicCallback takes milliseconds; jitter spreads processes started together.
        self._timer = PeriodicCallback(self._tick, period * 1000, jitter=0.1)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def running(self) -> bool:
        return self._timer.is_running()

    def visit(self, socket: S, now: float) -> None:
        raise NotImplementedError

    def _tick(self) -> None:
        now = IOLoop.current().time()
        # A visit can close a socket, which leaves the set: iterate over a copy.
        for socket in tuple(self._sockets):
            self.visit(socket, now)
