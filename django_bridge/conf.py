"""The settings of django_bridge, read from ``django.conf.settings`` when they are used.

Nothing is read at import. Each accessor caches its result until a setting changes: the app
connects :func:`clear_cache` to ``setting_changed`` in ``ready()``, so ``override_settings`` works.
A wrong value raises :class:`SettingError`, which names the setting and says how to fix it; the
system checks (``checks.py``) report the same errors before the server starts.

Settings (defaults as in ws4redis, plus the new ones marked *):

=============================== ==================================================================
``WEBSOCKET_URL``               ``'/ws/'``
``WS4REDIS_CONNECTION``         ``{'host': 'localhost', 'port': 6379, 'db': 0, 'password': None}``;
                                give only the keys that differ (also ``unix_socket_path``, ``ssl``
                                and redis-py's connection arguments), or a ``redis://``,
                                ``rediss://`` or ``unix://`` URL; * or Sentinel or Cluster, below
``WS4REDIS_EXPIRE``             ``3600`` seconds; 0 or None keeps no message
``WS4REDIS_PREFIX``             ``None``
``WS4REDIS_HEARTBEAT``          ``None``
``WS4REDIS_HEARTBEAT_INTERVAL`` * ``4`` seconds between two heartbeats
``WS4REDIS_PING_INTERVAL``      * ``20`` seconds between websocket pings (ping/pong frames); 0 sends
                                none
``WS4REDIS_PING_TIMEOUT``       * ``None``: seconds a pong may take before the socket is closed, at
                                most ``WS4REDIS_PING_INTERVAL``; None waits one ping interval
``WS4REDIS_MAX_PERSISTED_SIZE`` * ``65536``: largest message, in bytes, that a client publishes and
                                that is persisted too; larger ones are published, not kept
``WS4REDIS_SUBPROTOCOLS``       * ``[]``: websocket subprotocols the server selects when a page
                                offers them; an offer of none of them selects none
``WS4REDIS_SUBSCRIBER``         ``'ws4redis_tornado.subscriber.RedisSubscriber'`` (dotted path or
                                class)
``WS4REDIS_ALLOWED_CHANNELS``   ``None`` (callable or dotted path)
``WS4REDIS_PROCESS_REQUEST``    ``None`` (callable or dotted path)
``WS4REDIS_ALLOWED_ORIGINS``    * ``[]``: origins such as ``'https://example.com'`` (or
                                ``'https://*.example.com'``) whose pages may open websockets
``WS4REDIS_HEALTH_URL``         * ``'/ws4redis/health'``; None serves no health check
``WS4REDIS_HEALTH_DETAIL``      * ``False``: True adds the numbers of sockets and channels to the
                                health check's answer
``WS4REDIS_HANDSHAKE_TIMEOUT``  * ``10`` seconds a connection may take to send its request headers
=============================== ==================================================================

A master that Redis Sentinel watches, followed through failovers::

    WS4REDIS_CONNECTION = {
        "sentinels": [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26379)],
        "service_name": "mymaster",  # the default
        "sentinel_kwargs": {"password": "the sentinels' own"},  # optional
        "password": "the master's",  # and any other key of the first form but host, port and unix_socket_path
    }

A Redis Cluster, found through any of its nodes (database 0 only, no ``ssl``)::

    WS4REDIS_CONNECTION = {"startup_nodes": [("10.0.1.1", 6379), ("10.0.1.2", 6379)], "password": "..."}

The broker and :class:`~django_bridge.publisher.RedisPublisher` both connect as these describe.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ws4redis_tornado.config import Config
from ws4redis_tornado.exceptions import ConfigurationError
from ws4redis_tornado.origins import normalise_origin
from ws4redis_tornado.subscriber import RedisSubscriber

__all__ = [
    "DEFAULT_CONNECTION",
    "DEFAULT_HEALTH_URL",
    "MEMBEROF_SESSION_KEY",
    "SettingError",
    "clear_cache",
    "get_allowed_channels",
    "get_allowed_origins",
    "get_config",
    "get_health_url",
    "get_process_request",
    "get_subscriber_class",
    "on_setting_changed",
    "problems",
]

DEFAULT_CONNECTION: Mapping[str, Any] = {"host": "localhost", "port": 6379, "db": 0, "password": None}
DEFAULT_SUBSCRIBER = "ws4redis_tornado.subscriber.RedisSubscriber"
DEFAULT_HEALTH_URL = "/ws4redis/health"

MEMBEROF_SESSION_KEY = "ws4redis:memberof"
"""Session key holding the names of the user's groups, written at login (as ws4redis did)."""

