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

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from .channels import companion_key
from .connections import AsyncCommandClient, CommandClient
from .exceptions import BrokerUnavailable
from .history import ID_MARKER, history_key

__all__ = [
    "CONNECTION_ERRORS",
    "READ_BATCH",
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

READ_BATCH = 64
"""Pub/sub messages a reader hands on before it lets the IOLoop run.

redis-py returns a reply it has already read without suspending, so under a flood one loop turn
would otherwise take all of Redis' backlog, and meanwhile nothing would be written to a socket,
accepted, or stopped. The broker's reader and each sharded master's reader count to it.
"""

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


def publish_verb(*, sharded: bool) -> str:
    """The command that publishes to a websocket channel: SPUBLISH with sharded pub/sub, else PUBLISH."""
    return "SPUBLISH" if sharded else "PUBLISH"


@functools.lru_cache(maxsize=16)
def _script(text: str, *, sharded: bool) -> str:
    """``text``, publishing with SPUBLISH when ``sharded``: the channel shares its keys' slot.

    The two variants are two scripts, each cached by Redis under its own SHA1.
    """
    return text.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'") if sharded else text


# -- presence ---------------------------------------------------------------------------------------
#
# Per channel C: a sorted set {C}:ws4redis-presence of process ids, scored by the time (Redis'
# clock, in ms) until which each process vouches for its entry, and per process a hash
# {C}:ws4redis-presence:<process id> of user name -> sockets ('' counts the anonymous ones). An
# entry lives PRESENCE_KEEP times its expiry, so that the first process to notice a dead one can
# still read whom it held and announce who left.

PRESENCE_MARKER = b"\xffws4redis:presence\x00"
"""Starts a payload that is a presence event (JSON), published on the channel itself."""

PRESENCE_KEEP = 3

_PRESENCE_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function present_elsewhere(index, own, user, now)
  for _, process in ipairs(redis.call('ZRANGEBYSCORE', index, now, '+inf')) do
    if process ~= own and redis.call('HEXISTS', index .. ':' .. process, user) == 1 then return true end
  end
  return false
end
local function announce(channel, marker, event, user)
  redis.call('PUBLISH', channel, marker .. cjson.encode({event = event, user = user}))
end
"""

# KEYS: the index, this process's entry. ARGV: process id, expiry ms, channel, marker, and this
# process's whole entry as a JSON object of user -> sockets (one argument: cheap to send). Also
# reaps the entries of processes that stopped vouching, announcing the users then present nowhere.
_PRESENCE_REFRESH = (
    _PRESENCE_COMMON
    + """
local now, own, expiry = now_ms(), ARGV[1], tonumber(ARGV[2])
local entry = cjson.decode(ARGV[5])
redis.call('DEL', KEYS[2])
if next(entry) ~= nil then
  for user, sockets in pairs(entry) do redis.call('HSET', KEYS[2], user, sockets) end
  redis.call('PEXPIRE', KEYS[2], expiry * 3)
  redis.call('ZADD', KEYS[1], now + expiry, own)
else
  redis.call('ZREM', KEYS[1], own)
end
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)) do
  local entry = KEYS[1] .. ':' .. dead
  local users = redis.call('HKEYS', entry)
  redis.call('ZREM', KEYS[1], dead)
  redis.call('DEL', entry)
  for _, user in ipairs(users) do
    if user ~= '' and not present_elsewhere(KEYS[1], '', user, now) then announce(ARGV[3], ARGV[4], 'leave', user) end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], expiry * 3) end
"""
)

# KEYS: the index, this process's entry. ARGV: process id, expiry ms, channel, marker, user,
# sockets (0: the user's last socket here closed). Announces a join or a leave when the user is
# present in no other process.
_PRESENCE_CHANGE = (
    _PRESENCE_COMMON
    + """
local now, own, expiry, user, sockets = now_ms(), ARGV[1], tonumber(ARGV[2]), ARGV[5], tonumber(ARGV[6])
local elsewhere = user ~= '' and present_elsewhere(KEYS[1], own, user, now)
if sockets > 0 then
  redis.call('HSET', KEYS[2], user, sockets)
  redis.call('PEXPIRE', KEYS[2], expiry * 3)
  redis.call('ZADD', KEYS[1], now + expiry, own)
  redis.call('PEXPIRE', KEYS[1], expiry * 3)
  if user ~= '' and not elsewhere then announce(ARGV[3], ARGV[4], 'join', user) end
else
  redis.call('HDEL', KEYS[2], user)
  if user ~= '' and not elsewhere then announce(ARGV[3], ARGV[4], 'leave', user) end
end
"""
)

# KEYS: the index. The entries of the live processes, flattened: user, sockets, ... per process.
_PRESENCE_READ = (
    _PRESENCE_COMMON
    + """
