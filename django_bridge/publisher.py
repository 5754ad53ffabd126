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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aredis
from asgiref.sync import sync_to_async
from django.http import HttpRequest
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException
from redis.sentinel import Sentinel

from ws4redis_tornado.channels import SELF, Audience, channel_key, validate_facility
from ws4redis_tornado.compat.redis import aclose_sentinel, close_sentinel
from ws4redis_tornado.config import Config
from ws4redis_tornado.exceptions import BrokerUnavailable
from ws4redis_tornado.messages import RedisMessage, decode_payload
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
# MasterNotFoundError (no sentinel names a master yet) is a ConnectionError.
_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, OSError)


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
        payload, expire = _prepare(message, expire, get_config())
        if not self.publish_channels:
            return 0
        with _unavailable("publish"):
            pipe = _client().pipeline(transaction=False)
            _queue(pipe, self.publish_channels, payload, expire)
            return _receivers(pipe.execute(), expire)

    async def apublish_message(self, message: RedisMessage | str | bytes, expire: int | None = None) -> int:
        """The async twin of :meth:`publish_message`."""
        payload, expire = _prepare(message, expire, get_config())
        if not self.publish_channels:
            return 0
        with _unavailable("publish"):
            pipe = (await _aclient()).pipeline(transaction=False)
            _queue(pipe, self.publish_channels, payload, expire)
            return _receivers(await pipe.execute(), expire)

    def fetch_message(
        self, request: HttpRequest | None, facility: str, audience: str | Audience = _ANY
    ) -> RedisMessage | None:
        """Return the message persisted for ``request`` in ``facility``, or None.

        ``audience`` is ``'broadcast'``, ``'group'``, ``'user'``, ``'session'`` or ``'any'``; with
        ``'any'`` the session's message wins over the user's, then the groups', then the broadcast.
        An anonymous user has no user and no group message.
        """
        keys = _fetch_keys(request, facility, audience, get_config().prefix)
        if not keys:
            return None
        with _unavailable("read"):
            client = _client()
            return _first(client.mget_nonatomic(keys) if isinstance(client, RedisCluster) else client.mget(keys))

    async def afetch_message(
        self, request: HttpRequest | None, facility: str, audience: str | Audience = _ANY
    ) -> RedisMessage | None:
        """The async twin of :meth:`fetch_message`; reads the request's user in a thread."""
        prefix = get_config().prefix
        if request is None:
            keys = _fetch_keys(None, facility, audience, prefix)
        else:
            keys = await sync_to_async(_fetch_keys_in_thread)(request, facility, audience, prefix)
        if not keys:
            return None
        with _unavailable("read"):
            client = await _aclient()
            # The keys of one request lie in several slots: a Cluster reads them slot by slot.
            mget = client.mget_nonatomic if isinstance(client, AsyncRedisCluster) else client.mget
            return _first(await mget(keys))


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
    channel = control_channel(get_config().prefix)
    with _unavailable("publish"):
        pipe = _client().pipeline(transaction=False)
        _queue(pipe, [channel], close_command(users=users, sessions=sessions), 0)
        return _receivers(pipe.execute(), 0)


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


def _prepare(message: RedisMessage | str | bytes, expire: int | None, config: Config) -> tuple[bytes, int]:
    if not isinstance(message, RedisMessage):
        message = RedisMessage(message)
    if expire is None:
        expire = config.expire
    if isinstance(expire, bool) or not isinstance(expire, int) or expire < 0:
        raise ValueError(f"expire is {expire!r}; expected a whole number of seconds >= 0, or None")
    return message.payload, expire


def _queue(pipe: Any, channels: Sequence[str], payload: bytes, expire: int) -> None:
    for channel in channels:
        # Not pipe.publish(): redis-py refuses that in a Cluster's pipeline, though PUBLISH works there.
        pipe.execute_command("PUBLISH", channel, payload)
        if expire > 0:
            pipe.set(channel, payload, ex=expire)


def _receivers(results: Sequence[Any], expire: int) -> int:
    return sum(int(count) for count in results[:: 2 if expire > 0 else 1])


def _first(values: Sequence[bytes | None]) -> RedisMessage | None:
    for value in values:
        if value is not None:
            return decode_payload(value)
    return None


@contextmanager
def _unavailable(action: str) -> Iterator[None]:
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        address = get_config().redis_address
        raise BrokerUnavailable(f"cannot {action}: redis unreachable at {address}: {exc}") from exc


