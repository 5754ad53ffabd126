"""The settings of django_bridge, read from ``django.conf.settings`` when they are used.

Nothing is read at import. Each accessor caches its result until a setting changes: the app
connects :func:`clear_cache` to ``setting_changed`` in ``ready()``, so ``override_settings`` works.
A wrong value raises :class:`SettingError`, which names the setting and says how to fix it; the
system checks (``checks.py``) report the same errors before the server starts.

The settings that are fields of the websocket loop's :class:`~ws4redis_tornado.Config` (``WEBSOCKET_URL``,
``WS4REDIS_EXPIRE``, ``WS4REDIS_PING_INTERVAL``...) are declared there, each with its default, hint and
check id (:func:`ws4redis_tornado.config.setting`), and Config alone validates them: this module
reads them and names the setting in Config's error. The others (``WS4REDIS_CONNECTION``, the hooks,
the origins and the health URL) are declared in :data:`SETTINGS` below. The README lists them all
("Settings"), and a test keeps that list complete.

``WS4REDIS_CONNECTION`` is ws4redis' dict (only the keys that differ from :data:`DEFAULT_CONNECTION`,
plus ``unix_socket_path``, ``ssl`` and redis-py's connection arguments), or a ``redis://``,
``rediss://`` or ``unix://`` URL, or a master that Redis Sentinel watches, followed through
failovers::

    WS4REDIS_CONNECTION = {
        "sentinels": [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26379)],
        "service_name": "mymaster",  # the default
        "sentinel_kwargs": {"password": "the sentinels' own"},  # optional
        "password": "the master's",  # and any other key of the first form but host, port and unix_socket_path
    }

or a Redis Cluster, found through any of its nodes (database 0 only, no ``ssl``)::

    WS4REDIS_CONNECTION = {"startup_nodes": [("10.0.1.1", 6379), ("10.0.1.2", 6379)], "password": "..."}

redis-py judges the connection arguments: a key it does not take is reported, naming
``WS4REDIS_CONNECTION``, with redis-py's own words. The broker and
:class:`~django_bridge.publisher.RedisPublisher` both connect as these describe.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ws4redis_tornado.config import Config, Setting, field_settings
from ws4redis_tornado.exceptions import ConfigurationError
from ws4redis_tornado.origins import normalise_origin
from ws4redis_tornado.subscriber import RedisSubscriber

__all__ = [
    "DEFAULT_CONNECTION",
    "DEFAULT_HEALTH_URL",
    "MEMBEROF_SESSION_KEY",
    "SETTINGS",
    "SettingError",
    "clear_cache",
    "get_allowed_channels",
    "get_allowed_facilities",
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

# The settings that are not Config fields; Config's own come from its fields' metadata.
_OWN_SETTINGS = (
    Setting(
        "WS4REDIS_CONNECTION",
        DEFAULT_CONNECTION,
        check_id="django_bridge.E003",
        hint=(
            "Set WS4REDIS_CONNECTION to a dict with only the keys that differ from"
            " {'host': 'localhost', 'port': 6379, 'db': 0, 'password': None} (also 'unix_socket_path',"
            " 'ssl' and redis-py connection arguments), to a redis://, rediss:// or unix:// URL, to"
            " {'sentinels': [(host, port), ...], 'service_name': 'mymaster', 'sentinel_kwargs': {...}, ...}"
            " for Redis Sentinel, or to {'startup_nodes': [(host, port), ...], ...} for a Redis Cluster."
        ),
    ),
    Setting(
        "WS4REDIS_SUBSCRIBER",
        DEFAULT_SUBSCRIBER,
        check_id="django_bridge.E007",
        hint=(
            "Set WS4REDIS_SUBSCRIBER to the dotted path of a subclass of"
            " ws4redis_tornado.RedisSubscriber (its methods are coroutines), or remove it."
        ),
    ),
    Setting(
        "WS4REDIS_ALLOWED_CHANNELS",
        None,
        check_id="django_bridge.E008",
        hint=(
            "Set WS4REDIS_ALLOWED_CHANNELS to a function (or its dotted path) taking (request, channels)"
            " and returning the allowed channels, or to None."
        ),
    ),
    Setting(
        "WS4REDIS_ALLOWED_FACILITIES",
        None,
        check_id="django_bridge.E024",
        hint=(
            "Set WS4REDIS_ALLOWED_FACILITIES to a function (or its dotted path) taking (request, facility)"
            " and returning True for a facility the request may use, or to None."
        ),
    ),
    Setting(
        "WS4REDIS_PROCESS_REQUEST",
        None,
        check_id="django_bridge.E009",
        hint="Set WS4REDIS_PROCESS_REQUEST to a function (or its dotted path) taking the request, or to None.",
    ),
    Setting(
        "WS4REDIS_ALLOWED_ORIGINS",
        (),
        check_id="django_bridge.E010",
        hint=(
            "Set WS4REDIS_ALLOWED_ORIGINS to a list of origins such as ['https://example.com',"
            " 'https://*.example.org']: a scheme and a host, with no path."
        ),
    ),
    Setting(
        "WS4REDIS_HEALTH_URL",
        DEFAULT_HEALTH_URL,
        check_id="django_bridge.E011",
        hint=(
            "Set WS4REDIS_HEALTH_URL to a path starting with '/' outside WEBSOCKET_URL, such as"
            f" {DEFAULT_HEALTH_URL!r}, or to None to serve no health check."
        ),
    ),
)

# Config field -> its setting, for the fields that are settings.
_FIELD_SETTINGS = field_settings()

SETTINGS: Mapping[str, Setting] = {each.name: each for each in (*_FIELD_SETTINGS.values(), *_OWN_SETTINGS)}
"""Every setting of django_bridge by name: its default, its hint and its system check's id."""


