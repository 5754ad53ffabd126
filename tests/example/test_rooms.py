"""The chat example's rooms page over plain HTTP and websockets: the page and its view, and the
control socket it opens, whose subscriptions the example's facility hook guards.

The example runs as ``manage.py demo`` in a subprocess with the suite's private Redis; john logs
in through the login page and talks to it with urllib and websockets, as the page's script would.
"""

from __future__ import annotations

import json

from websockets.sync.client import ClientConnection, connect

from .test_lobby import TIMEOUT, Browser, unique

CONTROL = "ws4redis.control"
HEARTBEAT = "--heartbeat--"  # WS4REDIS_HEARTBEAT in the example's settings


def control_socket(browser: Browser) -> ClientConnection:
    cookie = "; ".join(f"{cookie.name}={cookie.value}" for cookie in browser.cookies)
    url = f"ws://127.0.0.1:{browser.server.port}/ws/"
    return connect(url, subprotocols=[CONTROL], additional_headers={"Cookie": cookie}, open_timeout=TIMEOUT)


def request(ws: ClientConnection, **fields: object) -> dict:
    """Send a request; return its reply, asserting that no message came before it."""
    ws.send(json.dumps(fields))
    while (frame := ws.recv(timeout=TIMEOUT)) == HEARTBEAT:
        pass
    assert isinstance(frame, str) and "\n" not in frame, frame
    return json.loads(frame)


def next_message(ws: ClientConnection) -> tuple[dict, dict]:
    """The next message's header and JSON body, heartbeats skipped."""
    while (frame := ws.recv(timeout=TIMEOUT)) == HEARTBEAT:
        pass
    assert isinstance(frame, str)
    header, _, body = frame.partition("\n")
    return json.loads(header), json.loads(body)


def test_the_rooms_page_lists_its_rooms_for_logged_in_users_only(chat):
    status, page = Browser(chat).log_in("john").request("/chat/rooms/")
    assert status == 200
    assert page.count(b'class="room-button" data-room="') == 3
    assert b"rooms: true" in page
    visitor = Browser(chat)
    visitor.request("/accounts/login/")  # for a CSRF token
    for fields in (None, {"room": "general", "message": "hi"}):
        status, page = visitor.request("/chat/rooms/", fields)
        assert status == 200 and b'id="id_username"' in page, "redirected to the login page"


def test_a_control_socket_gets_what_the_room_view_publishes_with_its_facility(chat):
    john = Browser(chat).log_in("john")
    with control_socket(john) as ws:
        assert ws.subprotocol == CONTROL
        reply = request(ws, op="subscribe", ref=1, facility="room-help", audiences=["broadcast"])
        assert reply == {"reply": 1, "ok": True, "audiences": ["broadcast"], "channels": ["broadcast"]}
        text = unique("Can anybody help?")
        assert john.request("/chat/rooms/", {"room": "help", "message": text}) == (200, b'{"sent": true}')
        header, body = next_message(ws)
        assert header == {"facility": "room-help", "channel": "broadcast", "id": None}
        assert (body["text"], body["from"]) == (text, "john")


def test_the_room_view_refuses_rooms_it_does_not_have(chat):
    john = Browser(chat).log_in("john")
    status, body = john.request("/chat/rooms/", {"room": "secret", "message": "hi"})
    assert (status, json.loads(body)) == (400, {"error": "There is no room 'secret'."})


def test_the_facility_hook_refuses_facilities_the_chat_does_not_have(chat):
    john = Browser(chat).log_in("john")
    with control_socket(john) as ws:
        reply = request(ws, op="subscribe", ref="made-up", facility="room-secret", audiences=["broadcast"])
        assert reply["ok"] is False and reply["error"] == "forbidden" and reply["reply"] == "made-up"
        # the socket stays open with what it may have
        assert request(ws, op="subscribe", ref=2, facility="direct", audiences=["user"])["ok"] is True
