"""The handshake as Django sees it: request, session, lazy user, Principal and the two hooks."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.test import RequestFactory, override_settings
from django.utils.functional import SimpleLazyObject
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from django_bridge import sessions
from django_bridge.conf import MEMBEROF_SESSION_KEY
from ws4redis_tornado.exceptions import PermissionDenied


def handshake(uri="/ws/chat?subscribe-user&publish-broadcast", cookie=None, **headers):
    fields = HTTPHeaders({"Host": "chat.example.com:8443", "Upgrade": "websocket", **headers})
    if cookie is not None:
        fields.add("Cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}")
        fields.add("Cookie", "theme=dark")
    request = HTTPServerRequest(start_line=RequestStartLine("GET", uri, "HTTP/1.1"), headers=fields)
    request.remote_ip = "192.0.2.7"
    request.protocol = "https"
    return request


def test_the_django_request_mirrors_the_handshake(john):
    request = sessions.build_request(handshake(uri="/ws/caf%C3%A9?subscribe-user&x=1", cookie=john, X_Spoof="1"))
    assert request.path == "/ws/café"
    assert request.GET["x"] == "1"
    assert "subscribe-user" in request.GET
    cookies = request.COOKIES
    assert cookies == {settings.SESSION_COOKIE_NAME: john, "theme": "dark"}
    assert request.META["REMOTE_ADDR"] == "192.0.2.7"
    assert request.META["HTTP_UPGRADE"] == "websocket"
    assert (request.META["SERVER_NAME"], request.META["SERVER_PORT"]) == ("chat.example.com", "8443")
    assert request.is_secure()
    # A header spelled with '_' could pose as one with '-': dropped, as runserver does.
    assert "HTTP_X_SPOOF" not in request.META


def test_session_and_lazy_user_are_attached(users, john):
    request = sessions.build_request(handshake(cookie=john))
    assert request.session.session_key == john
    assert isinstance(request.user, SimpleLazyObject)
    assert request.user == users["john"]


def test_principal_of_a_logged_in_user(users, john):
    principal = sessions.principal_of(sessions.build_request(handshake(cookie=john)))
    assert principal.user == "john"
    assert set(principal.groups) == {"chatters", "admins"}
    assert principal.session == john
    assert principal.request.user == users["john"]


def test_the_groups_are_read_from_the_database_not_from_the_session(users, john):
    # As stored at login; john has left that group since, and joined the others.
    stored = sessions.build_request(handshake(cookie=john)).session
    stored[MEMBEROF_SESSION_KEY] = ["a-group-john-left"]
    stored.save()
    principal = sessions.principal_of(sessions.build_request(handshake(cookie=john)))
    assert set(principal.groups) == {"chatters", "admins"}


def test_principal_of_an_anonymous_session(anonymous):
    principal = sessions.principal_of(sessions.build_request(handshake(cookie=anonymous)))
    assert (principal.user, principal.groups, principal.session) == (None, (), anonymous)


@pytest.mark.parametrize("cookie", [None, "not-a-session-the-store-knows"])
def test_no_session_channel_without_a_stored_session(database, cookie):
    principal = sessions.principal_of(sessions.build_request(handshake(cookie=cookie)))
    assert (principal.user, principal.groups, principal.session) == (None, (), None)


def test_process_request_runs_the_hook_on_the_django_request(anonymous):
    with override_settings(WS4REDIS_PROCESS_REQUEST="tests.bridge.hooks.require_token"):
        principal = sessions.process_request(handshake(uri="/ws/chat?token=secret", cookie=anonymous))
        assert principal.request.session["token-checked"] is True
        with pytest.raises(PermissionDenied, match="bad token"):
            sessions.process_request(handshake(uri="/ws/chat?token=guess", cookie=anonymous))


def test_allowed_channels_gets_the_django_request_and_maps_permission_denied():
    request = RequestFactory().get("/ws/chat", HTTP_DENY_CHANNELS="YES")
    asked = ["subscribe-broadcast", "publish-broadcast"]
    assert sessions.allowed_channels(request, asked) is None
    with override_settings(WS4REDIS_ALLOWED_CHANNELS="tests.bridge.hooks.subscribe_only"):
        assert sessions.allowed_channels(request, asked) == ["subscribe-broadcast"]
    with (
        override_settings(WS4REDIS_ALLOWED_CHANNELS="tests.bridge.hooks.deny_on_header"),
        pytest.raises(PermissionDenied, match="channels denied by the test hook"),
    ):
        sessions.allowed_channels(request, asked)


def test_database_connections_are_closed_before_and_after(monkeypatch, john):
    calls = []
    monkeypatch.setattr(sessions, "close_old_connections", lambda: calls.append("close"))
    monkeypatch.setattr(sessions, "build_request", lambda handshake: calls.append("lookup") or RequestFactory())
    monkeypatch.setattr(sessions, "principal_of", lambda request: None)
    sessions.process_request(handshake(cookie=john))
    assert calls == ["close", "lookup", "close"]


def test_login_stores_the_group_names_in_the_session(users):
    request = RequestFactory().post("/login/")
    request.session = sessions.import_module(settings.SESSION_ENGINE).SessionStore()
    user_logged_in.send(sender=type(users["mary"]), request=request, user=users["mary"])
    assert request.session[MEMBEROF_SESSION_KEY] == ["chatters"]