class SettingError(ImproperlyConfigured):
    """A setting of django_bridge has a wrong value.

    Attributes:
        setting: the name of the setting, e.g. ``'WS4REDIS_EXPIRE'``.
        problem: what is wrong, showing the value.
        hint: how to fix it.
        check_id: the id of the system check that reports it, e.g. ``'django_bridge.E004'``.
    """

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        self.hint = SETTINGS[setting].hint
        self.check_id = SETTINGS[setting].check_id
        super().__init__(f"{problem} {self.hint}")


def _read(setting: str) -> Any:
    """The value of ``setting``, or its default."""
    return getattr(settings, setting, SETTINGS[setting].default)


# -- the websocket loop's Config -------------------------------------------------------------------


@functools.cache
def get_config() -> Config:
    """Return the :class:`~ws4redis_tornado.Config` the settings describe.

    Raises:
        SettingError: a setting has a wrong value (the first one found).
    """
    config, found = _build_config()
    if found:
        raise found[0]
    assert config is not None
    return config


def _build_config() -> tuple[Config | None, list[SettingError]]:
    """Build the Config once from all settings; return it, or None, and every wrong setting.

    Config alone judges its fields. When it refuses one, that field gets its default and Config is
    built again, so that one pass finds every wrong setting; an error of a rule across fields that
    names a field already found wrong follows from that one and is left out.
    """
    found: list[SettingError] = []
    try:
        connection = _connection()
    except SettingError as exc:
        found.append(exc)
        connection = {}
    values = {field: _read(each.name) for field, each in _FIELD_SETTINGS.items()}
    wrong: set[str] = set()
    for _ in range(len(values) + 2):  # every field can be wrong once, and the connection
        try:
            config = Config(**connection, **values)
        except ConfigurationError as exc:
            if not wrong.intersection(exc.related):
                found.append(_setting_error(exc))
            if exc.field in values:
                wrong.add(exc.field)
                del values[exc.field]
            else:
                connection = {}
            continue
        if connection:
            found += _judged_by_redis_py(config)
        return (None if found else config), found
    raise AssertionError(f"Config refuses its own defaults: {found}")


def _setting_error(exc: ConfigurationError) -> SettingError:
    """Name, in ``exc``, the setting of each field instead of the field."""
    name = _setting_of(exc.field)
    if exc.field not in _FIELD_SETTINGS:
        return SettingError(name, f"{name} is not valid: {exc}.")
    problem = exc.problem
    for field in exc.related:
        problem = re.sub(rf"\b{re.escape(field)}\b", _setting_of(field), problem)
    return SettingError(name, f"{name} = {exc.value!r} {problem}.")


def _setting_of(field: str | None) -> str:
    # The fields that are no setting of their own say where Redis is: WS4REDIS_CONNECTION does.
    return _FIELD_SETTINGS[field].name if field in _FIELD_SETTINGS else "WS4REDIS_CONNECTION"


