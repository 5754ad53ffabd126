"""Sharded pub/sub: one SSUBSCRIBE connection per Cluster master that owns a channel this process needs.

In a Redis Cluster a plain PUBLISH reaches every node, so more masters carry no more messages.
With ``Config.redis_sharded_pubsub`` the publishers use SPUBLISH (:mod:`~ws4redis_tornado.redis_commands`)
and :class:`ShardedSubscriptions` subscribes each channel with SSUBSCRIBE on the master owning its
slot, so a message travels through that master and its replicas only. The broker hands the
channels' subscriptions over to it and keeps its plain connection for the control channel alone,
which must reach every process. What it owns:

* the slot map, read with CLUSTER SLOTS from whichever node answers;
* one connection per master that holds at least one of the process's channels, opened with the
  first channel placed there and closed with the last one, each read by its own task; messages
  go to the broker's ``_dispatch``, the code the plain connection's messages go through;
* one writer task sending what piled up for each node in one packet, one SSUBSCRIBE or SUNSUBSCRIBE
  per slot (Redis refuses one across slots);
* the replies each connection still owes, in order, so that a ``ssubscribe`` confirms exactly the
  request it answers, and an error reply (MOVED, once a slot moved) sends its channels elsewhere;
* moving channels. Redis drops the subscriptions of a slot that leaves a node and says so with a
  ``sunsubscribe`` push; a lost connection (the node died) loses all of its channels. Either way the
  channels become homeless: the slot map is read again and they are subscribed on their owner,
  with backoff while none answers (a replica is promoted after the cluster's node timeout).

The broker counts the replies it waits for per channel (its confirmation rule: a reply still on its
way never confirms a listener that joined after it was asked for). This module tells it of every
SSUBSCRIBE it sends on its own (:attr:`BrokerHooks.expect`) and of every reply that will never come
(:attr:`BrokerHooks.abandon`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ResponseError

from .compat.redis import PubSubConnection
from .config import Config, field_settings
from .connections import RedisTopology
from .exceptions import ConfigurationError
from .redis_commands import CONNECTION_ERRORS, READ_BATCH

__all__ = ["BrokerHooks", "ShardedSubscriptions", "SlotMap"]

logger = logging.getLogger(__name__)

Address = tuple[str, int]

_FIRST_RETRY_DELAY = 0.05
_SUBSCRIBE = "SSUBSCRIBE"
_UNSUBSCRIBE = "SUNSUBSCRIBE"
_REPLIES = {b"ssubscribe": _SUBSCRIBE, b"sunsubscribe": _UNSUBSCRIBE}


@dataclass(frozen=True)
class BrokerHooks:
    """What the broker lets this module do.

    Attributes:
        dispatch: hand one ``[b"smessage", channel, payload]`` to the channel's listeners.
        confirm: one SSUBSCRIBE reply the broker waits for arrived.
        expect: an SSUBSCRIBE this module sends on its own will be answered: wait for it too.
        abandon: one reply the broker waits for will never come.
        wanted: whether a channel still has local listeners.
        lost: tell the listeners of these channels that messages may have been missed.
        outage: a master holding channels was lost (True), or every channel has a master again (False).
    """

    dispatch: Callable[[Any], None]
    confirm: Callable[[bytes], None]
    expect: Callable[[bytes], None]
    abandon: Callable[[bytes], None]
    wanted: Callable[[bytes], bool]
    lost: Callable[[Iterable[bytes]], None]
    outage: Callable[[bool], None]


class SlotMap:
    """Which master owns each of the 16384 slots, as one node's CLUSTER SLOTS reported it."""

    def __init__(self, ranges: Iterable[tuple[int, int, Address]]) -> None:
        self._ranges = sorted(ranges)
        self._starts = [start for start, _, _ in self._ranges]

    @classmethod
    def from_reply(cls, reply: Sequence[Any], *, asked: Address) -> SlotMap:
        """Read a RESP2 CLUSTER SLOTS reply; a master announcing no address is the node ``asked``."""
        ranges = []
        for start, end, master, *_replicas in reply:
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            ranges.append((int(start), int(end), (host or asked[0], int(master[1]))))
        return cls(ranges)

    def owner(self, slot: int) -> Address | None:
        i = bisect_right(self._starts, slot) - 1
        if i >= 0 and self._ranges[i][1] >= slot:
            return self._ranges[i][2]
        return None

    def moved(self, slot: int, address: Address) -> SlotMap:
        """A copy in which ``slot`` belongs to ``address``, as a MOVED reply says."""
        ranges = [(start, end, owner) for start, end, owner in self._ranges if not start <= slot <= end]
        for start, end, owner in self._ranges:
            if start <= slot <= end:
                ranges += [(start, slot - 1, owner)] if start < slot else []
                ranges += [(slot + 1, end, owner)] if slot < end else []
        return SlotMap([*ranges, (slot, slot, address)])

    @property
    def masters(self) -> list[Address]:
        return list(dict.fromkeys(owner for _, _, owner in self._ranges))


