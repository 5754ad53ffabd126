"""redis-py's internals and version differences that ws4redis-tornado relies on, in one place.

Written for redis-py 5.0.1 to 8.1 (CI runs the lowest and the newest). Two things live here:

* **Closing a Sentinel.** ``Sentinel.close()`` and the asyncio ``Sentinel.aclose()`` arrived in
  8.1.0; before that a Sentinel is closed by closing each client in its ``sentinels`` list, which
  is all 8.1 does. The asyncio clients' ``aclose()`` arrived in 5.0.1: hence the lower bound.
* **The broker's pub/sub connection.** The broker reads and writes a bare asyncio connection
  rather than a ``PubSub``, because it owns the channel list, the reconnection and the
  resubscription. redis-py documents no such use: the connection classes, their pools'
  ``make_connection()`` and the methods in :data:`PUBSUB_CONNECTION_METHODS` are its internals.
  This module builds those connections; the broker then calls their methods directly, with no
  wrapper in between, because its reader is the hot path.

:mod:`ws4redis_tornado.connections` (for the broker and the Django publisher) goes through this
module for both. What it relies on is checked when it is imported, so an unsupported redis-py
fails there, by name, rather than with an AttributeError on a live connection or at shutdown.
"""

from __future__ import annotations

import inspect
from typing import Any

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, ConnectionPool
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

__all__ = [
    "PUBSUB_CONNECTION_METHODS",
    "WRITTEN_FOR",
    "PubSubConnection",
    "aclose_sentinel",
    "close_sentinel",
    "connection_from_url",
    "missing_in_redis",
    "node_connection",
    "sentinel_master_connection",
]

WRITTEN_FOR = "redis-py 5.0.1 to 8.1"

PubSubConnection = AbstractConnection
"""The type of the broker's pub/sub connection: redis-py's asyncio connection, used bare."""

PUBSUB_CONNECTION_METHODS: dict[str, tuple[str, ...]] = {
    "connect": (),
    "disconnect": (),
    "send_command": (),
    "pack_commands": ("commands",),
    "send_packed_command": ("check_health",),
    "read_response": ("timeout",),
}
"""The methods the broker calls on its pub/sub connection, and the parameters it passes by name."""


# -- closing a Sentinel ---------------------------------------------------------------------------


async def aclose_sentinel(sentinel: AsyncSentinel) -> None:
    """Close the connections to the sentinels; the clients ``master_for`` made stay open."""
    if hasattr(sentinel, "aclose"):  # redis-py >= 8.1
        await sentinel.aclose()
        return
    for client in sentinel.sentinels:
        await client.aclose()


def close_sentinel(sentinel: Sentinel) -> None:
    """The synchronous twin of :func:`aclose_sentinel`."""
    if hasattr(sentinel, "close"):  # redis-py >= 8.1
        sentinel.close()
        return
    for client in sentinel.sentinels:
        client.close()


# -- the broker's pub/sub connection ----------------------------------------------------------------


def connection_from_url(url: str, **options: Any) -> PubSubConnection:
    """A new, unconnected connection to the server ``url`` names (``redis://``, ``rediss://``, ``unix://``)."""
    return ConnectionPool.from_url(url, **options).make_connection()


def node_connection(host: str, port: int, **options: Any) -> PubSubConnection:
    """A new, unconnected TCP connection to one server, e.g. a node of a Cluster."""
    return Connection(host=host, port=port, **options)


def sentinel_master_connection(
    sentinel: AsyncSentinel, service_name: str, **options: Any
) -> tuple[PubSubConnection, SentinelConnectionPool]:
    """A new, unconnected connection to the master that ``sentinel`` names when it connects.

    Returns its pool too: the connection refers to the pool only weakly, so the caller must keep
    the pool alive as long as the connection.
    """
    pool = SentinelConnectionPool(service_name, sentinel, **options)
    return pool.make_connection(), pool


# -- the check --------------------------------------------------------------------------------------


def missing_in_redis() -> list[str]:
    """What this module and its callers rely on that the installed redis-py lacks."""
    return _missing_closers() + _missing_pubsub_internals()


def _missing_closers() -> list[str]:
    needed = [(AsyncRedis, "aclose"), (AsyncRedisCluster, "aclose"), (Redis, "close"), (RedisCluster, "close")]
    missing = [f"{_name(owner)}.{name}()" for owner, name in needed if not hasattr(owner, name)]
    # A Sentinel built without addresses connects to nothing; it shows where its clients are kept.
    for owner, close in ((Sentinel, "close"), (AsyncSentinel, "aclose")):
        if not hasattr(owner, close) and not isinstance(getattr(owner([]), "sentinels", None), list):
            missing.append(f"{_name(owner)}.{close}() or .sentinels")
    return missing


def _missing_pubsub_internals() -> list[str]:
    missing = [
        f"{_name(pool)}.make_connection()"
        for pool in (ConnectionPool, SentinelConnectionPool)
        if not callable(getattr(pool, "make_connection", None))
    ]
    for name, parameters in PUBSUB_CONNECTION_METHODS.items():
        method = getattr(AbstractConnection, name, None)
        if not callable(method):
            missing.append(f"{_name(AbstractConnection)}.{name}()")
            continue
        taken = inspect.signature(method).parameters
        missing += [f"{_name(AbstractConnection)}.{name}({p}=...)" for p in parameters if p not in taken]
    return missing


def _name(owner: type) -> str:
    return f"{owner.__module__}.{owner.__qualname__}"


if missing := missing_in_redis():
    raise ImportError(f"ws4redis_tornado is written for {WRITTEN_FOR}; this redis-py lacks {', '.join(missing)}")
