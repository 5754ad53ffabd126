"""Where Redis is: a single server, a Sentinel-managed master, or a Cluster.

The broker asks this module for two things only: a command client (PUBLISH, SET, MGET) and, for
every (re)connection, a fresh pub/sub connection. Failover is followed by asking again: Sentinel
names the current master on each connect, and a Cluster's plain pub/sub reaches every node, so the
broker may subscribe on whichever node answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from .compat.redis import aclose_sentinel
from .config import Config

__all__ = ["RedisTopology"]

# The pub/sub read blocks while nothing is published, so it must not time out (the broker pings
# on its own). RESP2 keeps messages plain arrays, which the broker dispatches itself; RESP3 would
# route them through redis-py's push handlers.
_PUBSUB_OPTIONS = {"socket_timeout": None, "socket_keepalive": True, "protocol": 2}


class RedisTopology:
    """Builds the broker's connections for the topology ``config`` describes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._options: dict[str, Any] = {**config.redis_options, "decode_responses": False}
        self._sentinel: Sentinel | None = None
        self._cluster_nodes: Iterator[tuple[str, int]] | None = None
        self._sentinel_pool: SentinelConnectionPool | None = None
        if config.redis_sentinels:
            self._sentinel = Sentinel(
                list(config.redis_sentinels),
                sentinel_kwargs=dict(config.redis_sentinel_options),
                **self._options,
            )
        elif config.redis_cluster_nodes:
            self._cluster_nodes = itertools.cycle(config.redis_cluster_nodes)

    def command_client(self, max_connections: int) -> Redis | RedisCluster:
        """A client for PUBLISH, SET and MGET; one immediate retry survives a server restart."""
        retry = Retry(NoBackoff(), 1)
        if self._sentinel is not None:
            return self._sentinel.master_for(
                self.config.redis_service_name, max_connections=max_connections, retry=retry
            )
        if self._cluster_nodes is not None:
            nodes = [ClusterNode(host, port) for host, port in self.config.redis_cluster_nodes]
            return RedisCluster(startup_nodes=nodes, max_connections=max_connections, **self._options)
        pool = ConnectionPool.from_url(
            self.config.redis_url, max_connections=max_connections, retry=retry, **self._options
        )
        return Redis(connection_pool=pool)

    def pubsub_connection(self) -> AbstractConnection:
        """A new, unconnected connection for SUBSCRIBE; call again after each failure."""
        options = {**self._options, **_PUBSUB_OPTIONS}
        if self._sentinel is not None:
            # The connection refers to its pool only weakly: keep the pool alive here.
            self._sentinel_pool = SentinelConnectionPool(self.config.redis_service_name, self._sentinel, **options)
            return self._sentinel_pool.make_connection()
        if self._cluster_nodes is not None:
            # Rotate through the startup nodes, so a dead node is skipped on the next attempt.
            host, port = next(self._cluster_nodes)
            return Connection(host=host, port=port, **_without_cluster_only(options))
        return ConnectionPool.from_url(self.config.redis_url, **options).make_connection()

    async def aclose(self) -> None:
        """Close the connections to the sentinels, if any."""
        if self._sentinel is not None:
            await aclose_sentinel(self._sentinel)

    @property
    def is_cluster(self) -> bool:
        return self._cluster_nodes is not None


def _without_cluster_only(options: Mapping[str, Any]) -> dict[str, Any]:
    # RedisCluster options that a single Connection does not take.
    cluster_only = {"read_from_replicas", "require_full_coverage", "reinitialize_steps", "cluster_error_retry_attempts"}
    return {key: value for key, value in options.items() if key not in cluster_only}
