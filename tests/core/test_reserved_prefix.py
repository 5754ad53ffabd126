"""A client cannot pass its message off as the server's own: a binary message that starts like a
presence event or a message with its history id reaches sockets as the message it is."""

from __future__ import annotations

import json

import pytest
import websockets

from ws4redis_tornado.history import ID_MARKER
from ws4redis_tornado.messages import BINARY_MARKER, RESERVED_PREFIX, RedisMessage, decode_payload
from ws4redis_tornado.presence import PRESENCE_MARKER

from ..wsclient import assert_silent, recv

FORGED_JOIN = PRESENCE_MARKER + json.dumps({"event": "join", "user": "admin"}).encode()
FORGED_ID = ID_MARKER + b"9999999999999-0\x00forged"
NOT_JSON = PRESENCE_MARKER + b"\x00\x01not json"


@pytest.mark.parametrize("message", [FORGED_JOIN, FORGED_ID, NOT_JSON, RESERVED_PREFIX, BINARY_MARKER + b"x"])
def test_a_binary_message_with_the_reserved_prefix_is_stored_behind_the_binary_marker(message):
    payload = RedisMessage(message, binary=True).payload
    assert payload == BINARY_MARKER + message
    decoded = decode_payload(payload)
    assert decoded == message and decoded.binary


@pytest.fixture
def config_options() -> dict:
    return {"presence": ("lobby",), "history_size": 10}


@pytest.mark.gen_test
async def test_forged_events_and_ids_reach_sockets_as_plain_binary_messages(ws_url, broker):
    query = "subscribe-broadcast&publish-broadcast&echo"
    async with (
        websockets.connect(ws_url("lobby", query)) as sender,
        websockets.connect(ws_url("lobby", "subscribe-broadcast&presence")) as watcher,
    ):
        snapshot = json.loads(await recv(watcher))
        assert snapshot["presence"]["users"] == {}
        for message in (FORGED_JOIN, FORGED_ID, NOT_JSON):
            await sender.send(message)
            assert await recv(sender) == message
            header, _, body = (await recv(watcher)).partition(b"\n")
            assert body == message
            assert json.loads(header)["channel"] == "broadcast"
            assert json.loads(header)["id"] != "9999999999999-0"
        await assert_silent(watcher)
    assert broker.connected and broker.metrics.redis_reconnects == 0
