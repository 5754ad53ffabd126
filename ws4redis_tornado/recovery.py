"""One handshake's recovery: where the client stands before it subscribes, what it missed after.

The order is what makes the seam exact. Before subscribing, a channel the client gives no position
for is read for its persisted message and its history's last id: the client stands there. After
subscribing, every channel's history is read after where the client stands: those entries are what
it missed, and everything published later arrives live. A live message the read already covered
is recognised by its id and dropped (:meth:`Recovery.thresholds`), which also holds in a Redis
Cluster, where a live message can trail the read. The wire format is in
:mod:`ws4redis_tornado.history`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .history import EMPTY_POSITION, ChannelHistory, channel_label, opening_frames, order, recovery_report

if TYPE_CHECKING:
    from .broker import Broker

__all__ = ["Recovery"]


class Recovery:
    """Reads a socket's history around its subscription, then builds what it is sent on opening.

    Used by :class:`~ws4redis_tornado.subscriber.RedisSubscriber` for a socket whose client asked
    for ids with the ``recover`` parameter; ``positions`` are the ids the client gave by label.
    """

    __slots__ = ("_broker", "_facility", "_positions", "histories")

    def __init__(self, broker: Broker, positions: Mapping[str, str | None], *, facility: str | None = None) -> None:
        self._broker = broker
        self._positions = positions
        # Named in every message's header on a control socket; None elsewhere.
        self._facility = facility
        self.histories: list[ChannelHistory] = []

    async def before_subscribe(self, channels: Sequence[str]) -> None:
        """Learn where the client stands on each channel (reads Redis for the ones it names no position for)."""
        prefix = self._broker.config.prefix
        positions = self._positions
        histories = []
        for channel in channels:
            label = channel_label(channel, prefix=prefix)
            position = positions.get(label)
            # A label given without an id: the client was here while this channel had no history.
            asked = label in positions
            histories.append(ChannelHistory(channel.encode(), label, position, asked=asked, facility=self._facility))
        self.histories = histories
        fresh = [history for history in histories if history.position is None]
        if not self._broker.config.history_size:
            await self._read_persisted(fresh)
            for history in histories:
                history.recovered = not history.asked
                history.position = None
            return
        if fresh:
            last = await self._broker.read_last([history.channel.decode() for history in fresh])
            for history, (persisted, top, top_payload) in zip(fresh, last, strict=True):
                history.position = top or EMPTY_POSITION
                history.persisted = persisted
                # The persisted message is the history's last entry, unless a later publish kept no copy.
                history.persisted_id = top if persisted is not None and persisted == top_payload else None
                history.recovered = not history.asked

    async def _read_persisted(self, histories: Sequence[ChannelHistory]) -> None:
        persisted = await self._broker.fetch([history.channel.decode() for history in histories])
        for history, payload in zip(histories, persisted, strict=True):
            history.persisted = payload

    async def after_subscribe(self) -> None:
        """Read what each channel's history holds after where the client stands."""
        histories = [history for history in self.histories if history.position is not None]
        if histories:
            await self._read_after(histories)
        outcomes = self._broker.metrics.recoveries
        for history in self.histories:
            if history.asked:
                outcomes["recovered" if history.recovered else "not_recovered"] += 1

    async def _read_after(self, histories: Sequence[ChannelHistory]) -> None:
        reads = await self._broker.read_after([(history.channel.decode(), history.position) for history in histories])
        for history, (continues, entries, last) in zip(histories, reads, strict=True):
            if continues:
                history.entries = entries
                continue
            # The client is told, instead of getting part of what it missed.
            history.recovered = False
            history.position = last or EMPTY_POSITION

    def frames(self, *, report: bool = True) -> list[bytes]:
        """The frames to send on opening, before any live message (see :func:`history.opening_frames`)."""
        return opening_frames(self.histories, report=report)

    def report(self) -> dict[str, dict[str, object]]:
        """Per channel label, where the client stands and whether its gap was served."""
        return recovery_report(self.histories)

    def labels(self) -> dict[bytes, str]:
        """Each channel's label, for the envelopes of live messages."""
        return {history.channel: history.label for history in self.histories}

    def thresholds(self) -> dict[bytes, tuple[int, int]]:
        """Per channel, the id up to which live messages were covered by the read and must be dropped."""
        return {
            history.channel: order(history.reached)
            for history in self.histories
            if history.reached is not None and history.reached != EMPTY_POSITION
        }

    def persisted_without_id(self) -> set[tuple[bytes, bytes]]:
        """The persisted messages sent without an id: a live copy of one (a publisher without history) is dropped."""
        return {
            (history.channel, history.persisted)
            for history in self.histories
            if history.persisted is not None and history.persisted_id is None
        }
