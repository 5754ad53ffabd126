"""RedisSubscriber: one socket's view of the broker, with ws4redis' method names.

Replace it (``subscriber_class=`` here, ``WS4REDIS_SUBSCRIBER`` in Django) to add channels, filter
persisted messages or change how a socket publishes. Unlike ws4redis' class it holds no Redis
connection of its own: it borrows the process's broker, and its methods are coroutines.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .channels import Principal, channel_keys, subscription_from_parameters
from .messages import RedisMessage, decode_payload

if TYPE_CHECKING:
    from .broker import Broker, Listener
    from .recovery import Recovery

__all__ = ["Handshake", "PersistedMessageSink", "RedisSubscriber"]


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the subscriber needs to know about an accepted websocket handshake."""

    facility: str
    principal: Principal


class PersistedMessageSink(Protocol):
    """The socket side of :meth:`RedisSubscriber.send_persisted_messages`."""

    def send_persisted(self, channel: str, message: RedisMessage) -> None: ...


class RedisSubscriber:
    """Subscribes one socket to its channels and publishes what it sends.

    Attributes:
        subscribe_channels: the Redis keys this socket receives from.
        publish_channels: the Redis keys this socket's messages go to.
    """

    # One per socket: slots keep it small. Subclasses may add attributes as usual.
    __slots__ = ("_broker", "_config", "_listener", "publish_channels", "recovery", "subscribe_channels")

    def __init__(self, broker: Broker, listener: Listener) -> None:
        self._broker = broker
        self._listener = listener
        self._config = broker.config
        self.subscribe_channels: list[str] = []
        self.publish_channels: list[str] = []
        # Set by the handler when the client asked for ids: reads the history around subscribing.
        self.recovery: Recovery | None = None

    async def set_pubsub_channels(self, request: Handshake, channels: Sequence[str]) -> None:
        """Subscribe to the channels named by ``channels`` (``subscribe-user`` ...) for ``request``.

        ``channels`` is what the query string asked for, as narrowed by ``allowed_channels``.
        """
        wanted = subscription_from_parameters(channels)
        prefix = self._config.prefix
        self.publish_channels = channel_keys(wanted.publish, request.facility, request.principal, prefix=prefix)
        self.subscribe_channels = channel_keys(wanted.subscribe, request.facility, request.principal, prefix=prefix)
        await self.subscribe()

    async def subscribe(self) -> None:
        """Subscribe to :attr:`subscribe_channels`; with a :attr:`recovery`, read the history around it."""
        recovery = self.recovery
        if recovery is not None:
            await recovery.before_subscribe(self.subscribe_channels)
        await self._broker.subscribe(self._listener, self.subscribe_channels)
        if recovery is not None:
            await recovery.after_subscribe()

    async def send_persisted_messages(self, websocket: PersistedMessageSink) -> None:
        """Send the persisted message of every subscribed channel, read in one round trip.

        With a :attr:`recovery` there is nothing to do: it read the persisted messages itself.
        """
        if self.recovery is not None:
            return
        # release() may empty subscribe_channels while the fetch is under way.
        channels = self.subscribe_channels
        payloads = await self._broker.fetch(channels)
        for channel, payload in zip(channels, payloads, strict=True):
            if payload is not None:
                websocket.send_persisted(channel, decode_payload(payload))

    async def send_persited_messages(self, websocket: PersistedMessageSink) -> None:
        """Deprecated ws4redis spelling of :meth:`send_persisted_messages`."""
        warnings.warn(
            "send_persited_messages() is deprecated; call send_persisted_messages()",
            DeprecationWarning,
            stacklevel=2,
        )
        await self.send_persisted_messages(websocket)

    def __init_subclass__(cls, **kwargs: object) -> None:
        # A subclass written for ws4redis overrides the misspelt name; route the call there.
        super().__init_subclass__(**kwargs)
        if "send_persited_messages" in vars(cls) and "send_persisted_messages" not in vars(cls):
            warnings.warn(
                f"{cls.__qualname__} overrides send_persited_messages(); rename it to send_persisted_messages()",
                DeprecationWarning,
                stacklevel=2,
            )
            cls.send_persisted_messages = vars(cls)["send_persited_messages"]  # type: ignore[method-assign]

    async def publish_message(self, message: RedisMessage, expire: int | None = None) -> list[int]:
        """Publish ``message`` to this socket's publish channels and persist it for ``expire`` s.

        ``expire`` defaults to the configured one; 0 publishes without persisting.
        """
        expire = self._config.expire if expire is None else expire
        return await self._broker.publish(self.publish_channels, message.payload, expire=expire)

    def release(self) -> None:
        """Stop receiving; safe to call more than once."""
        self._broker.unsubscribe(self._listener, self.subscribe_channels)
        self.subscribe_channels = []