# -- connections ---------------------------------------------------------------------------------------
#
# One client per process and topology (and, for the a* methods, per event loop), made on first use
# and shaped as the broker's command client is (ws4redis_tornado.connections): a single server,
# the master a Sentinel names, or a Cluster.


@dataclass
class _Connected:
    """A client, and the Sentinel that finds its master (closed along with it)."""

    client: Any  # redis.Redis or RedisCluster, or their asyncio twins
    sentinel: Any = None


_lock = threading.Lock()
_clients: dict[tuple[Any, ...], _Connected] = {}
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Connected]]
_async_clients = weakref.WeakKeyDictionary()


def _client_key(config: Config) -> tuple[Any, ...]:
    # repr: option values (an SSL context, say) need not be hashable.
    return (
        config.redis_url,
        repr(sorted(config.redis_options.items())),
        config.redis_sentinels,
        config.redis_service_name,
        repr(sorted(config.redis_sentinel_options.items())),
        config.redis_cluster_nodes,
    )


def _options(config: Config) -> dict[str, Any]:
    return {**config.redis_options, "decode_responses": False}


def _client() -> redis.Redis | RedisCluster:
    config = get_config()
    key = _client_key(config)
    with _lock:
        connected = _clients.get(key)
        if connected is None:
            connected = _clients[key] = _connect(config)
    return connected.client


def _connect(config: Config) -> _Connected:
    options = _options(config)
    if config.redis_sentinels:
        sentinel = Sentinel(
            list(config.redis_sentinels), sentinel_kwargs=dict(config.redis_sentinel_options), **options
        )
        return _Connected(sentinel.master_for(config.redis_service_name), sentinel)
    if config.redis_cluster_nodes:
        nodes = [ClusterNode(host, port) for host, port in config.redis_cluster_nodes]
        try:
            # Connects at once, to learn the slots.
            return _Connected(RedisCluster(startup_nodes=nodes, **options))
        except RedisClusterException as exc:
            raise redis.ConnectionError(str(exc)) from exc
    return _Connected(redis.Redis(connection_pool=redis.ConnectionPool.from_url(config.redis_url, **options)))


async def _aclient() -> aredis.Redis | AsyncRedisCluster:
    # An asyncio connection belongs to the loop it was made on: one set of clients per loop.
    loop = asyncio.get_running_loop()
    config = get_config()
    key = _client_key(config)
    with _lock:
        clients = _async_clients.setdefault(loop, {})
        connected = clients.get(key)
        if connected is None:
            connected = clients[key] = _aconnect(config)
    if isinstance(connected.client, AsyncRedisCluster):
        try:
            await connected.client.initialize()  # learns the slots once; a no-op afterwards
        except RedisClusterException as exc:
            raise redis.ConnectionError(str(exc)) from exc
    return connected.client


def _aconnect(config: Config) -> _Connected:
    options = _options(config)
    if config.redis_sentinels:
        sentinel = AsyncSentinel(
            list(config.redis_sentinels), sentinel_kwargs=dict(config.redis_sentinel_options), **options
        )
        return _Connected(sentinel.master_for(config.redis_service_name), sentinel)
    if config.redis_cluster_nodes:
        nodes = [AsyncClusterNode(host, port) for host, port in config.redis_cluster_nodes]
        return _Connected(AsyncRedisCluster(startup_nodes=nodes, **options))
    return _Connected(aredis.Redis(connection_pool=aredis.ConnectionPool.from_url(config.redis_url, **options)))


def close_pools() -> None:
    """Disconnect the synchronous clients (and their sentinels); they reconnect on the next call."""
    with _lock:
        connected = list(_clients.values())
        _clients.clear()
    for each in connected:
        each.client.close()
        if not isinstance(each.client, RedisCluster):
            each.client.connection_pool.disconnect()
        if each.sentinel is not None:
            close_sentinel(each.sentinel)


async def aclose_pools() -> None:
    """Disconnect the running loop's clients (and their sentinels); call it before the loop closes."""
    with _lock:
        connected = list(_async_clients.pop(asyncio.get_running_loop(), {}).values())
    for each in connected:
        await each.client.aclose()
        if not isinstance(each.client, AsyncRedisCluster):
            await each.client.connection_pool.disconnect()
        if each.sentinel is not None:
            await aclose_sentinel(each.sentinel)
