"""The lifecycle every server shares: a drain on real sockets, and Lifecycle.serve() in this process.

The processes and the signals, as a user meets them, are in test_main.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct

import pytest
import tornado.web
from tornado.testing import bind_unused_port

from ws4redis_tornado import WebSocketApplication
from ws4redis_tornado.draining import DrainingHTTPServer, drain
from ws4redis_tornado.lifecycle import Lifecycle
from ws4redis_tornado.logs import JsonFormatter

from ..rawws import client_frame, handshake, read_frame
from ..utils import MS, wait_until, within

GOING_AWAY = struct.pack("!H", 1001)


class SlowHandler(tornado.web.RequestHandler):
    """Answers once the test sets ``release``; sets ``started`` when the request arrives."""

    def initialize(self, *, started: asyncio.Event, release: asyncio.Event) -> None:
        self.started = started
        self.release = release

    async def get(self) -> None:
        self.started.set()
        await self.release.wait()
        self.finish("finished")


class SlowSite:
    """A draining server whose ``/slow`` answers only once ``release`` is set."""

    def __init__(self, broker) -> None:
        self.started, self.release = asyncio.Event(), asyncio.Event()
        options = {"started": self.started, "release": self.release}
        self.app = WebSocketApplication(broker, [("/slow", SlowHandler, options)])
        self.server, self.port = draining_server(self.app)

    async def request(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Send a request to ``/slow`` (on a connection closed after it) and wait until it is served."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await within(self.started.wait())
        return reader, writer


def draining_server(app: WebSocketApplication) -> tuple[DrainingHTTPServer, int]:
    sock, port = bind_unused_port()
    server = DrainingHTTPServer(app, handshake_timeout=5)
    server.add_sockets([sock])
    return server, port


def close_events(caplog) -> list[dict]:
    formatter = JsonFormatter()
    events = [json.loads(formatter.format(r)) for r in caplog.records if getattr(r, "event", None)]
    return [event for event in events if event["event"] == "close"]


async def still_running(task: asyncio.Future, timeout: float = 300 * MS) -> bool:
    """Whether ``task`` is still running ``timeout`` seconds from now (it must not end before)."""
    done, _ = await asyncio.wait([task], timeout=timeout)
    return not done


@pytest.mark.gen_test(timeout=10)
async def test_a_drain_lets_a_request_under_way_finish_and_closes_idle_connections(broker):
    site = SlowSite(broker)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", site.port)
    reader, writer = await site.request()
    await wait_until(lambda: site.server.open_connections == 2)

    drained = asyncio.ensure_future(drain(site.server, site.app, grace_period=5))
    assert await within(idle_reader.read()) == b"", "the idle connection is closed at once"
    assert await still_running(drained)
    site.release.set()
    response = await within(reader.read())
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"finished"), response
    assert await within(drained) is True
    for stream in (writer, idle_writer):
        stream.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_drain_gives_up_on_a_request_when_the_grace_period_ends(broker):
    site = SlowSite(broker)
    reader, writer = await site.request()

    assert await within(drain(site.server, site.app, grace_period=200 * MS)) is False
    assert await within(reader.read()) == b"", "the stuck request's connection is closed"
    site.release.set()
    writer.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_drain_waits_for_the_closing_handshake_of_each_websocket_it_closed(broker, caplog):
    caplog.set_level(logging.INFO, logger="ws4redis_tornado")
    app = WebSocketApplication(broker)
    server, port = draining_server(app)
    reader, writer = await handshake("127.0.0.1", port, "/ws/room?subscribe-broadcast")
    await wait_until(lambda: app.sockets)

    drained = asyncio.ensure_future(drain(server, app, grace_period=5))
    assert await within(read_frame(reader)) == (0x8, GOING_AWAY + b"server shutting down")
    assert await still_running(drained), "the drain ended before the peer answered the close frame"
    writer.write(client_frame(0x8, GOING_AWAY))
    assert await within(drained) is True
    # Logged by the time the drain returns, not when the IOLoop shuts down.
    assert [event["code"] for event in close_events(caplog)] == [1001]
    assert await within(reader.read()) == b""
    writer.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_handshake_completing_during_the_drain_is_closed_and_its_closing_handshake_awaited(broker, caplog):
    caplog.set_level(logging.INFO, logger="ws4redis_tornado")
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow_allowed_channels(request, channels):
        asked.set()
        await release.wait()
        return channels

    app = WebSocketApplication(broker, allowed_channels=slow_allowed_channels)
    server, port = draining_server(app)
    opening = asyncio.ensure_future(handshake("127.0.0.1", port, "/ws/room?subscribe-broadcast"))
    await within(asked.wait())

    drained = asyncio.ensure_future(drain(server, app, grace_period=5))
    assert await still_running(drained), "the drain did not wait for the handshake under way"
    release.set()
    reader, writer = await within(opening)
    assert await within(read_frame(reader)) == (0x8, GOING_AWAY + b"server shutting down")
    assert await still_running(drained), "the drain ended before the peer answered the close frame"
    writer.write(client_frame(0x8, GOING_AWAY))
    assert await within(drained) is True
    assert await within(reader.read()) == b""
    writer.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_lifecycle_serves_until_stopped_then_drains_and_closes_the_application(config):
    sock, port = bind_unused_port()
    ready, stop = asyncio.Event(), asyncio.Event()
    built: list[WebSocketApplication] = []
    closed: list[WebSocketApplication] = []

    class Application(WebSocketApplication):
        def close(self) -> None:
            closed.append(self)

    def build(broker):
        built.append(Application(broker))
        return built[0]

    serving = asyncio.ensure_future(Lifecycle(config, build).serve([sock], on_ready=ready.set, stop=stop))
    await within(ready.wait())
    reader, writer = await handshake("127.0.0.1", port, "/ws/room?subscribe-broadcast")
    await wait_until(lambda: built[0].sockets)
    stop.set()
    assert await within(read_frame(reader)) == (0x8, GOING_AWAY + b"server shutting down")
    writer.write(client_frame(0x8, GOING_AWAY))
    assert await within(serving) is True
    assert closed == built
    writer.close()
    sock.close()
