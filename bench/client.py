"""Load client: N websocket subscribers on one asyncio + uvloop loop.

It runs as its own process (pinned to CPU 1 by the harness) and is driven by JSON lines on
stdin, answering with one JSON line per command on stdout. It is written so that it is
never the bottleneck: a raw HTTP upgrade over an asyncio ``Protocol`` (no websocket
library), and a frame splitter that only reads what it needs, since server frames are
unmasked. Every phase reports the client's own CPU time so that this can be checked.

It also drives the publisher (a child process fed one sequence number per line), because
the closed-loop phase has to publish the moment a message has reached everyone, and asks it
for the round trips of its publish calls after each phase (see ``roundtrips.py``).

Sockets of a target with ``deflate`` offer permessage-deflate; a frame with RSV1 set is
inflated (raw DEFLATE plus the ``00 00 ff ff`` the server stripped) with one decompressor per
socket, made on its first compressed frame and reused. The client counts the bytes it reads
after the upgrade, so every phase reports the wire bytes per delivered frame.

Sockets that pass ``recover`` get every message behind a one-line JSON header
(``{"channel":"broadcast","id":"..."}\n``) and one report frame when they open; the client
skips both with one ``find`` per frame and counts the headers that carry a stream id.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import time
import zlib
from typing import Any

from bench import payload, procstat, roundtrips
from bench.procs import SERVER_CPU
from bench.stats import percentile

monotonic_ns = time.monotonic_ns

# permessage-deflate (RFC 7692): the sender strips this empty stored block from each message.
DEFLATE_TAIL = b"\x00\x00\xff\xff"
DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
# Every frame of a small benchmark message starts with these two bytes: FIN + text, then the
# payload length (100 < 126, so no extended length). The payload is ASCII, so 0x81 never occurs in it.
FRAME_HEAD = bytes((0x81, payload.SIZE))


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Tally:
    """Delivery accounting for one phase: messages ``first .. first + count - 1``."""

    def __init__(self, first: int, count: int, subscribers: int) -> None:
        self.first = first
        self.count = count
        self.subscribers = subscribers
        self.received = [0] * count
        self.last_ns = [0] * count
        self.sent_ns = [0] * count
        self.latencies: list[int] = []
        self.delivered = 0
        self.stray = 0
        self.with_id = 0  # frames whose header carried a stream id (recover sockets only)

    def complete(self, index: int) -> bool:
        return self.received[index] >= self.subscribers


class Subscriber(asyncio.Protocol):
    """One websocket: handshake, then split frames and feed payloads to the client."""

    __slots__ = ("buf", "client", "closed", "handshake", "inflater", "request", "tail", "transport", "upgraded")

    def __init__(self, client: LoadClient, request: bytes) -> None:
        self.client = client
        self.request = request
        self.buf = b""
        self.tail = False  # CountingSubscriber: the last read ended with the first byte of a frame head
        self.upgraded = False
        self.closed = False
        self.inflater: Any = None  # zlib decompressor, made on the first compressed frame
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during handshake"))

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            self.client.wire_bytes += len(data)
            self._frames(data)
            return
        data = self.buf + data
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self.buf = data
            return
        status = data[: data.find(b"\r\n")]
        self.buf = b""
        if b" 101 " not in status:
            self.handshake.set_exception(ConnectionError(status.decode("latin-1")))
            self.transport.close()  # type: ignore[union-attr]
            return
        self.upgraded = True
        if b"permessage-deflate" in data[:end].lower():
            self.client.deflate_sockets += 1
        self.handshake.set_result(None)
        if len(data) > end + 4:
            self.client.wire_bytes += len(data) - end - 4
            self._frames(data[end + 4 :])

    def _frames(self, data: bytes) -> None:
        now = monotonic_ns()
        if self.buf:
            data = self.buf + data
        size = len(data)
        i = 0
        deliver = self.client.take_frame
        while size - i >= 2:
            length = data[i + 1] & 0x7F
            head = 2
            if length == 126:
                if size - i < 4:
                    break
                length = int.from_bytes(data[i + 2 : i + 4], "big")
                head = 4
            elif length == 127:
                if size - i < 10:
                    break
                length = int.from_bytes(data[i + 2 : i + 10], "big")
                head = 10
            end = i + head + length
            if end > size:
                break
            opcode = data[i] & 0x0F
            if opcode == 1 or opcode == 2:
                if data[i] & 0x40:  # RSV1: compressed with permessage-deflate
                    deliver(self.inflate(data[i + head : end]), now)
                else:
                    deliver(data[i + head : end], now)
            elif opcode == 9:  # ping: answer with a masked pong (all-zero mask key)
                payload = data[i + head : end]
                self.transport.write(  # type: ignore[union-attr]
                    bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload
                )
            elif opcode == 8:
                self.closed = True
            i = end
        self.buf = data[i:] if i < size else b""

    def inflate(self, body: bytes) -> bytes:
        """One compressed message's text; its decompressor is reused for this socket's next ones.

        Reuse is right with or without ``server_no_context_takeover``: a message either refers
        to the earlier ones of this socket (context takeover) or to nothing before it. A
        stream that ended (a final block) gets a fresh decompressor.
        """
        inflater = self.inflater
        if inflater is None or inflater.eof:
            inflater = self.inflater = zlib.decompressobj(-15)
        self.client.inflated += 1
        return inflater.decompress(body + DEFLATE_TAIL)


class CountingSubscriber(Subscriber):
    """A subscriber that only counts the benchmark's frames: one ``bytes.count`` per read.

    Parsing costs the client about as much CPU per frame as the server spends sending it, which
    caps what a load client sharing the cores can measure. Counting frame heads in C costs one
    callback per read however many frames it carries. An upgraded :class:`Subscriber` becomes one
    by ``__class__`` assignment (same slots) and ``set_protocol``, and stays one: a switch back
    could land mid-frame.
    """

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        count = data.count(FRAME_HEAD)
        if self.tail and data[:1] == FRAME_HEAD[1:]:
            count += 1  # a frame head split over two reads
        self.tail = data[-1] == FRAME_HEAD[0]
        self.client.counted += count


class LoadClient:
    """Holds the sockets and the publisher, and runs the measured phases."""

    def __init__(self, publisher_cmd: list[str], payload_kind: str = payload.SMALL) -> None:
        self.publisher_cmd = publisher_cmd
        self.layout = payload.LAYOUTS[payload_kind]  # where the sequence number and send time are
        self.publisher: asyncio.subprocess.Process | None = None
        self.subs: list[Subscriber] = []
        self.tally: Tally | None = None
        self.next_seq = 1
        self.on_complete: Any = None  # closed-loop hook, called with the completed index
        self.last_frame_ns = monotonic_ns()  # any data frame, counted or not
        self.take_frame = self.deliver  # or take_envelope, for sockets that pass recover
        self.reports = 0  # recovery reports received (recover sockets: one per socket)
        self.unexpected = 0  # recover sockets: frames that were neither a message nor a report
        self.wire_bytes = 0  # bytes read from the upgraded sockets (frames with their headers)
        self.inflated = 0  # frames that arrived compressed
        self.deflate_sockets = 0  # sockets whose server accepted permessage-deflate
        self.counted = 0  # frames counted by CountingSubscribers (saturate)

    # -- publisher -----------------------------------------------------------------------
    async def start_publisher(self) -> None:
        self.publisher = await asyncio.create_subprocess_exec(
            *self.publisher_cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )

    def publish(self, seq: int) -> None:
        self.publisher.stdin.write(b"%d\n" % seq)  # type: ignore[union-attr]

    async def publish_round_trips(self) -> dict[str, Any]:
        """The publisher's round trips since the previous call (it answers once all earlier lines are done)."""
        assert self.publisher is not None and self.publisher.stdin and self.publisher.stdout
        self.publisher.stdin.write(roundtrips.STATS)
        line = await asyncio.wait_for(self.publisher.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the publisher exited (see the client log)")
        return json.loads(line)

    # -- sockets ---------------------------------------------------------------------------
    async def connect(
        self, n: int, port: int, path: str, inflight: int, recover: bool = False, deflate: bool = False
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        extensions = DEFLATE_OFFER if deflate else b""
        self.take_frame = self.take_envelope if recover else self.deliver
        sem = asyncio.Semaphore(inflight)
        failures: list[str] = []

        async def one(i: int) -> None:
            key = base64.b64encode(os.urandom(16))
            request = (
                b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                b"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:%d\r\n%s\r\n"
            ) % (path.encode(), port, key, port, extensions)
            async with sem:
                try:
                    _, proto = await loop.create_connection(lambda: Subscriber(self, request), "127.0.0.1", port)
                    await asyncio.wait_for(proto.handshake, 30)
                except (TimeoutError, OSError) as exc:
                    failures.append(repr(exc))
                    return
                self.subs.append(proto)

        start = time.perf_counter()
        cpu0 = _cpu()
        await asyncio.gather(*(one(i) for i in range(n)))
        return {
            "connected": len(self.subs),
            "failed": len(failures),
            "failures_sample": failures[:3],
            "handshake_s": time.perf_counter() - start,
            "client_cpu_s": _cpu() - cpu0,
            # Recover sockets: their reports may still be on the way for the last few sockets.
            "reports": self.reports,
            "deflate_offered": deflate,
            "deflate_sockets": self.deflate_sockets,
        }

    def close_all(self) -> dict[str, Any]:
        for sub in self.subs:
            if sub.transport is not None:
                sub.transport.abort()
        count = len(self.subs)
        self.subs = []
        return {"closed": count}

    def alive(self) -> int:
        return sum(1 for s in self.subs if not s.closed)

    # -- delivery --------------------------------------------------------------------------
    def take_envelope(self, frame: bytes, now: int) -> None:
        """A frame to a socket that passed ``recover``: header line + message, or the recovery report."""
        end = frame.find(b"\n", 0, 512)
        if end < 0:
            if frame.startswith(b'{"recovery"'):
                self.reports += 1
            else:
                self.unexpected += 1
            return
        tally = self.tally
        # The header is compact JSON ending in the id: `..."id":"<ms>-<seq>"}` or `..."id":null}`.
        if tally is not None and frame[end - 2] == 0x22:
            tally.with_id += 1
        self.deliver(frame[end + 1 :], now)

    def deliver(self, payload: bytes, now: int) -> None:
        self.last_frame_ns = now
        tally = self.tally
        if tally is None:
            return
        index = int(payload[self.layout.seq]) - tally.first
        if not 0 <= index < tally.count:
            tally.stray += 1
            return
        sent = tally.sent_ns[index]
        if not sent:
            sent = tally.sent_ns[index] = int(payload[self.layout.sent_ns])
        tally.latencies.append(now - sent)
        tally.received[index] += 1
        tally.last_ns[index] = now
        tally.delivered += 1
        if tally.received[index] == tally.subscribers and self.on_complete is not None:
            self.on_complete(index)

    def _new_tally(self, count: int) -> Tally:
        # Expect deliveries on the sockets still open: one the server closed (e.g. it ran
        # out of file descriptors) is reported as such, not as lost messages.
        tally = Tally(self.next_seq, count, self.alive())
        self.next_seq += count
        self.tally = tally
        return tally

    async def _drain(self, tally: Tally, expected: int, idle_s: float, cap_s: float) -> None:
        """Wait for stragglers: stop when all arrived, at the cap, or when no frame at all
        (not even a late one from an earlier phase) came for ``idle_s``: a slow server that
        is still working through a backlog is not idle."""
        deadline = time.monotonic() + cap_s
        while tally.delivered < expected and time.monotonic() < deadline:
            if (monotonic_ns() - self.last_frame_ns) / 1e9 > idle_s:
                break
            await asyncio.sleep(0.05)

    async def quiesce(self, idle_s: float, cap_s: float) -> dict[str, Any]:
        """Let a backlog from the previous phase play out before the next one starts."""
        start = time.monotonic()
        self.last_frame_ns = monotonic_ns()
        while time.monotonic() - start < cap_s:
            if (monotonic_ns() - self.last_frame_ns) / 1e9 > idle_s:
                break
            await asyncio.sleep(0.05)
        return {"waited_s": time.monotonic() - start}

    async def warmup(self, tries: int, idle_s: float, cap_s: float) -> dict[str, Any]:
        """Publish probes until one reaches every socket, so all subscriptions are live.

        Servers may answer the handshake before their Redis subscription exists (ws4redis
        subscribes after the upgrade), and slow ones take seconds per message at 10k
        sockets, so wait for a probe to complete rather than for a fixed time.
        """
        start = time.monotonic()
        for attempt in range(1, tries + 1):
            tally = self._new_tally(1)
            self.last_frame_ns = monotonic_ns()
            self.publish(tally.first)
            await self._drain(tally, tally.subscribers, idle_s=idle_s, cap_s=cap_s)
            if tally.complete(0):
                self.tally = None
                return {"probes": attempt, "ready": True, "wait_s": time.monotonic() - start}
        self.tally = None
        return {
            "probes": tries,
            "ready": False,
            "reached": tally.received[0],
            "wait_s": time.monotonic() - start,
        }

    async def fanout(self, messages: int, interval: float, server_pid: int, drain_cap: float) -> dict[str, Any]:
        """S1: ``messages`` publishes ``interval`` apart to every subscriber."""
        await self.publish_round_trips()  # forget the earlier phases' (e.g. the warm-up probes)
        tally = self._new_tally(messages)
        expected = tally.subscribers * messages
        cpu0, srv0 = _cpu(), procstat.tree_cpu_seconds(server_pid)
        core0 = procstat.cpu_busy_seconds(SERVER_CPU)
        wire0, inflated0 = self.wire_bytes, self.inflated
        start = time.monotonic()
        self.last_frame_ns = monotonic_ns()
        for k in range(messages):
            self.publish(tally.first + k)
            delay = start + (k + 1) * interval - time.monotonic()
            if k < messages - 1 and delay > 0:
                await asyncio.sleep(delay)
        await self._drain(tally, expected, idle_s=5.0, cap_s=drain_cap)
        srv_cpu = procstat.tree_cpu_seconds(server_pid) - srv0
        wall = time.monotonic() - start
        foreign = procstat.cpu_busy_seconds(SERVER_CPU) - core0 - srv_cpu
        self.tally = None
        completions = [(tally.last_ns[i] - tally.sent_ns[i]) / 1e6 for i in range(messages) if tally.complete(i)]
        lat = tally.latencies
        return {
            "subscribers": tally.subscribers,
            "messages": messages,
            "expected": expected,
            "delivered": tally.delivered,
            "lost": expected - tally.delivered,
            "stray": tally.stray,
            "complete_messages": len(completions),
            "completion_p50_ms": percentile(completions, 50),
            "completion_p99_ms": percentile(completions, 99),
            "completion_max_ms": max(completions) if completions else None,
            "latency_p50_ms": _ms(percentile(lat, 50)),
            "latency_p99_ms": _ms(percentile(lat, 99)),
            "server_cpu_s": srv_cpu,
            "server_cpu_us_per_frame": srv_cpu * 1e6 / tally.delivered if tally.delivered else None,
            "client_cpu_s": _cpu() - cpu0,
            "wall_s": wall,
            "foreign_cpu0_pct": max(0.0, foreign) * 100 / wall,
            "with_id": tally.with_id,
            "unexpected_frames": self.unexpected,
            **self._wire(tally, wire0, inflated0),
            "publish": await self.publish_round_trips(),
        }

    def _wire(self, tally: Tally, wire0: int, inflated0: int) -> dict[str, Any]:
        """Bytes on the wire per delivered frame, and how many frames came compressed."""
        delivered = tally.delivered
        return {
            "wire_bytes": self.wire_bytes - wire0,
            "wire_bytes_per_frame": (self.wire_bytes - wire0) / delivered if delivered else None,
            "inflated_frames": self.inflated - inflated0,
        }

    async def closed_loop(self, window: int, duration: float, server_pid: int, stall_s: float) -> dict[str, Any]:
        """S2: keep ``window`` messages in flight; message k done => publish k + window."""
        capacity = 200_000
        await self.publish_round_trips()  # forget the earlier phases'
        tally = self._new_tally(capacity)
        state = {"next": 0, "done": 0, "stalls": 0, "last_done": time.monotonic()}
        deadline = time.monotonic() + duration

        def publish_next() -> None:
            if state["next"] < capacity and time.monotonic() < deadline:
                self.publish(tally.first + state["next"])
                state["next"] += 1

        def completed(index: int) -> None:
            state["done"] += 1
            state["last_done"] = time.monotonic()
            publish_next()

        cpu0, srv0 = _cpu(), procstat.tree_cpu_seconds(server_pid)
        core0 = procstat.cpu_busy_seconds(SERVER_CPU)
        wire0, inflated0 = self.wire_bytes, self.inflated
        start = time.monotonic()
        self.on_complete = completed
        for _ in range(window):
            publish_next()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if time.monotonic() - state["last_done"] > stall_s:
                # A message that never completes would freeze the window: count and move on.
                state["stalls"] += 1
                state["last_done"] = time.monotonic()
                publish_next()
        elapsed = time.monotonic() - start
        done, delivered = state["done"], tally.delivered
        srv_cpu = procstat.tree_cpu_seconds(server_pid) - srv0
        foreign = procstat.cpu_busy_seconds(SERVER_CPU) - core0 - srv_cpu
        client_cpu = _cpu() - cpu0
        self.on_complete = None
        published = state["next"]
        await self._drain(tally, published * tally.subscribers, idle_s=1.0, cap_s=5.0)
        self.tally = None
        lat = tally.latencies
        return {
            "subscribers": tally.subscribers,
            "window": window,
            "duration_s": elapsed,
            "published": published,
            "completed_messages": done,
            "messages_per_s": done / elapsed,
            "frames_per_s": delivered / elapsed,
            "stalls": state["stalls"],
            # Frames of the published messages still missing after the drain: lost, or later than 5 s.
            "undelivered": published * tally.subscribers - tally.delivered,
            "server_cpu_s": srv_cpu,
            "server_cpu_us_per_frame": srv_cpu * 1e6 / delivered if delivered else None,
            "client_cpu_s": client_cpu,
            "foreign_cpu0_pct": max(0.0, foreign) * 100 / elapsed,
            "latency_p50_ms": _ms(percentile(lat, 50)),
            "latency_p99_ms": _ms(percentile(lat, 99)),
            "with_id": tally.with_id,
            "unexpected_frames": self.unexpected,
            **self._wire(tally, wire0, inflated0),
            "publish": await self.publish_round_trips(),
        }

    async def saturate(
        self, outstanding: int, duration: float, server_pid: int, drain_idle: float, drain_cap: float
    ) -> dict[str, Any]:
        """Keep about ``outstanding`` frames undelivered for ``duration`` s, so the server never idles.

        Credit by count, not by message: a message is published whenever fewer than
        ``outstanding`` frames (rounded down to whole messages) are on their way. The backlog stays
        bounded (an open loop above capacity grows it without limit, and the server then spends
        seconds on one loop turn), and no frame is parsed. The sockets only count frames from here
        on (see :class:`CountingSubscriber`), so this is the last phase of a session.
        """
        if self.layout != payload.LAYOUTS[payload.SMALL] or self.deflate_sockets:
            raise ValueError("saturate counts 100-byte uncompressed frames: use the small payload, no deflate")
        await self.publish_round_trips()  # forget the earlier phases'
        subscribers = self.alive()
        for sub in self.subs:
            sub.__class__ = CountingSubscriber
            if sub.transport is not None:
                sub.transport.set_protocol(sub)  # uvloop caches the bound data_received: refresh it
        first, published = self.next_seq, 0
        self.counted = 0
        cpu0, srv0 = _cpu(), procstat.tree_cpu_seconds(server_pid)
        start = time.monotonic()
        deadline = start + duration
        while time.monotonic() < deadline:
            allowed = (self.counted + outstanding) // subscribers
            for seq in range(first + published, first + allowed):
                self.publish(seq)
            published = max(published, allowed)
            await asyncio.sleep(0.001)  # poll: the reads in between are what gives credit
        elapsed = time.monotonic() - start
        in_window, srv_cpu, client_cpu = self.counted, procstat.tree_cpu_seconds(server_pid) - srv0, _cpu() - cpu0
        self.next_seq += published
        expected = published * subscribers
        await self._drain_count(expected, drain_idle, drain_cap)
        return {
            "subscribers": subscribers,
            "outstanding": outstanding,
            "published": published,
            "duration_s": elapsed,
            "messages_per_s": in_window / subscribers / elapsed,
            "frames_per_s": in_window / elapsed,
            "delivered_in_window": in_window,
            "undelivered": expected - self.counted,
            "server_cpu_s": srv_cpu,
            "server_cpu_us_per_frame": srv_cpu * 1e6 / in_window if in_window else None,
            "client_cpu_s": client_cpu,
            "publish": await self.publish_round_trips(),
        }

    async def _drain_count(self, expected: int, idle_s: float, cap_s: float) -> None:
        """Wait until ``expected`` frames were counted, none came for ``idle_s``, or ``cap_s`` passed."""
        start = last_change = time.monotonic()
        last = -1
        while self.counted < expected and time.monotonic() - start < cap_s:
            if self.counted != last:
                last, last_change = self.counted, time.monotonic()
            elif time.monotonic() - last_change > idle_s:
                break
            await asyncio.sleep(0.05)


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


async def serve(client: LoadClient) -> None:
    """Answer one JSON command per stdin line until EOF or ``quit``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await client.start_publisher()
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd.pop("op")
            if op == "quit":
                break
            if op == "connect":
                result = await client.connect(**cmd)
            elif op == "warmup":
                result = await client.warmup(**cmd)
            elif op == "quiesce":
                result = await client.quiesce(**cmd)
            elif op == "fanout":
                result = await client.fanout(**cmd)
            elif op == "closed_loop":
                result = await client.closed_loop(**cmd)
            elif op == "saturate":
                result = await client.saturate(**cmd)
            elif op == "close":
                result = client.close_all()
            elif op == "alive":
                result = {"alive": client.alive(), "reports": client.reports}
            else:
                result = {"error": f"unknown op {op}"}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
    finally:
        client.close_all()
        if client.publisher is not None:
            client.publisher.stdin.close()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(client.publisher.wait(), 5)
            except TimeoutError:
                client.publisher.kill()


def main() -> None:
    """Entry point: ``python -m bench.client PUBLISHER_CMD_JSON`` (payload kind in ``BENCH_PAYLOAD``)."""
    import uvloop

    publisher_cmd = json.loads(sys.argv[1])
    uvloop.run(serve(LoadClient(publisher_cmd, payload.kind_from_env())))


if __name__ == "__main__":
    main()