_URL_SCHEMES = ("redis", "rediss", "unix")

_HINTS = {
    "WEBSOCKET_URL": "Set WEBSOCKET_URL to a path starting with '/', such as '/ws/'.",
    "WS4REDIS_CONNECTION": (
        "Set WS4REDIS_CONNECTION to a dict with only the keys that differ from"
        " {'host': 'localhost', 'port': 6379, 'db': 0, 'password': None} (also 'unix_socket_path',"
        " 'ssl' and redis-py connection arguments), to a redis://, rediss:// or unix:// URL, to"
        " {'sentinels': [(host, port), ...], 'service_name': 'mymaster', 'sentinel_kwargs': {...}, ...}"
        " for Redis Sentinel, or to {'startup_nodes': [(host, port), ...], ...} for a Redis Cluster."
    ),
    "WS4REDIS_EXPIRE": "Set WS4REDIS_EXPIRE to a whole number of seconds; 0 or None keeps no message.",
    "WS4REDIS_PREFIX": "Set WS4REDIS_PREFIX to a string without whitespace, or to None.",
    "WS4REDIS_HEARTBEAT": "Set WS4REDIS_HEARTBEAT to a non-empty string, or to None to send no heartbeat.",
    "WS4REDIS_HEARTBEAT_INTERVAL": (
        "Set WS4REDIS_HEARTBEAT_INTERVAL to the number of seconds between two heartbeats, such as 4."
    ),
    "WS4REDIS_PING_INTERVAL": (
        "Set WS4REDIS_PING_INTERVAL to the number of seconds between websocket pings, such as 20,"
        " or to 0 to send no ping."
    ),
    "WS4REDIS_PING_TIMEOUT": (
        "Set WS4REDIS_PING_TIMEOUT to the number of seconds a pong may take, at most"
        " WS4REDIS_PING_INTERVAL, or to None to wait one ping interval."
    ),
    "WS4REDIS_MAX_PERSISTED_SIZE": (
        "Set WS4REDIS_MAX_PERSISTED_SIZE to the largest number of bytes a message a client publishes"
        " may have and still be persisted, such as 65536."
    ),
    "WS4REDIS_SUBPROTOCOLS": (
        "Set WS4REDIS_SUBPROTOCOLS to a list of the websocket subprotocol names your pages offer,"
        " such as ['chat.v1'], or to []."
    ),
    "WS4REDIS_SUBSCRIBER": (
        "Set WS4REDIS_SUBSCRIBER to the dotted path of a subclass of"
        " ws4redis_tornado.RedisSubscriber (its methods are coroutines), or remove it."
    ),
    "WS4REDIS_ALLOWED_CHANNELS": (
        "Set WS4REDIS_ALLOWED_CHANNELS to a function (or its dotted path) taking (request, channels)"
        " and returning the allowed channels, or to None."
    ),
    "WS4REDIS_PROCESS_REQUEST": (
        "Set WS4REDIS_PROCESS_REQUEST to a function (or its dotted path) taking the request, or to None."
    ),
    "WS4REDIS_ALLOWED_ORIGINS": (
        "Set WS4REDIS_ALLOWED_ORIGINS to a list of origins such as ['https://example.com',"
        " 'https://*.example.org']: a scheme and a host, with no path."
    ),
    "WS4REDIS_HEALTH_URL": (
        "Set WS4REDIS_HEALTH_URL to a path starting with '/' outside WEBSOCKET_URL, such as"
        f" {DEFAULT_HEALTH_URL!r}, or to None to serve no health check."
    ),
    "WS4REDIS_HEALTH_DETAIL": (
        "Set WS4REDIS_HEALTH_DETAIL to True to show the numbers of sockets and channels in the health"
        " check's answer, or to False."
    ),
    "WS4REDIS_HANDSHAKE_TIMEOUT": (
        "Set WS4REDIS_HANDSHAKE_TIMEOUT to the number of seconds a connection may take to send its"
        " request headers, such as 10."
    ),
}


