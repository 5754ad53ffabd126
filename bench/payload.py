"""The benchmark messages, each carrying its sequence number and send time at fixed offsets.

Two kinds, picked by name (``--payload``; the harness hands the name to the load client and
its publisher in ``BENCH_PAYLOAD``):

- ``small`` (the default), 100 bytes: ``SSSSSSSS TTTTTTTTTTTTTTTTTTT xxx...``;
- ``json1k``, 1,024 bytes of valid JSON text shaped like a chat notification (three messages
  with the same keys, which is what permessage-deflate feeds on), starting with
  ``{"seq":SSSSSSSS,"sent_ns":TTTTTTTTTTTTTTTTTTT,`` (space-padded numbers are valid JSON).

Fixed offsets let the load client read both numbers by slicing instead of parsing millions
of frames. The time is ``time.monotonic_ns()`` (CLOCK_MONOTONIC), shared by all processes on
the machine. Standard library only: the Channels publisher imports it from another venv.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import NamedTuple

SMALL = "small"
JSON1K = "json1k"
KINDS = (SMALL, JSON1K)
ENV = "BENCH_PAYLOAD"

SIZE = 100
_PAD = b"x" * (SIZE - 29)


class Layout(NamedTuple):
    """Where a payload kind keeps its sequence number and send time."""

    seq: slice
    sent_ns: slice


LAYOUTS = {
    SMALL: Layout(slice(0, 8), slice(9, 28)),
    JSON1K: Layout(slice(7, 15), slice(26, 45)),
}


def make(seq: int) -> bytes:
    """The 100-byte payload for message ``seq``, stamped now; call it right before publishing."""
    return b"%08d %019d " % (seq, time.monotonic_ns()) + _PAD


def _chat_body() -> bytes:
    """A chat room update: three messages whose keys repeat, as real notifications do."""
    people = ["Ada Lovelace", "Grace Hopper", "Alan Turing"]
    texts = [
        "Deploy of 2.4.1 is done, dashboards look normal.",
        "Great, I will close the release ticket and tag the branch.",
        "Please check the error rate on the EU cluster before lunch.",
    ]
    messages = [
        {
            "id": f"msg-88231{i}",
            "author": {"id": 1000 + i, "name": name, "avatar": f"https://cdn.example.com/avatars/{1000 + i}.png"},
            "text": text,
            "created_at": f"2026-12-01T12:00:0{i}Z",
            "reactions": [{"emoji": "thumbs_up", "count": 3 - i}, {"emoji": "eyes", "count": 1}],
        }
        for i, (name, text) in enumerate(zip(people, texts, strict=True))
    ]
    room = {"id": "room-4821", "name": "release-planning", "members": 42}
    body = {"type": "chat.message", "room": room, "messages": messages, "unread": 12}
    return json.dumps(body, separators=(",", ":")).encode()[1:]  # without "{": it follows the head


_CHAT_BODY = _chat_body()


def make_json1k(seq: int) -> bytes:
    """The ~1 KiB JSON payload for message ``seq``, stamped now."""
    return b'{"seq":%8d,"sent_ns":%19d,' % (seq, time.monotonic_ns()) + _CHAT_BODY


MAKERS: dict[str, Callable[[int], bytes]] = {SMALL: make, JSON1K: make_json1k}


def kind_from_env() -> str:
    """The payload kind the harness chose for this process tree (``small`` if none)."""
    kind = os.environ.get(ENV, SMALL)
    if kind not in MAKERS:
        raise ValueError(f"{ENV}={kind!r} is not a payload kind; use one of {', '.join(KINDS)}")
    return kind


def maker_from_env() -> Callable[[int], bytes]:
    """The payload function the publishers call, by ``BENCH_PAYLOAD``."""
    return MAKERS[kind_from_env()]
