"""Per-process figures read straight from /proc.

The harness samples the server process from outside, so the measurement costs the server
nothing and works the same for every target (Tornado, uWSGI, daphne), whatever it runs on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Socket states in /proc/net/tcp (the kernel's TCP_* numbers, in hex).
TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds, from /proc/<pid>/stat.

    Field 2 (comm) may contain spaces or parentheses, so split after the last ``)``.
    """
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def parent_pids() -> dict[int, int]:
    """Every live process' parent, from /proc/<pid>/stat (field 4, after the comm's ``)``)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # exited while we iterate
            continue
        parents[int(entry.name)] = int(raw[raw.rindex(")") + 2 :].split()[1])
    return parents


def descendants(pid: int, parents: Mapping[int, int]) -> list[int]:
    """The children of ``pid``, their children and so on, in ascending pid order.

    The kernel here has no /proc/<pid>/task/<tid>/children, so the tree is rebuilt from the
    parent of every process.
    """
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        frontier += kids
    return sorted(found)


def tree_pids(pid: int) -> list[int]:
    """``pid`` followed by all its descendants: a supervisor and the processes it forked."""
    return [pid, *descendants(pid, parent_pids())]


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime summed over ``pid`` and its live descendants.

    A server with several processes spends its CPU in its children; a process that has
    exited is no longer counted (its parent's cutime would count it only once reaped).
    """
    total = 0.0
    for member in tree_pids(pid):
        try:
            total += cpu_seconds(member)
        except (OSError, ValueError):  # exited between the listing and the read
            continue
    return total


def tree_rss_bytes(pid: int) -> int:
    """VmRSS summed over ``pid`` and its live descendants (pages shared after fork count twice)."""
    total = 0
    for member in tree_pids(pid):
        try:
            total += rss_bytes(member)
        except (OSError, RuntimeError):
            continue
    return total


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # fd closed while we iterate
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_local_ports_to(pid: int, remote_port: int) -> set[int]:
    """Local ports of ``pid``'s TCP sockets connected to 127.0.0.1:``remote_port``.

    Used to tell which of the private Redis' clients belong to the server under test:
    Redis reports each client's ``addr`` (its ip:port), which is the server's local port.
    """
    inodes = _socket_inodes(pid)
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            local, remote, inode = cols[1], cols[2], int(cols[9])
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def matching_tcp_inodes(table: str, inodes: set[int], port: int, state: str) -> set[int]:
    """The sockets of a /proc/net/tcp ``table`` in ``inodes`` with local port ``port``, in ``state``.

    Columns: ``sl local_address rem_address st ... inode``; addresses are ``HEXIP:HEXPORT``.
    A set, because a table read while other processes open and close sockets can list a line twice.
    """
    found: set[int] = set()
    for line in table.splitlines()[1:]:
        cols = line.split()
        if cols[3] == state and int(cols[1].rsplit(":", 1)[1], 16) == port and int(cols[9]) in inodes:
            found.add(int(cols[9]))
    return found


def tcp_sockets_on_port(pid: int, port: int, state: str) -> int:
    """How many of ``pid``'s sockets have local port ``port`` and are in ``state``.

    With ``TCP_ESTABLISHED`` on the server's port: the websockets this process serves; with
    ``TCP_LISTEN``: whether it is accepting yet. The table is read twice and the matches joined,
    since one read of a changing table can also skip a line.
    """
    inodes = _socket_inodes(pid)
    found: set[int] = set()
    for _ in range(2):
        for table in ("tcp", "tcp6"):
            path = Path(f"/proc/{pid}/net/{table}")
            if path.exists():
                found |= matching_tcp_inodes(path.read_text(), inodes, port, state)
    return len(found)


def open_fds(pid: int) -> int:
    """Number of open file descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_busy_seconds(cpu: int) -> float:
    """Busy time of one CPU since boot (all processes), from /proc/stat.

    Compared with the server's own CPU time over the same window, it shows how much of the
    server's core was taken by something else: other work on a shared machine skews results.
    """
    prefix = f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            # user nice system idle iowait irq softirq steal ... Only task time (user, nice,
            # system) is comparable with a process' utime+stime: the interrupt time that the
            # benchmark's own loopback traffic causes on this core is not charged to tasks.
            ticks = [int(v) for v in line.split()[1:]]
            return (ticks[0] + ticks[1] + ticks[2]) / CLK_TCK
    raise RuntimeError(f"no {prefix!r} in /proc/stat")
