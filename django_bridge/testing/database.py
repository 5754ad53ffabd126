"""Which database connections the live server's threads share with the test, as LiveServerTestCase does.

Views and handshakes run in the server's worker threads, each with connections of its own. That
shows them what the test committed, which is why the test classes and fixtures run with
TransactionTestCase semantics. An in-memory SQLite database is the exception: a second connection
would open another database, or fight over the shared cache's table locks, so the workers use the
test thread's connection itself, as Django's ``LiveServerTestCase`` makes its server thread do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["share_connections", "shared_connections", "use_connections"]


def shared_connections() -> dict[str, Any]:
    """Return, by alias, this thread's connections that other threads must use too: in-memory SQLite ones."""
    from django.db import connections

    return {
        connection.alias: connection
        for connection in connections.all()
        if connection.vendor == "sqlite" and connection.is_in_memory_db()
    }


def share_connections(shared: Mapping[str, Any], *, sharing: bool) -> None:
    """Allow (or again forbid) ``shared`` connections to be used from other threads."""
    for connection in shared.values():
        if sharing:
            connection.inc_thread_sharing()
        else:
            connection.dec_thread_sharing()


def use_connections(shared: Mapping[str, Any]) -> None:
    """Make the calling thread use ``shared`` connections (a worker thread's initializer)."""
    from django.db import connections

    for alias, connection in shared.items():
        connections[alias] = connection
