"""Structured events for operations: connects, denials, closes, Redis state; never bodies."""

from __future__ import annotations

import json
import logging
import os
import struct
from urllib.parse import urlsplit

import pytest
import websockets

from ws4redis_tornado.logs import JsonFormatter

from ..rawws import handshake, read_frame
from ..utils import wait_until
from ..wsclient import refused_with

GOING_AWAY = 1001


def events(caplog) -> list[dict]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if getattr(r, "event", None)]


@pytest.mark.gen_test
async def test_connect_close_and_deny_are_logged_as_events_without_bodies(ws_url, caplog):
    caplog.set_level(logging.INFO, logger="ws4redis_tornado")
    async with websockets.connect(ws_url("room", "subscribe-broadcast&publish-broadcast")) as ws:
        await ws.send("secret body")
    await refused_with(websockets.connect(ws_url("bad:facility", "subscribe-broadcast")))
    await wait_until(lambda: any(e["event"] == "close" for e in events(caplog)))
    by_name = {e["event"]: e for e in events(caplog)}
    assert by_name["connect"]["facility"] == "room" and by_name["connect"]["channels"] == 1
    assert by_name["close"]["code"] == 1000 and by_name["close"]["peer"] == "127.0.0.1"
    assert by_name["deny"]["status"] == 400
    assert "secret body" not in caplog.text


@pytest.mark.gen_test
async def test_a_close_the_server_began_is_logged_with_its_code_when_the_peer_never_answers(app, ws_url, caplog):
    caplog.set_level(logging.INFO, logger="ws4redis_tornado")
    url = urlsplit(ws_url("room", "subscribe-broadcast"))
    reader, writer = await handshake(url.hostname, url.port, f"{url.path}?{url.query}")
    await wait_until(lambda: app.sockets)
    app.close_sockets()
    assert await read_frame(reader) == (0x8, struct.pack("!H", GOING_AWAY) + b"server shutting down")
    writer.close()  # gone without answering the close frame
    await wait_until(lambda: any(e["event"] == "close" for e in events(caplog)))
    [close] = [e for e in events(caplog) if e["event"] == "close"]
    assert close["code"] == GOING_AWAY


def test_json_formatter_renders_plain_records_too():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "hello world"


@pytest.mark.gen_test
async def test_one_sockets_events_share_its_number_and_json_names_the_process(ws_url, caplog):
    caplog.set_level(logging.INFO, logger="ws4redis_tornado")
    async with (
        websockets.connect(ws_url("room", "subscribe-broadcast")),
        websockets.connect(ws_url("hall", "subscribe-broadcast")),
    ):
        pass
    await wait_until(lambda: len([e for e in events(caplog) if e["event"] == "close"]) == 2)
    numbers = {}
    for event in events(caplog):
        if event["event"] in ("connect", "close"):
            numbers.setdefault(event["socket"], []).append(event["event"])
            assert event["pid"] == os.getpid()
    assert sorted(numbers.values()) == [["connect", "close"], ["connect", "close"]]
