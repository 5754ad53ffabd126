"""System checks of django_bridge; each message names the setting and its hint says the fix.

=====================  ==========================================================================
django_bridge.E001     django_bridge is listed after django.contrib.staticfiles in INSTALLED_APPS
django_bridge.E0xx     a setting has a wrong value: each setting has its own id, declared with it
                       (``conf.SETTINGS``: in Config's field metadata, or in conf.py for the others)
django_bridge.W001     WS4REDIS_ALLOWED_CHANNELS is unset while DEBUG is off
django_bridge.W002     WS4REDIS_HEALTH_URL is also one of the project's URLs (then it is not served)
=====================  ==========================================================================
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error, Tags, Warning

from . import conf

__all__ = [
    "check_app_order",
    "check_health_url",
    "check_open_channels",
    "check_settings",
    "register",
    "resolves",
]


def register() -> None:
    """Register the checks with Django (idempotent); called from ``ready()``."""
    checks.register(check_app_order, Tags.compatibility)
    checks.register(check_settings, Tags.compatibility)
    checks.register(check_open_channels, Tags.security)
    checks.register(check_health_url, Tags.urls)


def check_app_order(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """django_bridge must come before django.contrib.staticfiles, so that its runserver wins."""
    from django.apps import apps

    for app in apps.get_app_configs():
        if app.name == "django_bridge":
            return []
        if app.name == "django.contrib.staticfiles":
            return [
                Error(
                    "django_bridge is listed after django.contrib.staticfiles in INSTALLED_APPS,"
                    " so runserver is staticfiles' and serves no websockets.",
                    hint="Move 'django_bridge' above 'django.contrib.staticfiles' in INSTALLED_APPS.",
                    id="django_bridge.E001",
                )
            ]
    return []


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report every django_bridge setting with a wrong value."""
    return [Error(error.problem, hint=error.hint, id=error.check_id) for error in conf.problems()]


def check_open_channels(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn that, without WS4REDIS_ALLOWED_CHANNELS, every client may use every channel."""
    if settings.DEBUG or getattr(settings, "WS4REDIS_ALLOWED_CHANNELS", None) is not None:
        return []
    return [
        Warning(
            "WS4REDIS_ALLOWED_CHANNELS is not set: every client may subscribe and publish on every"
            " channel (ws4redis' default, kept for compatibility).",
            hint=(
                "Set WS4REDIS_ALLOWED_CHANNELS to a function (or its dotted path) that takes"
                " (request, channels) and returns the channels the request may use."
            ),
            id="django_bridge.W001",
        )
    ]


def check_health_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when WS4REDIS_HEALTH_URL is also one of the project's URLs."""
    try:
        url = conf.get_health_url()
    except conf.SettingError:
        return []  # reported by check_settings
    if url is None or not resolves(url):
        return []
    return [
        Warning(
            f"WS4REDIS_HEALTH_URL = {url!r} is also one of your URLs; the health check is not served"
            " there, your view is.",
            hint="Set WS4REDIS_HEALTH_URL to a path none of your URLs match, or to None.",
            id="django_bridge.W002",
        )
    ]


def resolves(path: str) -> bool:
    """Tell whether the project's URLconf has a view for ``path``."""
    from django.urls import Resolver404, resolve

    try:
        resolve(path)
    except Resolver404:
        return False
    return True
