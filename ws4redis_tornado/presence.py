"""Presence: who has sockets on a channel, across every process, and join and leave events.

Each process keeps, per channel of a facility listed in ``Config.presence``, how many of its
sockets each user holds ('' counts the anonymous ones), and writes that to Redis (see the scripts
in :mod:`ws4redis_tornado.redis_commands`): at once, in one batch per loop turn, when a user's
first socket here opens or their last one closes; and the whole entry every ``presence_interval``
seconds from one timer per process. An entry is vouched for three intervals, so the entries of a
process that died go away on their own. A user's first socket anywhere is announced as a join, and
their last one anywhere as a leave, on the channel itself behind :data:`PRESENCE_MARKER`; the
process that notices a dead process's entry announces the leaves it implies.

A socket that opts in with the ``presence`` query parameter receives, when it opens, who is on each
of its channels, then the events, as one-line JSON text frames (see :func:`snapshot_frame`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tornado.ioloop import IOLoop, PeriodicCallback

from . import redis_commands
from .config import Config
from .connections import AsyncCommandClient
from .frames import encode_frame
from .history import channel_facility
from .redis_commands import CONNECTION_ERRORS, PRESENCE_MARKER
from .timers import periodic

__all__ = [
    "PRESENCE_MARKER",
    "PRESENCE_PARAMETER",
    "Presence",
    "PresenceEvent",
    "PresenceStats",
    "PresenceTracker",
    "merge",
    "snapshot_frame",
]

logger = logging.getLogger(__name__)

PRESENCE_PARAMETER = "presence"
"""The query parameter by which a socket asks for who is here and for join and leave events."""

EXPIRY_INTERVALS = 3
"""How many refresh intervals a process's entry is vouched for: two refreshes may fail."""

_BATCH = 100  # commands per pipeline when the timer rewrites every entry: the loop is free in between


@dataclass(frozen=True)
class PresenceStats:
    """Counts only: how many users, how many sockets in all, how many of them anonymous."""

    users: int
    sockets: int
    anonymous: int


@dataclass(frozen=True)
class Presence:
    """Who is connected: ``users`` maps each user name to its number of sockets."""

    users: dict[str, int] = field(default_factory=dict)
    anonymous: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> Presence:
        """From sockets per user as Redis holds them, where ``''`` counts the anonymous sockets."""
        return cls({user: n for user, n in counts.items() if user and n > 0}, max(counts.get("", 0), 0))

    @property
    def stats(self) -> PresenceStats:
        return PresenceStats(len(self.users), sum(self.users.values()) + self.anonymous, self.anonymous)


def merge(presences: Iterable[Presence]) -> Presence:
    """Who is on any of several channels; a user's count is their largest on one of them.

    A socket usually listens on several channels of a facility (broadcast and its groups): summing
    would count it more than once.
    """
    users: dict[str, int] = {}
    anonymous = 0
    for presence in presences:
        for user, count in presence.users.items():
            users[user] = max(users.get(user, 0), count)
        anonymous = max(anonymous, presence.anonymous)
    return Presence(users, anonymous)


def snapshot_frame(label: str, presence: Presence, facility: str | None = None) -> bytes:
    """The frame telling a socket who is on one of its channels when it opens (or, on a control
    socket, when it subscribes: then the frame names the facility too)."""
    body = {"channel": label, "users": presence.users, "anonymous": presence.anonymous}
    if facility is not None:
        body = {"facility": facility, **body}
    return _json_frame({"presence": body})


def _json_frame(body: object) -> bytes:
    return encode_frame(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), binary=False)


class PresenceEvent:
    """A join or leave read from Redis, shared by every socket of the channel that asked for events."""

    __slots__ = ("_frame", "_tagged", "channel", "event", "user")

    def __init__(self, channel: bytes, payload: bytes) -> None:
        announced = json.loads(payload[len(PRESENCE_MARKER) :])
        self.channel = channel
        self.event: str = announced["event"]
        self.user: str = announced["user"]
        self._frame: bytes | None = None
        self._tagged: bytes | None = None

    def frame(self, label: str) -> bytes:
        """``{"presence":{"channel":label,"event":"join","user":name}}``, built once for every socket."""
        if self._frame is None:
            body = {"presence": {"channel": label, "event": self.event, "user": self.user}}
            self._frame = _json_frame(body)
        return self._frame

    def tagged_frame(self, label: str) -> bytes:
        """The frame for a control socket: the event with the channel's facility too, built once."""
        if self._tagged is None:
            facility = channel_facility(self.channel)
            body = {"presence": {"facility": facility, "channel": label, "event": self.event, "user": self.user}}
            self._tagged = _json_frame(body)
        return self._tagged


