"""The Redis commands that publish and read messages, written once for redis-py's sync and asyncio clients.

The broker (asyncio) and django_bridge's ``RedisPublisher`` (both) send these. Each pair of twins
shares the pure part, which commands to send and how to read their replies, and differs only in
the call that does the I/O; the pure part is tested without a server. A new way to publish or
read (say, a history kept in a Redis Stream) belongs here in the same shape: a builder, a reader,
and the two thin twins.

Failures are reported in one way too: :data:`CONNECTION_ERRORS` is what means "Redis cannot
serve right now", and :func:`unavailable` turns it into the project's
:class:`~ws4redis_tornado.exceptions.BrokerUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from .connections import AsyncCommandClient, CommandClient
from .exceptions import BrokerUnavailable

__all__ = [
    "CONNECTION_ERRORS",
    "afetch",
    "apublish",
    "fetch",
    "publish",
    "publish_commands",
    "receivers",
    "unavailable",
    "unavailable_on_error",
]

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    # redis-py's root: its ConnectionError (also MasterNotFoundError when no sentinel names a
    # master, AuthenticationError, BusyLoadingError), TimeoutError and ClusterDownError, and the
    # server's error replies, which have always meant to the broker that Redis cannot serve.
    RedisError,
    # Not a RedisError, yet says as much: no node of a Cluster could be reached to learn the slots.
    RedisClusterException,
    # Socket and SSL errors that reach us unwrapped, and the builtin ConnectionError and
    # TimeoutError the broker raises itself (an unanswered ping, an unconfirmed subscription).
    OSError,
)
"""The errors that mean Redis cannot serve right now; see :func:`unavailable`."""

Command = tuple[Any, ...]


# -- pure: the commands and their replies ---------------------------------------------------------


def publish_commands(channels: Sequence[str], payload: bytes, *, expire: int) -> list[Command]:
    """PUBLISH ``payload`` to each channel and, if ``expire`` > 0, persist it there for that many seconds.

    The persisted message lives under the channel's own key, as in ws4redis.
    """
    commands: list[Command] = []
    for channel in channels:
        commands.append(("PUBLISH", channel, payload))
        if expire > 0:
            commands.append(("SET", channel, payload, "EX", expire))
    return commands


def receivers(results: Sequence[Any], *, expire: int) -> list[int]:
    """Read the receiver count of each channel from the replies to :func:`publish_commands`."""
    return [int(count) for count in results[:: 2 if expire > 0 else 1]]


def unavailable(exc: BaseException, *, address: str, action: str | None = None) -> BrokerUnavailable:
    """The BrokerUnavailable saying what could not be done (``action``), where Redis was sought, and why."""
    doing = f"cannot {action}: " if action else ""
    error = BrokerUnavailable(f"{doing}redis unreachable at {address}: {exc}")
    error.__cause__ = exc
    return error


@contextmanager
def unavailable_on_error(action: str, *, address: str) -> Iterator[None]:
    """Raise :func:`unavailable` for any of :data:`CONNECTION_ERRORS` raised inside the block."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise unavailable(exc, address=address, action=action) from exc


# -- the twins: the same calls, with and without await --------------------------------------------


def _pipeline(client: CommandClient | AsyncCommandClient, commands: Sequence[Command]) -> Any:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        # Not pipe.publish(): redis-py refuses that in a Cluster's pipeline, though PUBLISH works there.
        pipe.execute_command(*command)
    return pipe


def _mget(client: CommandClient | AsyncCommandClient) -> Any:
    # Channels hash to different slots, and a Cluster refuses one MGET across them: it reads slot by slot.
    return client.mget_nonatomic if isinstance(client, RedisCluster | AsyncRedisCluster) else client.mget


def publish(client: CommandClient, channels: Sequence[str], payload: bytes, *, expire: int) -> list[int]:
    """Send :func:`publish_commands` in one round trip (one per node in a Cluster); return each channel's receivers.

    In a Cluster a node counts only its own subscribers.
    """
    if not channels:
        return []
    pipe = _pipeline(client, publish_commands(channels, payload, expire=expire))
    return receivers(pipe.execute(), expire=expire)


async def apublish(client: AsyncCommandClient, channels: Sequence[str], payload: bytes, *, expire: int) -> list[int]:
    """The async twin of :func:`publish`."""
    if not channels:
        return []
    pipe = _pipeline(client, publish_commands(channels, payload, expire=expire))
    return receivers(await pipe.execute(), expire=expire)


def fetch(client: CommandClient, keys: Sequence[str]) -> list[bytes | None]:
    """The message persisted under each key (None where there is none), by MGET."""
    return list(_mget(client)(keys)) if keys else []


async def afetch(client: AsyncCommandClient, keys: Sequence[str]) -> list[bytes | None]:
    """The async twin of :func:`fetch`."""
    return list(await _mget(client)(keys)) if keys else []