def _one_field(field: str) -> Any:
    """Read the setting of one Config ``field`` alone, and return the field as Config makes it."""
    try:
        config = Config(**{field: _read(_FIELD_SETTINGS[field].name)})
    except ConfigurationError as exc:
        raise _setting_error(exc) from exc
    return getattr(config, field)


# -- WS4REDIS_CONNECTION -------------------------------------------------------------------------------

_SENTINEL_KEYS = ("sentinels", "service_name", "sentinel_kwargs")
_CLUSTER_KEYS = ("startup_nodes",)
# Keys naming one server, which the sentinels or the startup nodes replace.
_SERVER_KEYS = ("host", "port", "unix_socket_path")


def _connection() -> dict[str, Any]:
    """Turn WS4REDIS_CONNECTION into the fields of a Config that say where Redis is."""
    value = _read("WS4REDIS_CONNECTION")
    if value is None:
        value = {}
    if isinstance(value, str):
        if urlsplit(value).scheme not in _URL_SCHEMES:
            raise SettingError("WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION = {value!r} is not a Redis URL.")
        return {"redis_url": value}
    if not isinstance(value, Mapping):
        raise SettingError("WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION = {value!r} is neither a dict nor a URL.")
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
    misplaced = sorted(str(key) for key in sentinel_options if key in (*_SERVER_KEYS, "db"))
    if misplaced:
        raise SettingError(
            "WS4REDIS_CONNECTION",
            f"WS4REDIS_CONNECTION['sentinel_kwargs'] has misplaced key(s) {', '.join(misplaced)}: the"
            " sentinels' addresses go in 'sentinels', the master's db beside it.",
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


def _judged_by_redis_py(config: Config) -> list[SettingError]:
    """Let redis-py judge WS4REDIS_CONNECTION's arguments: build, connecting nothing, what the broker will."""
    from redis.asyncio import Redis

    from ws4redis_tornado.connections import RedisTopology

    try:
        topology = RedisTopology(config)
        # Builds the clients of the sentinels, if any; a RedisCluster judges its arguments here.
        client = topology.command_client(max_connections=1)
        if isinstance(client, Redis):
            client.connection_pool.make_connection()  # a pool judges them when it makes a connection
        else:
            topology.pubsub_connection()  # the broker's plain connection to one node of the cluster
    except (TypeError, ValueError) as exc:
        return [SettingError("WS4REDIS_CONNECTION", f"WS4REDIS_CONNECTION is refused by redis-py: {exc}.")]
    return []


# -- hooks and classes -------------------------------------------------------------------------------


@functools.cache
def get_subscriber_class() -> type[RedisSubscriber]:
    """Return the class of WS4REDIS_SUBSCRIBER (a subclass of the core's RedisSubscriber)."""
    value = _read("WS4REDIS_SUBSCRIBER")
    cls = _import("WS4REDIS_SUBSCRIBER", value) if isinstance(value, str) else value
    if not (isinstance(cls, type) and issubclass(cls, RedisSubscriber)):
        raise SettingError("WS4REDIS_SUBSCRIBER", f"WS4REDIS_SUBSCRIBER = {value!r} is not a RedisSubscriber.")
    return cls


@functools.cache
def get_allowed_channels() -> Callable[..., Any] | None:
    """Return the WS4REDIS_ALLOWED_CHANNELS function, or None when it is not set."""
    return _callable("WS4REDIS_ALLOWED_CHANNELS")


@functools.cache
def get_allowed_facilities() -> Callable[..., Any] | None:
    """Return the WS4REDIS_ALLOWED_FACILITIES function, or None when it is not set."""
    return _callable("WS4REDIS_ALLOWED_FACILITIES")


@functools.cache
def get_process_request() -> Callable[..., Any] | None:
    """Return the WS4REDIS_PROCESS_REQUEST function, or None when it is not set."""
    return _callable("WS4REDIS_PROCESS_REQUEST")


def _callable(setting: str) -> Callable[..., Any] | None:
    value = _read(setting)
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
    value = _read("WS4REDIS_ALLOWED_ORIGINS")
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
    value = _read("WS4REDIS_HEALTH_URL")
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise SettingError("WS4REDIS_HEALTH_URL", f"WS4REDIS_HEALTH_URL = {value!r} is not a path.")
    websocket_url = _one_field("websocket_url")
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
    _, found = _build_config()
    accessors = (
        get_subscriber_class,
        get_allowed_channels,
        get_allowed_facilities,
        get_process_request,
        get_allowed_origins,
    )
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
    get_allowed_facilities,
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
