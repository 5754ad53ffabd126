"""DjangoWebSocketHandler: the core's websocket handler with Django's origin policy.

A browser handshake is accepted when its ``Origin`` is

1. the request's own host (scheme aside, as Tornado's default), provided Django serves that host
   (``ALLOWED_HOSTS``), so that a DNS-rebinding page does not count as "same host";
2. a host that ``ALLOWED_HOSTS`` matches (Django's ``validate_host``; the ``'*'`` wildcard does not
   count here, since it would let every site in; with ``DEBUG`` and empty ``ALLOWED_HOSTS``,
   Django's ``.localhost``, ``127.0.0.1`` and ``[::1]`` do);
3. listed in ``WS4REDIS_ALLOWED_ORIGINS``, exactly or through a ``https://*.example.com`` pattern
   as in ``CSRF_TRUSTED_ORIGINS``.

Anything else is refused with 403 before the session is looked up or any hook runs.

A handshake *without* ``Origin`` is accepted. Browsers always send it on websocket handshakes, so
its absence means a non-browser client, which could send any ``Origin`` it liked: the check
protects a browser's user from other sites (cross-site websocket hijacking), not the server from
its clients. Tornado treats a missing ``Origin`` the same way; restrict such clients with
``WS4REDIS_PROCESS_REQUEST`` or ``WS4REDIS_ALLOWED_CHANNELS``.
"""

from __future__ import annotations

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from ws4redis_tornado.channels import Principal, Subscription
from ws4redis_tornado.exceptions import PermissionDenied
from ws4redis_tornado.handler import RedisWebSocketHandler

from .conf import get_allowed_origins, normalise_origin

__all__ = ["DjangoWebSocketHandler", "origin_allowed"]

_DEBUG_ALLOWED_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


class DjangoWebSocketHandler(RedisWebSocketHandler):
    """Serves ``WEBSOCKET_URL<facility>`` for a Django project; see the module for the origin policy."""

    def check_origin(self, origin: str) -> bool:
        return origin_allowed(origin, host=self.request.host)

    async def authorise(self, asked: Subscription) -> tuple[Principal, Subscription]:
        # Tornado asks check_origin() only after prepare(), that is after the session lookup and
        # the hooks, and the core's early check waves same-host handshakes through, which a
        # DNS-rebinding page is; so ask check_origin() here, before any lookup.
        headers = self.request.headers
        origin = headers.get("Origin") if "Origin" in headers else headers.get("Sec-Websocket-Origin")
        if origin is not None and not self.check_origin(origin):
            raise PermissionDenied("cross-origin websocket refused")
        return await super().authorise(asked)


def origin_allowed(origin: str, *, host: str) -> bool:
    """Tell whether a page from ``origin`` may open a websocket on ``host`` (the Host header)."""
    normalised = normalise_origin(origin)
    if normalised is None:
        return False
    scheme, netloc = normalised.split("://", 1)
    allowed_hosts = _allowed_hosts()
    if normalised == normalise_origin(f"{scheme}://{host}") and _serves(host, allowed_hosts):
        return True
    domain, _port = split_domain_port(netloc)
    if domain and validate_host(domain, [pattern for pattern in allowed_hosts if pattern != "*"]):
        return True
    return any(_origin_matches(scheme, netloc, normalised, trusted) for trusted in get_allowed_origins())


def _allowed_hosts() -> list[str]:
    # The same fallback as HttpRequest.get_host().
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return _DEBUG_ALLOWED_HOSTS
    return list(settings.ALLOWED_HOSTS)


def _serves(host: str, allowed_hosts: list[str]) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed_hosts)


def _origin_matches(scheme: str, netloc: str, origin: str, trusted: str) -> bool:
    if "*" not in trusted:
        return origin == trusted
    trusted_scheme, trusted_netloc = trusted.split("://", 1)
    return scheme == trusted_scheme and is_same_domain(netloc, trusted_netloc.lstrip("*"))
