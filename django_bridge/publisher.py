"""RedisPublisher: send messages to websockets from Django code, and read persisted ones.

Wire-compatible with ws4redis: the same channel keys (see :mod:`ws4redis_tornado.channels`), the
message PUBLISHed and persisted under the channel's own key.

Redis is where ``WS4REDIS_CONNECTION`` says, as for the broker: a single server, the master Redis
Sentinel names (found again after a failover), or a Redis Cluster. One client per process and
setting is created on first use (a separate one per event loop for the ``a*`` methods), so
``override_settings`` of ``WS4REDIS_CONNECTION`` takes effect on the next call.
:func:`close_pools` and :func:`aclose_pools` release them, e.g. when a server shuts down.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from ws4redis_tornado import redis_commands
from ws4redis_tornado.channels import SELF, Audience, channel_key, validate_facility
from ws4redis_tornado.config import Config
from ws4redis_tornado.connections import AsyncCommandClient, CommandClient, RedisTopology, topology_key
from ws4redis_tornado.messages import RedisMessage, decode_payload
from ws4redis_tornado.publisher import apublish, publish, publish_arguments
from ws4redis_tornado.revocation import close_command, control_channel

from .conf import get_config
from .sessions import database_connections, group_names

__all__ = [
    "SELF",
    "RedisMessage",
    "RedisPublisher",
    "UnresolvedSelfWarning",
    "aclose_pools",
    "close_pools",
    "close_websockets",
]

_ANY = "any"
# fetch_message looks for the most specific audience first, as ws4redis did.
_FETCH_ORDER = (Audience.SESSION, Audience.USER, Audience.GROUP, Audience.BROADCAST)


class UnresolvedSelfWarning(RuntimeWarning):
    """SELF in a publisher's audience stood for nobody (no user, no groups, no session) and was dropped.

    A message meant for the request's own audience would otherwise reach nobody without a word.
    Silence it with ``warnings.filterwarnings("ignore", category=UnresolvedSelfWarning)`` where
    that is expected, e.g. for anonymous visitors.
    """


class RedisPublisher:
    """Publishes to the channels of one facility; the audience is fixed when it is created.

    ``users``, ``groups`` and ``sessions`` are lists of names (user names, group names, session
    keys); :data:`SELF` in them stands for the ``request``'s user, that user's groups (read from
    the database) or the request's session. Resolving SELF reads ``request.user`` and
    ``request.session``, which may query the database: in async code create the publisher
    through ``sync_to_async``.

    Attributes:
        publish_channels: the Redis keys :meth:`publish_message` publishes to.
    """

    def __init__(
        self,
        *,
        facility: str | None = None,
        broadcast: bool = False,
        users: Iterable[Any] = (),
        groups: Iterable[Any] = (),
        sessions: Iterable[Any] = (),
        request: HttpRequest | None = None,
    ) -> None:
        self.facility = None if facility is None else validate_facility(facility)
        self.request = request
        audience = {
            Audience.BROADCAST: [None] if broadcast else [],
            Audience.GROUP: _names(groups, "groups", request, _request_groups),
            Audience.USER: _names(users, "users", request, _request_user),
            Audience.SESSION: _names(sessions, "sessions", request, _request_session),
        }
        self.publish_channels: list[str] = []
        if facility is None:
            if any(audience.values()):
                raise ValueError("a publisher with an audience needs a facility")
            return
        prefix = get_config().prefix
        for kind, idents in audience.items():
            for ident in idents:
                key = channel_key(kind, facility, ident, prefix=prefix)
                if key not in self.publish_channels:
                    self.publish_channels.append(key)

    def publish_message(self, message: RedisMessage | str | bytes, expire: int | None = None) -> int:
        """Publish ``message`` and persist it for ``expire`` seconds, in one round trip.

        ``expire`` defaults to ``WS4REDIS_EXPIRE``; 0 publishes without persisting. Returns how many
        subscribers Redis delivered it to, summed over the channels. In a Redis Cluster a node
        counts only its own subscribers, so the count may be lower than the deliveries, and the
        round trips are one per node holding some of the channels.

        Raises:
            BrokerUnavailable: Redis cannot be reached.
        """
        config = get_config()
        publish_arguments(message, expire, config)  # a wrong argument fails even without channels
        if not self.publish_channels:
            return 0
        with _unavailable("publish", config):
            client = _client(config)  # a Cluster client connects here, to learn the slots
        return sum(publish(client, self.publish_channels, message, config=config, expire=expire))

    async def apublish_message(self, message: RedisMessage | str | bytes, expire: int | None = None) -> int:
        """The async twin of :meth:`publish_message`."""
        config = get_config()
        publish_arguments(message, expire, config)
        if not self.publish_channels:
            return 0
        with _unavailable("publish", config):
            client = _async_client(config)
        return sum(await apublish(client, self.publish_channels, message, config=config, expire=expire))

    def fetch_message(
        self, request: HttpRequest | None, facility: str, audience: str | Audience = _ANY
    ) -> RedisMessage | None:
        """Return the message persisted for ``request`` in ``facility``, or None.

        ``audience`` is ``'broadcast'``, ``'group'``, ``'user'``, ``'session'`` or ``'any'``; with
        ``'any'`` the session's message wins over the user's, then the groups', then the broadcast.
        An anonymous user has no user and no group message.
        """
        config = get_config()
        keys = _fetch_keys(request, facility, audience, config.prefix)
        if not keys:
            return None
        with _unavailable("read", config):
            return _first(redis_commands.fetch(_client(config), keys))

    async def afetch_message(
        self, request: HttpRequest | None, facility: str, audience: str | Audience = _ANY
    ) -> RedisMessage | None:
        """The async twin of :meth:`fetch_message`; reads the request's user in a thread."""
        config = get_config()
        if request is None:
            keys = _fetch_keys(None, facility, audience, config.prefix)
        else:
            keys = await sync_to_async(_fetch_keys_in_thread)(request, facility, audience, config.prefix)
        if not keys:
            return None
        with _unavailable("read", config):
            return _first(await redis_commands.afetch(_async_client(config), keys))


