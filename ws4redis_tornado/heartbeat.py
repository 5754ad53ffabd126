"""The heartbeat: one timer per process sends the heartbeat string to every open socket.

ws4redis sent it from each socket's own loop; here one :class:`SocketTimer` walks the sockets.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from .messages import encode_frame
from .timers import SocketTimer

__all__ = ["Heartbeat", "HeartbeatReceiver"]


class HeartbeatReceiver(Protocol):
    def send_frame(self, frame: bytes) -> None:
        """Write a ready websocket frame; must not raise."""


class Heartbeat(SocketTimer[HeartbeatReceiver]):
    """Sends ``message`` to each socket in ``sockets`` every ``interval`` seconds."""

    def __init__(self, message: str, interval: float, sockets: Collection[HeartbeatReceiver]) -> None:
        super().__init__(interval, sockets)
        self._frame = encode_frame(message.encode("utf-8"), binary=False)

    def visit(self, socket: HeartbeatReceiver, now: float) -> None:
        socket.send_frame(self._frame)
