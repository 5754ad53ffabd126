"""Publishing, and reading presence, from any Python code without Django: ``RedisPublisher`` minus the request.

:func:`publish` and :func:`apublish` are the one place that turns a message and a :class:`Config`
into the commands that publish it: persisted for ``expire`` seconds, and kept in the channel's
history when ``history_size`` is set. django_bridge's ``RedisPublisher`` and :class:`Publisher`
both call them, so a message reaches sockets the same way whoever sends it.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import redis_commands
from .channels import Audience, channel_key
from .config import Config
from .connections import AsyncCommandClient, CommandClient, RedisTopology
from .messages import RedisMessage
from .presence import Presence, PresenceStats, merge

__all__ = [
    "Publisher",
    "apublish",
    "apublish_payload",
    "aread_presence",
    "publish",
    "publish_arguments",
    "read_presence",
]


def publish_arguments(message: RedisMessage | str | bytes, expire: int | None, config: Config) -> tuple[bytes, int]:
    """The payload to send and the seconds to persist it; ``expire`` None means ``config.expire``."""
    if not isinstance(message, RedisMessage):
        message = RedisMessage(message)
    if expire is None:
        expire = config.expire
    if isinstance(expire, bool) or not isinstance(expire, int) or expire < 0:
        raise ValueError(f"expire is {expire!r}; expected a whole number of seconds >= 0, or None")
    return message.payload, expire


def read_presence(client: CommandClient, channels: Sequence[str], *, config: Config) -> list[Presence]:
    """Who is on each channel now, in every process, in one round trip.

    Raises:
        BrokerUnavailable: Redis cannot be reached.
    """
    with redis_commands.unavailable_on_error("read presence", address=config.redis_address):
        return [Presence.from_counts(counts) for counts in redis_commands.read_presence(client, channels)]


async def aread_presence(client: AsyncCommandClient, channels: Sequence[str], *, config: Config) -> list[Presence]:
    """The async twin of :func:`read_presence`."""
    with redis_commands.unavailable_on_error("read presence", address=config.redis_address):
        return [Presence.from_counts(counts) for counts in await redis_commands.aread_presence(client, channels)]


def publish(
    client: CommandClient,
    channels: Sequence[str],
    message: RedisMessage | str | bytes,
    *,
    config: Config,
    expire: int | None = None,
) -> list[int]:
    """Publish ``message`` to ``channels`` in one round trip; return each channel's receiver count.

    Raises:
        BrokerUnavailable: Redis cannot be reached.
    """
    payload, expire = publish_arguments(message, expire, config)
    with redis_commands.unavailable_on_error("publish", address=config.redis_address):
        return redis_commands.publish(
            client,
            channels,
            payload,
            expire=expire,
            history_size=config.history_size,
            history_ttl=config.history_seconds,
            sharded=config.redis_sharded_pubsub,
        )


async def apublish(
    client: AsyncCommandClient,
    channels: Sequence[str],
    message: RedisMessage | str | bytes,
    *,
    config: Config,
    expire: int | None = None,
) -> list[int]:
    """The async twin of :func:`publish`."""
    payload, expire = publish_arguments(message, expire, config)
    return await apublish_payload(client, channels, payload, config=config, expire=expire)


async def apublish_payload(
    client: AsyncCommandClient,
    channels: Sequence[str],
    payload: bytes,
    *,
    config: Config,
    expire: int,
    sharded: bool | None = None,
) -> list[int]:
    """:func:`apublish` for a payload already encoded for Redis (:attr:`RedisMessage.payload`).

    ``sharded`` None publishes as ``config.redis_sharded_pubsub`` says; False publishes with plain
    PUBLISH whatever it says, as the control channel must reach every process.
    """
    with redis_commands.unavailable_on_error("publish", address=config.redis_address):
        return await redis_commands.apublish(
            client,
            channels,
            payload,
            expire=expire,
            history_size=config.history_size,
            history_ttl=config.history_seconds,
            sharded=config.redis_sharded_pubsub if sharded is None else sharded,
        )


class Publisher:
    """Publishes to a facility's channels with a client of its own; for code that runs without Django.

    >>> publisher = Publisher(Config(redis_url="redis://localhost:6379/0", history_size=100))
    >>> publisher.publish("chat", "hello", broadcast=True)  # doctest: +SKIP
    1

    Use :meth:`publish` from threads, :meth:`apublish` from one event loop; :meth:`close` (or
    :meth:`aclose`) releases the connections.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._topology = RedisTopology(config)
        self._client: CommandClient | None = None
        self._async_client: AsyncCommandClient | None = None

    def channels(
        self,
        facility: str,
        *,
        broadcast: bool = False,
        users: Sequence[str] = (),
        groups: Sequence[str] = (),
        sessions: Sequence[str] = (),
    ) -> list[str]:
        """The channel keys of an audience in ``facility``, as ``RedisPublisher`` names them."""
        prefix = self.config.prefix
        keys = [channel_key(Audience.BROADCAST, facility, prefix=prefix)] if broadcast else []
        for audience, idents in ((Audience.GROUP, groups), (Audience.USER, users), (Audience.SESSION, sessions)):
            keys += [channel_key(audience, facility, ident, prefix=prefix) for ident in idents]
        return list(dict.fromkeys(keys))

    def publish(
        self, facility: str, message: RedisMessage | str | bytes, *, expire: int | None = None, **audience: object
    ) -> int:
        """Publish ``message`` to the audience (``broadcast=True``, ``users=[...]`` ...) of ``facility``.

        Returns how many sockets' processes received it, summed over the channels.
        """
        keys = self.channels(facility, **audience)  # type: ignore[arg-type]
        return sum(publish(self._sync_client(), keys, message, config=self.config, expire=expire))

    async def apublish(
        self, facility: str, message: RedisMessage | str | bytes, *, expire: int | None = None, **audience: object
    ) -> int:
        """The async twin of :meth:`publish`."""
        keys = self.channels(facility, **audience)  # type: ignore[arg-type]
        return sum(await apublish(self._async(), keys, message, config=self.config, expire=expire))

    def presence(self, facility: str, **audience: object) -> Presence:
        """Who has sockets on the audience's channels of ``facility`` (listed in ``Config.presence``) now.

        Over several channels a user counts once, with their largest number of sockets on one.
        """
        keys = self.channels(facility, **audience)  # type: ignore[arg-type]
        return merge(read_presence(self._sync_client(), keys, config=self.config))

    async def apresence(self, facility: str, **audience: object) -> Presence:
        """The async twin of :meth:`presence`."""
        keys = self.channels(facility, **audience)  # type: ignore[arg-type]
        return merge(await aread_presence(self._async(), keys, config=self.config))

    def presence_stats(self, facility: str, **audience: object) -> PresenceStats:
        """Counts only (users, sockets, anonymous sockets): :meth:`presence`'s ``stats``."""
        return self.presence(facility, **audience).stats

    async def apresence_stats(self, facility: str, **audience: object) -> PresenceStats:
        """The async twin of :meth:`presence_stats`."""
        return (await self.apresence(facility, **audience)).stats

    def _sync_client(self) -> CommandClient:
        if self._client is None:
            self._client = self._topology.sync_command_client()
        return self._client

    def _async(self) -> AsyncCommandClient:
        if self._async_client is None:
            self._async_client = self._topology.command_client()
        return self._async_client

    def close(self) -> None:
        """Disconnect the synchronous client."""
        self._client = None
        self._topology.close()

    async def aclose(self) -> None:
        """Disconnect the asynchronous client."""
        self._async_client = None
        await self._topology.aclose()
