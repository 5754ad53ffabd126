"""Channel naming and subscription parsing, wire-compatible with django-websocket-redis.

Everything here is pure: values in, values out, no I/O. The Redis keys are::

    [prefix:]broadcast:<facility>
    [prefix:]user:<username>:<facility>
    [prefix:]group:<group>:<facility>
    [prefix:]session:<session_key>:<facility>

The persisted copy of a channel's last message lives under the channel's own key.
"""

from __future__ import annotations

import enum
import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote_plus

from redis.crc import key_slot

from .exceptions import InvalidFacility

__all__ = [
    "SELF",
    "Audience",
    "Principal",
    "Subscription",
    "channel_key",
    "channel_keys",
    "companion_key",
    "parse_subscription",
    "subscription_from_parameters",
    "validate_facility",
]


class Audience(enum.Enum):
    """Who a channel addresses."""

    BROADCAST = "broadcast"
    USER = "user"
    GROUP = "group"
    SESSION = "session"


class _SelfType:
    """Type of :data:`SELF`: stands for the requesting user, their groups or their session."""

    _instance: _SelfType | None = None

    def __new__(cls) -> _SelfType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SELF"

    def __reduce__(self) -> str:
        return "SELF"


SELF = _SelfType()
"""Marker for "the user, groups or session of the request at hand"."""

_SUBSCRIBE = "subscribe-"
_PUBLISH = "publish-"
_ECHO = "echo"
# parameter name -> (is a subscription, audience)
_PARAMETERS = {f"{_SUBSCRIBE}{a.value}": (True, a) for a in Audience} | {
    f"{_PUBLISH}{a.value}": (False, a) for a in Audience
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity a websocket connects as; it decides the user, group and session channels.

    ``request`` is the framework's request object (a Django ``HttpRequest`` in django_bridge); the
    core only carries it to the hooks.
    """

    user: str | None = None
    groups: tuple[str, ...] = ()
    session: str | None = None
    request: object = None


@functools.lru_cache(maxsize=128)
def _parameters(subscription: Subscription) -> tuple[str, ...]:
    # Every handshake asks; the few distinct subscriptions there are spell the same each time.
    names = [f"{_SUBSCRIBE}{a.value}" for a in Audience if a in subscription.subscribe]
    names += [f"{_PUBLISH}{a.value}" for a in Audience if a in subscription.publish]
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a websocket asked for in its query string."""

    subscribe: frozenset[Audience] = frozenset()
    publish: frozenset[Audience] = frozenset()
    echo: bool = False

    @property
    def parameters(self) -> list[str]:
        """The ws4redis spelling (``subscribe-broadcast`` ...), as handed to ``allowed_channels``."""
        return list(_parameters(self))

    def restricted_to(self, parameters: Iterable[str]) -> Subscription:
        """Return the subscription limited to ``parameters`` (what ``allowed_channels`` kept)."""
        allowed = {p.lower() for p in parameters}
        return Subscription(
            subscribe=frozenset(a for a in self.subscribe if f"{_SUBSCRIBE}{a.value}" in allowed),
            publish=frozenset(a for a in self.publish if f"{_PUBLISH}{a.value}" in allowed),
            echo=self.echo,
        )


def parse_subscription(query: str) -> Subscription:
    """Parse a websocket URL's query string; names are case-insensitive, unknown ones ignored."""
    return subscription_from_parameters(unquote_plus(part.partition("=")[0]) for part in query.split("&"))


def subscription_from_parameters(names: Iterable[str]) -> Subscription:
    """Build a subscription from ws4redis parameter names (``subscribe-user``, ``echo`` ...)."""
    subscribe: set[Audience] = set()
    publish: set[Audience] = set()
    echo = False
    for name in names:
        name = name.lower()
        if name == _ECHO:
            echo = True
            continue
        known = _PARAMETERS.get(name)
        if known is not None:
            (subscribe if known[0] else publish).add(known[1])
    return Subscription(subscribe=frozenset(subscribe), publish=frozenset(publish), echo=echo)


def validate_facility(facility: str) -> str:
    """Return ``facility`` if it can be part of a channel key, else raise :class:`InvalidFacility`.

    A ``:`` is refused because it would let the member of group ``a`` read group ``a:b``'s channel.
    """
    if not facility:
        raise InvalidFacility("the facility is empty: name one after the websocket URL, as in /ws/chat")
    if ":" in facility:
        raise InvalidFacility("the facility must not contain ':'")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in facility):
        raise InvalidFacility("the facility must not contain whitespace or control characters")
    return facility


def channel_key(audience: Audience, facility: str, ident: str | None = None, *, prefix: str = "") -> str:
    """Return the Redis key of one channel, e.g. ``app:user:john:chat``.

    ``prefix`` is given without its trailing ``:`` (as ``WS4REDIS_PREFIX``); ``ident`` is the user
    name, group name or session key, and must be None for broadcast.
    """
    head = f"{prefix}:" if prefix else ""
    if audience is Audience.BROADCAST:
        if ident is not None:
            raise ValueError("a broadcast channel has no ident")
        return f"{head}broadcast:{facility}"
    if not ident:
        raise ValueError(f"a {audience.value} channel needs an ident")
    return f"{head}{audience.value}:{ident}:{facility}"


def channel_keys(audiences: Iterable[Audience], facility: str, principal: Principal, *, prefix: str = "") -> list[str]:
    """Return the keys of ``audiences`` for ``principal``, skipping the ones it has no ident for.

    An anonymous principal has no user channel, one without a session no session channel.
    """
    return list(dict.fromkeys(_keys(frozenset(audiences), facility, principal, prefix)))


def _keys(audiences: frozenset[Audience], facility: str, principal: Principal, prefix: str) -> Iterator[str]:
    # The order follows ws4redis: broadcast, groups, users, sessions.
    if Audience.BROADCAST in audiences:
        yield channel_key(Audience.BROADCAST, facility, prefix=prefix)
    if Audience.GROUP in audiences:
        for group in principal.groups:
            yield channel_key(Audience.GROUP, facility, group, prefix=prefix)
    if Audience.USER in audiences and principal.user:
        yield channel_key(Audience.USER, facility, principal.user, prefix=prefix)
    if Audience.SESSION in audiences and principal.session:
        yield channel_key(Audience.SESSION, facility, principal.session, prefix=prefix)


def companion_key(channel: str, name: str) -> str:
    """The key of something kept beside ``channel`` (its history, its presence), in its Redis Cluster slot.

    A key hashes by its first ``{...}`` with something inside, else whole. Wrapping the channel in
    braces gives the companion the channel's slot; a channel with such a tag of its own keeps it
    first behind a suffix. A channel with a ``}`` but no tag (a group named so) cannot be wrapped:
    its companion is tagged with the smallest number that hashes to the same slot.
    """
    opening = channel.find("{")
    if opening != -1 and channel.find("}", opening + 1) > opening + 1:
        return f"{channel}:{name}"
    if "}" not in channel:
        return f"{{{channel}}}:{name}"
    return f"{{{_same_slot_tag(channel)}}}:{name}:{channel}"


@functools.lru_cache(maxsize=1024)
def _same_slot_tag(key: str) -> str:
    slot = key_slot(key.encode())
    # About 16,384 tries of a C function: a few milliseconds, once per such channel.
    return next(tag for tag in map(str, itertools.count()) if key_slot(tag.encode()) == slot)