class PresenceTracker:
    """This process's sockets per user and channel, kept in Redis; owned by the broker.

    ``client`` gives the broker's command client and ``slots`` bounds the commands in flight.
    """

    def __init__(self, config: Config, client: Callable[[], AsyncCommandClient], slots: asyncio.Semaphore) -> None:
        self.config = config
        self.process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._client = client
        self._slots = slots
        self._expiry_ms = int(config.presence_interval * EXPIRY_INTERVALS * 1000)
        self._sharded = config.redis_sharded_pubsub
        # channel -> user -> sockets here ('' for anonymous ones)
        self._sockets: dict[str, dict[str, int]] = {}
        # (channel, user) -> whether the user was present here when last written: what to write next.
        self._changed: dict[tuple[str, str], bool] = {}
        self._writing: asyncio.Task[None] | None = None
        # Changes and refreshes go to Redis one batch at a time, in the order they were made.
        self._writes = asyncio.Lock()
        self._timer: PeriodicCallback | None = None
        self._failing = False

    def tracks(self, facility: str) -> bool:
        """Whether presence is kept for ``facility``."""
        return facility in self.config.presence

    # -- sockets coming and going ---------------------------------------------------------------

    def add(self, channels: Sequence[str], user: str | None) -> None:
        """Count one socket of ``user`` (None: anonymous) on ``channels``."""
        name = user or ""
        for channel in channels:
            counts = self._sockets.setdefault(channel, {})
            count = counts.get(name, 0)
            counts[name] = count + 1
            if count == 0:
                self._change(channel, name, was_present=False)

    def remove(self, channels: Sequence[str], user: str | None) -> None:
        """Stop counting one socket of ``user`` on ``channels``."""
        name = user or ""
        for channel in channels:
            counts = self._sockets.get(channel)
            if not counts or name not in counts:
                continue
            if counts[name] > 1:
                counts[name] -= 1
                continue
            del counts[name]
            self._change(channel, name, was_present=True)

    def local(self, channel: str) -> dict[str, int]:
        """This process's sockets per user on ``channel`` (for tests and health checks)."""
        return dict(self._sockets.get(channel, {}))

    @property
    def entries(self) -> int:
        """How many (channel, user) pairs this process holds sockets for: its entries in Redis."""
        return sum(len(counts) for counts in self._sockets.values())

    def _change(self, channel: str, user: str, *, was_present: bool) -> None:
        # Only the state when last written matters: a user gone and back within one batch
        # announces nothing.
        self._changed.setdefault((channel, user), was_present)
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._write_changes())

    async def _write_changes(self) -> None:
        try:
            await asyncio.sleep(0)  # the batch: every change of this loop turn
            async with self._writes:
                await self._flush_changes()
        finally:
            self._writing = None

    async def _flush_changes(self) -> None:
        # Under self._writes: a change reaches Redis before any refresh that counts it, or the
        # other processes would see the user here before the change script decides on a join.
        while self._changed:
            changed, self._changed = self._changed, {}
            commands = []
            for (channel, user), was_present in changed.items():
                sockets = self._sockets.get(channel, {}).get(user, 0)
                if (sockets > 0) != was_present:
                    commands.append(
                        redis_commands.presence_change_command(
                            channel, self.process, user, sockets, expiry_ms=self._expiry_ms, sharded=self._sharded
                        )
                    )
            await self._send(commands)

    # -- the timer -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start rewriting this process's entries every ``presence_interval`` seconds."""
        if self._timer is None and self.config.presence:
            self._timer = periodic(self._tick, self.config.presence_interval)
            self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        IOLoop.current().add_future(asyncio.ensure_future(self.refresh()), lambda future: future.result())

    async def refresh(self) -> None:
        """Rewrite every entry of this process; a channel without sockets here loses its entry."""
        async with self._writes:
            await self._flush_changes()
            await self._rewrite()

    async def _rewrite(self) -> None:
        commands = []
        for channel, counts in list(self._sockets.items()):
            commands.append(
                redis_commands.presence_refresh_command(
                    channel, self.process, counts, expiry_ms=self._expiry_ms, sharded=self._sharded
                )
            )
            if not counts:
                del self._sockets[channel]
        for start in range(0, len(commands), _BATCH):
            await self._send(commands[start : start + _BATCH])

    async def aclose(self) -> None:
        """Announce this process's users gone and remove its entries; called by the broker as it closes."""
        self.stop()
        if self._writing is not None:
            await self._writing
        async with self._writes:
            await self._flush_changes()
            commands = [
                redis_commands.presence_change_command(
                    channel, self.process, user, 0, expiry_ms=self._expiry_ms, sharded=self._sharded
                )
                for channel, counts in self._sockets.items()
                for user in counts
            ]
            self._sockets = {channel: {} for channel in self._sockets}
            await self._send(commands)
            await self._rewrite()

    async def _send(self, commands: Sequence[redis_commands.Command]) -> None:
        if not commands:
            return
        try:
            async with self._slots:
                await redis_commands.asend_scripts(self._client(), commands)
        except CONNECTION_ERRORS as exc:
            # The timer writes everything again; the events of this batch are lost with Redis.
            if not self._failing:
                logger.warning("could not write presence to redis: %s", exc)
            self._failing = True
            return
        self._failing = False
