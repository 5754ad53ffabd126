"""What tests do with a websockets client: read with a bound, expect silence, read the close, read a refusal.

The helpers take a ``websockets.asyncio`` connection; the ``*_blocking`` ones take a
``websockets.sync`` one, for tests that run no event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import ClientConnection as SyncClientConnection

from .utils import MS, within


async def recv(ws: ClientConnection, timeout: float = 3000 * MS) -> str | bytes:
    """The next message; fail if none comes within ``timeout``."""
    return await within(ws.recv(), timeout)


async def assert_silent(ws: ClientConnection, window: float = 300 * MS) -> None:
    """Fail if a message comes within ``window`` seconds: a deliberate wait for nothing to happen."""
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), window)


async def closed_with(ws: ClientConnection, timeout: float = 3000 * MS) -> tuple[int, str]:
    """Read until the server closes ``ws`` (each read bounded by ``timeout``); return its close code and reason."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await within(ws.recv(), timeout)
    return _close_received(ws)


async def close_code(ws: ClientConnection, timeout: float = 3000 * MS) -> int:
    """The close code of :func:`closed_with`."""
    return (await closed_with(ws, timeout))[0]


def closed_with_blocking(ws: SyncClientConnection, timeout: float = 5000 * MS) -> tuple[int, str]:
    """:func:`closed_with` for a synchronous client; ``timeout`` bounds the whole wait."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ConnectionClosed):
        while True:
            ws.recv(timeout=max(deadline - time.monotonic(), 0))
    return _close_received(ws)


def close_code_blocking(ws: SyncClientConnection, timeout: float = 5000 * MS) -> int:
    """The close code of :func:`closed_with_blocking`."""
    return closed_with_blocking(ws, timeout)[0]


def _close_received(ws: ClientConnection | SyncClientConnection) -> tuple[int, str]:
    close = ws.protocol.close_rcvd
    assert close is not None, "closed without a close frame"
    return close.code, close.reason


async def refused_with(connecting: Awaitable[ClientConnection]) -> Response:
    """The HTTP response a server refused a handshake with; fail if it accepted the socket.

    ``connecting`` is what ``websockets.connect(...)`` returns, not yet awaited.
    """
    with pytest.raises(InvalidStatus) as refused:
        ws = await connecting
        await ws.close()
    return refused.value.response
