"""Who may use which channel: the function ``WS4REDIS_ALLOWED_CHANNELS`` names."""

from __future__ import annotations

from django.http import HttpRequest


def allowed_channels(request: HttpRequest, channels: list[str]) -> list[str]:
    """Let every page listen to broadcasts; only the publish view (server side) sends."""
    return [channel for channel in channels if channel == "subscribe-broadcast"]
