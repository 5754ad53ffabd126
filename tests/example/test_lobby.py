"""The chat example's lobby over plain HTTP and websockets: the server, not the client, names the
sender; the lobby keeps presence, from which the direct-message page tells who is online.

The example runs as ``manage.py demo`` in a subprocess, with the suite's private Redis; john and
mary log in through the login page, as a browser would, and talk to it with urllib and websockets.
"""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.cookiejar import CookieJar

from websockets.sync.client import ClientConnection, connect

from ..chat_example import PASSWORD, ChatServer
from ..utils import MS, wait_until_blocking

TIMEOUT = 5000 * MS


class Browser:
    """Cookies, CSRF token and login, as a browser keeps them."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def cookie(self, name: str) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == name)

    def request(self, path: str, fields: dict[str, str] | None = None, *, csrf: bool = True) -> tuple[int, bytes]:
        data = None
        if fields is not None:
            if csrf:
                fields = {**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")}
            data = urllib.parse.urlencode(fields).encode()
        try:
            with self.opener.open(f"{self.server.url}{path}", data, timeout=TIMEOUT) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def log_in(self, username: str) -> Browser:
        self.request("/accounts/login/")
        status, _ = self.request("/accounts/login/", {"username": username, "password": PASSWORD})
        assert status == 200 and self.cookie("sessionid")
        return self

    def lobby(self, query: str = "subscribe-broadcast") -> ClientConnection:
        cookie = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.cookies)
        url = f"ws://127.0.0.1:{self.server.port}/ws/lobby?{query}"
        return connect(url, additional_headers={"Cookie": cookie}, open_timeout=TIMEOUT)

    def online(self) -> set[str]:
        """The recipients the direct-message page marks online."""
        status, body = self.request("/chat/user/")
        assert status == 200
        options = re.findall(r"<option [^>]*>([^<]*)</option>", body.decode())
        return {html.unescape(text).removesuffix(" · online") for text in options if text.endswith(" · online")}

    def post_to_lobby(self, text: str, **fields: str) -> tuple[int, dict]:
        status, body = self.request("/chat/", {"message": text, **fields})
        return status, json.loads(body)


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


def messages_until(ws: ClientConnection, text: str) -> list[dict]:
    """Read the lobby until the message ``text``; return every message read, that one last."""
    read = []
    while not read or read[-1]["text"] != text:
        read.append(json.loads(ws.recv(timeout=TIMEOUT)))
    return read


def test_what_a_socket_sends_to_the_lobby_reaches_nobody_whatever_sender_it_names(chat):
    john, mary = Browser(chat).log_in("john"), Browser(chat).log_in("mary")
    forged = unique("Server restarting, log in again at evil.example")
    with mary.lobby() as listener, john.lobby("subscribe-broadcast&publish-broadcast&echo") as speaker:
        speaker.send(json.dumps({"id": forged, "from": "admin", "text": forged}))
        # The server reads a socket's frames in order: once it answered the ping, it was done
        # with the forgery, and had published it if it ever would.
        speaker.ping().wait(TIMEOUT)
        mark = unique("Hello from john")
        assert john.post_to_lobby(mark) == (200, {"sent": True})
        seen = messages_until(listener, mark)
    assert forged not in [message["text"] for message in seen]
    assert seen[-1]["from"] == "john"


def test_the_lobby_view_names_the_logged_in_user_as_the_sender(chat):
    john, mary = Browser(chat).log_in("john"), Browser(chat).log_in("mary")
    text = unique("Who am I?")
    with mary.lobby() as listener:
        assert john.post_to_lobby(text, **{"from": "admin"}) == (200, {"sent": True})
        message = messages_until(listener, text)[-1]
    assert message["from"] == "john"
    assert set(message) == {"id", "text", "from"}


def test_the_lobby_view_refuses_visitors_empty_messages_and_posts_without_the_csrf_token(chat):
    john, visitor = Browser(chat).log_in("john"), Browser(chat)
    visitor.request("/accounts/login/")  # for a CSRF token
    assert visitor.post_to_lobby("let me in") == (403, {"error": "Log in to write to the lobby."})
    assert john.post_to_lobby("   ") == (400, {"error": "Write a message first."})
    status, body = john.request("/chat/", {"message": "forged by another site"}, csrf=False)
    assert status == 403 and b"CSRF" in body


def next_presence(ws: ClientConnection) -> dict:
    """The next presence frame of a socket that asked for presence, skipping messages.

    Such a socket gets every message behind a one-line header, and presence frames without a newline.
    """
    while "\n" in (frame := ws.recv(timeout=TIMEOUT)):
        pass
    return json.loads(frame)["presence"]


def presence_until(ws: ClientConnection, until: dict) -> list[dict]:
    """Read presence frames until ``until``; return every one read, that one last."""
    read = [next_presence(ws)]
    while read[-1] != until:
        read.append(next_presence(ws))
    return read


def test_a_lobby_socket_that_asks_for_presence_sees_users_come_and_go_by_their_names(chat):
    john, mary = Browser(chat).log_in("john"), Browser(chat).log_in("mary")
    # The sockets of the tests before have closed; their leaves are written just after.
    wait_until_blocking(lambda: "john" not in mary.online(), TIMEOUT, what="john out of the lobby")
    with john.lobby("subscribe-broadcast&presence") as watcher:
        snapshot = next_presence(watcher)
        assert snapshot["channel"] == "broadcast" and "john" not in snapshot["users"]
        presence_until(watcher, {"channel": "broadcast", "event": "join", "user": "john"})
        with mary.lobby():
            presence_until(watcher, {"channel": "broadcast", "event": "join", "user": "mary"})
        seen = presence_until(watcher, {"channel": "broadcast", "event": "leave", "user": "mary"})
    assert {"channel": "broadcast", "event": "leave", "user": "john"} not in seen


def test_the_direct_message_page_marks_online_who_is_in_the_lobby(chat):
    john, mary = Browser(chat).log_in("john"), Browser(chat).log_in("mary")
    wait_until_blocking(lambda: "mary" not in john.online(), TIMEOUT, what="mary offline")
    with mary.lobby():
        wait_until_blocking(lambda: "mary" in john.online(), TIMEOUT, what="mary online")
        assert "john" not in mary.online()  # his own page is no lobby, and nobody else's either
    wait_until_blocking(lambda: "mary" not in john.online(), TIMEOUT, what="mary offline again")
