"""Hooks the tests name by dotted path in WS4REDIS_ALLOWED_CHANNELS / WS4REDIS_PROCESS_REQUEST."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from ws4redis_tornado import RedisSubscriber


def deny_on_header(request, channels):
    """ws4redis' test hook: refuse when the handshake carries ``Deny-Channels: YES``."""
    if request.META.get("HTTP_DENY_CHANNELS") == "YES":
        raise PermissionDenied("channels denied by the test hook")
    return channels


def subscribe_only(request, channels):
    return [channel for channel in channels if channel.startswith("subscribe-")]


def require_token(request):
    """Refuse handshakes without ``?token=secret``; mark the others."""
    if request.GET.get("token") != "secret":
        raise PermissionDenied("bad token")
    request.session["token-checked"] = True


class RecordingSubscriber(RedisSubscriber):
    """A WS4REDIS_SUBSCRIBER that notes the channels of every socket it serves."""

    subscribed: list[list[str]] = []

    async def set_pubsub_channels(self, request, channels):
        await super().set_pubsub_channels(request, channels)
        self.subscribed.append(list(self.subscribe_channels))
