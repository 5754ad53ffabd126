"""The chat example's rooms page: one websocket, speaking the control protocol, holds the user's
direct messages and the room shown, and switches rooms without reconnecting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .conftest import SCREENSHOTS, TIMEOUT, require_playwright
from .test_chat import messages, send, unique

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = require_playwright().expect


def enter(page: Page, room: str) -> None:
    """Click the room's button and wait until the server confirmed its subscription."""
    page.click(f"#rooms [data-room={room}]")
    expect(page.locator("#rooms")).to_have_attribute("data-subscribed", room, timeout=TIMEOUT)
    expect(page.locator("#room-name")).to_have_text(f"#{room}")


def test_a_page_switches_rooms_and_gets_direct_messages_on_one_socket(open_page, chat_server):
    opened: list[str] = []  # the URL of every websocket john's page opens

    def count_websockets(page: Page) -> None:
        page.on("websocket", lambda ws: opened.append(ws.url))

    john = open_page(f"{chat_server.url}/chat/rooms/", "john", on_page=count_websockets)
    mary = open_page(f"{chat_server.url}/chat/rooms/", "mary")
    for page in (john, mary):
        expect(page.locator("#rooms")).to_have_attribute("data-subscribed", "general", timeout=TIMEOUT)

    hello = unique("Hello, general")
    send(mary, hello)
    expect(messages(john, hello)).to_have_count(1, timeout=TIMEOUT)

    enter(john, "random")
    expect(messages(john, hello)).to_have_count(0)  # the list shows the room entered
    left_behind = unique("Still in general")
    send(mary, left_behind)
    expect(messages(mary, left_behind)).to_have_count(1, timeout=TIMEOUT)
    enter(mary, "random")
    over_here = unique("Over in random")
    send(mary, over_here)
    # Published after the message to general, through the same Redis: had john still held general,
    # that one would have come first.
    expect(messages(john, over_here)).to_have_count(1, timeout=TIMEOUT)
    expect(messages(john, left_behind)).to_have_count(0)

    # Direct messages reach the rooms page on the same socket, whichever room it shows.
    admin = open_page(f"{chat_server.url}/chat/user/", "admin")
    secret = unique("For John's eyes")
    send(admin, secret, recipient="john")
    expect(john.locator(".notice.direct", has_text=secret)).to_have_count(1, timeout=TIMEOUT)
    expect(mary.locator(".notice.direct", has_text=secret)).to_have_count(0)

    # Back in general, the room's last message comes first, as Redis kept it.
    enter(john, "general")
    expect(messages(john, left_behind)).to_have_count(1, timeout=TIMEOUT)
    expect(john.locator("#status")).to_have_attribute("data-state", "connected")
    assert opened == [f"ws://127.0.0.1:{chat_server.port}/ws/"], "one websocket, never reopened"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    john.screenshot(path=SCREENSHOTS / "rooms.png")
