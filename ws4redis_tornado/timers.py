"""Process-wide timers: :func:`periodic` makes every timer here; :class:`SocketTimer` visits the sockets.

A timer per socket would cost a callback, a wake-up and memory per socket; one
``PeriodicCallback`` per process walks the sockets instead (the heartbeat and the pings).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from tornado.ioloop import IOLoop, PeriodicCallback

__all__ = ["JITTER", "SocketTimer", "periodic"]

S = TypeVar("S")

JITTER = 0.1
"""A timer's period is its interval, give or take half of this fraction, so that processes started
together drift apart instead of writing to Redis at the same moments."""

# The timers' own generator. Tornado's jitter would draw from Python's global one at every tick,
# from the IOLoop's thread: that one belongs to the application, whose tests may seed it (and a
# live test server runs in the test process: django_bridge.testing).
_spread = random.Random()


def periodic(callback: Callable[[], Any], seconds: float) -> PeriodicCallback:
    """A ``PeriodicCallback`` calling ``callback`` about every ``seconds``: within ``JITTER / 2`` of it.

    The period is drawn once per timer, where Tornado's ``jitter`` draws at every tick.
    """
    return PeriodicCallback(callback, seconds * 1000 * (1 + JITTER * (_spread.random() - 0.5)))


class SocketTimer(Generic[S]):
    """Calls :meth:`visit` for each socket in ``sockets`` every ``period`` seconds."""

    def __init__(self, period: float, sockets: Collection[S]) -> None:
        self._sockets = sockets
        self._timer = periodic(self._tick, period)

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
