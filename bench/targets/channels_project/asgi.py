"""ASGI entry point for daphne: websockets only, no auth middleware (nothing to check)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.targets.channels_project.settings")

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application
from django.urls import re_path

django_asgi = get_asgi_application()

from bench.targets.channels_project.consumers import RelayConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        "websocket": URLRouter([re_path(r"^ws/(?P<facility>[\w-]+)$", RelayConsumer.as_asgi())]),
    }
)
