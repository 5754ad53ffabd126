"""Who may use which channel: the function WS4REDIS_ALLOWED_CHANNELS names.

It runs on every websocket handshake with the Django request (session and user attached) and the
parameters the page asked for (``subscribe-broadcast``, ``publish-user``, ...), and returns those
it may keep; the others are dropped. Raise Django's ``PermissionDenied`` to refuse with 403 instead.
"""

from __future__ import annotations

from django.conf import settings

from .views import LOBBY


def allowed_channels(request, channels: list[str]) -> list[str]:
    """Let logged-in users publish to the lobby; nobody publishes to users or groups by websocket.

    Direct and group messages go through the views, which know who sends them: what a socket
    publishes reaches the others exactly as the browser wrote it.
    """
    # Everybody may listen: visitors who are not logged in have no user or group channel anyway.
    allowed = {"subscribe-broadcast", "subscribe-user", "subscribe-group"}
    facility = request.path.removeprefix(settings.WEBSOCKET_URL)
    if facility == LOBBY and request.user.is_authenticated:
        allowed.add("publish-broadcast")
    return [channel for channel in channels if channel in allowed]