class SettingError(ImproperlyConfigured):
    """A setting of django_bridge has a wrong value.

    Attributes:
        setting: the name of the setting, e.g. ``'WS4REDIS_EXPIRE'``.
        problem: what is wrong, showing the value.
        hint: how to fix it.
    """

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        self.hint = _HINTS[setting]
        super().__init__(f"{problem} {self.hint}")


# -- the websocket loop's Config -------------------------------------------------------------------


# Settings that map one to one onto a Config field: setting -> (field, default).
_FIELDS: Mapping[str, tuple[str, Any]] = {
    "WEBSOCKET_URL": ("websocket_url", "/ws/"),
    "WS4REDIS_PREFIX": ("prefix", None),
    "WS4REDIS_EXPIRE": ("expire", 3600),
    "WS4REDIS_HEARTBEAT": ("heartbeat", None),
    "WS4REDIS_HEARTBEAT_INTERVAL": ("heartbeat_interval", 4),
    "WS4REDIS_PING_INTERVAL": ("ping_interval", 20),
    "WS4REDIS_PING_TIMEOUT": ("ping_timeout", None),
    "WS4REDIS_MAX_PERSISTED_SIZE": ("max_persisted_size", 64 * 1024),
    "WS4REDIS_SUBPROTOCOLS": ("subprotocols", ()),
    "WS4REDIS_HANDSHAKE_TIMEOUT": ("handshake_timeout", 10),
    "WS4REDIS_HEALTH_DETAIL": ("health_detail", False),
}


@functools.cache
def get_config() -> Config:
    """Return the :class:`~ws4redis_tornado.Config` the settings describe.

    Raises:
        SettingError: a setting has a wrong value.
    """
    fields = {_FIELDS[setting][0]: _field(setting) for setting in _FIELDS}
    return Config(**_connection(), **fields)


def _field(setting: str) -> Any:
    """Read ``setting`` and validate it the way Config validates its field."""
    field, default = _FIELDS[setting]
    value = getattr(settings, setting, default)
    # The ping timeout alone: Config would judge it against the default ping interval.
    alone = {"ping_interval": 0} if setting == "WS4REDIS_PING_TIMEOUT" else {}
    try:
        Config(**{field: value}, **alone)
    except ConfigurationError as exc:
        raise SettingError(setting, f"{setting} = {value!r} is not valid: {exc}.") from exc
    if setting == "WS4REDIS_PING_TIMEOUT" and value is not None:
        _check_ping_timeout(value)
    return value


def _check_ping_timeout(timeout: float) -> None:
    try:
        interval = _field("WS4REDIS_PING_INTERVAL")
    except SettingError:
        return  # reported on its own
    if interval and timeout > interval:
        raise SettingError(
            "WS4REDIS_PING_TIMEOUT",
            f"WS4REDIS_PING_TIMEOUT = {timeout!r} is longer than WS4REDIS_PING_INTERVAL ({interval!r}).",
        )


# -- WS4REDIS_CONNECTION -------------------------------------------------------------------------------

_SENTINEL_KEYS = ("sentinels", "service_name", "sentinel_kwargs")
_CLUSTER_KEYS = ("startup_nodes",)
# Keys naming one server, which the sentinels or the startup nodes replace.
_SERVER_KEYS = ("host", "port", "unix_socket_path")


