"""The facilities of the chat: the part of a websocket URL after WEBSOCKET_URL, or what a page's
control socket subscribes. The views publish to them; chat/channels.py lets pages use no other."""

from __future__ import annotations

LOBBY = "lobby"
"""Everybody; keeps presence (WS4REDIS_PRESENCE in the settings): who has it open, in every process."""
DIRECT = "direct"
"""Each user's own channel: direct messages."""
GROUPS = "groups"
"""The channels of the user's groups."""

ROOMS = ("general", "random", "help")
"""The rooms page's rooms, each a facility of its own (``room-general`` ...): one socket switches between them."""
ROOM_PREFIX = "room-"


def room_facility(room: str) -> str:
    return ROOM_PREFIX + room


FACILITIES = frozenset({LOBBY, DIRECT, GROUPS, *map(room_facility, ROOMS)})
