"""Structured events: connects, denials, closes and Redis state changes, on one logger.

Each event is a log record on ``ws4redis_tornado.events`` whose message reads well as text and
whose ``event`` and ``fields`` attributes carry the same facts for :class:`JsonFormatter`. Message
bodies are never logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["JsonFormatter", "event_logger", "log_event"]

event_logger = logging.getLogger("ws4redis_tornado.events")


def log_event(event: str, level: int = logging.INFO, /, *, message: str | None = None, **fields: Any) -> None:
    """Log ``event`` with ``fields``, e.g. ``log_event("close", peer="1.2.3.4", code=1001)``.

    The text is ``message`` when given (a sentence for people), else the event and its fields.
    """
    if not event_logger.isEnabledFor(level):
        return
    extra = {"event": event, "fields": fields}
    if message is not None:
        event_logger.log(level, "%s", message, extra=extra)
        return
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    event_logger.log(level, "%s %s", event, text, extra=extra)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            # With several processes, a socket's number is unique within its process.
            "pid": record.process,
        }
        event = getattr(record, "event", None)
        if event is not None:
            data["event"] = event
            data.update(getattr(record, "fields", {}))
        else:
            data["message"] = record.getMessage()
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)
