"""A client that stops reading neither grows the server's memory without bound nor delays anyone else.

The server runs as ``python -m ws4redis_tornado`` in a child process, so its memory can be read from
/proc and its log from stderr. The command line has no option for ``max_buffered_bytes``, so the
default (4 MiB) applies and the published volume is several times that.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import time

import pytest
import redis.asyncio as aredis

from ..processes import ServerProcess
from ..rawws import FrameParser, open_raw, upgrade_request
from ..utils import MS, wait_until, within

pytestmark = pytest.mark.timeout(120)

MIB = 1024 * 1024
MAX_BUFFERED_BYTES = 4 * MIB  # Config.max_buffered_bytes, the default
READERS = 100
RATE = 100  # messages per second
PAYLOAD = 32 * 1024  # bytes per message
SECONDS = 6
STALLED_ADDRESS = "127.0.0.2"  # the stalled client's own loopback address, to find it in the log


class Reader:
    """Collects, per message, its sequence number, publish time and receive time."""

    def __init__(self) -> None:
        self.received: list[tuple[int, float, float]] = []

    def on_message(self, opcode: int, payload: bytes) -> None:
        now = time.monotonic()
        seq, sent = payload[:32].split(b" ", 2)[:2]
        self.received.append((int(seq), float(sent), now))


def open_stalled_socket(port: int, path: str) -> socket.socket:
    """Handshake from STALLED_ADDRESS with a tiny receive buffer, then never read again."""
    sock = socket.socket()
    # Set before connecting, so the window the client announces stays small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((STALLED_ADDRESS, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request("127.0.0.1", port, path))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: read nothing past the answer
        assert chunk, "connection closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def drain(sock: socket.socket, timeout: float) -> tuple[int, list[tuple[int, bytes]], str]:
    """Read until the connection ends; return the bytes read, the control frames seen and how it ended."""
    parser = FrameParser()
    total, control = 0, []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return total, control, "reset"
        if not data:
            return total, control, "eof"
        total += len(data)
        control += [(opcode, payload) for opcode, payload in parser.feed(data) if opcode >= 0x8]
        if any(opcode == 0x8 for opcode, _ in control):
            # Answer the close frame, as a client that woke up would.
            sock.sendall(struct.pack("!BB", 0x88, 0x82) + b"\0\0\0\0" + struct.pack("!H", 1008))
    return total, control, "open"


def kernel_send_buffer_max() -> int:
    """The largest send buffer TCP autotuning may give a socket (net.ipv4.tcp_wmem), in bytes."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as sysctl:
        return int(sysctl.read().split()[2])


def latency_figures(readers: list[Reader], start: float, end: float) -> dict[str, float]:
    """Median and 95th percentile latency (s) of the messages published in [start, end)."""
    samples = sorted(recv - sent for r in readers for _, sent, recv in r.received if start <= sent < end)
    return {
        "count": len(samples),
        "median": statistics.median(samples),
        "p95": samples[int(len(samples) * 0.95)],
    }


async def publish_steadily(redis_url: str, channel: str, count: int) -> None:
    """Publish ``count`` numbered messages at RATE per second, each carrying its publish time."""
    client = aredis.Redis.from_url(redis_url)
    padding = b"x" * PAYLOAD
    try:
        loop = asyncio.get_running_loop()
        due = loop.time()
        for seq in range(count):
            await asyncio.sleep(max(0.0, due - loop.time()))
            # A late message delays the next ones: catching up with a burst would measure the burst.
            due = max(due, loop.time()) + 1 / RATE
            head = f"{seq} {time.monotonic():.6f} ".encode()
            await client.publish(channel, head + padding[len(head) :])
    finally:
        await client.aclose()


async def run_scenario(server: ServerProcess, redis_url: str, prefix: str) -> dict:
    path = "/ws/feed?subscribe-broadcast"
    readers = [Reader() for _ in range(READERS)]
    clients = [await within(open_raw("127.0.0.1", server.port, path, r.on_message)) for r in readers]
    stalled = await asyncio.to_thread(open_stalled_socket, server.port, path)
    try:
        before = server.memory()
        count = RATE * SECONDS
        started = time.monotonic()
        await within(publish_steadily(redis_url, f"{prefix}:broadcast:feed", count), (SECONDS + 30) * 1000 * MS)
        finished = time.monotonic()
        await wait_until(lambda: all(len(r.received) == count for r in readers), 30_000 * MS)
        after = server.memory()
        # The server logged the close; the connection then ends, at the latest when Tornado gives
        # up waiting for the close handshake (5 s).
        await wait_until(lambda: f"closing {STALLED_ADDRESS}: it stopped reading" in server.stderr, 15_000 * MS)
        drained, control, ending = await asyncio.to_thread(drain, stalled, 20)
    finally:
        stalled.close()
        for client in clients:
            client.abort()
    return {
        "readers": readers,
        "count": count,
        "started": started,
        "finished": finished,
        "before": before,
        "after": after,
        "drained": drained,
        "control": control,
        "ending": ending,
    }


def test_a_stalled_client_is_closed_and_slows_nobody_down(redis_url, prefix, record_property):
    with ServerProcess(redis_url=redis_url, prefix=prefix) as server:
        result = asyncio.run(run_scenario(server, redis_url, prefix))
        log = server.stderr
    count, readers = result["count"], result["readers"]
    volume = count * PAYLOAD

    # Nobody who reads lost a message, or got one twice or out of order.
    for reader in readers:
        assert [seq for seq, _, _ in reader.received] == list(range(count))

    # Latency of the messages published in the last second, against those of the first second.
    first = latency_figures(readers, result["started"], result["started"] + 1)
    last = latency_figures(readers, result["finished"] - 1, result["finished"])
    record_property("latency_first_second", first)
    record_property("latency_last_second", last)
    # Generous: the machine is shared, so a factor and a floor of slack, never an absolute bound.
    assert last["median"] <= 5 * first["median"] + 100 * MS, (first, last)

    # The stalled socket was closed with 1008 once more than max_buffered_bytes were queued for it,
    # and its connection ended; it received only a fraction of what was published.
    assert f"closing {STALLED_ADDRESS}: it stopped reading and has more than {MAX_BUFFERED_BYTES} bytes" in log
    assert result["ending"] in ("eof", "reset"), "the stalled client's connection did not end"
    closes = [payload for opcode, payload in result["control"] if opcode == 0x8]
    assert all(payload[:2] == struct.pack("!H", 1008) for payload in closes), closes
    # What it could still read: the server's queue, the kernel's send buffer, its own receive buffer.
    assert result["drained"] <= MAX_BUFFERED_BYTES + kernel_send_buffer_max() + 2 * PAYLOAD + 64 * 1024
    record_property("stalled_client", {k: result[k] for k in ("drained", "ending")} | {"close_frames": closes})

    # The server's memory grew by about what it may queue for one socket, not by the volume.
    growth = result["after"]["VmHWM"] - result["before"]["VmRSS"]
    record_property("rss_before", result["before"]["VmRSS"])
    record_property("rss_peak_growth", growth)
    record_property("volume_published", volume)
    assert volume > 4 * MAX_BUFFERED_BYTES
    assert growth < 2 * MAX_BUFFERED_BYTES, f"RSS grew by {growth} bytes while {volume} were published"
    assert "Traceback" not in log
    print(
        f"\nlatency first second {first}, last second {last}; RSS {result['before']['VmRSS'] / MIB:.1f} MiB,"
        f" peak growth {growth / MIB:.1f} MiB for {volume / MIB:.1f} MiB published;"
        f" stalled client read {result['drained']} bytes, close frames {closes}, ended by {result['ending']}"
    )
