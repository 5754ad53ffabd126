"""Structured events for operations: connects, denials, closes, Redis state; never bodies."""

from __future__ import annotations

import json
import logging

import pytest
import websockets

from ws4redis_tornado.logs import JsonFormatter

from ..utils import wait_for


def events(caplog) -> list[dict]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if getattr(r, "event", None)]


@pytest.mark.gen_test
async def test_connect_close_and_deny_are_logged_as_events_without_bodies(ws_url, caplog):
    caplog.set_level(logging.INFO, logger="ws4redis_tornado")
    async with websockets.connect(ws_url("room", "subscribe-broadcast&publish-broadcast")) as ws:
        await ws.send("secret body")
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(ws_url("bad:facility", "subscribe-broadcast"))
    await wait_for(lambda: any(e["event"] == "close" for e in events(caplog)))
    by_name = {e["event"]: e for e in events(caplog)}
    assert by_name["connect"]["facility"] == "room" and by_name["connect"]["channels"] == 1
    assert by_name["close"]["code"] == 1000 and by_name["close"]["peer"] == "127.0.0.1"
    assert by_name["deny"]["status"] == 400
    assert "secret body" not in caplog.text


def test_json_formatter_renders_plain_records_too():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "hello world"
