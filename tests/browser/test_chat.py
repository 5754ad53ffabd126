"""The three chat pages of examples/chatserver, each with several users in separate browsers."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from .conftest import SCREENSHOTS, TIMEOUT, require_playwright

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = require_playwright().expect


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:6]}"


def send(page: Page, text: str, **choices: str) -> None:
    """Type ``text`` into the page's composer (choosing e.g. ``recipient="mary"``) and send it."""
    for field, value in choices.items():
        page.select_option(f"#{field}", value)
    page.fill("#text", text)
    page.click("#composer button[type=submit]")
    expect(page.locator("#text")).to_have_value("", timeout=TIMEOUT)  # cleared once sent


def messages(page: Page, text: str):
    return page.locator(".message .text", has_text=text)


def test_lobby_message_reaches_the_other_browser(open_page, chat_server):
    john = open_page(f"{chat_server.url}/chat/", "john")
    mary = open_page(f"{chat_server.url}/chat/", "mary")
    # Opening the page published the greeting, kept in Redis, so each page shows it on connect.
    expect(john.locator(".notice", has_text="Hello everybody")).to_have_count(1, timeout=TIMEOUT)

    # No other test writes these words, and the pages are new: each shows only what arrives now.
    hello = "Hi Mary, are you there?"
    send(john, hello)
    expect(messages(mary, hello)).to_have_count(1, timeout=TIMEOUT)
    expect(mary.locator(".message", has_text=hello).locator(".author")).to_have_text("john")
    expect(messages(john, hello)).to_have_count(1, timeout=TIMEOUT)  # echo: john's own copy

    answer = "Hi John! Loud and clear."
    send(mary, answer)
    expect(messages(john, answer)).to_have_count(1, timeout=TIMEOUT)
    send(john, "Great: Django published it to Redis, and Tornado pushed it here. No reload.")
    expect(john.locator(".message.mine")).to_have_count(2, timeout=TIMEOUT)
    expect(mary.locator(".message")).to_have_count(3, timeout=TIMEOUT)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    john.screenshot(path=SCREENSHOTS / "chat.png")


def test_visitor_reads_the_lobby_but_cannot_write(open_page, chat_server):
    visitor = open_page(f"{chat_server.url}/chat/")
    john = open_page(f"{chat_server.url}/chat/", "john")
    expect(visitor.locator("#composer")).to_have_count(0)
    # The page offers no composer, but a socket could still try: WS4REDIS_ALLOWED_CHANNELS drops
    # publish-broadcast for every socket, so what it sends goes nowhere.
    forged = unique("forged by a visitor")
    visitor.evaluate(
        """([uri, text]) => new Promise((resolve, reject) => {
            const ws = new WebSocket(uri);
            ws.onopen = () => { ws.send(JSON.stringify({id: text, from: 'mary', text})); resolve(); };
            ws.onerror = () => reject(new Error('websocket failed'));
        })""",
        [visitor.locator("#uri").inner_text(), forged],
    )
    mark = unique("sent after the forgery")
    send(john, mark)
    # Both went through the same server and Redis in this order: with the mark here, the
    # forgery would be too.
    expect(messages(visitor, mark)).to_have_count(1, timeout=TIMEOUT)
    expect(messages(visitor, forged)).to_have_count(0)
    expect(messages(john, forged)).to_have_count(0)


def test_direct_message_reaches_only_its_recipient(open_page, chat_server):
    mary = open_page(f"{chat_server.url}/chat/user/", "mary")
    john = open_page(f"{chat_server.url}/chat/user/", "john")
    admin = open_page(f"{chat_server.url}/chat/user/", "admin")

    secret = unique("For Mary only")
    send(admin, secret, recipient="mary")
    expect(messages(mary, secret)).to_have_count(1, timeout=TIMEOUT)
    expect(mary.locator(".message", has_text=secret).locator(".to")).to_have_text("→ mary")
    expect(messages(admin, secret)).to_have_count(1, timeout=TIMEOUT)  # the sender's copy (SELF)

    # Published after the secret, through the same Redis connection: once john has this one,
    # he would have had the secret too.
    later = unique("For John")
    send(admin, later, recipient="john")
    expect(messages(john, later)).to_have_count(1, timeout=TIMEOUT)
    expect(messages(john, secret)).to_have_count(0)
    expect(messages(mary, later)).to_have_count(0)


def test_group_message_reaches_members_only(open_page, chat_server):
    john = open_page(f"{chat_server.url}/chat/group/", "john")
    mary = open_page(f"{chat_server.url}/chat/group/", "mary")
    admin = open_page(f"{chat_server.url}/chat/group/", "admin")
    expect(admin.locator(".lead")).to_have_text("You are in staff.")

    note = unique("Chatters, meeting at noon")
    send(john, note, group="chatters")
    expect(messages(mary, note)).to_have_count(1, timeout=TIMEOUT)
    expect(messages(john, note)).to_have_count(1, timeout=TIMEOUT)

    # admin is in "staff", not in "chatters": his own staff message, published later, is the mark.
    later = unique("Staff only")
    send(admin, later, group="staff")
    expect(messages(admin, later)).to_have_count(1, timeout=TIMEOUT)
    expect(messages(admin, note)).to_have_count(0)
    expect(messages(john, later)).to_have_count(0)
