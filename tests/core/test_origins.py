"""The origin policy: pure rules first, then real handshakes against the core server."""

from __future__ import annotations

import pytest
import websockets

from ws4redis_tornado.origins import handshake_origin_problem, is_own_origin, normalise_origin

from ..wsclient import refused_with


@pytest.mark.parametrize(
    ("origin", "normalised"),
    [
        ("HTTPS://Example.com:443/", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://example.com:8080", "http://example.com:8080"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("http://user@example.com", None),
        ("http://example.com/path", None),
        ("http://example.com:99999", None),
    ],
)
def test_origins_are_normalised(origin, normalised):
    assert normalise_origin(origin) == normalised


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "fetch_site", "expected"),
    [
        ("http://127.0.0.1:8000", "http", "127.0.0.1:8000", None, True),
        ("http://127.0.0.1:9999", "http", "127.0.0.1:8000", None, False),  # another port
        ("https://127.0.0.1:8000", "http", "127.0.0.1:8000", None, False),  # another scheme
        ("http://evil.example", "http", "127.0.0.1:8000", None, False),
        ("https://example.com", "https", "example.com:443", None, True),
        # The browser vouches for the scheme a TLS-terminating proxy hid.
        ("https://example.com", "http", "example.com", "same-origin", True),
        # ... but not for another port.
        ("https://example.com:8443", "http", "example.com", "same-origin", False),
        ("http://example.com", "http", "", None, False),
    ],
)
def test_the_own_origin_matches_scheme_host_and_port(origin, scheme, host, fetch_site, expected):
    assert is_own_origin(normalise_origin(origin), scheme=scheme, host=host, fetch_site=fetch_site) is expected


def test_a_browser_handshake_naming_another_site_needs_an_origin():
    def allow(origin):
        return True

    assert handshake_origin_problem(origin=None, fetch_site=None, origin_allowed=allow) is None
    assert handshake_origin_problem(origin=None, fetch_site="same-origin", origin_allowed=allow) is None
    for fetch_site in ("cross-site", "same-site", "none"):
        problem = handshake_origin_problem(origin=None, fetch_site=fetch_site, origin_allowed=allow)
        assert problem is not None and fetch_site in problem


def test_an_origin_is_decided_by_the_hook():
    assert handshake_origin_problem(origin="http://a", fetch_site=None, origin_allowed=lambda o: True) is None
    problem = handshake_origin_problem(origin="http://a", fetch_site="same-origin", origin_allowed=lambda o: False)
    assert problem == "cross-origin websocket refused"


async def refused_status(url, **kwargs) -> tuple[int, str]:
    response = await refused_with(websockets.connect(url, **kwargs))
    return response.status_code, response.reason_phrase


@pytest.mark.gen_test
async def test_another_port_or_scheme_of_the_same_host_is_refused(ws_url, http_port, broker):
    url = ws_url("chat", "subscribe-broadcast")
    for origin in (f"http://127.0.0.1:{http_port + 1}", f"https://127.0.0.1:{http_port}", "http://127.0.0.1"):
        assert await refused_status(url, origin=origin) == (403, "cross-origin websocket refused"), origin
    assert broker.channel_count == 0


@pytest.mark.gen_test
async def test_a_cross_site_handshake_without_origin_is_refused(ws_url, broker):
    url = ws_url("chat", "subscribe-broadcast")
    for fetch_site in ("cross-site", "same-site"):
        status, reason = await refused_status(url, additional_headers={"Sec-Fetch-Site": fetch_site})
        assert status == 403
        assert fetch_site in reason
    assert broker.channel_count == 0


@pytest.mark.gen_test
async def test_sec_fetch_site_same_origin_does_not_admit_a_foreign_origin(ws_url, broker):
    url = ws_url("chat", "subscribe-broadcast")
    headers = {"Sec-Fetch-Site": "same-origin"}
    assert (await refused_status(url, origin="http://evil.example", additional_headers=headers))[0] == 403
    headers = {"Sec-Fetch-Site": "none"}
    assert (await refused_status(url, origin="http://evil.example", additional_headers=headers))[0] == 403


@pytest.mark.gen_test
async def test_the_own_origin_and_non_browsers_are_accepted(ws_url, http_port):
    url = ws_url("chat", "subscribe-broadcast")
    for origin, headers in (
        (f"http://127.0.0.1:{http_port}", {}),
        (f"http://127.0.0.1:{http_port}", {"Sec-Fetch-Site": "same-origin"}),
        (None, {}),
        (None, {"Sec-Fetch-Site": "same-origin"}),
    ):
        async with websockets.connect(url, origin=origin, additional_headers=headers) as ws:
            assert ws.response.status_code == 101, (origin, headers)
