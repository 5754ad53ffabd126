"""Who may use which channel: the function WS4REDIS_ALLOWED_CHANNELS names.

It runs on every websocket handshake with the Django request (session and user attached) and the
parameters the page asked for (``subscribe-broadcast``, ``publish-user``, ...), and returns those
it may keep; the others are dropped. Raise ``PermissionDenied`` instead to refuse with 403.
"""

from __future__ import annotations

from django.conf import settings

from .views import LOBBY

# Everybody may listen: anonymous visitors have no user or group channel anyway.
_SUBSCRIBE = ["subscribe-broadcast", "subscribe-user", "subscribe-group"]


def allowed_channels(request, channels: list[str]) -> list[str]:
    """Let logged-in users publish to the lobby; nobody publishes to users or groups by websocket.

    Direct and group messages go through the views, which know who sends them: what a socket
    publishes reaches the others exactly as the browser wrote it.
    """
    allowed = set(_SUBSCRIBE)
    facility = request.path.removeprefix(settings.WEBSOCKET_URL)
    if facility == LOBBY and request.user.is_authenticated:
        allowed.add("publish-broadcast")
    return [channel for channel in channels if channel in allowed]
