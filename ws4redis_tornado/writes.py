"""Frame writing: coalesce each socket's frames and write them with one ``send()`` per loop turn.

Messages that arrive together from Redis (one read often returns many) would otherwise cost one
system call per message per socket. Instead a socket queues the ready-made frames, registers
once with the process's :class:`FrameWriter`, and the writer flushes every registered socket
when the IOLoop next runs callbacks: one ``send()`` per socket for the whole batch. A socket whose
kernel buffer is full falls back to Tornado's ``IOStream`` buffering, bounded by
``max_buffered_bytes`` (see :func:`write_now`, which lives with the other Tornado internals in
:mod:`ws4redis_tornado.compat.tornado`).

The writer also owns the process's :class:`~ws4redis_tornado.deflate.FrameCompressor`: a frame
going to sockets that agreed to permessage-deflate is compressed once during a flush, and the
results are dropped when the flush ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .compat.tornado import write_now
from .deflate import FrameCompressor
from .metrics import Metrics

__all__ = ["FrameWriter", "write_now"]

logger = logging.getLogger(__name__)


class FlushableSocket(Protocol):
    def flush_frames(self) -> int:
        """Write what is queued; return the number of bytes written."""


class FrameWriter:
    """Flushes the sockets that queued frames, once per IOLoop iteration; one per process.

    With ``metrics``, counts the bytes written and the time from the batch's first queued frame
    (as a rule, a message just read from Redis) to its last write, once per batch. With
    ``compressor``, sockets may agree to permessage-deflate (see :mod:`ws4redis_tornado.deflate`).
    """

    __slots__ = ("_dirty", "_loop", "_metrics", "_since", "compressor")

    def __init__(self, metrics: Metrics | None = None, compressor: FrameCompressor | None = None) -> None:
        self._dirty: list[FlushableSocket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metrics = metrics
        self._since = 0.0
        self.compressor = compressor

    def schedule(self, socket: FlushableSocket) -> None:
        """Flush ``socket`` soon; call once per batch (when its queue goes from empty to not)."""
        if not self._dirty:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._flush)
            if self._metrics is not None:
                self._since = self._loop.time()
        self._dirty.append(socket)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        written = 0
        for socket in dirty:
            try:
                written += socket.flush_frames()
            except Exception:
                logger.exception("writing to %r failed", socket)
        if self.compressor is not None:
            self.compressor.forget()
        metrics = self._metrics
        if metrics is not None:
            metrics.bytes_sent += written
            assert self._loop is not None
            metrics.fanout.observe(self._loop.time() - self._since)
