"""socket-memory's profile and report: real tracemalloc snapshots in, per-socket figures and Markdown out."""

from __future__ import annotations

import tracemalloc

import pytest

from bench import socket_memory

SOCKETS = 200
BLOCK = 1000


@pytest.fixture
def snapshots():
    """Two snapshots around SOCKETS bytearrays of BLOCK bytes, kept as open sockets keep their state."""
    tracemalloc.start(socket_memory.TRACE_FRAMES)
    try:
        before = tracemalloc.take_snapshot()
        kept = [bytearray(BLOCK) for _ in range(SOCKETS)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    yield before, after
    del kept


def test_the_profile_divides_what_the_sockets_keep_by_their_number(snapshots):
    profile = socket_memory.profile(*snapshots, SOCKETS)
    top = profile["lines"][0]
    assert top["line"].startswith(f"{__file__}:")
    assert top["code"] == "kept = [bytearray(BLOCK) for _ in range(SOCKETS)]"
    assert BLOCK <= top["bytes"] < BLOCK + 100
    # The bytearray object and its buffer (the list holding them adds 0.005 blocks per socket).
    assert top["blocks"] == pytest.approx(2.0, abs=0.05)
    # Neither ws4redis_tornado nor Tornado allocated it.
    assert top["owner"] == "other" and profile["owners"]["other"]["bytes"] >= BLOCK
    assert profile["bytes"] >= top["bytes"]


def test_the_report_shows_allocations_rss_and_the_deflate_agreement(snapshots):
    traced = {"source": "working tree", "variant": "plain", "traced": True, "n": SOCKETS, "opened": SOCKETS}
    traced |= {"deflate_agreed": 0, "rss_per_socket": 0.0, "profile": socket_memory.profile(*snapshots, SOCKETS)}
    plain = [{**traced, "traced": False, "rss_per_socket": kib * 1024, "profile": None} for kib in (12.0, 11.0, 13.0)]
    report = socket_memory.render([traced, *plain])
    summary = report.splitlines()[2]
    assert summary.startswith("| working tree, plain | 200 | 1.0")
    assert summary.endswith("| 12.00 (11.00-13.00) | 3 | 0 of 200 | 0 |")
    assert "#### working tree, plain: where the Python allocations of one socket are" in report
    assert "`kept = [bytearray(BLOCK) for _ in range(SOCKETS)]`" in report


def test_owners_are_told_by_the_path_of_the_code():
    assert socket_memory._owner_of("/x/site-packages/tornado/web.py") == "tornado"
    assert socket_memory._owner_of("/repo/ws4redis_tornado/handler.py") == "ws4redis_tornado"
    assert socket_memory._owner_of("/usr/lib/python3.11/asyncio/tasks.py") is None
    assert socket_memory._short("/x/lib/python3.11/site-packages/tornado/web.py") == "tornado/web.py"