local reply = {}
for _, process in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now_ms(), '+inf')) do
  for _, value in ipairs(redis.call('HGETALL', KEYS[1] .. ':' .. process)) do reply[#reply + 1] = value end
end
return reply
"""
)


def presence_index(channel: str) -> str:
    """The key of ``channel``'s presence index (its processes), in the channel's Cluster slot."""
    return companion_key(channel, "ws4redis-presence")


def presence_refresh_command(
    channel: str, process: str, sockets: Mapping[str, int], *, expiry_ms: int, sharded: bool = False
) -> Command:
    """Replace this process's entry on ``channel`` by ``sockets`` (user -> count), and reap dead processes.

    ``sharded``: announce the leaves it implies with SPUBLISH.
    """
    index = presence_index(channel)
    entry = json.dumps(sockets, ensure_ascii=False, separators=(",", ":"))
    return (
        "EVAL",
        _script(_PRESENCE_REFRESH, sharded=sharded),
        2,
        index,
        f"{index}:{process}",
        process,
        expiry_ms,
        channel,
        PRESENCE_MARKER,
        entry,
    )


def presence_change_command(
    channel: str, process: str, user: str, sockets: int, *, expiry_ms: int, sharded: bool = False
) -> Command:
    """Record that ``user`` now has ``sockets`` here (0: none), announcing a join or leave if it is one.

    ``sharded``: announce with SPUBLISH.
    """
    index = presence_index(channel)
    return (
        "EVAL",
        _script(_PRESENCE_CHANGE, sharded=sharded),
        2,
        index,
        f"{index}:{process}",
        process,
        expiry_ms,
        channel,
        PRESENCE_MARKER,
        user,
        sockets,
    )


def presence_read_commands(channels: Sequence[str]) -> list[Command]:
    """Read every live process's entry on each channel (see :func:`presence_counts`)."""
    return [("EVAL", _PRESENCE_READ, 1, presence_index(channel)) for channel in channels]


def presence_counts(reply: Sequence[bytes]) -> dict[str, int]:
    """Sum the sockets per user over the processes' entries; ``''`` holds the anonymous sockets."""
    counts: dict[str, int] = {}
    for i in range(0, len(reply), 2):
        user = reply[i].decode("utf-8")
        counts[user] = counts.get(user, 0) + int(reply[i + 1])
    return counts


def read_presence(client: CommandClient, channels: Sequence[str]) -> list[dict[str, int]]:
    """The sockets per user on each channel, in one round trip (one per node in a Cluster)."""
    if not channels:
        return []
    return [presence_counts(reply) for reply in _pipeline(client, presence_read_commands(channels)).execute()]


async def aread_presence(client: AsyncCommandClient, channels: Sequence[str]) -> list[dict[str, int]]:
    """The async twin of :func:`read_presence`."""
    if not channels:
        return []
    return [presence_counts(reply) for reply in await _pipeline(client, presence_read_commands(channels)).execute()]


async def asend_scripts(client: AsyncCommandClient, commands: Sequence[Command]) -> list[Any]:
    """Send EVAL ``commands`` in one pipelined round trip as EVALSHA.

    A script's text goes only to a Redis that does not know it yet (a new server, a failover,
    SCRIPT FLUSH): the commands it refused go again as EVAL, which also teaches it the script.
    """
    if not commands:
        return []
    replies = await _pipeline(client, [_by_sha(command) for command in commands]).execute(raise_on_error=False)
    unknown = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if unknown:
        again = await _pipeline(client, [commands[i] for i in unknown]).execute(raise_on_error=False)
        for i, reply in zip(unknown, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _by_sha(command: Command) -> Command:
    return ("EVALSHA", _sha1(command[1]), *command[2:])


@functools.lru_cache(maxsize=16)
def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def publish_commands(
    channels: Sequence[str],
    payload: bytes,
    *,
    expire: int,
    history_size: int = 0,
    history_ttl: int = 0,
    sharded: bool = False,
) -> list[Command]:
    """PUBLISH ``payload`` to each channel and, if ``expire`` > 0, persist it there for that many seconds.

    The persisted message lives under the channel's own key, as in ws4redis. With
    ``history_size`` > 0 each channel's message is also appended to its stream, kept for
    ``history_ttl`` seconds, and published carrying the entry's id (one script per channel).
    ``sharded`` publishes with SPUBLISH instead (see :attr:`Config.redis_sharded_pubsub`).
    """
    if history_size > 0:
        script = _script(_PUBLISH_WITH_HISTORY, sharded=sharded)
        return [
            (
                "EVAL",
                script,
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
    verb = publish_verb(sharded=sharded)
    commands: list[Command] = []
    for channel in channels:
        commands.append((verb, channel, payload))
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
        # Not pipe.publish(): redis-py refuses that in a Cluster's pipeline, though PUBLISH works there
        # (and SPUBLISH goes to the node owning the channel's slot).
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
    sharded: bool = False,
) -> list[int]:
    """Send :func:`publish_commands` in one round trip (one per node in a Cluster); return each channel's receivers.

    In a Cluster a node counts only its own subscribers.
    """
    if not channels:
        return []
    commands = publish_commands(
        channels, payload, expire=expire, history_size=history_size, history_ttl=history_ttl, sharded=sharded
    )
    return receivers(_pipeline(client, commands).execute(), expire=expire, history_size=history_size)


async def apublish(
    client: AsyncCommandClient,
    channels: Sequence[str],
    payload: bytes,
    *,
    expire: int,
    history_size: int = 0,
    history_ttl: int = 0,
    sharded: bool = False,
) -> list[int]:
    """The async twin of :func:`publish`."""
    if not channels:
        return []
    commands = publish_commands(
        channels, payload, expire=expire, history_size=history_size, history_ttl=history_ttl, sharded=sharded
    )
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
