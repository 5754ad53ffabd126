"""Template context: how the pages' ws4redis.js clients heartbeat and reconnect."""

from django.conf import settings


def client_options(request):
    return {
        "CHAT_HEARTBEAT_INTERVAL_MS": settings.CHAT_HEARTBEAT_INTERVAL_MS,
        "CHAT_RECONNECT_MAX_MS": settings.CHAT_RECONNECT_MAX_MS,
    }
