"""Frame writing: coalesce each socket's frames and write them with one ``send()`` per loop turn.

Messages that arrive together from Redis (one read often returns many) would otherwise cost one
system call per message per socket. Instead a socket queues the ready-made frames, registers
once with the process's :class:`FrameWriter`, and the writer flushes every registered socket
when the IOLoop next runs callbacks: one ``send()`` per socket for the whole batch. Every socket
first hands over what it queued (a :class:`WriteBatch`), then the writer makes the ``send()``
calls one after the other, with no interpreter work between them: measured against sending from
each socket's own method, 6-13 % less CPU per frame ("Round two" in bench/README.md), most of a
frame's cost being the ``send()`` itself. A socket whose
kernel buffer is full falls back to Tornado's ``IOStream`` buffering, bounded by
``max_buffered_bytes`` (see ``direct_socket`` and ``write_rest``, which live with the other
Tornado internals in :mod:`ws4redis_tornado.compat.tornado`).

The writer also owns the process's :class:`~ws4redis_tornado.deflate.FrameCompressor`: a frame
going to sockets that agreed to permessage-deflate is compressed once during a flush, and the
results are dropped when the flush ends.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Protocol

from .deflate import FrameCompressor
from .metrics import Metrics

__all__ = ["FrameWriter", "WriteBatch"]

logger = logging.getLogger(__name__)


class WriteBatch:
    """The direct writes of one flush, made back to back after every socket has taken its frames.

    Three parallel lists rather than an object per write: the socket each write belongs to, the
    socket object to ``send()`` to, and the bytes.
    """

    __slots__ = ("datas", "owners", "sockets")

    def __init__(self) -> None:
        self.owners: list[FlushableSocket] = []
        self.sockets: list[socket.socket] = []
        self.datas: list[bytes] = []

    def clear(self) -> None:
        self.owners.clear()
        self.sockets.clear()
        self.datas.clear()


class FlushableSocket(Protocol):
    def take_frames(self, batch: WriteBatch) -> int:
        """Add what is queued to ``batch``, or write it through the stream; return its bytes."""

    def write_rest(self, data: bytes, sent: int) -> None:
        """Write what a direct ``send()`` left of ``data``, from byte ``sent`` on."""


class FrameWriter:
    """Flushes the sockets that queued frames, once per IOLoop iteration; one per process.

    With ``metrics``, counts the bytes written and the time from the batch's first queued frame
    (as a rule, a message just read from Redis) to its last write, once per batch. With
    ``compressor``, sockets may agree to permessage-deflate (see :mod:`ws4redis_tornado.deflate`).
    """

    __slots__ = ("_batch", "_dirty", "_loop", "_metrics", "_since", "compressor")

    def __init__(self, metrics: Metrics | None = None, compressor: FrameCompressor | None = None) -> None:
        self._dirty: list[FlushableSocket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metrics = metrics
        self._since = 0.0
        self._batch = WriteBatch()
        self.compressor = compressor

    def schedule(self, owner: FlushableSocket) -> None:
        """Flush ``owner`` soon; call once per batch (when its queue goes from empty to not)."""
        if not self._dirty:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._flush)
            if self._metrics is not None:
                self._since = self._loop.time()
        self._dirty.append(owner)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        batch = self._batch
        written = 0
        for owner in dirty:
            try:
                written += owner.take_frames(batch)
            except Exception:
                logger.exception("writing to %r failed", owner)
        if self.compressor is not None:
            self.compressor.forget()
        owners, datas = batch.owners, batch.datas
        for index, sock in enumerate(batch.sockets):
            data = datas[index]
            try:
                sent = sock.send(data)
            except OSError:
                # Full (BlockingIOError), or an error the stream sees and closes itself on when it writes.
                sent = 0
            if sent != len(data):
                try:
                    owners[index].write_rest(data, sent)
                except Exception:
                    logger.exception("writing to %r failed", owners[index])
        batch.clear()
        metrics = self._metrics
        if metrics is not None:
            metrics.bytes_sent += written
            assert self._loop is not None
            metrics.fanout.observe(self._loop.time() - self._since)
