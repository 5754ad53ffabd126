"""A client that hangs up while its handshake is under way leaves nothing behind and logs no error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from ws4redis_tornado import Broker, Principal

from ..utils import MS, quiet_window, wait_until, within


class HangupDuringFetch(Broker):
    """A real broker whose persisted-message fetch starts only once the client has hung up."""

    async def fetch(self, channels: Sequence[str]) -> list[bytes | None]:
        if channels:
            await wait_until(lambda: self.listener_count(channels[0]) == 0)
        return await super().fetch(channels)


@pytest.fixture
def broker(io_loop, config):
    broker = HangupDuringFetch(config)
    io_loop.run_sync(broker.start)
    yield broker
    io_loop.run_sync(broker.aclose)


class Gate:
    """A hook that holds the handshake until the client has hung up."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request) -> Principal:
        self.entered.set()
        await self.release.wait()
        return Principal(request=request)


async def open_and_hang_up(port: int, path: str, *, after: asyncio.Event | None = None) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    if after is not None:
        await within(after.wait())
    writer.close()
    await writer.wait_closed()


def errors(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.gen_test
async def test_a_hangup_while_persisted_messages_are_read_logs_no_error(
    http_server, http_port, app, config, broker, redis_client, prefix, caplog
):
    redis_client.set(f"{prefix}:broadcast:news", "kept")
    hangup = asyncio.Event()
    task = asyncio.ensure_future(
        open_and_hang_up(http_port, f"{config.websocket_url}news?subscribe-broadcast", after=hangup)
    )
    channel = f"{prefix}:broadcast:news"
    await wait_until(lambda: broker.listener_count(channel) == 1)
    hangup.set()
    await within(task)
    await wait_until(lambda: broker.listener_count(channel) == 0)
    await quiet_window(100 * MS)  # for what the handler does after the fetch returns
    assert errors(caplog) == []
    assert broker.channel_count == 0
    assert not app.sockets


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def app_options(request) -> dict:
    # Only the tests that ask for the gate hold their handshakes in it.
    return {"process_request": request.getfixturevalue("gate")} if "gate" in request.fixturenames else {}


@pytest.mark.gen_test
@pytest.mark.parametrize("when", ["with its request", "while hooks run"])
async def test_a_hangup_before_subscribing_subscribes_nothing(
    http_server, http_port, app, config, broker, gate, when, caplog
):
    after = gate.entered if when == "while hooks run" else None
    path = f"{config.websocket_url}news?subscribe-broadcast"
    task = asyncio.ensure_future(open_and_hang_up(http_port, path, after=after))
    await within(gate.entered.wait())
    await within(task)
    await quiet_window(50 * MS)  # for the server to notice the hangup
    gate.release.set()
    await quiet_window(100 * MS)  # for what the handler does after its hooks return
    assert broker.channel_count == 0
    assert not app.sockets
    assert errors(caplog) == []
