"""A page that listens to the ``demo`` facility, and the view that broadcasts to it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from django_bridge.publisher import RedisPublisher
from ws4redis_tornado.exceptions import BrokerUnavailable, InvalidFacility

DEFAULT_FACILITY = "demo"


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "project/index.html", {"facility": DEFAULT_FACILITY})


@require_POST
def publish(request: HttpRequest) -> JsonResponse:
    """Broadcast the form field ``message`` on ``facility`` (default ``demo``), once.

    Answers ``{"receivers": N}``: how many server processes Redis delivered the message to, each
    of which sends it to its own subscribed websockets.
    """
    message = request.POST.get("message", "")
    try:
        publisher = RedisPublisher(facility=request.POST.get("facility", DEFAULT_FACILITY), broadcast=True)
    except InvalidFacility:
        return JsonResponse({"error": "facility must be a short name without ':' or whitespace"}, status=400)
    try:
        receivers = publisher.publish_message(message)
    except BrokerUnavailable:
        return JsonResponse({"error": "redis is unreachable; try again"}, status=503)
    return JsonResponse({"receivers": receivers})
