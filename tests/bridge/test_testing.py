"""django_bridge.testing: the live server, its private Redis, and the websocket clients, used as a project would.

The fixtures ``ws_server`` and ``ws_client`` come from ``django_bridge.testing.pytest_plugin``
(tests/conftest.py enables it); here the server keeps to a prefix of its own in the suite's Redis
(``ws_redis_url`` in tests/bridge/conftest.py). Tests that need a server of their own start one.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings
from websockets.sync.client import connect as raw_connect

from django_bridge.publisher import RedisPublisher
from django_bridge.testing import HandshakeRefused, LiveWebsocketServer
from django_bridge.testing.private_redis import REDIS_URL_VARIABLE, PrivateRedis
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.exceptions import BrokerUnavailable

from ..utils import MS
from ..wsclient import closed_with_blocking

FACILITY = "testing"


def publish(text: str | bytes, **audience) -> int:
    return RedisPublisher(facility=FACILITY, **audience).publish_message(text)


# -- the server -----------------------------------------------------------------------------------------


def test_a_view_served_by_the_live_server_reaches_its_users_socket_and_no_other(ws_server, ws_client, users):
    with (
        ws_client.connect("notifications", "subscribe-user", user=users["john"]) as johns,
        ws_client.connect("notifications", "subscribe-user", user=users["mary"]) as marys,
    ):
        with urllib.request.urlopen(f"{ws_server.url}/notify/john/", timeout=5) as response:
            assert response.read() == b"1"  # one receiver
        assert johns.receive() == "Hello john"
        marys.assert_no_message()


def test_the_server_runs_in_a_thread_of_the_test_process_on_a_port_of_its_own(ws_server):
    assert ws_server.url == f"http://127.0.0.1:{ws_server.port}"
    assert ws_server.ws_url("chat", "subscribe-user", recover="{}") == (
        f"ws://127.0.0.1:{ws_server.port}/ws/chat?subscribe-user&recover=%7B%7D"
    )
    assert any(thread.name == f"live-websocket-server-{ws_server.port}" for thread in threading.enumerate())


def test_the_server_adds_its_host_to_allowed_hosts_while_it_runs(redis_url):
    with override_settings(ALLOWED_HOSTS=["chat.example.org"]):
        with LiveWebsocketServer(redis_url=redis_url) as server, server.client() as client:
            assert settings.ALLOWED_HOSTS == ["chat.example.org", "127.0.0.1"]
            # The own origin counts only for a host Django serves.
            client.connect(FACILITY, "subscribe-broadcast").close()
        assert settings.ALLOWED_HOSTS == ["chat.example.org"]


def test_without_a_redis_url_the_server_starts_its_own_and_leaves_the_configured_one_alone(
    monkeypatch, redis_url, redis_client, prefix
):
    # The settings name the suite's Redis, here standing for a developer's own.
    monkeypatch.delenv(REDIS_URL_VARIABLE, raising=False)
    with LiveWebsocketServer() as server:
        assert server.redis.embedded and server.redis.url != redis_url
        assert server.redis.url == settings.WS4REDIS_CONNECTION
        assert prefix == settings.WS4REDIS_PREFIX  # its own Redis: the project's prefix stays
        with server.client() as client, client.connect(FACILITY, "subscribe-broadcast") as ws:
            publish("persisted in the embedded Redis", broadcast=True)
            assert ws.receive() == "persisted in the embedded Redis"
        with redis.Redis.from_url(server.redis.url) as embedded:
            assert embedded.get(f"{prefix}:broadcast:{FACILITY}") == b"persisted in the embedded Redis"
            server.reset()
            assert embedded.dbsize() == 0
    assert redis_url == settings.WS4REDIS_CONNECTION
    assert redis_client.keys("*broadcast:testing*") == []


def test_a_given_redis_is_used_under_a_prefix_of_its_own_and_reset_deletes_only_its_keys(ws_server, redis_client):
    own = f"{ws_server.redis.prefix}:broadcast:{FACILITY}"
    assert ws_server.redis.prefix == settings.WS4REDIS_PREFIX
    redis_client.set("someone-else:broadcast:testing", b"theirs")
    try:
        publish("ours", broadcast=True)
        assert redis_client.get(own) == b"ours"
        ws_server.reset()
        assert redis_client.get(own) is None
        assert redis_client.get("someone-else:broadcast:testing") == b"theirs"
    finally:
        redis_client.delete("someone-else:broadcast:testing")


def test_the_redis_url_variable_asks_for_a_given_redis(monkeypatch):
    monkeypatch.setenv(REDIS_URL_VARIABLE, "redis://127.0.0.1:6390/3")
    private = PrivateRedis().start()
    assert (private.url, private.embedded) == ("redis://127.0.0.1:6390/3", False)
    assert private.settings() == {"WS4REDIS_CONNECTION": "redis://127.0.0.1:6390/3", "WS4REDIS_PREFIX": private.prefix}


def test_reset_closes_sockets_other_clients_left_open_and_forgets_persisted_messages(ws_server, ws_client):
    with raw_connect(ws_server.ws_url(FACILITY, "subscribe-broadcast")) as leftover:
        publish("from an earlier test", broadcast=True)
        ws_server.reset()
        assert closed_with_blocking(leftover) == (1001, "the test is over")
    with ws_client.connect(FACILITY, "subscribe-broadcast") as ws:
        ws.assert_no_message()


def test_a_server_whose_redis_is_unreachable_fails_to_start_and_restores_the_settings(redis_url):
    server = LiveWebsocketServer(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerUnavailable):
        server.start()
    assert redis_url == settings.WS4REDIS_CONNECTION
    assert f"live-websocket-server-{server.port}" not in [thread.name for thread in threading.enumerate()]


# -- who connects -----------------------------------------------------------------------------------


def test_user_logs_in_with_a_real_session_whose_groups_come_from_the_database(ws_client, users):
    with ws_client.connect(FACILITY, "subscribe-group", "subscribe-user", user=users["mary"]) as ws:
        publish("to the chatters", groups=["chatters"])
        publish("to the admins", groups=["admins"])  # john's group, not mary's
        publish("to mary", users=["mary"])
        assert [ws.receive(), ws.receive()] == ["to the chatters", "to mary"]
        ws.assert_no_message()


def test_an_anonymous_socket_has_no_user_channel(ws_client):
    with ws_client.connect(FACILITY, "subscribe-user", "subscribe-broadcast") as ws:
        publish("to john", users=["john"])
        publish("to everybody", broadcast=True)
        assert ws.receive() == "to everybody"


def test_cookies_of_a_test_client_carry_its_session(ws_client, users):
    browser = Client()
    browser.force_login(users["john"])
    with ws_client.connect(FACILITY, "subscribe-session", cookies=browser.cookies) as ws:
        publish("to this browser", sessions=[browser.session.session_key])
        assert ws.receive() == "to this browser"


def test_a_logout_closes_the_socket_of_its_session_with_4401(ws_client, users):
    browser = Client()
    browser.force_login(users["john"])
    ws = ws_client.connect(FACILITY, "subscribe-user", cookies=browser.cookies)
    browser.logout()
    assert ws.wait_closed() == (4401, "signed out")
    assert (ws.close_code, ws.close_reason) == (4401, "signed out")
    with pytest.raises(AssertionError, match=r"closed by the server \(4401 'signed out'\)"):
        ws.receive()


def test_the_handshake_sends_the_servers_own_origin_unless_told_otherwise(ws_client):
    ws_client.connect(FACILITY, "subscribe-broadcast").close()
    ws_client.connect(FACILITY, "subscribe-broadcast", origin=None).close()
    refusal = ws_client.refused(FACILITY, "subscribe-broadcast", origin="http://evil.example")
    assert (refusal.status, refusal.reason) == (403, "cross-origin websocket refused")


def test_a_refused_handshake_raises_with_its_status_and_body(ws_client):
    with pytest.raises(HandshakeRefused) as refused:
        ws_client.connect("a:b", "subscribe-broadcast")
    assert refused.value.status == 400
    assert b":" in refused.value.body
    assert isinstance(refused.value, AssertionError)  # unexpected, it fails the test


def test_refused_fails_when_the_handshake_is_accepted(ws_client):
    with pytest.raises(AssertionError, match="the handshake was accepted"):
        ws_client.refused(FACILITY, "subscribe-broadcast")


# -- messages ------------------------------------------------------------------------------------------


def test_send_receive_json_and_binary_through_an_echoing_socket(ws_client):
    with ws_client.connect(FACILITY, "subscribe-broadcast", "publish-broadcast", "echo") as ws:
        ws.send_json({"text": "héllo"})
        assert ws.receive_json() == {"text": "héllo"}
        ws.send(b"\x00\xff")
        assert ws.receive() == b"\x00\xff"


def test_query_values_and_subprotocols(ws_client):
    with ws_client.connect(FACILITY, "subscribe-broadcast", subprotocols=["unittestprotocol"]) as ws:
        assert ws.subprotocol == "unittestprotocol"
    with override_settings(WS4REDIS_PROCESS_REQUEST="tests.bridge.hooks.require_token"):
        assert ws_client.refused(FACILITY, query={"token": "guess"}).body == b"bad token\n"
        ws_client.connect(FACILITY, "subscribe-broadcast", query={"token": "secret"}).close()


def test_receive_fails_saying_how_long_it_waited(ws_client):
    ws = ws_client.connect(FACILITY, "subscribe-broadcast")
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"no message within 0\.05s"):
        ws.receive(timeout=50 * MS)
    assert time.monotonic() - started < 1


def test_assert_no_message_fails_on_a_message(ws_client):
    ws = ws_client.connect(FACILITY, "subscribe-broadcast")
    publish("unexpected", broadcast=True)
    with pytest.raises(AssertionError, match=r"expected no message within 1\.00s, received 'unexpected'"):
        ws.assert_no_message(within=1)


def test_the_client_closes_with_its_code_and_reads_the_servers_answer(ws_client):
    ws = ws_client.connect(FACILITY, "subscribe-broadcast")
    ws.close(4000, "done")
    assert ws.close_code == 4000
    ws.close()  # again: nothing happens


def test_heartbeats_are_no_messages_unless_asked_for(redis_url):
    random_state = random.getstate()
    with (
        override_settings(WS4REDIS_HEARTBEAT="--beat--", WS4REDIS_HEARTBEAT_INTERVAL=0.01),
        LiveWebsocketServer(redis_url=redis_url) as server,
        server.client() as client,
    ):
        assert client.connect(FACILITY, "subscribe-broadcast", heartbeats=True).receive() == "--beat--"
        plain = client.connect(FACILITY, "subscribe-broadcast")
        plain.assert_no_message(within=50 * MS)  # five heartbeats, skipped
        publish("a message", broadcast=True)
        assert plain.receive() == "a message"
    # Its timers ticked in the test process without touching the generator that tests seed.
    assert random.getstate() == random_state


def test_round_after_round_a_user_opens_a_socket_and_receives_what_a_view_publishes(ws_client, users):
    # How long a round takes is measured by `python -m bench testing-speed`, not here.
    for round_ in range(6):
        facility = f"{FACILITY}-{round_}"  # nothing persisted by the round before
        with ws_client.connect(facility, "subscribe-user", user=users["john"]) as ws:
            RedisPublisher(facility=facility, users=["john"]).publish_message("hello")
            assert ws.receive() == "hello"
            ws.assert_no_message(within=10 * MS)


# -- async ---------------------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_the_async_client_on_the_tests_own_event_loop(ws_server, users):
    async with ws_server.async_client() as client:
        async with await client.connect(FACILITY, "subscribe-user", user=users["john"]) as johns:
            marys = await client.connect(FACILITY, "subscribe-user", user=users["mary"])
            await RedisPublisher(facility=FACILITY, users=["john"]).apublish_message("async hello")
            assert await johns.receive() == "async hello"
            await marys.assert_no_message()
            refusal = await client.refused(FACILITY, "subscribe-user", origin="http://evil.example")
            assert refusal.status == 403
        assert johns.close_code == 1000
    assert marys.close_code == 1000  # closed by the client's async with


# -- importing ---------------------------------------------------------------------------------------------

IMPORT_CHECK = """
import sys, threading
sys.modules["pytest"] = None  # as if pytest were not installed
import django_bridge.testing
from django.conf import settings
assert not settings.configured, "importing configured Django"
assert threading.active_count() == 1, "a thread was started at import"
"""


def test_importing_needs_no_pytest_and_starts_nothing():
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_plugin_is_no_automatic_entry_point():
    from importlib.metadata import entry_points

    assert not [entry for entry in entry_points(group="pytest11") if entry.value.startswith("django_bridge")]
