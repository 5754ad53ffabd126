"""History and recovery: what a channel keeps, how ids travel, and what a reconnecting client gets.

Everything here is pure. With ``history_size`` > 0 every publish appends the message to a Redis
Stream beside its channel and publishes it carrying the entry's id (see
:mod:`ws4redis_tornado.redis_commands`). A client that opts in with the ``recover`` query
parameter receives each message with its channel's label and id, and on reconnecting names the
last id it saw per channel; the server then sends what the stream holds after it, or says the gap
cannot be served. The wire format, for messages and for the one report per connection::

    {"channel":"broadcast","id":"1764547200000-0"}\\n<the message, text or binary, verbatim>
    {"recovery":{"broadcast":{"id":"1764547200000-3","recovered":true}}}

A client that does not opt in receives exactly the frames it always did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .channels import companion_key
from .exceptions import InvalidRecovery
from .frames import encode_frame
from .messages import decode_payload

__all__ = [
    "EMPTY_POSITION",
    "ID_MARKER",
    "RECOVER_PARAMETER",
    "ChannelHistory",
    "channel_facility",
    "channel_label",
    "checked_positions",
    "history_key",
    "message_frame",
    "message_header",
    "opening_frames",
    "order",
    "parse_positions",
    "recover_value",
    "recovery_report",
    "split_id",
]

ID_MARKER = b"\xffws4redis:id\x00"
"""Starts a published payload that carries its stream id: ``ID_MARKER + id + b"\\0" + payload``.

0xFF never occurs in UTF-8, so no text message starts with it, and a binary message that does is
stored behind the binary marker (:mod:`ws4redis_tornado.messages`).
"""

RECOVER_PARAMETER = "recover"
"""The query parameter by which a client opts in; its value, if any, holds its positions."""

EMPTY_POSITION = "0-0"
"""The position of a channel whose stream is empty or absent: before every message."""

_HISTORY_SUFFIX = "ws4redis-history"
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
_MAX_LABEL = 512


def history_key(channel: str) -> str:
    """The key of ``channel``'s stream, in the channel's Redis Cluster slot (see :func:`companion_key`)."""
    return companion_key(channel, _HISTORY_SUFFIX)


def channel_label(channel: str, *, prefix: str = "") -> str:
    """What a client is told a channel is called: never the Redis key, which holds the session key.

    ``broadcast``, ``user``, ``session``, or ``group:<name>`` for a group channel.
    """
    rest = channel[len(prefix) + 1 :] if prefix else channel
    audience, _, rest = rest.partition(":")
    if audience == "group":
        return "group:" + rest.rpartition(":")[0]
    return audience


def split_id(payload: bytes) -> tuple[str | None, bytes]:
    """Split a published payload into its stream id (None if it carries none) and the message payload."""
    if not payload.startswith(ID_MARKER):
        return None, payload
    end = payload.find(b"\x00", len(ID_MARKER))
    if end == -1:
        return None, payload
    return payload[len(ID_MARKER) : end].decode("ascii"), payload[end + 1 :]


def order(stream_id: str) -> tuple[int, int]:
    """A stream id as numbers, to compare ids."""
    milliseconds, _, sequence = stream_id.partition("-")
    return int(milliseconds), int(sequence)


def parse_positions(value: str) -> dict[str, str | None]:
    """Parse the ``recover`` parameter's value: a JSON object mapping channel labels to ids (or null).

    An empty value means a first connection. Raises :class:`InvalidRecovery` saying what is wrong.
    """
    if not value:
        return {}
    try:
        positions = json.loads(value)
    except ValueError:
        raise InvalidRecovery("recover must be a JSON object of channel labels and ids") from None
    return checked_positions(positions)


def checked_positions(positions: object) -> dict[str, str | None]:
    """Return ``positions`` (decoded JSON) if it maps labels to ids or null; else raise :class:`InvalidRecovery`."""
    if not isinstance(positions, dict):
        raise InvalidRecovery("recover must be a JSON object of channel labels and ids")
    for label, position in positions.items():
        if len(label) > _MAX_LABEL:
            raise InvalidRecovery(f"recover names a channel label longer than {_MAX_LABEL} characters")
        if position is not None and (not isinstance(position, str) or not _STREAM_ID.fullmatch(position)):
            raise InvalidRecovery(f"recover gives {label!r} the id {position!r}; expected '<ms>-<seq>' or null")
    return positions


def recover_value(positions: Mapping[str, str | None]) -> str:
    """The ``recover`` parameter's value for ``positions``; the inverse of :func:`parse_positions`."""
    return json.dumps(dict(positions), separators=(",", ":"))


def message_header(label: str, stream_id: str | None, facility: str | None = None) -> bytes:
    """The first line of a message sent to a client that opted in; on a control socket it names the facility."""
    header: dict[str, str | None] = {"channel": label, "id": stream_id}
    if facility is not None:
        header = {"facility": facility, **header}
    return json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def message_frame(label: str, stream_id: str | None, payload: bytes, facility: str | None = None) -> bytes:
    """The websocket frame of one message for a client that opted in; text or binary as the message is."""
    message = decode_payload(payload)
    return encode_frame(message_header(label, stream_id, facility) + bytes(message), binary=message.binary)


def channel_facility(channel: bytes) -> str:
    """The facility of a channel's Redis key: its last part, since a facility holds no ``:``."""
    return channel.rpartition(b":")[2].decode()


@dataclass(slots=True)
class ChannelHistory:
    """One channel of a socket that opted in, from its handshake until the socket opens.

    Attributes:
        channel: the channel's Redis key.
        label: what the client calls it.
        position: where the client stands: the id it gave, or, for a first connection, the
            stream's last id read before subscribing (:data:`EMPTY_POSITION` if it had none);
            None when history is off.
        asked: whether the client gave that position (so whether recovery was asked).
        persisted: the persisted message, sent first on a first connection (as to any socket).
        persisted_id: its stream id, when it is the stream's last entry.
        facility: the facility named in each message's header: set on a control socket only.
        recovered: False once the stream turned out not to continue from ``position``.
        entries: ``(id, payload)`` of the messages after ``position``, read after subscribing.
    """

    channel: bytes
    label: str
    position: str | None
    asked: bool = False
    facility: str | None = None
    persisted: bytes | None = None
    persisted_id: str | None = None
    recovered: bool = True
    entries: Sequence[tuple[str, bytes]] = ()

    @property
    def reached(self) -> str | None:
        """The position once the entries were sent: what the report tells the client."""
        return self.entries[-1][0] if self.entries else self.position


def opening_frames(histories: Sequence[ChannelHistory], *, report: bool = True) -> list[bytes]:
    """The frames a socket that opted in gets before any live message: per channel the persisted
    message (first connection) or the entries after its position, then the report (unless
    ``report`` is False: a control socket's subscribe carries it in its reply)."""
    frames: list[bytes] = []
    for history in histories:
        facility = history.facility
        if history.persisted is not None:
            frames.append(message_frame(history.label, history.persisted_id, history.persisted, facility))
        frames.extend(message_frame(history.label, sid, payload, facility) for sid, payload in history.entries)
    if report:
        report_json = json.dumps({"recovery": recovery_report(histories)}, ensure_ascii=False, separators=(",", ":"))
        frames.append(encode_frame(report_json.encode(), binary=False))
    return frames


def recovery_report(histories: Sequence[ChannelHistory]) -> dict[str, dict[str, object]]:
    """Per channel label, where the client now stands and whether what it missed was all sent."""
    return {history.label: {"id": history.reached, "recovered": history.recovered} for history in histories}