def _connection() -> dict[str, Any]:
    """Turn WS4REDIS_CONNECTION into the fields of a Config that say where Redis is."""
    value = getattr(settings, "WS4REDIS_CONNECTION", None)
    if value is None:
        value = {}
    if isinstance(value, str):
        if urlsplit(value).scheme not in _URL_SCHEMES:
            raise SettingError("WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION = {value!r} is not a Redis URL.")
        return {"redis_url": value}
    if not isinstance(value, Mapping):
        raise SettingError("WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION = {value!r} is neither a dict nor a URL.")
    known = _connection_keys().union(_SENTINEL_KEYS, _CLUSTER_KEYS)
    unknown = sorted(str(key) for key in value if key not in known)
    if unknown:
        raise SettingError("WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION has unknown key(s) {', '.join(unknown)}.")
    if "sentinels" in value:
        return _sentinel_fields(value)
    if "startup_nodes" in value:
        return _cluster_fields(value)
    _refuse(value, _SENTINEL_KEYS, "without 'sentinels'")
    options = {**DEFAULT_CONNECTION, **value}
    url = _connection_url(
        host=options.pop("host"),
        port=options.pop("port"),
        db=options.pop("db"),
        path=options.pop("unix_socket_path", None),
        ssl=options.pop("ssl", False),
    )
    # Passwords stay out of the URL, so they never show in log lines.
    return {"redis_url": url, "redis_options": _without_none(options)}


def _connection_url(*, host: Any, port: Any, db: Any, path: Any, ssl: Any) -> str:
    _check_db(db)
    _check_ssl(ssl)
    if path is not None:
        if not isinstance(path, str) or not path:
            raise _wrong("unix_socket_path", path, "the path of Redis' socket")
        if ssl:
            raise _wrong("ssl", ssl, "False with a unix_socket_path")
        return f"unix://{quote(path)}?db={db}"
    _check_host("host", host)
    _check_port("port", port)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'rediss' if ssl else 'redis'}://{host}:{port}/{db}"


def _sentinel_fields(value: Mapping[str, Any]) -> dict[str, Any]:
    """The Config fields of ``{'sentinels': [(host, port), ...], 'service_name': ..., ...}``."""
    _refuse(value, (*_SERVER_KEYS, *_CLUSTER_KEYS), "with 'sentinels'")
    options = dict(value)
    sentinels = _addresses("sentinels", options.pop("sentinels"))
    service_name = options.pop("service_name", "mymaster")
    if not isinstance(service_name, str) or not service_name.strip():
        raise _wrong("service_name", service_name, "the name of the master the sentinels monitor")
    sentinel_options = options.pop("sentinel_kwargs", None)
    if sentinel_options is None:
        sentinel_options = {}
    if not isinstance(sentinel_options, Mapping):
        raise _wrong("sentinel_kwargs", sentinel_options, "a dict of connection arguments for the sentinels")
    unknown = sorted(str(key) for key in sentinel_options if key not in _sentinel_option_keys())
    if unknown:
        raise SettingError(
            "WS4REDIS_CONNECTION",
            f"WS4REDIS_CONNECTION['sentinel_kwargs'] has unknown or misplaced key(s) {', '.join(unknown)}.",
        )
    _check_db(options.get("db", 0))
    _check_ssl(options.get("ssl", False))
    if options.get("ssl") is False:
        del options["ssl"]  # redis-py's Sentinel takes ssl=True only
    return {
        "redis_sentinels": sentinels,
        "redis_service_name": service_name,
        "redis_sentinel_options": _without_none(sentinel_options),
        "redis_options": _without_none(options),
    }


def _cluster_fields(value: Mapping[str, Any]) -> dict[str, Any]:
    """The Config fields of ``{'startup_nodes': [(host, port), ...], ...}``."""
    _refuse(value, (*_SERVER_KEYS, *_SENTINEL_KEYS), "with 'startup_nodes'")
    options = dict(value)
    nodes = _addresses("startup_nodes", options.pop("startup_nodes"))
    db = options.pop("db", 0)
    _check_db(db)
    if db != 0:
        raise _wrong("db", db, "0: a Redis Cluster has database 0 only")
    ssl = options.pop("ssl", False)
    _check_ssl(ssl)
    if ssl:
        # The broker subscribes through a plain connection to one node, which has no TLS (yet).
        raise _wrong("ssl", ssl, "False with 'startup_nodes': TLS to a Redis Cluster is not supported")
    refused = sorted(str(key) for key in options if key not in _cluster_option_keys())
    if refused:
        raise SettingError(
            "WS4REDIS_CONNECTION",
            f"WS4REDIS_CONNECTION has key(s) {', '.join(refused)}, which a Redis Cluster client does not take.",
        )
    return {"redis_cluster_nodes": nodes, "redis_options": _without_none(options)}