def close_websockets(*, users: Iterable[str] = (), sessions: Iterable[str] = ()) -> int:
    """Close the open websockets of ``users`` and ``sessions`` (session keys) in every server process.

    ``users`` are those whose rights changed: their sockets close with 4403 ("access changed"),
    ws4redis.js reconnects, and the new handshake gets the rights of that moment. ``sessions``
    are sessions that ended: their sockets close with 4401 ("signed out"), and a handshake with
    one of those keys is refused for a minute. django_bridge calls it on logout and when a user's
    groups or ``is_active`` change; call it when your own rules change. Returns how many server
    processes heard the command.

    Raises:
        BrokerUnavailable: Redis cannot be reached.
    """
    users, sessions = list(users), list(sessions)
    if not users and not sessions:
        return 0
    config = get_config()
    command = close_command(users=users, sessions=sessions)
    with _unavailable("publish", config):
        return sum(redis_commands.publish(_client(config), [control_channel(config.prefix)], command, expire=0))


# -- audiences -------------------------------------------------------------------------------------


def _names(
    values: Any, argument: str, request: HttpRequest | None, resolve: Callable[[HttpRequest | None], list[str]]
) -> list[str]:
    """Return the idents of one audience, with SELF replaced by what ``resolve`` finds in the request."""
    if values is True or isinstance(values, str):
        # Deprecated by ws4redis 0.4.5 (2015); still accepted, as it was there.
        replacement = "[SELF]" if values is True else f"[{values!r}]"
        warnings.warn(
            f"pass {argument}={replacement} instead of {argument}={values!r}", DeprecationWarning, stacklevel=3
        )
        values = [SELF] if values is True else [values]
    elif values is False or values is None:
        values = ()
    names: list[str] = []
    for value in values:
        if value is not SELF:
            names.append(str(value))
            continue
        resolved = resolve(request)
        if not resolved:
            reason = _why_self_is_nobody(argument, request)
            warnings.warn(
                f"SELF in {argument}= stands for nobody and was dropped: {reason}", UnresolvedSelfWarning, stacklevel=3
            )
        names.extend(resolved)
    return names


