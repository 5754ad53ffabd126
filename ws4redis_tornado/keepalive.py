"""Native websocket ping/pong for every socket of the process, from one timer.

Tornado's own pinging runs a task per connection (``start_pinging``); at tens of thousands of
sockets that is a task, a timer and their memory per socket. One ``PeriodicCallback`` walks the
open sockets instead: it pings each one every ``interval`` seconds and closes those whose last
ping went unanswered for ``timeout`` seconds.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from tornado.ioloop import IOLoop, PeriodicCallback

__all__ = ["PING_FRAME", "Pinger", "ping_action"]

PING_FRAME = b"\x89\x00"
"""A complete, empty, unmasked ping frame."""


class PingedSocket(Protocol):
    def keep_alive(self, now: float, interval: float, timeout: float) -> None: ...


def ping_action(*, now: float, last_ping: float, pong_pending: bool, interval: float, timeout: float) -> str:
    """Decide what a socket needs now: ``"close"``, ``"ping"`` or ``"wait"``.

    ``last_ping`` is when the last ping went out (or the socket opened); ``pong_pending`` says it
    is still unanswered.
    """
    if pong_pending:
        return "close" if now - last_ping >= timeout else "wait"
    return "ping" if now - last_ping >= interval else "wait"


class Pinger:
    """Checks every socket each ``timeout`` seconds (at most ``interval``)."""

    def __init__(self, interval: float, timeout: float, sockets: Collection[PingedSocket]) -> None:
        self.interval = interval
        self.timeout = timeout
        self._sockets = sockets
        # Ticking every `timeout` seconds closes a silent peer between timeout and 2 * timeout.
        self._timer = PeriodicCallback(self._tick, min(interval, timeout) * 1000, jitter=0.1)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def running(self) -> bool:
        return self._timer.is_running()

    def _tick(self) -> None:
        now = IOLoop.current().time()
        for socket in tuple(self._sockets):
            socket.keep_alive(now, self.interval, self.timeout)
