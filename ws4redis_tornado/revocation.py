"""Closing the open sockets of a user or a session, in every process, when their rights change.

A socket's channels are decided once, at its handshake. When a user signs out, leaves a group or
is deactivated, the sockets they already hold must not keep what they no longer may have: each
must close, so that its client reconnects and the new handshake gets the current rights.

Every process's :class:`~ws4redis_tornado.broker.Broker` subscribes, from its start, to one
control channel, ``[prefix:]ws4redis-tornado:control`` (:func:`control_channel`). No ws4redis
channel can take that name: each of those has an audience (``broadcast``, ``user``, ``group``,
``session``) right after the prefix, and a socket publishes only to channels of its own. Whoever
signs a user out or changes their rights publishes a command there (:func:`close_command`, or
:func:`close_sockets` from a running broker); every process then closes its matching sockets:

- a socket of one of the ``sessions`` with :data:`CLOSE_SIGNED_OUT` (4401, ``"signed out"``);
- any other socket of one of the ``users`` with :data:`CLOSE_ACCESS_CHANGED` (4403,
  ``"access changed"``).

A command is a JSON object: ``{"op": "close", "users": ["john"], "sessions": ["k9..."]}``. The
commands that arrive together are applied in one pass over the process's open sockets, so neither
the sockets' memory (two slots: the user name and the session key) nor the delivery of messages
pays for the mechanism. A handshake that was under way when a command arrived is refused, and a
signed-out session key stays refused for :data:`REMEMBER_SECONDS`, since the logout may still be
removing it from the session store when the client reconnects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from .frames import CloseCode

if TYPE_CHECKING:
    from .broker import Broker

__all__ = [
    "CLOSE_ACCESS_CHANGED",
    "CLOSE_SIGNED_OUT",
    "CONTROL_CHANNEL",
    "REMEMBER_SECONDS",
    "Revocations",
    "close_command",
    "close_sockets",
    "control_channel",
]

logger = logging.getLogger(__name__)

CONTROL_CHANNEL = "ws4redis-tornado:control"
"""The control channel's name after the prefix; see :func:`control_channel`."""

CLOSE_SIGNED_OUT = CloseCode.SIGNED_OUT
"""Close code of a socket whose session ended (reason ``"signed out"``)."""

CLOSE_ACCESS_CHANGED = CloseCode.ACCESS_CHANGED
"""Close code of a socket whose user's rights changed (reason ``"access changed"``)."""

SIGNED_OUT = "signed out"
ACCESS_CHANGED = "access changed"

REMEMBER_SECONDS = 60.0
"""How long a process remembers a command, to refuse the handshakes it caught under way."""

_MAX_REMEMBERED = 100_000
_CLOSE = "close"


class RevocableSocket(Protocol):
    """What :class:`Revocations` needs of a socket: who it connected as, and how to close it."""

    user_name: str | None
    session_key: str | None

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


def control_channel(prefix: str = "") -> str:
    """Return the control channel of the processes sharing ``prefix`` (given without its ``:``)."""
    return f"{prefix}:{CONTROL_CHANNEL}" if prefix else CONTROL_CHANNEL


def close_command(*, users: Iterable[str] = (), sessions: Iterable[str] = ()) -> bytes:
    """Return the command that closes the sockets of ``users`` and ``sessions`` (session keys)."""
    command = {"op": _CLOSE, "users": sorted(set(map(str, users))), "sessions": sorted(set(map(str, sessions)))}
    return json.dumps(command, separators=(",", ":")).encode()


async def close_sockets(broker: Broker, *, users: Iterable[str] = (), sessions: Iterable[str] = ()) -> int:
    """Close the sockets of ``users`` and ``sessions`` in every process; return how many processes heard it.

    ``sessions`` are keys of sessions that ended: a handshake with one is refused for
    :data:`REMEMBER_SECONDS`. ``users`` are those whose rights changed: they may reconnect at once.

    Raises:
        BrokerUnavailable: Redis cannot be reached.
    """
    payload = close_command(users=users, sessions=sessions)
    # Plain PUBLISH even with sharded pub/sub: every process subscribes the control channel.
    (receivers,) = await broker.publish([control_channel(broker.config.prefix)], payload, sharded=False)
    return receivers


