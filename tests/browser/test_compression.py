"""Chromium offers permessage-deflate on every websocket: the server agrees on its own terms, and a
long chat message, compressed by the sender's browser and again by the server, arrives whole."""

from __future__ import annotations

from .conftest import TIMEOUT, require_playwright
from .test_chat import messages, send, unique

expect = require_playwright().expect

AGREED = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
OPEN_SOCKET = """(uri) => new Promise((resolve, reject) => {
    const ws = new WebSocket(uri);
    ws.onopen = () => { resolve(ws.extensions); ws.close(); };
    ws.onerror = () => reject(new Error('websocket failed'));
})"""


def test_chromium_agrees_to_deflate_and_long_messages_arrive_whole(open_page, chat_server):
    john = open_page(f"{chat_server.url}/chat/", "john")
    mary = open_page(f"{chat_server.url}/chat/", "mary")
    assert john.evaluate(OPEN_SOCKET, john.locator("#uri").inner_text()) == AGREED

    long = unique("A long message, " + "with words that repeat and repeat, " * 40)
    assert len(long) > 1000
    send(john, long)
    expect(messages(mary, long)).to_have_count(1, timeout=TIMEOUT)
    expect(messages(john, long)).to_have_count(1, timeout=TIMEOUT)
    short = unique("short")
    send(mary, short)
    expect(messages(john, short)).to_have_count(1, timeout=TIMEOUT)
