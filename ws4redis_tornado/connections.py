"""Where Redis is: a single server, a Sentinel-managed master, or a Cluster; and the clients that reach it.

:class:`RedisTopology` builds, for the topology a :class:`~ws4redis_tornado.config.Config`
describes, the command clients (asyncio for the broker; synchronous or asyncio for the Django
publisher) and, for each (re)connection of the broker, a fresh pub/sub connection. Failover is
followed by asking again: Sentinel names the current master on each connect, and a Cluster's
plain pub/sub reaches every node, so the broker may subscribe on whichever node answers. With
sharded pub/sub each channel is subscribed on its slot's master, through
:meth:`RedisTopology.node_pubsub_connection`. What
the command clients send is in :mod:`ws4redis_tornado.redis_commands`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from .compat.redis import (
    PubSubConnection,
    aclose_sentinel,
    close_sentinel,
    connection_from_url,
    node_connection,
    sentinel_master_connection,
)
from .config import Config

__all__ = ["AsyncCommandClient", "CommandClient", "RedisTopology", "topology_key"]

CommandClient: TypeAlias = redis.Redis | RedisCluster
AsyncCommandClient: TypeAlias = redis.asyncio.Redis | AsyncRedisCluster

# The pub/sub read blocks while nothing is published, so it must not time out (the broker pings
# on its own). RESP2 keeps messages plain arrays, which the broker dispatches itself; RESP3 would
# route them through redis-py's push handlers.
_PUBSUB_OPTIONS = {"socket_timeout": None, "protocol": 2}
# Only for TCP: a unix:// connection refuses the argument.
_KEEPALIVE = {"socket_keepalive": True}
# RedisCluster options that a single Connection does not take.
_CLUSTER_ONLY = {"read_from_replicas", "require_full_coverage", "reinitialize_steps", "cluster_error_retry_attempts"}


@dataclass(frozen=True)
class _Flavour:
    """redis-py's classes for one kind of I/O: synchronous, or asyncio."""

    redis: type[Any]
    pool: type[Any]
    sentinel: type[Any]
    cluster: type[Any]
    node: type[Any]
    retry: type[Any]


_SYNC = _Flavour(redis.Redis, redis.ConnectionPool, Sentinel, RedisCluster, ClusterNode, Retry)
_ASYNC = _Flavour(
    redis.asyncio.Redis, redis.asyncio.ConnectionPool, AsyncSentinel, AsyncRedisCluster, AsyncClusterNode, AsyncRetry
)


def topology_key(config: Config) -> tuple[Any, ...]:
    """A hashable value equal for every config that reaches Redis the same way (prefix etc. aside)."""
    # repr: option values (an SSL context, say) need not be hashable.
    return (
        config.redis_url,
        repr(sorted(config.redis_options.items())),
        config.redis_sentinels,
        config.redis_service_name,
        repr(sorted(config.redis_sentinel_options.items())),
        config.redis_cluster_nodes,
    )


