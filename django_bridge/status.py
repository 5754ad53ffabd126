"""A status page for staff: every serving process's report (see :mod:`ws4redis_tornado.status`).

Include ``django_bridge.urls`` in the project's URLconf, e.g. ``path("ws4redis/",
include("django_bridge.urls"))``; the page is then ``/ws4redis/status/`` for staff members, and
``?format=json`` gives the same as JSON for scripts.
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from ws4redis_tornado.exceptions import BrokerUnavailable
from ws4redis_tornado.status import read_status, totals

from .conf import get_config
from .publisher import _client, _unavailable

__all__ = ["status"]


def status(request: HttpRequest) -> HttpResponse:
    """Staff only: others get 403, or the login page when they are not logged in."""
    user = request.user
    if not (user.is_active and user.is_staff):
        if user.is_authenticated:
            raise PermissionDenied("staff only")
        return redirect_to_login(request.get_full_path())
    config = get_config()
    try:
        with _unavailable("read the processes' status", config):
            reports = read_status(_client(config), prefix=config.prefix, interval=config.status_interval or 10.0)
    except BrokerUnavailable as exc:
        if request.GET.get("format") == "json":
            return JsonResponse({"error": str(exc)}, status=503)
        return render(request, "django_bridge/status.html", {"error": str(exc)}, status=503)
    summary = totals(reports)
    if request.GET.get("format") == "json":
        return JsonResponse({"totals": summary, "processes": reports})
    return render(request, "django_bridge/status.html", {"totals": summary, "processes": reports})
