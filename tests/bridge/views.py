"""Views of the test project, served through the Tornado application's WSGI container."""

from __future__ import annotations

import threading
import time

from django.http import HttpRequest, HttpResponse
from django.template import engines

# The slow view waits until a test releases it (or 2 s pass), and notes when it started.
slow_view_started = threading.Event()
slow_view_release = threading.Event()
slow_view_started_at: list[float] = []

_HEARTBEAT_TEMPLATE = "var uri = '{{ WEBSOCKET_URI }}', heartbeat = {{ WS4REDIS_HEARTBEAT }};"


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django", content_type="text/plain")


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() or "anonymous", content_type="text/plain")


def slow(request: HttpRequest) -> HttpResponse:
    slow_view_started_at.append(time.monotonic())
    slow_view_started.set()
    released = slow_view_release.wait(2)
    return HttpResponse("released" if released else "timed out", content_type="text/plain")


def heartbeat_js(request: HttpRequest) -> HttpResponse:
    template = engines["django"].from_string(_HEARTBEAT_TEMPLATE)
    return HttpResponse(template.render({}, request), content_type="text/javascript")
