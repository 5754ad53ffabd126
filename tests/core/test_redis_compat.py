"""The redis-py compatibility module: the installed redis-py has what it needs; one that lacks it fails at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ws4redis_tornado.compat import redis as compat


def test_the_installed_redis_py_has_everything_the_project_relies_on():
    assert compat.missing_in_redis() == []


@pytest.mark.parametrize(
    ("removal", "named"),
    [
        ("AbstractConnection.pack_commands = None", "AbstractConnection.pack_commands()"),
        ("AbstractConnection.read_response = lambda self: None", "AbstractConnection.read_response(timeout=...)"),
        (
            "AbstractConnection.send_packed_command = lambda self, command: None",
            "AbstractConnection.send_packed_command(check_health=...)",
        ),
        ("del ConnectionPool.make_connection", "SentinelConnectionPool.make_connection()"),
    ],
)
def test_importing_the_package_fails_clearly_on_a_redis_py_without_a_pubsub_internal(removal, named):
    code = (
        f"from redis.asyncio.connection import AbstractConnection, ConnectionPool\n{removal}\nimport ws4redis_tornado"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"ImportError: ws4redis_tornado is written for {compat.WRITTEN_FOR}")
    assert named in last_line
