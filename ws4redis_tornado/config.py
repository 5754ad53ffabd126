"""The one configuration object, validated when it is built and passed down from there.

No other module of the core reads the environment or any framework's settings. A field that a
framework exposes as one of its settings says so in its metadata (:func:`setting`): the setting's
name, default, hint and check id. django_bridge derives its settings, its error messages and its
system checks from that, so each setting is declared and validated here only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .channels import validate_facility
from .exceptions import ConfigurationError, InvalidFacility

__all__ = ["DEFAULT_REDIS_CONNECT_TIMEOUT", "Config", "Setting", "field_settings", "redis_location", "setting"]

_REDIS_SCHEMES = ("redis", "rediss", "unix")
# An HTTP token (RFC 9110 section 5.6.2), what a Sec-WebSocket-Protocol value must be.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
MIB = 1024 * 1024
DEFAULT_REDIS_CONNECT_TIMEOUT = 5.0
"""Seconds a new connection to a Redis node may take when ``redis_options`` sets no ``socket_connect_timeout``."""
_SETTING = "ws4redis_tornado.setting"  # the key of a field's metadata that holds its Setting


@dataclass(frozen=True)
class Setting:
    """How a framework exposes a Config field as one of its settings.

    The core reads no framework's settings; this only tells a framework's settings layer what to
    read, how to report a wrong value and what to document.

    Attributes:
        name: the setting's name, e.g. ``'WS4REDIS_EXPIRE'``.
        default: the setting's default; the field's own, but where the setting's differs in form.
        hint: how to fix a wrong value, naming the setting.
        check_id: the id under which a wrong value is reported, e.g. ``'django_bridge.E004'``.
    """

    name: str
    default: Any
    hint: str
    check_id: str


def setting(default: Any, *, name: str, hint: str, check_id: str, setting_default: Any = MISSING) -> Any:
    """A Config field with ``default``, exposed as the setting ``name`` (see :class:`Setting`).

    ``setting_default`` is the setting's default where it differs from the field's in form, as
    ws4redis' ``WS4REDIS_PREFIX = None`` does from ``prefix = ''``.
    """
    exposed = Setting(name, default if setting_default is MISSING else setting_default, hint, check_id)
    return field(default=default, metadata={_SETTING: exposed})


def field_settings() -> dict[str, Setting]:
    """The Config fields exposed as settings: field name -> :class:`Setting`, in field order."""
    return {f.name: f.metadata[_SETTING] for f in dataclasses.fields(Config) if _SETTING in f.metadata}


@dataclass(frozen=True)
class Config:
    """Settings of the websocket loop.

    Attributes:
        redis_url: where Redis is (``redis://``, ``rediss://`` or ``unix://``).
        redis_options: extra keyword arguments for redis-py's connections (e.g. ``password``).
        prefix: optional namespace before every channel key, without the trailing ``:``.
        expire: seconds a published message stays persisted; 0 turns persistence off.
        heartbeat: string sent to every socket every ``heartbeat_interval`` seconds, or None.
        websocket_url: URL path prefix of the websocket endpoint; the facility follows it.
        ping_interval: seconds between websocket pings (native ping/pong); 0 turns them off.
        ping_timeout: seconds without a pong before a peer is closed, at most ``ping_interval``;
            None means ``ping_interval``.
        max_message_size: largest message a client may send, in bytes (larger closes with 1009).
        max_buffered_bytes: outgoing bytes a socket may have queued before it is closed with 1008.
        reconnect_max_delay: cap, in seconds, of the backoff between Redis reconnection attempts.
        redis_health_check_interval: seconds of silence on the pub/sub connection before the
            broker pings Redis; a ping unanswered for as long again counts as a lost connection.
        publish_rate: messages per second one socket may publish on average; 0 means no limit.
            A socket that publishes faster is closed with 1008.
        publish_burst: messages one socket may publish at once before the rate applies.
        redis_sentinels: ``(host, port)`` of each Redis Sentinel; when given, the master named
            ``redis_service_name`` is used instead of ``redis_url`` and followed through failovers.
        redis_sentinel_options: connection arguments for the sentinels themselves (e.g. password).
        redis_cluster_nodes: ``(host, port)`` startup nodes of a Redis Cluster, used instead of
            ``redis_url``.
        redis_sharded_pubsub: in a Redis Cluster (7.0 or later), publish with SPUBLISH and subscribe
            with SSUBSCRIBE, so that a channel's messages travel through the master owning its slot
            only (see :mod:`ws4redis_tornado.sharded`); needs ``redis_cluster_nodes``.
        max_persisted_size: largest message, in bytes, that a *client* publishes and that is also
            persisted; a larger one is published but not kept, so that sockets cannot park
            ``max_message_size`` in Redis per channel. Messages from the server side are not capped.
        subprotocols: websocket subprotocols the server speaks; the first one a client offers that
            is listed here is selected, and an offer of none of them selects none.
        handshake_timeout: seconds a connection may take to send its request headers (the
            websocket handshake); a connection that has not sent them by then is closed. Also how
            long an idle keep-alive connection stays open. An open websocket is not affected.
        health_detail: whether the health check also shows how many sockets and channels this
            process holds; off by default, since anybody who reaches the URL can read it.
        history_size: messages kept per channel in a Redis Stream, so that a client that
            reconnects gets what it missed (see :mod:`ws4redis_tornado.history`); 0 keeps none.
        history_ttl: seconds a channel's history lives after its last message; None means
            ``expire``. Must be > 0 when ``history_size`` is.
        presence: the facilities whose channels keep presence: who has sockets on them, across
            processes (see :mod:`ws4redis_tornado.presence`); none by default.
        presence_interval: seconds between two rewrites of a process's presence in Redis; a
            process that stops rewriting (it died) is gone from presence three intervals later.
        metrics_url: the path at which the websocket port serves Prometheus metrics (see
            :mod:`ws4redis_tornado.prometheus`); None serves none there.
        metrics_port: a port of its own for the metrics (``metrics_url``, or ``/metrics``); with N
            processes, process i listens on ``metrics_port + i``. None opens no such port.
        status_interval: seconds between two reports of a process's state in Redis, for a status
            page (see :mod:`ws4redis_tornado.status`); 0 writes none.
        max_subscriptions: channels one socket may hold through the control protocol (see
            :mod:`ws4redis_tornado.control`); a group audience counts one per group.
        compression: whether to agree to permessage-deflate when a client offers it (browsers
            do); each message is then compressed once for every such socket (see
            :mod:`ws4redis_tornado.deflate`).
        compression_min_size: messages shorter than this many bytes go uncompressed, where
            deflate saves little or nothing.
    """

    redis_url: str = "redis://localhost:6379/0"
    redis_options: Mapping[str, Any] = field(default_factory=dict)
    prefix: str = setting(
        "",
        name="WS4REDIS_PREFIX",
        setting_default=None,
        hint="Set WS4REDIS_PREFIX to a string without whitespace, or to None.",
        check_id="django_bridge.E005",
    )
    expire: int = setting(
        3600,
        name="WS4REDIS_EXPIRE",
        hint="Set WS4REDIS_EXPIRE to a whole number of seconds; 0 or None keeps no message.",
        check_id="django_bridge.E004",
    )
    heartbeat: str | None = setting(
        None,
        name="WS4REDIS_HEARTBEAT",
        hint="Set WS4REDIS_HEARTBEAT to a non-empty string, or to None to send no heartbeat.",
        check_id="django_bridge.E006",
    )
    heartbeat_interval: float = setting(
        4.0,
        name="WS4REDIS_HEARTBEAT_INTERVAL",
        hint="Set WS4REDIS_HEARTBEAT_INTERVAL to the number of seconds between two heartbeats, such as 4.",
        check_id="django_bridge.E012",
    )
    websocket_url: str = setting(
        "/ws/",
        name="WEBSOCKET_URL",
        hint="Set WEBSOCKET_URL to a path starting with '/', such as '/ws/'.",
        check_id="django_bridge.E002",
    )
    ping_interval: float = setting(
        20.0,
        name="WS4REDIS_PING_INTERVAL",
        hint=(
            "Set WS4REDIS_PING_INTERVAL to the number of seconds between websocket pings, such as 20,"
            " or to 0 to send no ping."
        ),
        check_id="django_bridge.E013",
    )
    ping_timeout: float | None = setting(
        None,
        name="WS4REDIS_PING_TIMEOUT",
        hint=(
            "Set WS4REDIS_PING_TIMEOUT to the number of seconds a pong may take, at most"
            " WS4REDIS_PING_INTERVAL, or to None to wait one ping interval."
        ),
        check_id="django_bridge.E014",
    )
    max_message_size: int = MIB
    max_buffered_bytes: int = 4 * MIB
    reconnect_max_delay: float = 5.0
    redis_health_check_interval: float = 15.0
    publish_rate: float = 50.0
    publish_burst: int = 100
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_service_name: str = "mymaster"
    redis_sentinel_options: Mapping[str, Any] = field(default_factory=dict)
    redis_cluster_nodes: tuple[tuple[str, int], ...] = ()
    redis_sharded_pubsub: bool = setting(
        False,
        name="WS4REDIS_SHARDED_PUBSUB",
        hint=(
            "Set WS4REDIS_SHARDED_PUBSUB to True to publish and subscribe by slot in a Redis Cluster"
            " (WS4REDIS_CONNECTION with 'startup_nodes'), or to False."
        ),
        check_id="django_bridge.E028",
    )
    max_persisted_size: int = setting(
        64 * 1024,
        name="WS4REDIS_MAX_PERSISTED_SIZE",
        hint=(
            "Set WS4REDIS_MAX_PERSISTED_SIZE to the largest number of bytes a message a client publishes"
            " may have and still be persisted, such as 65536."
        ),
        check_id="django_bridge.E017",
    )
    subprotocols: tuple[str, ...] = setting(
        (),
        name="WS4REDIS_SUBPROTOCOLS",
        hint=(
            "Set WS4REDIS_SUBPROTOCOLS to a list of the websocket subprotocol names your pages offer,"
            " such as ['chat.v1'], or to []."
        ),
        check_id="django_bridge.E018",
    )
    handshake_timeout: float = setting(
        10.0,
        name="WS4REDIS_HANDSHAKE_TIMEOUT",
        hint=(
            "Set WS4REDIS_HANDSHAKE_TIMEOUT to the number of seconds a connection may take to send its"
            " request headers, such as 10."
        ),
        check_id="django_bridge.E015",
    )
    health_detail: bool = setting(
        False,
        name="WS4REDIS_HEALTH_DETAIL",
        hint=(
            "Set WS4REDIS_HEALTH_DETAIL to True to show the numbers of sockets and channels in the health"
            " check's answer, or to False."
        ),
        check_id="django_bridge.E016",
    )

    history_size: int = setting(
        0,
        name="WS4REDIS_HISTORY_SIZE",
        hint=(
            "Set WS4REDIS_HISTORY_SIZE to the number of messages kept per channel for clients that"
            " reconnect, such as 100, or to 0 to keep none."
        ),
        check_id="django_bridge.E019",
    )
    history_ttl: int | None = setting(
        None,
        name="WS4REDIS_HISTORY_TTL",
        hint=(
            "Set WS4REDIS_HISTORY_TTL to the number of seconds a channel's history lives after its last"
            " message, such as 3600, or to None to use WS4REDIS_EXPIRE."
        ),
        check_id="django_bridge.E020",
    )

    presence: tuple[str, ...] = setting(
        (),
        name="WS4REDIS_PRESENCE",
        hint="Set WS4REDIS_PRESENCE to a list of the facilities that keep presence, such as ['chat'], or to [].",
        check_id="django_bridge.E021",
    )
    presence_interval: float = setting(
        10.0,
        name="WS4REDIS_PRESENCE_INTERVAL",
        hint=(
            "Set WS4REDIS_PRESENCE_INTERVAL to the number of seconds between two rewrites of a process's"
            " presence in Redis, such as 10."
        ),
        check_id="django_bridge.E022",
    )
    metrics_url: str | None = setting(
        None,
        name="WS4REDIS_METRICS_URL",
        hint=(
            "Set WS4REDIS_METRICS_URL to the path of the Prometheus metrics, such as '/metrics', outside"
            " WEBSOCKET_URL, or to None; it needs the metrics extra: pip install 'ws4redis-tornado[metrics]'."
        ),
        check_id="django_bridge.E025",
    )
    metrics_port: int | None = setting(
        None,
        name="WS4REDIS_METRICS_PORT",
        hint=(
            "Set WS4REDIS_METRICS_PORT to a port of its own for the Prometheus metrics, such as 9100, or to"
            " None; it needs the metrics extra: pip install 'ws4redis-tornado[metrics]'."
        ),
        check_id="django_bridge.E026",
    )
    status_interval: float = setting(
        10.0,
        name="WS4REDIS_STATUS_INTERVAL",
        hint=(
            "Set WS4REDIS_STATUS_INTERVAL to the number of seconds between two reports of a process's"
            " state in Redis, such as 10, or to 0 to write none."
        ),
        check_id="django_bridge.E027",
    )
    max_subscriptions: int = setting(
        100,
        name="WS4REDIS_MAX_SUBSCRIPTIONS",
        hint=(
            "Set WS4REDIS_MAX_SUBSCRIPTIONS to the number of channels one socket may subscribe to with the"
            " control protocol, such as 100."
        ),
        check_id="django_bridge.E023",
    )
    compression: bool = setting(
        True,
        name="WS4REDIS_COMPRESSION",
        hint=(
            "Set WS4REDIS_COMPRESSION to True to compress messages for clients that offer"
            " permessage-deflate, or to False to send every message uncompressed."
        ),
        check_id="django_bridge.E029",
    )
    compression_min_size: int = setting(
        128,
        name="WS4REDIS_COMPRESSION_MIN_SIZE",
        hint=(
            "Set WS4REDIS_COMPRESSION_MIN_SIZE to the number of bytes below which a message is sent"
            " uncompressed, such as 128."
        ),
        check_id="django_bridge.E030",
    )

    def __post_init__(self) -> None:
        _check_redis_url(self.redis_url)
        if not isinstance(self.redis_options, Mapping):
            _fail("redis_options", self.redis_options, "a mapping of redis-py connection arguments")
        object.__setattr__(self, "prefix", _normalise_prefix(self.prefix))
        object.__setattr__(self, "expire", _normalise_expire(self.expire))
        if self.heartbeat is not None and (not isinstance(self.heartbeat, str) or not self.heartbeat):
            _fail("heartbeat", self.heartbeat, "a non-empty string, or None to send no heartbeat")
        _check_number("heartbeat_interval", self.heartbeat_interval, minimum=0.001)
        if not isinstance(self.websocket_url, str) or not self.websocket_url.startswith("/"):
            _fail("websocket_url", self.websocket_url, "a path starting with '/', such as '/ws/'")
        if not self.websocket_url.endswith("/"):
            object.__setattr__(self, "websocket_url", self.websocket_url + "/")
        _check_number("ping_interval", self.ping_interval, minimum=0)
        if self.ping_timeout is not None:
            _check_number("ping_timeout", self.ping_timeout, minimum=0.001)
            if self.ping_interval and self.ping_timeout > self.ping_interval:
                # Tornado would silently shorten it to the interval.
                interval = self.ping_interval
                _fail(
                    "ping_timeout",
                    self.ping_timeout,
                    f"at most ping_interval ({interval})",
                    problem=f"is longer than ping_interval ({interval})",
                    related=("ping_interval",),
                )
        _check_int("max_message_size", self.max_message_size, minimum=1)
        _check_int("max_buffered_bytes", self.max_buffered_bytes, minimum=1)
        _check_number("reconnect_max_delay", self.reconnect_max_delay, minimum=0.01)
        _check_number("redis_health_check_interval", self.redis_health_check_interval, minimum=0.01)
        _check_number("publish_rate", self.publish_rate, minimum=0)
        _check_int("publish_burst", self.publish_burst, minimum=1)
        _check_int("max_persisted_size", self.max_persisted_size, minimum=0)
        object.__setattr__(self, "subprotocols", _subprotocols(self.subprotocols))
        object.__setattr__(self, "redis_sentinels", _addresses("redis_sentinels", self.redis_sentinels))
        object.__setattr__(self, "redis_cluster_nodes", _addresses("redis_cluster_nodes", self.redis_cluster_nodes))
        if self.redis_sentinels and self.redis_cluster_nodes:
            expected = "empty when redis_sentinels is given"
            _fail("redis_cluster_nodes", self.redis_cluster_nodes, expected, related=("redis_sentinels",))
        self._check_sharded_pubsub()
        if not isinstance(self.redis_service_name, str) or not self.redis_service_name:
            _fail("redis_service_name", self.redis_service_name, "the name of the master Sentinel monitors")
        if not isinstance(self.redis_sentinel_options, Mapping):
            _fail("redis_sentinel_options", self.redis_sentinel_options, "a mapping of connection arguments")
        _check_number("handshake_timeout", self.handshake_timeout, minimum=0.001)
        if not isinstance(self.health_detail, bool):
            _fail("health_detail", self.health_detail, "True or False")
        _check_int("max_subscriptions", self.max_subscriptions, minimum=1)
        if not isinstance(self.compression, bool):
            _fail("compression", self.compression, "True or False")
        _check_int("compression_min_size", self.compression_min_size, minimum=0)
        self._check_metrics()
        _check_number("status_interval", self.status_interval, minimum=0)
        _check_int("history_size", self.history_size, minimum=0)
        if self.history_ttl is not None:
            _check_int("history_ttl", self.history_ttl, minimum=1)
        elif self.history_size and not self.expire:
            # A history without a TTL would hold Redis memory for every channel ever used.
            _fail(
                "history_ttl",
                None,
                "a whole number of seconds >= 1 when history_size is set and expire is 0",
                problem="is None, and expire (its default) is 0: the history would never expire",
                related=("history_size", "expire"),
            )

        object.__setattr__(self, "presence", _facilities("presence", self.presence))
        _check_number("presence_interval", self.presence_interval, minimum=0.01)

    @property
    def redis_connect_timeout(self) -> float:
        """Seconds a new connection to a Redis node may take to connect and answer its first command.

        ``socket_connect_timeout`` in ``redis_options`` (``WS4REDIS_CONNECTION``) when given, else
        :data:`DEFAULT_REDIS_CONNECT_TIMEOUT`. redis-py bounds the TCP connect with it; the sharded
        pub/sub connections also bound the handshake after it, which a node that accepts connections
        and never answers would otherwise hold forever.
        """
        given = self.redis_options.get("socket_connect_timeout")
        return float(given) if given else DEFAULT_REDIS_CONNECT_TIMEOUT

    @property
    def history_seconds(self) -> int:
        """How long a channel's history lives after its last message: ``history_ttl`` or ``expire``."""
        return self.history_ttl if self.history_ttl is not None else self.expire

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Build a config from a mapping of field names; unknown names are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    @property
    def redis_address(self) -> str:
        """Where Redis is, without any password, for log lines and error messages."""
        if self.redis_sentinels:
            nodes = ",".join(f"{host}:{port}" for host, port in self.redis_sentinels)
            return f"sentinel://{nodes}/{self.redis_service_name}"
        if self.redis_cluster_nodes:
            return "cluster://" + ",".join(f"{host}:{port}" for host, port in self.redis_cluster_nodes)
        parts = urlsplit(self.redis_url)
        if parts.password is None:
            return self.redis_url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return parts._replace(netloc=user + netloc).geturl()

    def _check_sharded_pubsub(self) -> None:
        if not isinstance(self.redis_sharded_pubsub, bool):
            _fail("redis_sharded_pubsub", self.redis_sharded_pubsub, "True or False")
        if self.redis_sharded_pubsub and not self.redis_cluster_nodes:
            # Sharded pub/sub exists only in a Cluster; a single Redis or Sentinel has no slots.
            _fail(
                "redis_sharded_pubsub",
                True,
                "False unless redis_cluster_nodes names a Redis Cluster",
                problem="needs a Redis Cluster: redis_cluster_nodes is empty",
                related=("redis_cluster_nodes",),
            )

    def _check_metrics(self) -> None:
        if self.metrics_url is not None:
            url = self.metrics_url
            if not isinstance(url, str) or not url.startswith("/") or url.startswith(self.websocket_url):
                _fail("metrics_url", url, f"a path starting with '/' outside websocket_url ({self.websocket_url})")
        if self.metrics_port is not None:
            _check_int("metrics_port", self.metrics_port, minimum=1)
            if self.metrics_port > 65535:
                _fail("metrics_port", self.metrics_port, "a port number from 1 to 65535")
        wanted = "metrics_url" if self.metrics_url is not None else "metrics_port" if self.metrics_port else None
        if wanted is not None and importlib.util.find_spec("prometheus_client") is None:
            _fail(
                wanted,
                getattr(self, wanted),
                "None, or prometheus_client installed: pip install 'ws4redis-tornado[metrics]'",
                problem="needs prometheus_client, which is not installed",
            )


def _fail(
    name: str, value: object, expected: str, *, problem: str | None = None, related: tuple[str, ...] = ()
) -> None:
    """Raise the error of field ``name``; a rule across fields lists the ``related`` ones it names."""
    raise ConfigurationError(
        f"setting {name!r} has value {value!r}; expected {expected}",
        field=name,
        value=value,
        problem=problem or f"is not valid: expected {expected}",
        related=related,
    )


def redis_location(url: str) -> dict[str, Any]:
    """The Config fields that reach the Redis ``url`` names: ``redis_url``, or a Cluster's startup nodes.

    ``cluster://host:port,host:port`` names a Redis Cluster (the form :attr:`Config.redis_address`
    shows); any other URL is ``redis_url``, validated by :class:`Config`.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme != "cluster":
        return {"redis_url": url}
    nodes = []
    for node in rest.rstrip("/").split(","):
        host, colon, port = node.rpartition(":")
        if not colon or not host or not port.isdigit():
            _fail("redis_cluster_nodes", url, "cluster://host:port[,host:port...]")
        nodes.append((host, int(port)))
    return {"redis_cluster_nodes": tuple(nodes)}


def _check_redis_url(url: object) -> None:
    if not isinstance(url, str) or urlsplit(url).scheme not in _REDIS_SCHEMES:
        _fail("redis_url", url, "a redis://, rediss:// or unix:// URL")


def _normalise_prefix(prefix: object) -> str:
    if prefix is None:
        return ""
    if not isinstance(prefix, str) or any(ch.isspace() for ch in prefix):
        _fail("prefix", prefix, "a string without whitespace, or None")
    assert isinstance(prefix, str)
    return prefix.rstrip(":")


def _normalise_expire(expire: object) -> int:
    if expire is None:
        return 0
    if isinstance(expire, bool) or not isinstance(expire, int) or expire < 0:
        _fail("expire", expire, "a whole number of seconds >= 0 (0 or None turns persistence off)")
    assert isinstance(expire, int)
    return expire


def _check_number(name: str, value: object, *, minimum: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum:  # type: ignore[operator]
        _fail(name, value, f"a number >= {minimum}")


def _addresses(name: str, value: object) -> tuple[tuple[str, int], ...]:
    expected = "a list of (host, port) pairs"
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        _fail(name, value, expected)
    result = []
    for item in value:  # type: ignore[union-attr]
        if (
            not isinstance(item, list | tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or isinstance(item[1], bool)
            or not isinstance(item[1], int)
        ):
            _fail(name, value, expected)
        result.append((item[0], item[1]))
    return tuple(result)


def _subprotocols(value: object) -> tuple[str, ...]:
    expected = "a list of subprotocol names (HTTP tokens), such as ['chat.v1']"
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        _fail("subprotocols", value, expected)
    for name in value:  # type: ignore[union-attr]
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            _fail("subprotocols", value, expected)
    return tuple(value)  # type: ignore[arg-type]


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"a whole number >= {minimum}")


def _facilities(name: str, value: object) -> tuple[str, ...]:
    expected = "a list of facility names, such as ['chat']"
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
        _fail(name, value, expected)
    for facility in value:  # type: ignore[union-attr]
        try:
            validate_facility(facility)
        except (InvalidFacility, TypeError):
            _fail(name, value, expected)
    return tuple(value)  # type: ignore[arg-type]
