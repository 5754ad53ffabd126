"""The scaling benchmark's arithmetic and its /proc readings: process trees, sockets per process, frame counts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from bench import payload, procstat, scaling
from bench.client import FRAME_HEAD, CountingSubscriber

TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   1: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:C001 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
   3: 0100007F:C002 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 444 1 0 20 4 30 10 -1
"""


def test_descendants_are_children_grandchildren_and_so_on_in_pid_order() -> None:
    parents = {1: 0, 10: 1, 12: 10, 11: 10, 13: 11, 20: 1, 99: 98}
    assert procstat.descendants(10, parents) == [11, 12, 13]
    assert procstat.descendants(13, parents) == []


def test_a_tcp_line_listed_twice_counts_once_and_only_the_process_own_sockets_count() -> None:
    mine = {111, 222, 444}  # 333 belongs to another process; 444 is a client socket (remote port 8080)
    assert procstat.matching_tcp_inodes(TCP_TABLE, mine, 0x1F90, procstat.TCP_ESTABLISHED) == {222}
    assert procstat.matching_tcp_inodes(TCP_TABLE, mine, 0x1F90, procstat.TCP_LISTEN) == {111}


def test_sockets_on_a_port_are_counted_from_this_process_proc_entries() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            assert procstat.tcp_sockets_on_port(os.getpid(), port, procstat.TCP_ESTABLISHED) == 3
            assert procstat.tcp_sockets_on_port(os.getpid(), port, procstat.TCP_LISTEN) == 1
        finally:
            for sock in clients + accepted:
                sock.close()


def test_the_tree_holds_a_grandchild_and_its_cpu_time() -> None:
    # A child that starts a grandchild which spins for 0.3 s of CPU, then both wait.
    spin = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    parent = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {spin!r}])\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", parent])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = procstat.tree_pids(child.pid)
            if len(pids) == 2 and procstat.cpu_seconds(pids[1]) >= 0.3:
                break
            time.sleep(0.05)
        assert len(pids) == 2 and pids[0] == child.pid
        assert procstat.tree_cpu_seconds(child.pid) >= procstat.cpu_seconds(pids[1]) >= 0.3
        assert procstat.tree_rss_bytes(child.pid) > procstat.rss_bytes(child.pid)
    finally:
        for pid in reversed(procstat.tree_pids(child.pid)):
            os.kill(pid, 9)
        child.wait()


class _Client:
    counted = 0


def _counting() -> CountingSubscriber:
    sub = object.__new__(CountingSubscriber)
    sub.client = _Client()  # type: ignore[assignment]
    sub.tail = False
    return sub


def test_frames_are_counted_whatever_the_reads_split_and_a_ping_is_not() -> None:
    frame = FRAME_HEAD + payload.make(1)
    stream = frame * 5 + b"\x89\x00" + frame * 3
    for cut in range(1, len(stream)):
        sub = _counting()
        sub.data_received(stream[:cut])
        sub.data_received(stream[cut:])
        assert sub.client.counted == 8, f"split at {cut}"


def test_cpu_shares_are_in_percent_of_one_core_and_other_load_is_what_is_left() -> None:
    before = scaling.CpuSample(at=10.0, server=1.0, load=1.0, busy=5.0)
    after = scaling.CpuSample(at=12.0, server=2.0, load=1.5, busy=8.0)
    assert scaling.cpu_shares(before, after) == {
        "wall_s": 2.0,
        "server_pct": 50.0,
        "load_pct": 25.0,
        "other_pct": 75.0,
    }


def _record(target: str, frames_per_s: float, *, spread: list[int], server_us: float = 0.4) -> dict[str, Any]:
    return {
        "target": target,
        "n": 1000,
        "spread": spread,
        "saturation": {
            "subscribers": 1000,
            "published": 5000,
            "undelivered": 0,
            "duration_s": 5.0,
            "frames_per_s": frames_per_s,
            "server_cpu_s": 2.0,
            "server_cpu_us_per_frame": server_us,
            "client_cpu_s": 1.0,
            # 0.2 us of load-side CPU per frame: 1.0 s over 5,000,000 frames
            "machine": {"wall_s": 5.0, "load_pct": 20.0, "other_pct": 0.0},
        },
    }


def test_the_two_process_ceiling_is_2s_over_s_plus_l() -> None:
    record = _record("1-process", 1e6, spread=[1000])
    assert scaling.two_process_ceiling(record) == pytest.approx(2 * 0.4 / (0.4 + 0.2))
    assert scaling.two_process_ceiling({"target": "x", "n": 1}) is None


def test_the_busiest_share_is_the_largest_process_share_of_the_sockets() -> None:
    assert scaling.busiest_share({"spread": [490, 510]}) == pytest.approx(51.0)
    assert scaling.busiest_share({"spread": []}) is None


def test_the_report_puts_layouts_side_by_side_with_the_ratio_to_one_process() -> None:
    results = {
        "layouts": ["1-process", "2-shared"],
        "ns": [1000],
        "repeats": 1,
        "plan": {"variant_messages": 6, "variant_interval": 2.0},
        "saturation": {"outstanding": 1_000_000, "duration": 5.0, "drain_idle": 2.0, "drain_cap": 5.0},
        "runs": [
            _record("1-process", 1_000_000, spread=[1000]),
            _record("2-shared", 1_250_000, spread=[490, 510]),
            {"target": "2-shared", "n": 1000, "error": "TimeoutError()"},
        ],
    }
    text = scaling.render(results)
    assert "| saturated: delivered frames/s | 1,000,000 | 1,250,000 x1.25 |" in text
    assert "| sockets on the busiest process (% of N) | 100.0 | 51.0 x0.51 |" in text
    assert "2-shared N=1000: 490/510" in text
    assert "- failed run: 2-shared N=1000: TimeoutError()" in text


def test_a_run_counts_as_noisy_by_its_most_loaded_phase() -> None:
    record = {"variant": {"machine": {"other_pct": 30.0}}, "saturation": {"machine": {"other_pct": 5.0}}}
    assert scaling.other_load(record) == 30.0
    assert scaling.other_load({"target": "x"}) == 0.0
