"""Who may use which facility and channel: the functions WS4REDIS_ALLOWED_FACILITIES and
WS4REDIS_ALLOWED_CHANNELS name.

They run on every websocket handshake, and for every subscribe of a page's control socket, with
the Django request (session and user attached): the first with the facility, the second with the
parameters the page asked for (``subscribe-broadcast``, ``publish-user``, ...), returning those it
may keep; the others are dropped. Raise Django's ``PermissionDenied`` to refuse with 403 instead
(on a control socket, the request is refused with ``forbidden``).
"""

from __future__ import annotations

from chat.facilities import FACILITIES

# Everybody may listen: visitors who are not logged in have no user or group channel anyway.
SUBSCRIBE = {"subscribe-broadcast", "subscribe-user", "subscribe-group"}


def allowed_channels(request, channels: list[str]) -> list[str]:
    """Let every page listen; let no socket publish.

    Every message goes through a view, which sets its sender from ``request.user``: what a socket
    publishes would reach the others exactly as the browser wrote it, sender included.
    """
    return [channel for channel in channels if channel in SUBSCRIBE]


def allowed_facility(request, facility: str) -> bool:
    """Only the chat's own facilities: a page cannot make up channels of its own."""
    return facility in FACILITIES
