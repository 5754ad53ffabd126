"""Responses that set cookies, and a login through django.contrib.auth, on a real server port.

Django writes each Set-Cookie value with a leading space, which Tornado 6.6's WSGIContainer
refuses; unanswered, such a request would hang until the client gave up. django_bridge's
container strips header values, and answers 500 whenever the container fails otherwise.
"""

from __future__ import annotations

import logging
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
import websockets
from django.conf import settings
from tornado.simple_httpclient import HTTPStreamClosedError

from django_bridge.publisher import RedisPublisher
from django_bridge.server import log_like_runserver
from ws4redis_tornado.embedded import free_port

from ..processes import http_get
from ..utils import MS, within
from .conftest import PASSWORD
from .processes import ManageCommand, write_settings

FACILITY = "cookies"
# A request the container never answers fails here, not at the test's timeout.
REQUEST_TIMEOUT = 3000 * MS
CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


async def fetch(http_client, url, **kwargs):
    return await http_client.fetch(
        url, raise_error=False, follow_redirects=False, request_timeout=REQUEST_TIMEOUT, **kwargs
    )


def cookies_of(set_cookie_headers: list[str]) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in set_cookie_headers:
        jar.load(header)
    return jar


@pytest.mark.gen_test
async def test_a_view_that_sets_a_cookie_answers_with_it(http_client, http_url):
    response = await fetch(http_client, http_url("/cookie/"))
    assert (response.code, response.body) == (200, b"cookie set")
    [header] = response.headers.get_list("Set-Cookie")
    assert header.startswith("flavour=oatmeal; ")
    assert cookies_of([header])["flavour"]["max-age"] == "60"


@pytest.mark.gen_test
async def test_a_login_through_django_auth_opens_the_users_channel(http_client, http_url, ws_url, users):
    form = await fetch(http_client, http_url("/accounts/login/"))
    assert form.code == 200
    csrf_cookie = cookies_of(form.headers.get_list("Set-Cookie"))[settings.CSRF_COOKIE_NAME].value
    [token] = CSRF_FIELD.findall(form.body)

    login = await fetch(
        http_client,
        http_url("/accounts/login/"),
        method="POST",
        body=urlencode({"username": "john", "password": PASSWORD, "csrfmiddlewaretoken": token.decode()}),
        headers={"Cookie": f"{settings.CSRF_COOKIE_NAME}={csrf_cookie}"},
    )
    assert login.code == 302, login.body
    # Logging in sets the session cookie and rotates the CSRF one: two Set-Cookie headers.
    jar = cookies_of(login.headers.get_list("Set-Cookie"))
    assert {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME} <= set(jar)
    session_cookie = f"{settings.SESSION_COOKIE_NAME}={jar[settings.SESSION_COOKIE_NAME].value}"

    whoami = await fetch(http_client, http_url("/whoami/"), headers={"Cookie": session_cookie})
    assert whoami.body == b"john"
    async with websockets.connect(
        ws_url(FACILITY, "subscribe-user"), additional_headers={"Cookie": session_cookie}
    ) as ws:
        assert await RedisPublisher(facility=FACILITY, users=["john"]).apublish_message("for john") == 1
        assert await within(ws.recv()) == "for john"


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/odd-header/", "/broken-stream/"])
async def test_a_response_the_container_cannot_send_is_answered_500(http_client, http_url, path, caplog):
    caplog.set_level(logging.ERROR, logger="django_bridge.server")
    response = await fetch(http_client, http_url(path))
    assert response.code == 500
    assert response.body == b"500 Internal Server Error\n"
    [record] = [r for r in caplog.records if r.name == "django_bridge.server"]
    assert path in record.getMessage()
    assert record.exc_info is not None
    # The server goes on serving.
    assert (await fetch(http_client, http_url("/hello/"))).body == b"hello from django"


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"request_log": log_like_runserver}])
async def test_a_request_log_sees_django_answers_the_500_answer_and_the_health_check(
    app_options, http_client, http_url, caplog
):
    caplog.set_level(logging.INFO, logger="django.server")
    await fetch(http_client, http_url("/hello/"))
    await fetch(http_client, http_url("/odd-header/"))
    health = await fetch(http_client, http_url("/ws4redis/health"))
    logged = [(r.levelno, r.getMessage(), r.status_code) for r in caplog.records if r.name == "django.server"]
    assert logged == [
        (logging.INFO, '"GET /hello/ HTTP/1.1" 200 17', 200),
        (logging.ERROR, '"GET /odd-header/ HTTP/1.1" 500 26', 500),
        (logging.INFO, f'"GET /ws4redis/health HTTP/1.1" 200 {len(health.body)}', 200),
    ]


@pytest.mark.gen_test
async def test_a_response_that_fails_after_its_headers_closes_the_connection(http_client, http_url, caplog):
    caplog.set_level(logging.ERROR, logger="django_bridge.server")
    started = time.monotonic()
    # The client sees the connection close; a hanging request would time out instead.
    with pytest.raises(HTTPStreamClosedError):
        await fetch(http_client, http_url("/wrong-length/"))
    assert time.monotonic() - started < REQUEST_TIMEOUT / 2
    [record] = [r for r in caplog.records if r.name == "django_bridge.server"]
    assert "broke off" in record.getMessage()
    assert (await fetch(http_client, http_url("/hello/"))).body == b"hello from django"


def test_runtornado_answers_a_view_that_sets_a_cookie(tmp_path, redis_url, prefix):
    module = write_settings(tmp_path, "cookies", WS4REDIS_CONNECTION=redis_url, WS4REDIS_PREFIX=prefix)
    port = free_port()
    args = ("runtornado", "--port", str(port), "--skip-checks")
    with ManageCommand(*args, settings=module, directory=tmp_path) as server:
        server.wait_for_url(f"http://127.0.0.1:{port}/ws4redis/health")
        status, headers, body = http_get(f"http://127.0.0.1:{port}/cookie/")
        assert (status, body) == (200, b"cookie set")
        assert headers["Set-Cookie"].startswith("flavour=oatmeal; ")
