"""The control protocol: subscribe, unsubscribe and publish on an open socket. Pure.

A client opts in by offering the websocket subprotocol :data:`SUBPROTOCOL`. It then sends
requests, each a JSON object (the header), followed, for a publish, by ``\\n`` and the message,
in a text frame for a text message or a binary frame for a binary one::

    {"op":"subscribe","ref":1,"facility":"chat","audiences":["broadcast","user"]}
    {"op":"unsubscribe","ref":2,"facility":"chat","audiences":["user"]}
    {"op":"publish","ref":3,"facility":"chat","audience":"broadcast"}\\nHello

The server answers each request with one reply, and sends every message behind a header that
names its facility, channel label and history id (see :mod:`ws4redis_tornado.history`)::

    {"reply":1,"ok":true,"audiences":["broadcast","user"],"channels":["broadcast","user"]}
    {"reply":2,"ok":false,"error":"forbidden","reason":"..."}
    {"facility":"chat","channel":"broadcast","id":null}\\nHello
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .channels import Audience, validate_facility
from .exceptions import InvalidFacility, InvalidRecovery, InvalidRequest
from .frames import encode_frame
from .history import checked_positions

__all__ = [
    "BAD_REQUEST",
    "FORBIDDEN",
    "INVALID_FACILITY",
    "SUBPROTOCOL",
    "TOO_MANY_SUBSCRIPTIONS",
    "UNAVAILABLE",
    "ControlRequest",
    "error_frame",
    "offers_control",
    "ok_frame",
    "parse_request",
]

SUBPROTOCOL = "ws4redis.control"
"""The websocket subprotocol by which a client asks for the control protocol."""

# Error codes of a refused request.
BAD_REQUEST = "bad-request"
INVALID_FACILITY = "invalid-facility"
FORBIDDEN = "forbidden"
TOO_MANY_SUBSCRIPTIONS = "too-many-subscriptions"
UNAVAILABLE = "unavailable"

OPERATIONS = ("subscribe", "unsubscribe", "publish")
MAX_HEADER = 8192
"""Bytes a request's header may have: enough for a ``recover`` naming dozens of groups."""
MAX_REF = 64
_AUDIENCES = {audience.value: audience for audience in Audience}


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One request of a control socket.

    Attributes:
        op: ``subscribe``, ``unsubscribe`` or ``publish``.
        ref: what the client named the request by, echoed in the reply; None if it named none.
        facility: the facility it is about, validated as at a handshake.
        audiences: the audiences it names; for an unsubscribe without any, empty (meaning all).
        positions: a subscribe's ``recover``: the last id seen per channel label; None if not asked.
        presence: whether a subscribe asks who is there, then for join and leave events.
        payload: a publish's message, text or binary as the frame was.
    """

    op: str
    ref: int | str | None
    facility: str
    audiences: tuple[Audience, ...] = ()
    positions: dict[str, str | None] | None = None
    payload: str | bytes = ""
    presence: bool = False


def offers_control(header: str | None) -> bool:
    """Whether a ``Sec-WebSocket-Protocol`` header offers the control protocol."""
    return header is not None and SUBPROTOCOL in (name.strip() for name in header.split(","))


def parse_request(frame: str | bytes) -> ControlRequest:
    """Read one frame a control socket sent; raise :class:`InvalidRequest` saying what is wrong."""
    head, payload = _split(frame)
    try:
        fields = json.loads(head)
    except ValueError:
        raise InvalidRequest(BAD_REQUEST, "a request starts with a JSON object") from None
    if not isinstance(fields, dict):
        raise InvalidRequest(BAD_REQUEST, "a request starts with a JSON object")
    ref = _ref(fields.get("ref"))
    try:
        return _request(fields, ref, payload)
    except InvalidRequest as exc:
        exc.ref = ref
        raise


def _split(frame: str | bytes) -> tuple[str | bytes, str | bytes]:
    newline = "\n" if isinstance(frame, str) else b"\n"
    head, _, payload = frame.partition(newline)  # type: ignore[arg-type]
    if len(head) > MAX_HEADER:
        raise InvalidRequest(BAD_REQUEST, f"a request's header is longer than {MAX_HEADER} bytes")
    if isinstance(head, bytes):
        try:
            head = head.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(BAD_REQUEST, "a binary request's header must be UTF-8 JSON") from None
    return head, payload


def _ref(value: object) -> int | str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= MAX_REF:
        return value
    raise InvalidRequest(BAD_REQUEST, f"ref must be a number or a string of at most {MAX_REF} characters")


def _request(fields: dict[str, Any], ref: int | str | None, payload: str | bytes) -> ControlRequest:
    op = fields.get("op")
    if op not in OPERATIONS:
        raise InvalidRequest(BAD_REQUEST, f"op must be one of {', '.join(OPERATIONS)}")
    facility = fields.get("facility")
    if not isinstance(facility, str):
        raise InvalidRequest(BAD_REQUEST, "facility must be a string")
    try:
        validate_facility(facility)
    except InvalidFacility as exc:
        raise InvalidRequest(INVALID_FACILITY, str(exc)) from None
    if op == "publish":
        audience = _audience(fields.get("audience"), "audience")
        return ControlRequest(op, ref, facility, (audience,), payload=payload)
    if payload:
        raise InvalidRequest(BAD_REQUEST, f"a {op} carries no message after its header")
    names = fields.get("audiences")
    if names is None and op == "unsubscribe":
        return ControlRequest(op, ref, facility)
    if not isinstance(names, list) or not names:
        raise InvalidRequest(BAD_REQUEST, "audiences must be a non-empty list of broadcast, user, group, session")
    audiences = tuple(dict.fromkeys(_audience(name, "audiences") for name in names))
    positions = None
    if op == "subscribe" and "recover" in fields:
        try:
            positions = checked_positions(fields["recover"])
        except InvalidRecovery as exc:
            raise InvalidRequest(BAD_REQUEST, str(exc)) from None
    presence = fields.get("presence", False) if op == "subscribe" else False
    if not isinstance(presence, bool):
        raise InvalidRequest(BAD_REQUEST, "presence must be true or false")
    return ControlRequest(op, ref, facility, audiences, positions, presence=presence)


def _audience(name: object, field: str) -> Audience:
    audience = _AUDIENCES.get(name) if isinstance(name, str) else None
    if audience is None:
        raise InvalidRequest(BAD_REQUEST, f"{field} names {name!r}; expected broadcast, user, group or session")
    return audience


def ok_frame(ref: object, **fields: object) -> bytes:
    """The reply to a request that succeeded, with what it adds (granted audiences, recovery ...)."""
    return _json_frame({"reply": ref, "ok": True, **fields})


def error_frame(ref: object, code: str, reason: str) -> bytes:
    """The reply to a refused request: a code for programs, a reason for people."""
    return _json_frame({"reply": ref, "ok": False, "error": code, "reason": reason})


def _json_frame(body: dict[str, object]) -> bytes:
    return encode_frame(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), binary=False)
