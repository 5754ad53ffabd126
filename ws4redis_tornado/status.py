"""What each serving process is doing, in Redis, for a status page: one report per process.

Every ``status_interval`` seconds one timer per process writes a small JSON report (sockets,
channels, the facilities with the most sockets, the state of Redis, the last warnings and errors)
into one hash, ``[prefix:]ws4redis:status``, under the process's name; :func:`read_status` reads
every process's report, and drops those that stopped being rewritten (the process is gone).
Gathering a report walks the open sockets once per interval, never per message.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop, PeriodicCallback

from .redis_commands import CONNECTION_ERRORS
from .timers import periodic

if TYPE_CHECKING:
    from .server import WebSocketApplication

__all__ = ["ErrorLog", "StatusReporter", "parse_status", "read_status", "status_key", "totals"]

logger = logging.getLogger(__name__)

STALE_INTERVALS = 3
"""A report not rewritten for this many intervals is a process that is gone."""
TOP_FACILITIES = 10
_LAST_ERRORS = 20
_MAX_MESSAGE = 500


def status_key(prefix: str) -> str:
    return f"{prefix}:ws4redis:status" if prefix else "ws4redis:status"


class ErrorLog(logging.Handler):
    """Keeps the last warnings and errors of the package's loggers, for the report; bounded."""

    def __init__(self, size: int = _LAST_ERRORS) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, object]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()[:_MAX_MESSAGE]
        self.records.append(
            {"time": record.created, "level": record.levelname, "logger": record.name, "message": message}
        )


class StatusReporter:
    """Writes this process's report every ``config.status_interval`` seconds; owned by the application."""

    def __init__(self, app: WebSocketApplication) -> None:
        self.app = app
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.errors = ErrorLog()
        self._timer: PeriodicCallback | None = None
        self._failing = False

    def start(self) -> None:
        interval = self.app.broker.config.status_interval
        if not interval or self._timer is not None:
            return
        logging.getLogger("ws4redis_tornado").addHandler(self.errors)
        self._timer = periodic(self._write, interval)
        self._timer.start()
        IOLoop.current().add_callback(self._write)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
            logging.getLogger("ws4redis_tornado").removeHandler(self.errors)

    def report(self) -> dict[str, Any]:
        """This process's report, as JSON-ready values."""
        app = self.app
        broker = app.broker
        metrics = broker.metrics
        facilities = collections.Counter(handler.facility for handler in app.sockets)
        return {
            "process": self.name,
            "updated": time.time(),
            "sockets": len(app.sockets),
            "channels": broker.channel_count,
            "facilities": facilities.most_common(TOP_FACILITIES),
            "redis": {
                "address": broker.config.redis_address,
                "connected": broker.connected,
                "reconnects": metrics.redis_reconnects,
                "disconnected_seconds": round(metrics.down_seconds(IOLoop.current().time()), 3),
            },
            "errors": list(self.errors.records),
        }

    async def _write(self) -> None:
        broker = self.app.broker
        config = broker.config
        key = status_key(config.prefix)
        try:
            client = broker.redis
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset(key, self.name, json.dumps(self.report(), separators=(",", ":")))
                pipe.pexpire(key, int(config.status_interval * STALE_INTERVALS * 1000))
                await pipe.execute()
        except CONNECTION_ERRORS as exc:
            if not self._failing:
                logger.warning("cannot write this process's status to redis: %s", exc)
            self._failing = True
            return
        self._failing = False


def parse_status(
    fields: Mapping[bytes, bytes], *, interval: float, now: float
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The reports still fresh, sorted by process name, and the names of the stale ones."""
    fresh, stale = [], []
    for name, value in fields.items():
        report = json.loads(value)
        if now - report.get("updated", 0) > interval * STALE_INTERVALS:
            stale.append(name)
        else:
            fresh.append(report)
    return sorted(fresh, key=lambda report: report["process"]), stale


def read_status(client: Any, *, prefix: str, interval: float) -> list[dict[str, Any]]:
    """Every live process's report, with a synchronous redis-py client; forgets the stale ones."""
    key = status_key(prefix)
    reports, stale = parse_status(client.hgetall(key), interval=interval, now=time.time())
    if stale:
        client.hdel(key, *stale)
    return reports


def totals(reports: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Sockets and channels summed over the processes."""
    reports = list(reports)
    return {
        "processes": len(reports),
        "sockets": sum(r["sockets"] for r in reports),
        "channels": sum(r["channels"] for r in reports),
    }