def _addresses(key: str, value: Any) -> tuple[tuple[str, int], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple) or not value:
        raise _wrong(key, value, "a non-empty list of (host, port) pairs")
    for item in value:
        if not (isinstance(item, list | tuple) and len(item) == 2 and _is_host(item[0]) and _is_port(item[1])):
            raise SettingError(
                "WS4REDIS_CONNECTION",
                f"WS4REDIS_CONNECTION[{key!r}] holds {item!r}; expected a (host, port) pair such as"
                " ('10.0.0.1', 26379).",
            )
    return tuple((host, port) for host, port in value)


def _refuse(value: Mapping[str, Any], keys: Iterable[str], context: str) -> None:
    misplaced = [repr(key) for key in keys if key in value]
    if misplaced:
        raise SettingError(
            "WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION has {', '.join(misplaced)}, which has no use {context}."
        )


def _wrong(key: str, value: Any, expected: str) -> SettingError:
    return SettingError("WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION[{key!r}] = {value!r}; expected {expected}.")


def _check_db(db: Any) -> None:
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise _wrong("db", db, "a database number >= 0")


def _check_ssl(ssl: Any) -> None:
    if not isinstance(ssl, bool):
        raise _wrong("ssl", ssl, "True or False")


def _check_host(key: str, host: Any) -> None:
    if not _is_host(host):
        raise _wrong(key, host, "a host name or address")


def _check_port(key: str, port: Any) -> None:
    if not _is_port(port):
        raise _wrong(key, port, "a TCP port number")


def _is_host(host: Any) -> bool:
    return isinstance(host, str) and bool(host) and not any(ch.isspace() or ch in "/@?#" for ch in host)


def _is_port(port: Any) -> bool:
    return not isinstance(port, bool) and isinstance(port, int) and 0 < port < 65536


def _without_none(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: option for key, option in options.items() if option is not None}


@functools.cache
def _connection_keys() -> frozenset[str]:
    """Keys WS4REDIS_CONNECTION may hold: ws4redis' own and redis-py's connection arguments."""
    from redis import connection as sync
    from redis.asyncio import connection as aio

    classes = (
        sync.AbstractConnection,
        sync.Connection,
        sync.SSLConnection,
        sync.UnixDomainSocketConnection,
        aio.AbstractConnection,
        aio.Connection,
        aio.SSLConnection,
    )
    names = {name for cls in classes for name in inspect.signature(cls.__init__).parameters}
    names -= {"self", "kwargs", "path"}
    return frozenset(names | set(DEFAULT_CONNECTION) | {"unix_socket_path", "ssl"})


@functools.cache
def _sentinel_option_keys() -> frozenset[str]:
    """Keys of ``sentinel_kwargs``: connection arguments, without those saying which server."""
    return _connection_keys() - {"host", "port", "db", "unix_socket_path"}


@functools.cache
def _cluster_option_keys() -> frozenset[str]:
    """Connection arguments that redis-py's asyncio RedisCluster takes, TLS ones aside (see ssl)."""
    from redis.asyncio.cluster import RedisCluster

    taken = set(inspect.signature(RedisCluster.__init__).parameters)
    return frozenset(key for key in _connection_keys() & taken if not key.startswith("ssl") and key != "path")


# -- hooks and classes -------------------------------------------------------------------------------


@functools.cache
def get_subscriber_class() -> type[RedisSubscriber]:
    """Return the class of WS4REDIS_SUBSCRIBER (a subclass of the core's RedisSubscriber)."""
    value = getattr(settings, "WS4REDIS_SUBSCRIBER", DEFAULT_SUBSCRIBER)
    cls = _import("WS4REDIS_SUBSCRIBER", value) if isinstance(value, str) else value
    if not (isinstance(cls, type) and issubclass(cls, RedisSubscriber)):
        raise SettingError("WS4REDIS_SUBSCRIBER", f"WS4REDIS_SUBSCRIBER = {value!r} is not a RedisSubscriber.")
    return cls


