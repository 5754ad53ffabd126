"""Who a websocket handshake comes from, as Django sees it.

:func:`process_request` turns Tornado's handshake request into a Django request carrying
``request.session`` (from ``SESSION_ENGINE`` and the session cookie) and a lazy ``request.user``,
runs ``WS4REDIS_PROCESS_REQUEST`` on it and derives the :class:`~ws4redis_tornado.Principal`.
:func:`allowed_channels` runs ``WS4REDIS_ALLOWED_CHANNELS``, :func:`allowed_facility`
``WS4REDIS_ALLOWED_FACILITIES``. All are plain functions, so the handler runs them in its thread
pool, never on the IOLoop; all close stale database connections before and after, since no request
cycle does it in those threads.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject
from tornado.escape import url_unescape
from tornado.httputil import HTTPServerRequest, split_host_and_port

from ws4redis_tornado.channels import Principal
from ws4redis_tornado.exceptions import PermissionDenied

from .conf import get_allowed_channels, get_allowed_facilities, get_process_request

__all__ = [
    "allowed_channels",
    "allowed_facility",
    "build_request",
    "database_connections",
    "group_names",
    "principal_of",
    "process_request",
]


def process_request(handshake: HTTPServerRequest) -> Principal:
    """Return who connects with ``handshake``; the ``process_request`` hook of the handler.

    Raises:
        PermissionDenied: ``WS4REDIS_PROCESS_REQUEST`` raised Django's PermissionDenied.
    """
    with database_connections(), _permission_denied():
        request = build_request(handshake)
        hook = get_process_request()
        if hook is not None:
            hook(request)
        return principal_of(request)


def allowed_channels(request: HttpRequest, channels: list[str]) -> list[str] | None:
    """Run ``WS4REDIS_ALLOWED_CHANNELS`` on the Django request; None (keep all) when it is unset.

    Raises:
        PermissionDenied: the function raised Django's PermissionDenied.
    """
    hook = get_allowed_channels()
    if hook is None:
        return None
    with database_connections(), _permission_denied():
        allowed = hook(request, channels)
        return None if allowed is None else list(allowed)


def allowed_facility(request: HttpRequest, facility: str) -> bool:
    """Run ``WS4REDIS_ALLOWED_FACILITIES`` on the Django request; every facility is allowed when it is unset.

    Raises:
        PermissionDenied: the function raised Django's PermissionDenied.
    """
    hook = get_allowed_facilities()
    if hook is None:
        return True
    with database_connections(), _permission_denied():
        return hook(request, facility) is True


def build_request(handshake: HTTPServerRequest) -> WSGIRequest:
    """Build the Django request of a handshake, with ``session`` and a lazy ``user`` attached."""
    request = WSGIRequest(_environ(handshake))
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth import get_user

        request.user = SimpleLazyObject(lambda: get_user(request))
    return request


def principal_of(request: HttpRequest) -> Principal:
    """Derive the websocket's identity: user name, groups and session key, as they are now.

    The groups are read from the database (one query), not from ``session['ws4redis:memberof']``,
    which holds them as they were at login. Only a session that exists in the store yields a
    session channel.
    """
    session = getattr(request, "session", None)
    user = getattr(request, "user", None)
    authenticated = user is not None and user.is_authenticated
    username = user.get_username() if authenticated else None
    return Principal(
        user=username or None,
        groups=group_names(user) if username else (),
        session=_stored_key(session) if session is not None else None,
        request=request,
    )


def _stored_key(session: Any) -> str | None:
    """Return the session's key if the store knows it: loading the session forgets an unknown key."""
    session.keys()
    return session.session_key


def group_names(user: Any) -> tuple[str, ...]:
    """Return the names of ``user``'s groups, read from the database now; () for a model without groups."""
    groups = getattr(user, "groups", None)
    if groups is None:
        return ()
    return tuple(str(name) for name in groups.values_list("name", flat=True))


@contextmanager
def database_connections() -> Iterator[None]:
    """Close stale database connections before and after the block, as a request cycle would."""
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


@contextmanager
def _permission_denied() -> Iterator[None]:
    try:
        yield
    except DjangoPermissionDenied as exc:
        raise PermissionDenied(str(exc) or "forbidden") from exc


def _environ(handshake: HTTPServerRequest) -> dict[str, Any]:
    """Return the WSGI environ of a handshake, as a WSGI server would have built it."""
    host, port = split_host_and_port(handshake.host)
    if port is None:
        port = 443 if handshake.protocol == "https" else 80
    environ: dict[str, Any] = {
        "REQUEST_METHOD": handshake.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": url_unescape(handshake.path, encoding=None, plus=False).decode("latin-1"),
        "QUERY_STRING": handshake.query,
        "REMOTE_ADDR": handshake.remote_ip,
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": handshake.version,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": handshake.protocol,
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in handshake.headers.get_all():
        # As Django's runserver does: a header with '_' could pose as one with '-'.
        if "_" in name:
            continue
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            key = key[5:]
        if key in environ:
            value = f"{environ[key]}{'; ' if key == 'HTTP_COOKIE' else ','}{value}"
        environ[key] = value
    return environ
