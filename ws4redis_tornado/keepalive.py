"""Native websocket ping/pong for every socket of the process, from one timer.

Tornado's own pinging runs a task per connection (``start_pinging``); at tens of thousands of
sockets that is a task, a timer and their memory per socket. One :class:`SocketTimer` walks the
open sockets instead: it pings each one every ``interval`` seconds and closes those whose last
ping went unanswered for ``timeout`` seconds.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from .frames import PING_FRAME
from .timers import SocketTimer

__all__ = ["PING_FRAME", "Pinger", "ping_action"]


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


class Pinger(SocketTimer[PingedSocket]):
    """Checks every socket each ``timeout`` seconds (at most ``interval``)."""

    def __init__(self, interval: float, timeout: float, sockets: Collection[PingedSocket]) -> None:
        # Ticking every `timeout` seconds closes a silent peer between timeout and 2 * timeout.
        super().__init__(min(interval, timeout), sockets)
        self.interval = interval
        self.timeout = timeout

    def visit(self, socket: PingedSocket, now: float) -> None:
        socket.keep_alive(now, self.interval, self.timeout)
