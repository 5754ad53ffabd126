"""Views of the test project, served through the Tornado application's WSGI container."""

from __future__ import annotations

import threading
import time

from django.contrib.auth.models import User
from django.db import connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template import engines

from django_bridge.publisher import RedisPublisher

# The slow view waits until a test releases it (or 2 s pass), and notes when it started.
slow_view_started = threading.Event()
slow_view_release = threading.Event()
slow_view_started_at: list[float] = []
# The database connection (Django's wrapper) each call of the user-count view used, in its thread.
user_count_connections: list = []

_HEARTBEAT_TEMPLATE = "var uri = '{{ WEBSOCKET_URI }}', heartbeat = {{ WS4REDIS_HEARTBEAT }};"


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django", content_type="text/plain")


def set_cookie(request: HttpRequest) -> HttpResponse:
    """Set a cookie: Django writes its Set-Cookie value with a leading space."""
    response = HttpResponse("cookie set", content_type="text/plain")
    response.set_cookie("flavour", "oatmeal", max_age=60)
    return response


def control_character_header(request: HttpRequest) -> HttpResponse:
    """Answer with a header value Django lets through and Tornado refuses (a control character)."""
    response = HttpResponse("never sent", content_type="text/plain")
    response["X-Odd"] = "one\x01two"
    return response


def broken_stream(request: HttpRequest) -> StreamingHttpResponse:
    """Fail while the container reads the body, after Django has returned the response."""

    def chunks():
        yield b"first chunk"
        raise RuntimeError("the stream broke")

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def wrong_length(request: HttpRequest) -> HttpResponse:
    """Promise more body than there is: the response fails after its headers went out."""
    response = HttpResponse("short", content_type="text/plain")
    response["Content-Length"] = "100"
    return response


def notify(request: HttpRequest, username: str) -> HttpResponse:
    """Publish to one user's sockets on the facility ``notifications``."""
    receivers = RedisPublisher(facility="notifications", users=[username]).publish_message(f"Hello {username}")
    return HttpResponse(str(receivers), content_type="text/plain")


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() or "anonymous", content_type="text/plain")


def user_count(request: HttpRequest) -> HttpResponse:
    """Query the database in the worker thread, and note that thread's connection."""
    user_count_connections.append(connections["default"])
    return HttpResponse(str(User.objects.count()), content_type="text/plain")


def slow(request: HttpRequest) -> HttpResponse:
    slow_view_started_at.append(time.monotonic())
    slow_view_started.set()
    released = slow_view_release.wait(2)
    return HttpResponse("released" if released else "timed out", content_type="text/plain")


def heartbeat_js(request: HttpRequest) -> HttpResponse:
    template = engines["django"].from_string(_HEARTBEAT_TEMPLATE)
    return HttpResponse(template.render({}, request), content_type="text/javascript")
