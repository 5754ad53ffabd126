"""The per-process broker: one Redis pub/sub connection for every socket, plus a small command pool.

Sockets register as listeners on channel keys. The broker subscribes a key in Redis when its first
listener arrives and unsubscribes it when the last one leaves, reads the pub/sub connection in one
task and hands each message to the local listeners of its channel. When Redis goes away the sockets
stay open: the reader logs it, reconnects with capped exponential backoff, subscribes every key
again and logs the recovery.

The pub/sub connection is a bare redis-py ``Connection`` rather than a ``PubSub`` object: the broker
owns the list of channels, the reconnection and the resubscription, so they happen exactly once.

With ``Config.redis_sharded_pubsub`` the channels are subscribed by slot instead, one connection per
Cluster master (:mod:`~ws4redis_tornado.sharded`); the plain connection then carries the control
channel alone. Messages from either reach the listeners through the same :meth:`Broker._dispatch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, Protocol

from . import redis_commands
from .compat.redis import PubSubConnection
from .config import Config
from .connections import AsyncCommandClient, RedisTopology
from .exceptions import BrokerClosed, BrokerUnavailable
from .history import channel_facility, message_frame, split_id
from .messages import RESERVED_PREFIX, RedisMessage, decode_payload, encode_frame
from .metrics import Metrics
from .presence import Presence, PresenceEvent, PresenceTracker
from .publisher import apublish_payload, aread_presence
from .redis_commands import CONNECTION_ERRORS, PRESENCE_MARKER, READ_BATCH
from .revocation import Revocations, control_channel
from .sharded import BrokerHooks, ShardedSubscriptions

__all__ = ["Broker", "Delivery", "Listener"]

logger = logging.getLogger(__name__)

_FIRST_RETRY_DELAY = 0.05
_CONFIRM_TIMEOUT = 10.0
_COMMAND_CONNECTIONS = 2


class Delivery:
    """One message read from Redis, shared by every socket it goes to.

    The decoded message and the websocket frame are computed at most once, however many sockets
    receive them.
    """

    __slots__ = ("__dict__", "_envelope", "_tagged", "channel", "id", "payload")

    def __init__(self, channel: bytes, payload: bytes, stream_id: str | None = None) -> None:
        self.channel = channel
        self.payload = payload
        # The id of the message's entry in the channel's history, if it was published with one.
        self.id = stream_id
        self._envelope: bytes | None = None
        self._tagged: bytes | None = None

    @cached_property
    def message(self) -> RedisMessage:
        return decode_payload(self.payload)

    @cached_property
    def frame(self) -> bytes:
        """The complete websocket frame, ready to be written to any socket."""
        message = self.message
        return encode_frame(message, binary=message.binary)

    def envelope(self, label: str) -> bytes:
        """The frame for a socket that opted in to ids: the channel's label and id, then the message.

        Every socket on a channel knows it by the same label, so this too is built once.
        """
        if self._envelope is None:
            self._envelope = message_frame(label, self.id, self.payload)
        return self._envelope

    def tagged_envelope(self, label: str) -> bytes:
        """The frame for a control socket: the envelope with the channel's facility too, built once."""
        if self._tagged is None:
            self._tagged = message_frame(label, self.id, self.payload, channel_facility(self.channel))
        return self._tagged


class Listener(Protocol):
    """What a socket offers the broker."""

    def on_broker_message(self, delivery: Delivery) -> None:
        """Take one message; must not block and must not raise."""

    def on_broker_lost(self) -> None:
        """Learn that messages may have been missed: the pub/sub connection to Redis was lost."""


