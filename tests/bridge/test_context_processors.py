"""The template context: WEBSOCKET_URI and WS4REDIS_HEARTBEAT as ws4redis provided them."""

from __future__ import annotations

from django.test import RequestFactory, override_settings
from django.utils.safestring import SafeString

from django_bridge.context_processors import default


def test_websocket_uri_follows_scheme_host_and_websocket_url():
    assert default(RequestFactory().get("/"))["WEBSOCKET_URI"] == "ws://testserver/ws/"
    request = RequestFactory().get("/", secure=True, HTTP_HOST="localhost:8443")
    with override_settings(WEBSOCKET_URL="/sockets/"):
        assert default(request)["WEBSOCKET_URI"] == "wss://localhost:8443/sockets/"


def test_heartbeat_is_a_javascript_literal_marked_safe():
    heartbeat = default(RequestFactory().get("/"))["WS4REDIS_HEARTBEAT"]
    assert (heartbeat, type(heartbeat)) == ("null", SafeString)
    with override_settings(WS4REDIS_HEARTBEAT='--"beat"</script>--'):
        heartbeat = default(RequestFactory().get("/"))["WS4REDIS_HEARTBEAT"]
    assert heartbeat == '"--\\"beat\\"\\u003C/script\\u003E--"'
    assert isinstance(heartbeat, SafeString)
