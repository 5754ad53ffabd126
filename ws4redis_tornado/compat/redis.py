"""Closing a redis-py Sentinel the same way on every redis-py we support.

Written for redis-py 5.0.1 to 8.1 (CI runs the lowest and the newest). ``Sentinel.close()`` and
the asyncio ``Sentinel.aclose()`` arrived in 8.1.0; before that a Sentinel is closed by closing
each client in its ``sentinels`` list, which is all 8.1 does. The asyncio clients' ``aclose()``,
which the broker and the publisher call directly, arrived in 5.0.1: hence the lower bound.

The broker (through :mod:`ws4redis_tornado.connections`) and the Django publisher close their
Sentinels through this module only. What it relies on is checked when it is imported, so an
unsupported redis-py fails there, by name, rather than with an AttributeError at shutdown.
"""

from __future__ import annotations

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

__all__ = ["WRITTEN_FOR", "aclose_sentinel", "close_sentinel"]

WRITTEN_FOR = "redis-py 5.0.1 to 8.1"


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


def _missing() -> list[str]:
    """What this module and its callers rely on that the installed redis-py lacks."""
    needed = [(AsyncRedis, "aclose"), (AsyncRedisCluster, "aclose"), (Redis, "close"), (RedisCluster, "close")]
    missing = [f"{owner.__module__}.{owner.__name__}.{name}()" for owner, name in needed if not hasattr(owner, name)]
    # A Sentinel built without addresses connects to nothing; it shows where its clients are kept.
    for owner, close in ((Sentinel, "close"), (AsyncSentinel, "aclose")):
        if not hasattr(owner, close) and not isinstance(getattr(owner([]), "sentinels", None), list):
            missing.append(f"{owner.__module__}.{owner.__name__}.{close}() or .sentinels")
    return missing


if missing := _missing():
    raise ImportError(f"ws4redis_tornado is written for {WRITTEN_FOR}; this redis-py lacks {', '.join(missing)}")
