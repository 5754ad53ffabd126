"""The origin policy of a websocket handshake: pure functions, the same on every Tornado version.

Browsers send cookies with a websocket handshake from any page, so the server decides which pages
may open one: a page may connect when its origin (scheme, host and port) is the server's own, or
one the application trusts. A browser always sends ``Origin`` on a websocket handshake; a client
that sends none is not a browser and is not checked here (it could send any ``Origin`` it liked),
unless it carries ``Sec-Fetch-Site``, which only browsers send, naming another site.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["handshake_origin_problem", "is_own_origin", "normalise_origin", "own_origin"]

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(origin: str) -> str | None:
    """Return ``scheme://host[:port]`` in lower case without a default port, or None if not an origin.

    ``'HTTPS://Example.com:443/'`` becomes ``'https://example.com'``; ``'null'`` is not an origin.
    """
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    netloc = parts.netloc
    if port is not None and port == DEFAULT_PORTS.get(parts.scheme):
        netloc = netloc.rsplit(":", 1)[0]
    return f"{parts.scheme}://{netloc}"


def own_origin(scheme: str, host: str) -> str | None:
    """Return the normalised origin of a request made with ``scheme`` to the ``Host`` header ``host``."""
    return normalise_origin(f"{scheme}://{host}") if host else None


def is_own_origin(origin: str, *, scheme: str, host: str, fetch_site: str | None) -> bool:
    """Tell whether the normalised ``origin`` is the server's own: same scheme, host and port.

    ``Sec-Fetch-Site: same-origin`` is the browser's own word that the schemes match too, which
    covers a TLS-terminating proxy that did not pass the scheme on.
    """
    own = own_origin(scheme, host)
    if own is None:
        return False
    if origin == own:
        return True
    return fetch_site == "same-origin" and _netloc(origin) == _netloc(own)


def handshake_origin_problem(
    *, origin: str | None, fetch_site: str | None, origin_allowed: Callable[[str], bool]
) -> str | None:
    """Return why a handshake's origin is refused, or None when it may connect.

    ``origin_allowed`` decides for a handshake that carries ``Origin``.
    """
    if origin is None:
        if fetch_site is None or fetch_site == "same-origin":
            return None
        return f"a {fetch_site} handshake without Origin is refused"
    if origin_allowed(origin):
        return None
    return "cross-origin websocket refused"


def _netloc(origin: str) -> str:
    return origin.split("://", 1)[1]
