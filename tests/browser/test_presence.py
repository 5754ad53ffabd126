"""Presence in the chat example: the lobby lists who is in it, live, and the direct-message picker
marks who is online (in the lobby), both from the lobby's presence (WS4REDIS_PRESENCE)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils import wait_until_blocking
from .conftest import TIMEOUT, require_playwright

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

expect = require_playwright().expect


def in_the_room(page: Page, user: str) -> Locator:
    """The entry of ``user`` in the lobby's list of who is in the room."""
    return page.locator(f'#present li[data-user="{user}"]')


def picker_says(page: Page, user: str, text: str) -> None:
    """Reload the direct-message page until its picker shows ``user`` as ``text``: it is rendered by the view."""

    def shows() -> bool:
        page.reload()
        return page.locator(f'#recipient option[value="{user}"]').inner_text() == text

    wait_until_blocking(
        shows,
        TIMEOUT / 1000,
        step=0.2,
        what=f"{text!r} for {user} in the picker",
        pause=lambda seconds: page.wait_for_timeout(seconds * 1000),
    )


def test_the_lobby_shows_mary_come_and_go_and_the_picker_marks_her_online_then_offline(open_page, chat_server):
    john = open_page(f"{chat_server.url}/chat/", "john")
    expect(in_the_room(john, "john")).to_have_text("john (you)", timeout=TIMEOUT)  # his own join
    # Pages of the tests before have closed; their leaves arrive as events too.
    expect(in_the_room(john, "mary")).to_have_count(0, timeout=TIMEOUT)
    picker = open_page(f"{chat_server.url}/chat/user/", "john")
    picker_says(picker, "mary", "mary")

    mary = open_page(f"{chat_server.url}/chat/", "mary")
    expect(in_the_room(john, "mary")).to_have_text("mary", timeout=TIMEOUT)  # her join, live
    expect(in_the_room(mary, "john")).to_have_text("john", timeout=TIMEOUT)  # from her snapshot
    expect(in_the_room(mary, "mary")).to_have_text("mary (you)", timeout=TIMEOUT)
    expect(john.locator("#present-none")).to_be_hidden()
    picker_says(picker, "mary", "mary · online")
    expect(picker.locator("#recipient option").first).to_have_text("mary · online")  # online first

    mary.close()  # her socket closes with the page
    expect(in_the_room(john, "mary")).to_have_count(0, timeout=TIMEOUT)  # her leave, live
    expect(in_the_room(john, "john")).to_have_count(1)
    picker_says(picker, "mary", "mary")
