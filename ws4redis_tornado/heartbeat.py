"""The heartbeat: one timer per process sends the heartbeat string to every open socket.

ws4redis sent it from each socket's own loop; a timer per socket would cost a callback and a
wake-up per socket, so one ``PeriodicCallback`` walks the sockets instead.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Protocol

from tornado.ioloop import PeriodicCallback

from .messages import encode_frame

__all__ = ["Heartbeat", "HeartbeatReceiver"]

logger = logging.getLogger(__name__)


class HeartbeatReceiver(Protocol):
    def send_frame(self, frame: bytes) -> None:
        """Write a ready websocket frame; must not raise."""


class Heartbeat:
    """Sends ``message`` to each socket in ``sockets`` every ``interval`` seconds."""

    def __init__(self, message: str, interval: float, sockets: Collection[HeartbeatReceiver]) -> None:
        self._frame = encode_frame(message.encode("utf-8"), binary=False)
        self._sockets = sockets
        # PeriodicCallback takes milliseconds; jitter spreads processes started together.
        self._timer = PeriodicCallback(self._beat, interval * 1000, jitter=0.1)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def running(self) -> bool:
        return self._timer.is_running()

    def _beat(self) -> None:
        frame = self._frame
        # A write can close a socket, which removes it from the set: iterate over a copy.
        for socket in tuple(self._sockets):
            socket.send_frame(frame)