def parse_command(payload: bytes) -> tuple[frozenset[str], frozenset[str]] | None:
    """Return the users and sessions a command closes, or None when it is not one this version knows."""
    try:
        command = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(command, dict) or command.get("op") != _CLOSE:
        return None
    users, sessions = command.get("users", []), command.get("sessions", [])
    if not _strings(users) or not _strings(sessions):
        return None
    return frozenset(users), frozenset(sessions)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class Revocations:
    """One process's side of the control channel: closes the matching local sockets.

    The broker hands it every command (:meth:`take`); applications register the sets of their
    open sockets (:meth:`watch`); handshakes ask :meth:`refusal` before they open.

    Attributes:
        generation: how many commands this process has taken; a handshake notes it when it
            begins, to learn whether a command arrived while it was being authorised.
    """

    def __init__(self, *, remember: float = REMEMBER_SECONDS) -> None:
        self.generation = 0
        self._remember = remember
        self._socket_sets: list[Collection[RevocableSocket]] = []
        # The (generation, time) of the last command naming each user and session, in arrival
        # order: the expired ones are at the front.
        self._users: dict[str, tuple[int, float]] = {}
        self._sessions: dict[str, tuple[int, float]] = {}
        # The newest generation among the users forgotten: a handshake older than that cannot be told.
        self._forgotten = 0
        self._pending_users: set[str] = set()
        self._pending_sessions: set[str] = set()
        self._scheduled = False

    def watch(self, sockets: Collection[RevocableSocket]) -> None:
        """Close matching sockets of ``sockets`` (an application's set of open sockets) too."""
        if not any(known is sockets for known in self._socket_sets):
            self._socket_sets.append(sockets)

    def take(self, payload: bytes) -> None:
        """Take one command from the control channel; the sockets close on the IOLoop's next turn."""
        parsed = parse_command(payload)
        if parsed is None:
            logger.warning("ignoring a command on the control channel this version does not know: %.200r", payload)
            return
        users, sessions = parsed
        self.generation += 1
        now = time.monotonic()
        for remembered, names in ((self._users, users), (self._sessions, sessions)):
            for name in names:
                remembered.pop(name, None)
                remembered[name] = (self.generation, now)
        self._forget_old(now)
        self._pending_users |= users
        self._pending_sessions |= sessions
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._close_pending)

    def refusal(self, *, user: str | None, session: str | None, since: int) -> str | None:
        """Return why a handshake that began at generation ``since`` must not open, or None.

        It must not when its session was signed out lately, or when its user's rights changed
        after it began: it may have read them before the change.
        """
        if self.generation == since and not self._sessions:
            return None
        self._forget_old(time.monotonic())
        if session is not None and session in self._sessions:
            return SIGNED_OUT
        changed = self._users.get(user) if user is not None else None
        if (changed is not None and changed[0] > since) or self._forgotten > since:
            return ACCESS_CHANGED
        return None

    def _close_pending(self) -> None:
        self._scheduled = False
        users, self._pending_users = self._pending_users, set()
        sessions, self._pending_sessions = self._pending_sessions, set()
        closed = 0
        for sockets in self._socket_sets:
            # Closing a socket removes it from the set.
            for socket in tuple(sockets):
                if socket.session_key in sessions:
                    socket.close(CLOSE_SIGNED_OUT, SIGNED_OUT)
                elif socket.user_name in users:
                    socket.close(CLOSE_ACCESS_CHANGED, ACCESS_CHANGED)
                else:
                    continue
                closed += 1
        if closed:
            logger.info("closed %d websockets of %d users and %d sessions", closed, len(users), len(sessions))

    def _forget_old(self, now: float) -> None:
        horizon = now - self._remember
        for remembered in (self._users, self._sessions):
            while remembered:
                oldest = next(iter(remembered))
                generation, stamp = remembered[oldest]
                if stamp >= horizon and len(remembered) <= _MAX_REMEMBERED:
                    break
                del remembered[oldest]
                if remembered is self._users:
                    self._forgotten = max(self._forgotten, generation)
