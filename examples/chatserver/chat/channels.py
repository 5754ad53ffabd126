"""Who may use which channel: the function WS4REDIS_ALLOWED_CHANNELS names.

It runs on every websocket handshake with the Django request (session and user attached) and the
parameters the page asked for (``subscribe-broadcast``, ``publish-user``, ...), and returns those
it may keep; the others are dropped. Raise Django's ``PermissionDenied`` to refuse with 403 instead.
"""

from __future__ import annotations

# Everybody may listen: visitors who are not logged in have no user or group channel anyway.
SUBSCRIBE = {"subscribe-broadcast", "subscribe-user", "subscribe-group"}


def allowed_channels(request, channels: list[str]) -> list[str]:
    """Let every page listen; let no socket publish.

    Every message goes through a view, which sets its sender from ``request.user``: what a socket
    publishes would reach the others exactly as the browser wrote it, sender included.
    """
    return [channel for channel in channels if channel in SUBSCRIBE]
