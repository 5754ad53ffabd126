"""The deployment example (examples/deploy) with a real HAProxy in front, for tests/deploy.

HAProxy is the system's binary (Debian: ``apt-get install haproxy``). Without one these tests are
skipped, unless ``WS4REDIS_REQUIRE_HAPROXY=1`` is set (CI sets it): then they fail, so that a
missing package cannot pass for a green run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .launcher import Stack, find_haproxy

REQUIRE_VARIABLE = "WS4REDIS_REQUIRE_HAPROXY"


@pytest.fixture(scope="session")
def haproxy() -> str:
    """The path of the haproxy binary; skip (or fail, if required) when there is none."""
    path = find_haproxy()
    if path is None:
        reason = "haproxy is not installed (Debian: apt-get install haproxy)"
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_VARIABLE}=1 requires it")
        pytest.skip(f"{reason}; set {REQUIRE_VARIABLE}=1 to fail instead")
    return path


def start_stack(haproxy: str, prefix: str, workdir: Path, **options: object) -> Stack:
    """Two websocket servers and one Django server behind HAProxy, started; ``options`` go to :class:`Stack`.

    Health checks every 100 ms, two failures mark a server down: a stopped server leaves the
    rotation within about 0.2 s.
    """
    settings: dict[str, object] = {
        "websocket_servers": 2,
        "django_servers": 1,
        "check_inter": "100ms",
        "fall": 2,
        "rise": 1,
        "grace_period": 5.0,
        **options,
    }
    return Stack(prefix=prefix, haproxy=haproxy, workdir=workdir, **settings).start()


@pytest.fixture
def stack(haproxy: str, prefix: str, tmp_path: Path) -> Iterator[Stack]:
    """The stack of :func:`start_stack`, with a Redis of its own."""
    stack = start_stack(haproxy, prefix, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()