class Broker:
    """Multiplexes every channel of every local socket over one Redis pub/sub connection.

    Use ``await broker.start()`` ... ``await broker.aclose()``, or ``async with Broker(config)``.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._topology = RedisTopology(config)
        # At most this many commands in flight: the pool never opens more connections than that.
        self._command_slots = asyncio.Semaphore(_COMMAND_CONNECTIONS)
        self._listeners: dict[bytes, set[Listener]] = {}
        # What this process counts (see metrics.py); the sockets and the frame writer count too.
        self.metrics = Metrics()
        # SUBSCRIBE replies still expected per key, and the future its subscribers wait on.
        self._unconfirmed: dict[bytes, int] = {}
        self._confirmed: dict[bytes, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._outbox: list[tuple[Any, ...]] = []
        self._fetches: list[tuple[Sequence[str], asyncio.Future[list[bytes | None]]]] = []
        self._tasks: set[asyncio.Future[None]] = set()
        self._outbox_ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._commands: AsyncCommandClient | None = None
        self._pubsub: PubSubConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = False
        self._closed = False
        self._ping_outstanding = False
        # The health probe in flight, and the pongs its pub/sub PINGs wait for, by token.
        self._probe: asyncio.Future[bool] | None = None
        self._pongs: dict[bytes, asyncio.Future[None]] = {}
        self._probe_tokens = itertools.count()
        # ws4redis never delivered the heartbeat string as a message; neither does the broker.
        self._heartbeat = config.heartbeat.encode("utf-8") if config.heartbeat else None
        # The control channel is subscribed from start() on and kept out of _listeners: it is
        # nobody's channel, and channel_count does not count it.
        self._control_key = control_channel(config.prefix).encode()
        self.revocations = Revocations()
        self.presence = PresenceTracker(config, self._command_client, self._command_slots)
        self._sharded = (
            ShardedSubscriptions(config, self._topology, self._hooks()) if config.redis_sharded_pubsub else None
        )

    def _hooks(self) -> BrokerHooks:
        return BrokerHooks(
            dispatch=self._dispatch,
            confirm=self._confirm,
            expect=self._expect,
            # A reply that will never come settles its count as one that came: the same step.
            abandon=self._confirm,
            wanted=self._listeners.__contains__,
            lost=self._tell_lost,
            outage=self._sharded_outage,
        )

    def _sharded_outage(self, down: bool) -> None:
        # Counted as the plain connection's outages are (redis_reconnects, the downtime).
        now = asyncio.get_running_loop().time()
        if down:
            self.metrics.redis_lost(now)
        else:
            self.metrics.redis_back(now)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis and start reading.

        Raises:
            BrokerUnavailable: Redis cannot be reached; the message names the address.
            ConfigurationError: sharded pub/sub is on and a master of the cluster has no SSUBSCRIBE.
        """
        if self._closed:
            raise BrokerClosed("the broker was closed")
        # One immediate retry survives a server restart.
        self._commands = self._topology.command_client(_COMMAND_CONNECTIONS, immediate_retries=1)
        self._pubsub = self._topology.pubsub_connection()
        try:
            await self._commands.ping()
            await self._connect_pubsub()
            await self._subscribe_control()
            if self._sharded is not None:
                await self._sharded.start()
        except BaseException as exc:
            # Also when a setting does not fit the Redis found (ConfigurationError): nothing stays open.
            await self._close_connections()
            if isinstance(exc, CONNECTION_ERRORS):
                raise redis_commands.unavailable(exc, address=self.config.redis_address) from exc
            raise
        self._connected = True
        self._reader = asyncio.create_task(self._read_forever(), name="ws4redis-broker-reader")
        self._writer = asyncio.create_task(self._write_forever(), name="ws4redis-broker-writer")
        logger.info(
            "connected to redis at %s",
            self.config.redis_address,
            extra=_event("redis_up", address=self.config.redis_address, channels=0),
        )

    async def _subscribe_control(self) -> None:
        # Before the reader starts, so that start() returns subscribed: a command published
        # from then on reaches this process.
        assert self._pubsub is not None
        await self._pubsub.send_command("SUBSCRIBE", self._control_key)
        reply = await self._pubsub.read_response(timeout=_CONFIRM_TIMEOUT)
        if not reply or reply[0] != b"subscribe":
            raise ConnectionError(f"redis did not confirm the subscription to the control channel: {reply!r}")

    async def aclose(self) -> None:
        """Stop reading and close every Redis connection; listeners are dropped."""
        if self._closed:
            return
        if self._connected:
            # While the connections are up: this process's users leave presence now, not at expiry.
            await self.presence.aclose()
        self._closed = True
        if self._sharded is not None:
            await self._sharded.aclose()
        for task in (self._reader, self._writer, self._probe, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for future in self._confirmed.values():
            if not future.done():
                future.set_exception(BrokerClosed("the broker was closed"))
        self._listeners.clear()
        self._confirmed.clear()
        self._unconfirmed.clear()
        await self._close_connections()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _close_connections(self) -> None:
        self._connected = False
        if self._pubsub is not None:
            await self._pubsub.disconnect()
        # The command client, and the connections to the sentinels if any.
        await self._topology.aclose()

    # -- state, for health checks and tests ---------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the pub/sub connection is up right now (with sharded pub/sub: every one of them)."""
        return self._connected and (self._sharded is None or self._sharded.connected)

    @property
    def sharded_connection_count(self) -> int:
        """How many Cluster masters this process subscribes channels on with sharded pub/sub (else 0)."""
        return 0 if self._sharded is None else self._sharded.connection_count

    @property
    def channel_count(self) -> int:
        """How many channels this process is subscribed to in Redis."""
        return len(self._listeners)

    def listener_count(self, channel: str) -> int:
        return len(self._listeners.get(channel.encode(), ()))

    async def probe(self, timeout: float) -> bool:
        """Whether Redis answers a PING on the command pool and on the pub/sub connection now.

        Both round trips must end within ``timeout`` seconds in all. ``connected`` only says the
        pub/sub connection has not failed yet; a Redis that hangs answers neither. Callers asking
        while a probe is under way share it, so a burst of health checks costs one probe.
        """
        if self._closed or self._pubsub is None:
            return False
        probe = self._probe
        if probe is None:
            probe = self._probe = asyncio.ensure_future(self._round_trips(timeout))
            probe.add_done_callback(self._forget_probe)
        try:
            # Shielded: one caller cancelled must not cancel the others' probe.
            return await asyncio.shield(probe)
        except asyncio.CancelledError:
            if probe.cancelled():  # by aclose(), not by our caller
                return False
            raise

    def _forget_probe(self, probe: asyncio.Future[bool]) -> None:
        if self._probe is probe:
            self._probe = None

    async def _round_trips(self, timeout: float) -> bool:
        if not self._connected:
            return False
        try:
            async with asyncio.timeout(timeout):
                async with self._command_slots:
                    await self._command_client().ping()
                await self._ping_pubsub()
        except (TimeoutError, *CONNECTION_ERRORS):
            return False
        return True

    async def _ping_pubsub(self) -> None:
        """PING on the pub/sub connection; RESP2 answers ``["pong", token]``, in order with the messages.

        While nothing is subscribed the answer is the bare token.
        """
        token = b"ws4redis-health-%d" % next(self._probe_tokens)
        pong = self._pongs[token] = asyncio.get_running_loop().create_future()
        try:
            self._queue_command("PING", (token,))
            await pong
        finally:
            del self._pongs[token]

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, listener: Listener, channels: Iterable[str]) -> None:
        """Register ``listener`` on ``channels`` and return once Redis confirmed every one.

        Raises:
            BrokerUnavailable: Redis did not confirm in time; the listener is unregistered again.
        """
        self._check_open()
        keys = [channel.encode() for channel in channels]
        new = [key for key in keys if key not in self._listeners]
        for key in keys:
            self._listeners.setdefault(key, set()).add(listener)
        if new:
            loop = asyncio.get_running_loop()
            for key in new:
                self._confirmed[key] = loop.create_future()
                self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
            if self._sharded is not None:
                self._sharded.subscribe(new)
            else:
                self._queue_command("SUBSCRIBE", new)
        waiting = [self._confirmed[key] for key in keys if key in self._confirmed]
        if not waiting:
            return
        # asyncio.wait neither cancels the shared futures nor raises on timeout.
        done, pending = await asyncio.wait(waiting, timeout=_CONFIRM_TIMEOUT)
        if pending or any(future.exception() is not None for future in done):
            self.unsubscribe(listener, (key.decode() for key in keys))
            raise BrokerUnavailable(f"redis at {self.config.redis_address} did not confirm the subscription")

    def unsubscribe(self, listener: Listener, channels: Iterable[str]) -> None:
        """Remove ``listener`` from ``channels``; a channel nobody listens to is unsubscribed.

        Takes effect at once for local delivery; the UNSUBSCRIBE goes out in the background.
        """
        if self._closed:
            return
        gone = []
        for key in (channel.encode() for channel in channels):
            listeners = self._listeners.get(key)
            if listeners is None:
                continue
            listeners.discard(listener)
            if not listeners:
                del self._listeners[key]
                gone.append(key)
                # Nobody waits any more; but a SUBSCRIBE reply still on its way must not confirm
                # a listener that joins again before it arrives: its count stays.
                self._release_waiters(key)
        if gone:
            if self._sharded is not None:
                self._sharded.unsubscribe(gone)
            else:
                self._queue_command("UNSUBSCRIBE", gone)

    def _queue_command(self, command: str, keys: Sequence[bytes]) -> None:
        # Commands are queued synchronously, so they reach Redis in the order they were asked
        # for, and one writer task sends whatever piled up in one packet.
        self._outbox.append((command, *keys))
        self._outbox_ready.set()

    async def _write_forever(self) -> None:
        assert self._pubsub is not None
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            async with self._lock:
                commands, self._outbox = self._outbox, []
                # While disconnected nothing is sent: the reconnection subscribes exactly what
                # is registered at that moment.
                if not commands or not self._connected:
                    continue
                try:
                    packed = self._pubsub.pack_commands(commands)
                    await self._pubsub.send_packed_command(packed, check_health=False)
                except CONNECTION_ERRORS as exc:
                    # The reader sees the same failure and reconnects; nothing to repeat here.
                    logger.debug("writing to the pub/sub connection failed: %s", exc)

    def _confirm(self, key: bytes) -> None:
        remaining = self._unconfirmed.get(key, 0) - 1
        if remaining > 0:
            self._unconfirmed[key] = remaining
            return
        self._forget_confirmation(key)

    def _expect(self, key: bytes) -> None:
        """One more SUBSCRIBE reply is on its way for ``key``, sent without :meth:`subscribe`: wait for it too."""
        self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
        if key not in self._confirmed:
            self._confirmed[key] = asyncio.get_running_loop().create_future()

    def _release_waiters(self, key: bytes) -> None:
        future = self._confirmed.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _forget_confirmation(self, key: bytes) -> None:
        self._unconfirmed.pop(key, None)
        future = self._confirmed.pop(key, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosed("the broker was closed")
        if self._pubsub is None:
            raise BrokerClosed("the broker was not started: await broker.start() first")

    # -- commands -------------------------------------------------------------------------------

    async def publish(
        self, channels: Sequence[str], payload: bytes, *, expire: int = 0, sharded: bool | None = None
    ) -> list[int]:
        """PUBLISH ``payload`` to each channel and, if ``expire`` > 0, persist it there (SETEX).

        All commands go in one pipelined round trip. Returns the receiver count of each channel.
        ``sharded`` False publishes with plain PUBLISH even with ``Config.redis_sharded_pubsub``.
        """
        if not channels:
            return []
        client = self._command_client()
        async with self._command_slots:
            return await apublish_payload(client, channels, payload, config=self.config, expire=expire, sharded=sharded)

    async def read_last(self, channels: Sequence[str]) -> list[tuple[bytes | None, str | None, bytes | None]]:
        """Each channel's persisted message and its history's last id and payload, in one round trip."""
        client = self._command_client()
        with redis_commands.unavailable_on_error("read the history", address=self.config.redis_address):
            async with self._command_slots:
                return await redis_commands.aread_last(client, channels)

    async def read_presence(self, channels: Sequence[str]) -> list[Presence]:
        """Who is on each channel now, in every process, in one round trip."""
        client = self._command_client()
        async with self._command_slots:
            return await aread_presence(client, channels, config=self.config)

    async def read_after(
        self, positions: Sequence[tuple[str, str]]
    ) -> list[tuple[bool, list[tuple[str, bytes]], str | None]]:
        """Each channel's history after a position, in one round trip; see :func:`redis_commands.entries_after`."""
        client = self._command_client()
        with redis_commands.unavailable_on_error("read the history", address=self.config.redis_address):
            async with self._command_slots:
                return await redis_commands.aread_after(client, positions, history_size=self.config.history_size)

    async def fetch(self, channels: Sequence[str]) -> list[bytes | None]:
        """Return the persisted message of each channel (None where there is none).

        Fetches asked for while one is on its way are answered together by the next single MGET,
        so a burst of handshakes costs a few round trips, not one each.
        """
        if not channels:
            return []
        self._check_open()
        future: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
        self._fetches.append((channels, future))
        if len(self._fetches) == 1:
            self._spawn(self._fetch_batch())
        return await future

    async def _fetch_batch(self) -> None:
        async with self._command_slots:
            # Take the batch only once a connection is free: more requests join meanwhile.
            batch, self._fetches = self._fetches, []
            self.metrics.persisted_fetches += 1
            keys = list(dict.fromkeys(key for channels, _ in batch for key in channels))
            try:
                values = await redis_commands.afetch(self._command_client(), keys)
            except CONNECTION_ERRORS as exc:
                error = redis_commands.unavailable(exc, address=self.config.redis_address, action="read")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
        found = dict(zip(keys, values, strict=True))
        for channels, future in batch:
            if not future.done():
                future.set_result([found[key] for key in channels])

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def redis(self) -> AsyncCommandClient:
        """The command client (at most two connections), for the rare caller that needs more."""
        return self._command_client()

    def _command_client(self) -> AsyncCommandClient:
        self._check_open()
        assert self._commands is not None
        return self._commands

    # -- the reader -----------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        delay = _FIRST_RETRY_DELAY
        unyielded = 0
        while True:
            try:
                if not self._connected:
                    await self._reconnect()
                    delay = _FIRST_RETRY_DELAY
                response = await self._read()
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS as exc:
                await self._lost(exc, delay)
                delay = min(delay * 2, self.config.reconnect_max_delay)
                continue
            except Exception:
                logger.exception("unexpected error on the redis pub/sub connection")
                await self._lost(None, delay)
                delay = min(delay * 2, self.config.reconnect_max_delay)
                continue
            if response is not None:
                self._dispatch(response)
                unyielded += 1
                if unyielded == READ_BATCH:
                    unyielded = 0
                    await asyncio.sleep(0)

    async def _read(self) -> Any:
        """Read one reply; ping when the connection was quiet, and fail if a ping went unanswered."""
        assert self._pubsub is not None
        response = await self._pubsub.read_response(timeout=self.config.redis_health_check_interval)
        if response is not None:
            self._ping_outstanding = False
            return response
        if self._ping_outstanding:
            raise ConnectionError("redis did not answer a ping")
        self._ping_outstanding = True
        self._queue_command("PING", ())
        return None

    async def _lost(self, exc: BaseException | None, delay: float) -> None:
        if self._connected:
            logger.warning(
                "lost the redis pub/sub connection to %s (%s); %d channels will be resubscribed,"
                " retrying with backoff up to %.1fs",
                self.config.redis_address,
                exc,
                len(self._listeners) if self._sharded is None else 0,
                self.config.reconnect_max_delay,
                extra=_event("redis_down", address=self.config.redis_address, error=str(exc)),
            )
            self.metrics.redis_lost(asyncio.get_running_loop().time())
            if self._sharded is None:
                # With sharded pub/sub this connection carries no socket's channel.
                self._tell_lost()
        else:
            logger.debug("redis at %s still unreachable: %s", self.config.redis_address, exc)
        self._connected = False
        self._ping_outstanding = False
        assert self._pubsub is not None
        await self._pubsub.disconnect()
        await asyncio.sleep(delay)

    def _tell_lost(self, keys: Iterable[bytes] | None = None) -> None:
        """Tell the listeners of ``keys`` (None: of every channel) that messages may have been missed."""
        # Once per loss, not per retry: what was published meanwhile never reaches the sockets.
        lists = self._listeners.values() if keys is None else (self._listeners.get(key, ()) for key in keys)
        for listener in {listener for listeners in lists for listener in listeners}:
            lost = getattr(listener, "on_broker_lost", None)
            if lost is None:
                continue
            try:
                lost()
            except Exception:
                logger.exception("listener %r failed to take the loss of the redis connection", listener)

    async def _connect_pubsub(self) -> None:
        """Connect the pub/sub connection within ``Config.redis_connect_timeout``.

        redis-py bounds the TCP connect only; the commands it sends on connecting (the client name,
        a password, the database) wait for their answers without a timeout on a pub/sub
        connection. A peer that accepts and never answers (a proxy whose Redis is gone) would hold
        the reconnection there for good, even after Redis is back behind it.
        """
        assert self._pubsub is not None
        timeout = self.config.redis_connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await self._pubsub.connect()
        except TimeoutError as exc:
            address = self.config.redis_address
            raise ConnectionError(f"redis at {address} did not answer within {timeout}s of connecting") from exc

    async def _reconnect(self) -> None:
        async with self._lock:
            # A fresh connection each time: Sentinel names the current master, a Cluster the
            # next node.
            self._pubsub = self._topology.pubsub_connection()
            await self._connect_pubsub()
            self._outbox.clear()
            # With sharded pub/sub the channels are on their own connections: the control channel only.
            keys: list[bytes] = []
            if self._sharded is None:
                keys = list(self._listeners)
                self._unconfirmed = dict.fromkeys(keys, 1)
                for key in list(self._confirmed):
                    if key not in self._unconfirmed:
                        self._forget_confirmation(key)
            await self._pubsub.send_command("SUBSCRIBE", self._control_key, *keys)
            self._connected = True
        self.metrics.redis_back(asyncio.get_running_loop().time())
        logger.info(
            "reconnected to redis at %s; resubscribed %d channels",
            self.config.redis_address,
            len(keys),
            extra=_event("redis_up", address=self.config.redis_address, channels=len(keys), reconnected=True),
        )

    def _dispatch(self, response: Any) -> None:
        if isinstance(response, bytes):
            # PING's answer while nothing is subscribed: its argument, or b"PONG".
            self._answer_pong(response)
            return
        kind = response[0]
        if kind == b"message" or kind == b"smessage":
            listeners = self._listeners.get(response[1])
            if not listeners:
                if response[1] == self._control_key:
                    self.revocations.take(response[2])
                return
            payload = response[2]
            if payload == self._heartbeat:
                return
            if payload.startswith(RESERVED_PREFIX):
                if payload.startswith(PRESENCE_MARKER):
                    self._announce_payload(response[1], payload, listeners)
                    return
                stream_id, payload = split_id(payload)
                delivery = Delivery(response[1], payload, stream_id)
            else:
                delivery = Delivery(response[1], payload)
            metrics = self.metrics
            metrics.redis_messages += 1
            metrics.deliveries += len(listeners)
            # A listener may leave while we iterate (its socket closed on a failed write).
            for listener in tuple(listeners):
                try:
                    listener.on_broker_message(delivery)
                except Exception:
                    logger.exception("listener %r failed to take a message", listener)
        elif kind == b"subscribe":
            self._confirm(response[1])
        elif kind == b"pong":
            self._answer_pong(response[1])

    def _announce_payload(self, channel: bytes, payload: bytes, listeners: set[Listener]) -> None:
        try:
            event = PresenceEvent(channel, payload)
        except (ValueError, KeyError, TypeError):
            # Not one of ours (a process publishing raw bytes): dropped, the connection kept.
            logger.warning("dropped a malformed presence event on %r", channel)
            return
        self._announce(event, listeners)

    def _announce(self, event: PresenceEvent, listeners: set[Listener]) -> None:
        for listener in tuple(listeners):
            take = getattr(listener, "on_presence_event", None)
            if take is None:
                continue
            try:
                take(event)
            except Exception:
                logger.exception("listener %r failed to take a presence event", listener)

    def _answer_pong(self, token: bytes) -> None:
        # The reader's own keep-alive PING carries no token, so it finds no future here.
        pong = self._pongs.get(token)
        if pong is not None and not pong.done():
            pong.set_result(None)


def _event(name: str, **fields: object) -> dict[str, object]:
    """``extra`` that lets :class:`~ws4redis_tornado.logs.JsonFormatter` render a record as an event."""
    return {"event": name, "fields": fields}
