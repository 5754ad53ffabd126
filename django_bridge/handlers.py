"""DjangoWebSocketHandler: the core's websocket handler with Django's origin policy.

A browser handshake is accepted when its ``Origin`` is

1. the request's own origin — the same scheme, host and port — and Django serves that host
   (``ALLOWED_HOSTS``), so that a DNS-rebinding page, whose own host is the attacker's name, does
   not count. The scheme is ``https`` when the handshake came over TLS or when
   ``SECURE_PROXY_SSL_HEADER`` says so, as for Django's own CSRF origin check;
2. or listed in ``WS4REDIS_ALLOWED_ORIGINS``, exactly or through a ``https://*.example.com``
   pattern as in ``CSRF_TRUSTED_ORIGINS`` (scheme and port included).

``ALLOWED_HOSTS`` only says which hosts the server answers for; it admits no other origin by
itself, since a page on another port or scheme of an allowed host is another origin that browsers
still send ``SameSite=Lax`` cookies from. Anything else is refused with 403 before the session is
looked up or any hook runs.

A handshake *without* ``Origin`` is accepted unless a browser's ``Sec-Fetch-Site`` names another
site: browsers always send ``Origin`` on websocket handshakes, so its absence means a non-browser
client, which could send any ``Origin`` it liked. The check protects a browser's user from other
sites (cross-site websocket hijacking), not the server from its clients; restrict such clients
with ``WS4REDIS_PROCESS_REQUEST`` or ``WS4REDIS_ALLOWED_CHANNELS``.
"""

from __future__ import annotations

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

from ws4redis_tornado.handler import RedisWebSocketHandler
from ws4redis_tornado.origins import normalise_origin

from .conf import get_allowed_origins

__all__ = ["DjangoWebSocketHandler", "trusted_origin"]

_DEBUG_ALLOWED_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


class DjangoWebSocketHandler(RedisWebSocketHandler):
    """Serves ``WEBSOCKET_URL<facility>`` for a Django project; see the module for the origin policy."""

    def check_origin(self, origin: str) -> bool:
        normalised = normalise_origin(origin)
        if normalised is None:
            return False
        if self.is_own_origin(normalised):
            return _serves(self.request.headers.get("Host", ""))
        return trusted_origin(normalised)

    def is_own_origin(self, normalised_origin: str) -> bool:
        if _behind_tls_proxy(self.request.headers):
            # The proxy ended TLS: the page's scheme is https, whatever the proxy spoke to us.
            host = self.request.headers.get("Host", "")
            return normalised_origin == normalise_origin(f"https://{host}")
        return super().is_own_origin(normalised_origin)


def trusted_origin(normalised_origin: str) -> bool:
    """Tell whether ``WS4REDIS_ALLOWED_ORIGINS`` admits a normalised origin (scheme, host and port)."""
    scheme, netloc = normalised_origin.split("://", 1)
    return any(_origin_matches(scheme, netloc, normalised_origin, trusted) for trusted in get_allowed_origins())


def _behind_tls_proxy(headers: object) -> bool:
    # Django's SECURE_PROXY_SSL_HEADER names a WSGI key such as HTTP_X_FORWARDED_PROTO.
    setting = settings.SECURE_PROXY_SSL_HEADER
    if not setting:
        return False
    key, secure_value = setting
    header = key.removeprefix("HTTP_").replace("_", "-")
    value = headers.get(header)  # type: ignore[attr-defined]
    return value is not None and value.split(",", 1)[0].strip() == secure_value


def _allowed_hosts() -> list[str]:
    # The same fallback as HttpRequest.get_host().
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return _DEBUG_ALLOWED_HOSTS
    return list(settings.ALLOWED_HOSTS)


def _serves(host: str) -> bool:
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, _allowed_hosts())


def _origin_matches(scheme: str, netloc: str, origin: str, trusted: str) -> bool:
    if "*" not in trusted:
        return origin == trusted
    trusted_scheme, trusted_netloc = trusted.split("://", 1)
    return scheme == trusted_scheme and is_same_domain(netloc, trusted_netloc.lstrip("*"))
