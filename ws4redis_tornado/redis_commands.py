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
from .history import ID_MARKER, history_key

__all__ = [
    "CONNECTION_ERRORS",
    "afetch",
    "apublish",
    "aread_after",
    "aread_last",
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

# KEYS: the channel (its persisted copy), its stream. ARGV: payload, history size, history TTL in
# ms, expire in s (0: not persisted), the id marker. Appending and publishing in one script gives
# the live message and the stream entry the same id, and nobody sees one without the other.
_PUBLISH_WITH_HISTORY = """
local id = redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ARGV[4] ~= '0' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4]) end
return {id, redis.call('PUBLISH', KEYS[1], ARGV[5] .. id .. '\\0' .. ARGV[1])}
"""

# KEYS: the channel, its stream. The persisted message and the stream's last entry, read together.
_READ_LAST = """
local entry = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if entry then return {redis.call('GET', KEYS[1]), entry[1], entry[2][2]} end
return {redis.call('GET', KEYS[1]), false, false}
"""

# KEYS: the channel, its stream. ARGV: a position, the history size. {'ok', id, payload, ...} with
# the entries after the position, or {'lost', last id} when the stream does not continue from it:
# the position was trimmed, expired or never in this stream. '0-0' (the stream was empty) holds
# while the stream is absent, or has never been trimmed.
_READ_AFTER = """
local entries
if ARGV[1] == '0-0' then
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'ok'} end
  if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then
    local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
    return {'lost', last[1]}
  end
  entries = redis.call('XRANGE', KEYS[2], '-', '+')
else
  entries = redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', tonumber(ARGV[2]) + 1)
  if entries[1] == nil or entries[1][1] ~= ARGV[1] then
    local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
    return {'lost', last and last[1] or false}
  end
  table.remove(entries, 1)
end
local reply = {'ok'}
for _, entry in ipairs(entries) do
  reply[#reply + 1] = entry[1]
  reply[#reply + 1] = entry[2][2]
end
return reply
"""


# -- pure: the commands and their replies ---------------------------------------------------------


def publish_commands(
    channels: Sequence[str], payload: bytes, *, expire: int, history_size: int = 0, history_ttl: int = 0
) -> list[Command]:
    """PUBLISH ``payload`` to each channel and, if ``expire`` > 0, persist it there for that many seconds.

    The persisted message lives under the channel's own key, as in ws4redis. With
    ``history_size`` > 0 each channel's message is also appended to its stream, kept for
    ``history_ttl`` seconds, and published carrying the entry's id (one script per channel).
    """
    if history_size > 0:
        return [
            (
                "EVAL",
                _PUBLISH_WITH_HISTORY,
                2,
                channel,
                history_key(channel),
                payload,
                history_size,
                history_ttl * 1000,
                expire,
                ID_MARKER,
            )
            for channel in channels
        ]
    commands: list[Command] = []
    for channel in channels:
        commands.append(("PUBLISH", channel, payload))
        if expire > 0:
            commands.append(("SET", channel, payload, "EX", expire))
    return commands


def receivers(results: Sequence[Any], *, expire: int, history_size: int = 0) -> list[int]:
    """Read the receiver count of each channel from the replies to :func:`publish_commands`."""
    if history_size > 0:
        return [int(count) for _, count in results]
    return [int(count) for count in results[:: 2 if expire > 0 else 1]]


def read_last_commands(channels: Sequence[str]) -> list[Command]:
    """Read each channel's persisted message and its stream's last entry, together (see :func:`aread_last`)."""
    return [("EVAL", _READ_LAST, 2, channel, history_key(channel)) for channel in channels]


def last_entries(results: Sequence[Any]) -> list[tuple[bytes | None, str | None, bytes | None]]:
    """Read the replies to :func:`read_last_commands`."""
    return [(persisted, _text(top), payload) for persisted, top, payload in results]


def read_after_commands(positions: Sequence[tuple[str, str]], *, history_size: int) -> list[Command]:
    """Read each ``(channel, position)``'s stream after the position (see :func:`aread_after`)."""
    return [
        ("EVAL", _READ_AFTER, 2, channel, history_key(channel), position, history_size)
        for channel, position in positions
    ]


def entries_after(results: Sequence[Any]) -> list[tuple[bool, list[tuple[str, bytes]], str | None]]:
    """Read the replies to :func:`read_after_commands`: (continues, entries, last id when it does not)."""
    read = []
    for reply in results:
        if reply[0] == b"lost":
            read.append((False, [], _text(reply[1])))
            continue
        pairs = reply[1:]
        read.append((True, [(_text(pairs[i]), pairs[i + 1]) for i in range(0, len(pairs), 2)], None))
    return read  # type: ignore[return-value]


def _text(value: bytes | None) -> str | None:
    return value.decode("ascii") if value is not None else None


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


def publish(
    client: CommandClient,
    channels: Sequence[str],
    payload: bytes,
    *,
    expire: int,
    history_size: int = 0,
    history_ttl: int = 0,
) -> list[int]:
    """Send :func:`publish_commands` in one round trip (one per node in a Cluster); return each channel's receivers.

    In a Cluster a node counts only its own subscribers.
    """
    if not channels:
        return []
    commands = publish_commands(channels, payload, expire=expire, history_size=history_size, history_ttl=history_ttl)
    return receivers(_pipeline(client, commands).execute(), expire=expire, history_size=history_size)


async def apublish(
    client: AsyncCommandClient,
    channels: Sequence[str],
    payload: bytes,
    *,
    expire: int,
    history_size: int = 0,
    history_ttl: int = 0,
) -> list[int]:
    """The async twin of :func:`publish`."""
    if not channels:
        return []
    commands = publish_commands(channels, payload, expire=expire, history_size=history_size, history_ttl=history_ttl)
    return receivers(await _pipeline(client, commands).execute(), expire=expire, history_size=history_size)


async def aread_last(
    client: AsyncCommandClient, channels: Sequence[str]
) -> list[tuple[bytes | None, str | None, bytes | None]]:
    """Each channel's persisted message, and its stream's last id and payload, in one round trip.

    Read before a socket that opted in subscribes: where it stands on its first connection.
    """
    if not channels:
        return []
    return last_entries(await _pipeline(client, read_last_commands(channels)).execute())


async def aread_after(
    client: AsyncCommandClient, positions: Sequence[tuple[str, str]], *, history_size: int
) -> list[tuple[bool, list[tuple[str, bytes]], str | None]]:
    """Each channel's entries after its position, in one round trip; see :func:`entries_after`."""
    if not positions:
        return []
    commands = read_after_commands(positions, history_size=history_size)
    return entries_after(await _pipeline(client, commands).execute())


def fetch(client: CommandClient, keys: Sequence[str]) -> list[bytes | None]:
    """The message persisted under each key (None where there is none), by MGET."""
    return list(_mget(client)(keys)) if keys else []


async def afetch(client: AsyncCommandClient, keys: Sequence[str]) -> list[bytes | None]:
    """The async twin of :func:`fetch`."""
    return list(await _mget(client)(keys)) if keys else []
