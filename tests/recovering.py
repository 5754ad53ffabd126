"""A websocket client that recovers, as ws4redis.js does: it opts in with ``recover`` and reconnects with positions.

It follows the client rule of the recovery contract (docs: RECOVERY in the README): every message
frame is ``<header JSON>\\n<payload>``; ``position[label]`` becomes the id of each message with a
non-null id, and every label's report id when the one report of a connection arrives. After any
close or refused handshake it reconnects with ``recover=<URL-encoded JSON positions>``.

It records everything a test needs to judge the server: each payload with its label, id and
connection, each report, each label reported ``recovered: false``, how each connection ended,
and ``problems``: anything the contract forbids (a second report, a frame it cannot read, a
message for a label it did not subscribe to, a 4xx answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .utils import MS, wait_until

__all__ = ["Received", "RecoveringClient", "Report", "parse_frame", "recover_query"]

MAX_FAILED_ATTEMPTS = 500
"""Consecutive failed handshakes after which a client gives up and reports a problem."""


@dataclass(frozen=True)
class Received:
    """One message frame: its channel label, history id (None: not in history) and payload."""

    label: str
    id: str | None
    payload: str | bytes
    connection: int
    before_report: bool


@dataclass(frozen=True)
class Report:
    """The recovery report of one connection: ``{label: (id, recovered)}``."""

    channels: dict[str, tuple[str | None, bool]]
    connection: int

    @property
    def not_recovered(self) -> list[str]:
        return [label for label, (_, recovered) in self.channels.items() if not recovered]


def parse_frame(frame: str | bytes) -> Received | Report:
    """Read one frame of an opted-in socket: a message (``connection`` -1, filled by the caller) or the report.

    Raises ValueError for anything else.
    """
    newline = "\n" if isinstance(frame, str) else b"\n"
    header, found, payload = frame.partition(newline)  # type: ignore[arg-type]
    if not found:
        if not isinstance(frame, str):
            raise ValueError(f"a binary frame without a header: {frame[:80]!r}")
        document = json.loads(frame)
        if not isinstance(document, dict) or set(document) != {"recovery"}:
            raise ValueError(f"neither a message nor a report: {frame[:200]!r}")
        try:
            channels = {label: (entry["id"], entry["recovered"]) for label, entry in document["recovery"].items()}
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"a report that breaks the contract ({exc!r}): {frame[:200]!r}") from None
        for label, (stream_id, recovered) in channels.items():
            if not isinstance(recovered, bool) or not (stream_id is None or isinstance(stream_id, str)):
                raise ValueError(f"a report entry that breaks the contract for {label!r}: {frame[:200]!r}")
        return Report(channels, -1)
    meta = json.loads(header)
    if not isinstance(meta, dict) or not isinstance(meta.get("channel"), str) or "id" not in meta:
        raise ValueError(f"a message header without channel and id: {header[:200]!r}")
    return Received(meta["channel"], meta["id"], payload, -1, False)


def recover_query(positions: dict[str, str | None]) -> str:
    """The ``recover`` parameter: bare on a first connect, else the positions as encodeURIComponent(JSON)."""
    if not positions:
        return "recover"
    return "recover=" + urllib.parse.quote(json.dumps(positions, separators=(",", ":")), safe="")


@dataclass
class RecoveringClient:
    """One recovering websocket on ``url`` (which holds the ``subscribe-*`` parameters), reconnecting until cancelled.

    ``retry_delay`` separates a close or a refused handshake from the next attempt. ``caught_up``
    holds while a connection is open and its report has arrived: from then on it receives live.
    """

    url: str
    retry_delay: float = 20 * MS
    open_timeout: float = 10_000 * MS
    positions: dict[str, str | None] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    not_recovered: list[str] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    connections: int = 0
    caught_up: bool = False
    _ws: ClientConnection | None = field(default=None, repr=False)

    async def reconnect(self) -> None:
        """Close the open connection from this side (1000), as a page that goes away does; it then reconnects."""
        if self._ws is not None:
            await self._ws.close()

    def payloads(self, label: str = "broadcast") -> list[str | bytes]:
        return [message.payload for message in self.received if message.label == label]

    def next_url(self) -> str:
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}{recover_query(self.positions)}"

    async def run(self) -> None:
        failed = 0
        while failed < MAX_FAILED_ATTEMPTS:
            url = self.next_url()
            self.urls.append(url)
            try:
                ws = await connect(url, open_timeout=self.open_timeout, max_size=None)
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.refusals.append(f"{status} {exc.response.reason_phrase}")
                if 400 <= status < 500:
                    self.problems.append(f"handshake refused with {status}: {exc.response.body!r} for {url}")
                    return
                failed += 1
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.refusals.append(repr(exc))
                failed += 1
            else:
                failed = 0
                self.connections += 1
                self._ws = ws
                try:
                    await self._read(ws, self.connections)
                finally:
                    self.caught_up = False
                    self._ws = None
                    await ws.close()
                self.close_codes.append(ws.close_code)
            await asyncio.sleep(self.retry_delay)
        self.problems.append(f"gave up after {failed} failed handshakes: {self.refusals[-3:]}")

    def reported_on(self, connection: int) -> Report | None:
        """The report of ``connection`` (numbered from 1), if it has arrived."""
        return self.reports[-1] if self.reports and self.reports[-1].connection == connection else None

    async def _read(self, ws: ClientConnection, connection: int) -> None:
        try:
            async for frame in ws:
                self._take(frame, connection)
        except ConnectionClosed:
            pass

    def _take(self, frame: str | bytes, connection: int) -> None:
        try:
            item = parse_frame(frame)
        except ValueError as exc:
            self.problems.append(f"connection {connection}: {exc}")
            return
        report = self.reported_on(connection)
        if isinstance(item, Report):
            if report is not None:
                self.problems.append(f"connection {connection}: a second report {item.channels}")
            report = Report(item.channels, connection)
            self.reports.append(report)
            self.not_recovered += report.not_recovered
            for label, (stream_id, _) in item.channels.items():
                self.positions[label] = stream_id
            self.caught_up = True
            return
        if report is not None and item.label not in report.channels:
            self.problems.append(f"connection {connection}: a message for {item.label!r}, which the report lacks")
        self.received.append(Received(item.label, item.id, item.payload, connection, report is None))
        if item.id is not None:
            self.positions[item.label] = item.id


@contextlib.asynccontextmanager
async def running(clients: list[RecoveringClient]) -> AsyncIterator[None]:
    """Run ``clients`` until the block ends; it starts once every one of them is open and caught up."""
    tasks = [asyncio.create_task(client.run()) for client in clients]
    try:
        await wait_until(lambda: all(client.caught_up for client in clients), 10_000 * MS, what="every client open")
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