class RedisTopology:
    """Builds the clients and connections for the topology ``config`` describes, and closes them.

    Building connects nothing, except a synchronous Cluster client, which learns the slots at once.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._options: dict[str, Any] = {**config.redis_options, "decode_responses": False}
        self._sentinels: dict[_Flavour, Any] = {}
        self._clients: dict[_Flavour, list[Any]] = {_SYNC: [], _ASYNC: []}
        self._cluster_nodes: Iterator[tuple[str, int]] | None = None
        self._sentinel_pool: SentinelConnectionPool | None = None
        if config.redis_cluster_nodes:
            self._cluster_nodes = itertools.cycle(config.redis_cluster_nodes)

    @property
    def is_cluster(self) -> bool:
        return self._cluster_nodes is not None

    # -- command clients ----------------------------------------------------------------------

    def command_client(
        self, max_connections: int | None = None, *, immediate_retries: int | None = None
    ) -> AsyncCommandClient:
        """An asyncio client for the commands of :mod:`~ws4redis_tornado.redis_commands`; see :meth:`aclose`.

        ``max_connections`` bounds its pool. ``immediate_retries``, if given, replaces redis-py's
        retry policy by that many retries without delay (not for a Cluster, which has its own).
        """
        return self._command_client(_ASYNC, max_connections, immediate_retries)

    def sync_command_client(
        self, max_connections: int | None = None, *, immediate_retries: int | None = None
    ) -> CommandClient:
        """The synchronous twin of :meth:`command_client`; see :meth:`close`."""
        return self._command_client(_SYNC, max_connections, immediate_retries)

    def _command_client(self, flavour: _Flavour, max_connections: int | None, immediate_retries: int | None) -> Any:
        limits: dict[str, Any] = {} if max_connections is None else {"max_connections": max_connections}
        if self.config.redis_cluster_nodes:
            nodes = [flavour.node(host, port) for host, port in self.config.redis_cluster_nodes]
            client = flavour.cluster(startup_nodes=nodes, **limits, **self._options)
        else:
            if immediate_retries is not None:
                limits["retry"] = flavour.retry(NoBackoff(), immediate_retries)
            if self.config.redis_sentinels:
                client = self._sentinel(flavour).master_for(self.config.redis_service_name, **limits)
            else:
                pool = flavour.pool.from_url(self.config.redis_url, **limits, **self._options)
                client = flavour.redis(connection_pool=pool)
        self._clients[flavour].append(client)
        return client

    def _sentinel(self, flavour: _Flavour) -> Any:
        sentinel = self._sentinels.get(flavour)
        if sentinel is None:
            sentinel = self._sentinels[flavour] = flavour.sentinel(
                list(self.config.redis_sentinels),
                sentinel_kwargs=dict(self.config.redis_sentinel_options),
                **self._options,
            )
        return sentinel

    # -- the broker's pub/sub connection ------------------------------------------------------

    def pubsub_connection(self) -> PubSubConnection:
        """A new, unconnected connection for SUBSCRIBE; call again after each failure."""
        options = {**self._options, **_PUBSUB_OPTIONS}
        if self.config.redis_sentinels:
            # Kept here, as the connection refers to its pool only weakly.
            connection, self._sentinel_pool = sentinel_master_connection(
                self._sentinel(_ASYNC), self.config.redis_service_name, **options, **_KEEPALIVE
            )
            return connection
        if self._cluster_nodes is not None:
            # Rotate through the startup nodes, so a dead node is skipped on the next attempt.
            host, port = next(self._cluster_nodes)
            return node_connection(host, port, **_without_cluster_only(options), **_KEEPALIVE)
        if urlsplit(self.config.redis_url).scheme != "unix":
            options.update(_KEEPALIVE)
        return connection_from_url(self.config.redis_url, **options)

    def node_pubsub_connection(self, host: str, port: int) -> PubSubConnection:
        """A new, unconnected pub/sub connection to one node of the Cluster, for sharded pub/sub.

        :mod:`~ws4redis_tornado.sharded` opens one per master owning a channel, and reads the slot map
        through a short-lived one.
        """
        options = {**self._options, **_PUBSUB_OPTIONS}
        return node_connection(host, port, **_without_cluster_only(options), **_KEEPALIVE)

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the asyncio command clients built here, and the connections to the sentinels."""
        clients, self._clients[_ASYNC] = self._clients[_ASYNC], []
        for client in clients:
            await client.aclose()
            if _has_own_pool(client):
                await client.connection_pool.disconnect()
        sentinel = self._sentinels.pop(_ASYNC, None)
        if sentinel is not None:
            await aclose_sentinel(sentinel)

    def close(self) -> None:
        """The synchronous twin of :meth:`aclose`, for the synchronous clients."""
        clients, self._clients[_SYNC] = self._clients[_SYNC], []
        for client in clients:
            client.close()
            if _has_own_pool(client):
                client.connection_pool.disconnect()
        sentinel = self._sentinels.pop(_SYNC, None)
        if sentinel is not None:
            close_sentinel(sentinel)


def _has_own_pool(client: Any) -> bool:
    # Closing a client leaves open a pool it was handed (as every non-Cluster client here is).
    return not isinstance(client, RedisCluster | AsyncRedisCluster)


def _without_cluster_only(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key not in _CLUSTER_ONLY}