@functools.cache
def get_allowed_channels() -> Callable[..., Any] | None:
    """Return the WS4REDIS_ALLOWED_CHANNELS function, or None when it is not set."""
    return _callable("WS4REDIS_ALLOWED_CHANNELS")


@functools.cache
def get_process_request() -> Callable[..., Any] | None:
    """Return the WS4REDIS_PROCESS_REQUEST function, or None when it is not set."""
    return _callable("WS4REDIS_PROCESS_REQUEST")


def _callable(setting: str) -> Callable[..., Any] | None:
    value = getattr(settings, setting, None)
    if value is None:
        return None
    function = _import(setting, value) if isinstance(value, str) else value
    if not callable(function):
        raise SettingError(setting, f"{setting} = {value!r} is not callable.")
    return function


def _import(setting: str, path: str) -> Any:
    try:
        return import_string(path)
    except ImportError as exc:
        raise SettingError(setting, f"{setting} = {path!r} cannot be imported: {exc}.") from exc


# -- origins and URLs --------------------------------------------------------------------------------


@functools.cache
def get_allowed_origins() -> tuple[str, ...]:
    """Return WS4REDIS_ALLOWED_ORIGINS, each normalised by :func:`normalise_origin`."""
    value = getattr(settings, "WS4REDIS_ALLOWED_ORIGINS", ())
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise SettingError(
            "WS4REDIS_ALLOWED_ORIGINS", f"WS4REDIS_ALLOWED_ORIGINS = {value!r} is not a list of origins."
        )
    origins = []
    for origin in value:
        normalised = normalise_origin(origin) if isinstance(origin, str) else None
        if normalised is None:
            raise SettingError(
                "WS4REDIS_ALLOWED_ORIGINS", f"WS4REDIS_ALLOWED_ORIGINS holds {origin!r}, which is not an origin."
            )
        origins.append(normalised)
    return tuple(origins)


@functools.cache
def get_health_url() -> str | None:
    """Return WS4REDIS_HEALTH_URL (default ``/ws4redis/health``), or None to serve no health check."""
    value = getattr(settings, "WS4REDIS_HEALTH_URL", DEFAULT_HEALTH_URL)
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise SettingError("WS4REDIS_HEALTH_URL", f"WS4REDIS_HEALTH_URL = {value!r} is not a path.")
    websocket_url = Config(websocket_url=_field("WEBSOCKET_URL")).websocket_url
    if value.startswith(websocket_url):
        raise SettingError(
            "WS4REDIS_HEALTH_URL",
            f"WS4REDIS_HEALTH_URL = {value!r} lies under WEBSOCKET_URL ({websocket_url!r}),"
            " which answers every path below it.",
        )
    return value


# -- cache -------------------------------------------------------------------------------------------


def problems() -> list[SettingError]:
    """Read every setting and return the errors found, one per wrong setting (for the checks)."""
    accessors: list[Callable[[], Any]] = [_connection]
    accessors += [functools.partial(_field, setting) for setting in _FIELDS]
    accessors += [get_subscriber_class, get_allowed_channels, get_process_request, get_allowed_origins]
    found = []
    for accessor in accessors:
        try:
            accessor()
        except SettingError as exc:
            found.append(exc)
    # The health URL is judged against WEBSOCKET_URL, so only when that one is right.
    if not any(error.setting == "WEBSOCKET_URL" for error in found):
        try:
            get_health_url()
        except SettingError as exc:
            found.append(exc)
    return found


_CACHED = (
    get_config,
    get_subscriber_class,
    get_allowed_channels,
    get_process_request,
    get_allowed_origins,
    get_health_url,
)


def clear_cache() -> None:
    """Forget every value read so far; the next call reads the settings again."""
    for accessor in _CACHED:
        accessor.cache_clear()


def on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Receiver of Django's ``setting_changed`` (connected in ``DjangoBridgeConfig.ready()``)."""
    clear_cache()