class _Request:
    """An SSUBSCRIBE or SUNSUBSCRIBE sent on a node's connection, and how many of its replies came."""

    __slots__ = ("answered", "keys", "verb")

    def __init__(self, verb: str, keys: list[bytes]) -> None:
        self.verb = verb
        self.keys = keys
        self.answered = 0

    @property
    def unanswered(self) -> list[bytes]:
        return self.keys[self.answered :]


class _Node:
    """One master's connection and the channels subscribed (or to be) on it."""

    __slots__ = ("address", "awaiting", "connection", "keys", "outbox", "ping_outstanding", "reader", "rehoused", "up")

    def __init__(self, address: Address, connection: PubSubConnection) -> None:
        self.address = address
        self.connection = connection
        self.keys: set[bytes] = set()
        # Requests sent and not fully answered, in the order Redis answers them.
        self.awaiting: deque[_Request] = deque()
        # (verb, key) or ("PING", None) not sent yet: the writer sends them once the node is up.
        self.outbox: list[tuple[str, bytes | None]] = []
        self.reader: asyncio.Task[None] | None = None
        self.up = False
        self.ping_outstanding = False
        # Whether channels that lost their node were placed on it: its connecting is a recovery.
        self.rehoused = False

    @property
    def name(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def owed(self) -> Iterator[bytes]:
        """The channels of each SSUBSCRIBE reply this connection still owes, or would owe once sent."""
        for request in self.awaiting:
            if request.verb == _SUBSCRIBE:
                yield from request.unanswered
        yield from (key for verb, key in self.outbox if verb == _SUBSCRIBE and key is not None)


class ShardedSubscriptions:
    """The channels' subscriptions of one broker, by slot, on the masters that own them.

    ``await start()`` reads the slot map; :meth:`subscribe` and :meth:`unsubscribe` take effect in
    the background, and the broker learns of each reply through its :class:`BrokerHooks`.
    """

    def __init__(self, config: Config, topology: RedisTopology, hooks: BrokerHooks) -> None:
        self.config = config
        self._topology = topology
        self._hooks = hooks
        self._map: SlotMap | None = None
        self._nodes: dict[Address, _Node] = {}
        self._placed: dict[bytes, _Node] = {}
        # Channels with listeners and no node: waiting for the slot map to name their owner.
        self._homeless: set[bytes] = set()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._rehousing: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._delay = _FIRST_RETRY_DELAY
        # Nodes to ask for the slot map first: one that just gave a slot up knows its new owner.
        self._hints: list[Address] = []
        # Whether a lost master's channels have not all found a master again yet.
        self._in_outage = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the slot map; raise one of :data:`CONNECTION_ERRORS` when no node answers."""
        self._map = await self._read_map()
        await self._refuse_without_sharded_pubsub(self._map.masters)
        self._writer = asyncio.create_task(self._write_forever(), name="ws4redis-sharded-writer")

    async def aclose(self) -> None:
        """Stop every task and close every connection."""
        tasks = [self._writer, self._rehousing, *(node.reader for node in self._nodes.values()), *self._closing]
        for task in tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for node in self._nodes.values():
            await node.connection.disconnect()
        self._nodes.clear()
        self._placed.clear()
        self._homeless.clear()

    # -- state --------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether no channel is waiting for its master: none homeless, none on a master being reconnected.

        A connection opened for a channel's first socket does not count: handshakes of other
        channels meanwhile are no reason to answer 503; that socket waits for its confirmation.
        """
        return not self._homeless and all(node.up or not node.rehoused for node in self._nodes.values())

    @property
    def connection_count(self) -> int:
        """How many masters this process holds a connection to: those owning one of its channels."""
        return len(self._nodes)

    # -- subscriptions ------------------------------------------------------------------------------

    def subscribe(self, keys: Iterable[bytes]) -> None:
        """SSUBSCRIBE ``keys`` on their owners; the broker already expects one reply each."""
        for key in keys:
            self._place(key)

    def unsubscribe(self, keys: Iterable[bytes]) -> None:
        """SUNSUBSCRIBE ``keys``; a node left without channels is disconnected instead."""
        for key in keys:
            if key in self._homeless:
                self._homeless.discard(key)
                # Its resend was expected and will not be sent.
                self._hooks.abandon(key)
                continue
            node = self._placed.pop(key, None)
            if node is None:
                continue
            node.keys.discard(key)
            if node.keys:
                self._queue(node, _UNSUBSCRIBE, key)
            else:
                self._close(node)
        # The channels still waiting for a master may all have gone with their sockets.
        self._end_outage()

    def _end_outage(self) -> None:
        if self._in_outage and self.connected:
            self._in_outage = False
            self._hooks.outage(False)

    def _place(self, key: bytes, *, rehoused: bool = False) -> None:
        assert self._map is not None
        owner = self._map.owner(key_slot(key))
        if owner is None:
            self._homeless.add(key)
            self._schedule_rehousing()
            return
        node = self._nodes.get(owner)
        if node is None:
            node = self._open(owner)
        node.keys.add(key)
        node.rehoused |= rehoused
        self._placed[key] = node
        self._queue(node, _SUBSCRIBE, key)

    def _rehome(self, node: _Node, key: bytes) -> None:
        """Take ``key`` off ``node``; if it is still wanted, subscribe it again wherever its slot is now."""
        if self._placed.get(key) is node:
            del self._placed[key]
        node.keys.discard(key)
        if self._hooks.wanted(key) and key not in self._placed and key not in self._homeless:
            # Expected before the old replies are abandoned, so the count never falls to 0 meanwhile.
            self._hooks.expect(key)
            self._homeless.add(key)

    def _queue(self, node: _Node, verb: str, key: bytes | None) -> None:
        node.outbox.append((verb, key))
        self._wake.set()

    # -- nodes --------------------------------------------------------------------------------------

    def _open(self, address: Address) -> _Node:
        node = self._nodes[address] = _Node(address, self._topology.node_pubsub_connection(*address))
        node.reader = asyncio.create_task(self._read_forever(node), name=f"ws4redis-sharded-{node.name}")
        return node

    def _close(self, node: _Node) -> None:
        """Forget ``node``, which holds no channel any more, and disconnect it in the background."""
        if self._nodes.get(node.address) is node:
            del self._nodes[node.address]
        for key in list(node.owed()):
            self._hooks.abandon(key)
        node.awaiting.clear()
        node.outbox.clear()
        node.up = False
        task = asyncio.ensure_future(self._disconnect(node))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _disconnect(self, node: _Node) -> None:
        if node.reader is not None and node.reader is not asyncio.current_task():
            node.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await node.reader
        await node.connection.disconnect()

    def _fail(self, node: _Node, exc: BaseException | None) -> None:
        """``node``'s connection is gone: its channels go wherever the slot map names next."""
        was_up = node.up
        keys = sorted(node.keys)
        if was_up:
            logger.warning(
                "lost the sharded pub/sub connection to %s (%s); %d channels will be resubscribed",
                node.name,
                exc,
                len(keys),
                extra=_event("redis_down", address=node.name, error=str(exc)),
            )
        else:
            logger.debug("redis at %s unreachable for sharded pub/sub: %s", node.name, exc)
        for key in keys:
            self._rehome(node, key)
        self._close(node)
        if was_up:
            self._hooks.lost(keys)
            if not self._in_outage:
                self._in_outage = True
                self._hooks.outage(True)
        self._schedule_rehousing(backoff=True)

    async def _read_forever(self, node: _Node) -> None:
        try:
            await self._connect(node)
            node.up = True
            self._delay = _FIRST_RETRY_DELAY
            self._wake.set()
            self._end_outage()
            if node.rehoused:
                logger.info(
                    "connected to redis at %s for sharded pub/sub; subscribing %d channels there again",
                    node.name,
                    len(node.keys),
                    extra=_event("redis_up", address=node.name, channels=len(node.keys), reconnected=True),
                )
            unyielded = 0
            while True:
                self._take(node, await self._read(node))
                unyielded += 1
                if unyielded == READ_BATCH:
                    unyielded = 0
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except CONNECTION_ERRORS as exc:
            self._fail(node, exc)
        except Exception as exc:
            logger.exception("unexpected error on the sharded pub/sub connection to %s", node.name)
            self._fail(node, exc)

    async def _connect(self, node: _Node) -> None:
        """Connect to ``node`` and check that it is a master, within ``Config.redis_connect_timeout``.

        redis-py bounds the TCP connect only: a node that accepts connections and never answers
        (stopped, or swapping) would hold its channels here forever, even after its replica took over.
        """
        timeout = self.config.redis_connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await node.connection.connect()
                await self._check_master(node)
        except TimeoutError as exc:
            raise ConnectionError(f"{node.name} did not answer within {timeout}s of connecting") from exc

    async def _check_master(self, node: _Node) -> None:
        """Fail unless ``node`` is a master: a replica takes SSUBSCRIBE too, so a stale map would go unnoticed.

        A slot map read from a node that has not heard of a failover yet names the demoted master.
        """
        await node.connection.send_command("ROLE")
        role = await node.connection.read_response()
        if not role or role[0] != b"master":
            raise ConnectionError(f"{node.name} is not a master (ROLE: {role[0] if role else role!r})")

    async def _read(self, node: _Node) -> Any:
        """Read one reply; ping when the connection was quiet, and fail if a ping went unanswered."""
        while True:
            try:
                response = await node.connection.read_response(timeout=self.config.redis_health_check_interval)
            except ResponseError as exc:
                # An error reply answers one whole request: the oldest one still owed.
                self._refused(node, exc)
                continue
            if response is not None:
                node.ping_outstanding = False
                return response
            if node.ping_outstanding:
                raise ConnectionError("redis did not answer a ping")
            node.ping_outstanding = True
            self._queue(node, "PING", None)

    def _take(self, node: _Node, response: Any) -> None:
        if not isinstance(response, list):
            return  # PONG
        kind = response[0]
        if kind == b"smessage":
            self._hooks.dispatch(response)
            return
        verb = _REPLIES.get(kind)
        if verb is None:
            return  # [b"pong", b""]
        key = response[1]
        answered = self._answered(node, verb, key)
        if verb == _SUBSCRIBE:
            if answered:
                self._hooks.confirm(key)
        elif not answered:
            # Unasked: Redis dropped the subscription, as the channel's slot left this node.
            self._moved_away(node, key)

    def _answered(self, node: _Node, verb: str, key: bytes) -> bool:
        request = node.awaiting[0] if node.awaiting else None
        if request is None or request.verb != verb or request.keys[request.answered] != key:
            return False
        request.answered += 1
        if request.answered == len(request.keys):
            node.awaiting.popleft()
        return True

    def _moved_away(self, node: _Node, key: bytes) -> None:
        if self._placed.get(key) is not node:
            return
        logger.info("channel %r left %s with its slot; subscribing it on the new owner", key, node.name)
        self._hints.append(node.address)
        self._rehome(node, key)
        if not node.keys:
            self._close(node)
        self._schedule_rehousing()
        # Until it is subscribed on the new owner, what is published there does not reach us.
        self._hooks.lost([key])

    def _refused(self, node: _Node, exc: ResponseError) -> None:
        request = node.awaiting.popleft() if node.awaiting else None
        if request is None or request.verb != _SUBSCRIBE:
            logger.debug("%s refused a request: %s", node.name, exc)
            return
        slot, address = getattr(exc, "slot_id", None), getattr(exc, "node_addr", None)
        if slot is not None and address is not None and self._map is not None:
            self._map = self._map.moved(slot, (address[0] or node.address[0], int(address[1])))
        logger.info(
            "%s refused SSUBSCRIBE of %d channels (%s); subscribing them again", node.name, len(request.keys), exc
        )
        for key in request.unanswered:
            self._rehome(node, key)
            self._hooks.abandon(key)
        if not node.keys:
            self._close(node)
        self._schedule_rehousing(backoff=True, read_map=slot is None)

    # -- finding the owners again -------------------------------------------------------------------

    def _schedule_rehousing(self, *, backoff: bool = False, read_map: bool = True) -> None:
        if self._rehousing is None or self._rehousing.done():
            self._rehousing = asyncio.ensure_future(self._rehouse(backoff=backoff, read_map=read_map))

    async def _rehouse(self, *, backoff: bool, read_map: bool) -> None:
        while self._homeless:
            if backoff:
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self.config.reconnect_max_delay)
            backoff = True
            if read_map:
                try:
                    self._map = await self._read_map()
                    self._hints.clear()
                except CONNECTION_ERRORS as exc:
                    logger.debug("no node named the slots' owners: %s", exc)
                    continue
            read_map = True
            homeless, self._homeless = self._homeless, set()
            for key in homeless:
                # The broker expects one reply each already (see _rehome).
                self._place(key, rehoused=True)
            logger.debug("placed %d channels on the masters owning their slots", len(homeless))

    async def _read_map(self) -> SlotMap:
        errors = []
        for address in self._map_sources():
            connection = self._topology.node_pubsub_connection(*address)
            try:
                async with asyncio.timeout(self.config.redis_connect_timeout):
                    await connection.connect()
                    await connection.send_command("CLUSTER", "SLOTS")
                    reply = await connection.read_response()
                return SlotMap.from_reply(reply, asked=address)
            except (TimeoutError, *CONNECTION_ERRORS) as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
            finally:
                await connection.disconnect()
        raise ConnectionError(f"no node of the cluster answered CLUSTER SLOTS ({'; '.join(errors)})")

    async def _refuse_without_sharded_pubsub(self, masters: Sequence[Address]) -> None:
        """Raise ConfigurationError if a master has no SSUBSCRIBE (Redis before 7.0), naming the setting.

        Checked at start, so that the server does not start rather than fail each socket's
        subscription later. A master that does not answer now is not checked: the server starts
        without it, as it does without the check.
        """
        versions = await asyncio.gather(*map(self._lacking_version, masters))
        for address, version in zip(masters, versions, strict=True):
            if version is None:
                continue
            name = field_settings()["redis_sharded_pubsub"].name
            raise ConfigurationError(
                f"setting 'redis_sharded_pubsub' ({name}) is True, but the Redis at {address[0]}:{address[1]}"
                f" is {version}, which has no SSUBSCRIBE: sharded pub/sub needs Redis 7.0 or later;"
                f" upgrade the cluster or set {name} to False",
                field="redis_sharded_pubsub",
                value=True,
                problem=f"needs Redis 7.0 or later; {address[0]}:{address[1]} is {version}",
            )

    async def _lacking_version(self, address: Address) -> str | None:
        """The version of the Redis at ``address`` if it has no SSUBSCRIBE; None if it has, or does not answer."""
        connection = self._topology.node_pubsub_connection(*address)
        try:
            async with asyncio.timeout(self.config.redis_connect_timeout):
                await connection.connect()
                await connection.send_packed_command(
                    connection.pack_commands([("COMMAND", "INFO", _SUBSCRIBE), ("INFO", "server")])
                )
                command, info = await connection.read_response(), await connection.read_response()
        except (TimeoutError, *CONNECTION_ERRORS) as exc:
            logger.debug("could not ask %s:%d whether it has SSUBSCRIBE: %s", *address, exc)
            return None
        finally:
            await connection.disconnect()
        if command and command[0]:
            return None
        found = next((line for line in info.decode().splitlines() if line.startswith("redis_version:")), "")
        return f"Redis {found.partition(':')[2].strip() or 'of an unknown version'}"

    def _map_sources(self) -> list[Address]:
        """Nodes to ask for the slot map: hinted, connected, the known masters, then the startup nodes."""
        connected = [address for address, node in self._nodes.items() if node.up]
        known = self._map.masters if self._map is not None else []
        return list(dict.fromkeys([*self._hints, *connected, *known, *self.config.redis_cluster_nodes]))

    # -- the writer ---------------------------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for node in list(self._nodes.values()):
                if not node.up or not node.outbox:
                    continue
                items, node.outbox = node.outbox, []
                commands = _batch(node, items)
                try:
                    await node.connection.send_packed_command(
                        node.connection.pack_commands(commands), check_health=False
                    )
                except CONNECTION_ERRORS as exc:
                    # The reader sees the same failure and moves the node's channels.
                    logger.debug("writing to the sharded pub/sub connection to %s failed: %s", node.name, exc)


def _batch(node: _Node, items: list[tuple[str, bytes | None]]) -> list[tuple[Any, ...]]:
    """One command per slot for each run of the same verb, in order; note what each will be answered by."""
    commands: list[tuple[Any, ...]] = []
    for verb, run in itertools.groupby(items, key=lambda item: item[0]):
        keys = [key for _, key in run if key is not None]
        if verb == "PING":
            commands.append(("PING",))
            continue
        by_slot: dict[int, list[bytes]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key), []).append(key)
        for slot_keys in by_slot.values():
            commands.append((verb, *slot_keys))
            node.awaiting.append(_Request(verb, slot_keys))
    return commands


def _event(name: str, **fields: object) -> dict[str, object]:
    """``extra`` that lets :class:`~ws4redis_tornado.logs.JsonFormatter` render a record as an event."""
    return {"event": name, "fields": fields}