def _why_self_is_nobody(argument: str, request: HttpRequest | None) -> str:
    """Say why SELF resolved to nobody in ``argument`` (users, groups or sessions)."""
    if request is None:
        return "no request= was given"
    session = getattr(request, "session", None)
    if argument == "sessions":
        if session is None:
            return "the request has no session (is SessionMiddleware installed?)"
        return "the request's session has no key yet (it is saved at the end of its first response)"
    user = getattr(request, "user", None)
    if user is None:
        return "the request has no user (is AuthenticationMiddleware installed?)"
    if not user.is_authenticated:
        return "the request's user is anonymous"
    return f"{user.get_username()!r} is in no group"


def _request_user(request: HttpRequest | None) -> list[str]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    return [user.get_username()]


def _request_groups(request: HttpRequest | None) -> list[str]:
    # The groups as they are now, as the handshakes see them; not those stored at login.
    if not _request_user(request):
        return []
    return list(group_names(getattr(request, "user", None)))


def _request_session(request: HttpRequest | None) -> list[str]:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    return [key] if key else []


_RESOLVERS = {
    Audience.SESSION: _request_session,
    Audience.USER: _request_user,
    Audience.GROUP: _request_groups,
}


def _fetch_keys(request: HttpRequest | None, facility: str, audience: str | Audience, prefix: str) -> list[str]:
    validate_facility(facility)
    wanted = _FETCH_ORDER if audience == _ANY else (_audience(audience),)
    keys = []
    for kind in wanted:
        if kind is Audience.BROADCAST:
            keys.append(channel_key(kind, facility, prefix=prefix))
        else:
            keys.extend(channel_key(kind, facility, ident, prefix=prefix) for ident in _RESOLVERS[kind](request))
    return keys


def _fetch_keys_in_thread(request: HttpRequest, facility: str, audience: str | Audience, prefix: str) -> list[str]:
    # No request cycle closes this thread's database connections: do it as the handshakes do.
    with database_connections():
        return _fetch_keys(request, facility, audience, prefix)


def _audience(audience: str | Audience) -> Audience:
    try:
        return Audience(audience)
    except ValueError:
        names = ", ".join(repr(kind.value) for kind in _FETCH_ORDER)
        raise ValueError(f"audience is {audience!r}; expected one of {names} or {_ANY!r}") from None


# -- commands ----------------------------------------------------------------------------------------


def _first(values: Sequence[bytes | None]) -> RedisMessage | None:
    for value in values:
        if value is not None:
            return decode_payload(value)
    return None


def _unavailable(action: str, config: Config) -> AbstractContextManager[None]:
    return redis_commands.unavailable_on_error(action, address=config.redis_address)


# -- connections ---------------------------------------------------------------------------------------
#
# One client per process and topology (and, for the a* methods, per event loop), made on first use
# by the core's RedisTopology, as the broker's are: a single server, the master a Sentinel names,
# or a Cluster.


@dataclass
class _Connected:
    """A client, and the topology that made it and closes it."""

    topology: RedisTopology
    client: Any  # CommandClient or AsyncCommandClient


_lock = threading.Lock()
_clients: dict[tuple[Any, ...], _Connected] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Connected]]
_async_clients = weakref.WeakKeyDictionary()


def _client(config: Config) -> CommandClient:
    return _cached(_clients, config, RedisTopology.sync_command_client)


def _async_client(config: Config) -> AsyncCommandClient:
    # An asyncio connection belongs to the loop it was made on: one set of clients per loop.
    with _lock:
        clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    return _cached(clients, config, RedisTopology.command_client)


def _cached(clients: dict[tuple[Any, ...], _Connected], config: Config, make: Callable[[RedisTopology], Any]) -> Any:
    key = topology_key(config)
    with _lock:
        connected = clients.get(key)
        if connected is None:
            topology = RedisTopology(config)
            # A synchronous Cluster client connects here, to learn the slots.
            connected = clients[key] = _Connected(topology, make(topology))
    return connected.client


def close_pools() -> None:
    """Disconnect the synchronous clients (and their sentinels); they reconnect on the next call."""
    with _lock:
        connected = list(_clients.values())
        _clients.clear()
    for each in connected:
        each.topology.close()


async def aclose_pools() -> None:
    """Disconnect the running loop's clients (and their sentinels); call it before the loop closes."""
    with _lock:
        connected = list(_async_clients.pop(asyncio.get_running_loop(), {}).values())
    for each in connected:
        await each.topology.aclose()
