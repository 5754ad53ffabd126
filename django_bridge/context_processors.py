"""Template context processor: ``django_bridge.context_processors.default``."""

from __future__ import annotations

import json

from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe

from .conf import get_config

__all__ = ["default"]

# As Django's json_script: keep a value from closing the <script> element it is written into.
_SCRIPT_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def default(request: HttpRequest) -> dict[str, str | SafeString]:
    """Add ``WEBSOCKET_URI`` (``ws://host/ws/`` or ``wss://...``) and ``WS4REDIS_HEARTBEAT``.

    ``WS4REDIS_HEARTBEAT`` is a JavaScript literal, a string or ``null``, to be written as is:
    ``heartbeat_msg: {{ WS4REDIS_HEARTBEAT }}``.
    """
    config = get_config()
    scheme = "wss://" if request.is_secure() else "ws://"
    heartbeat = json.dumps(config.heartbeat).translate(_SCRIPT_ESCAPES)
    return {
        "WEBSOCKET_URI": scheme + request.get_host() + config.websocket_url,
        "WS4REDIS_HEARTBEAT": mark_safe(heartbeat),
    }
