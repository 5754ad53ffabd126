"""WS4REDIS_HEARTBEAT_INTERVAL, WS4REDIS_PING_INTERVAL and WS4REDIS_PING_TIMEOUT: read, checked, and served."""

from __future__ import annotations

import time

import pytest
import websockets
from django.core.checks import run_checks
from django.test import override_settings

from django_bridge import conf
from django_bridge.conf import SettingError

from ..rawws import handshake, read_frame
from ..utils import MS, within

HEARTBEAT = "--heartbeat--"
PING, CLOSE = 0x9, 0x8


def config_of(**overrides):
    with override_settings(**overrides):
        return conf.get_config()


def check_ids(**overrides) -> list[str]:
    with override_settings(DEBUG=True, **overrides):
        return [m.id for m in run_checks() if m.id.startswith("django_bridge.")]


def test_defaults():
    config = conf.get_config()
    assert (config.heartbeat_interval, config.ping_interval, config.ping_timeout) == (4, 20, None)


def test_settings_become_the_config():
    config = config_of(WS4REDIS_HEARTBEAT_INTERVAL=2.5, WS4REDIS_PING_INTERVAL=30, WS4REDIS_PING_TIMEOUT=10)
    assert (config.heartbeat_interval, config.ping_interval, config.ping_timeout) == (2.5, 30, 10)
    assert config_of(WS4REDIS_PING_INTERVAL=0).ping_interval == 0


def test_the_ping_timeout_is_judged_against_the_ping_interval_setting():
    # Longer than the default interval (20), not than the one set.
    assert config_of(WS4REDIS_PING_INTERVAL=60, WS4REDIS_PING_TIMEOUT=45).ping_timeout == 45
    # No pings, so nothing to time out: any timeout will do.
    assert config_of(WS4REDIS_PING_INTERVAL=0, WS4REDIS_PING_TIMEOUT=45).ping_timeout == 45
    with override_settings(WS4REDIS_PING_INTERVAL=10, WS4REDIS_PING_TIMEOUT=15), pytest.raises(SettingError) as info:
        conf.get_config()
    assert info.value.setting == "WS4REDIS_PING_TIMEOUT"
    assert info.value.problem == "WS4REDIS_PING_TIMEOUT = 15 is longer than WS4REDIS_PING_INTERVAL (10)."


@pytest.mark.parametrize(
    ("setting", "value", "check_id"),
    [
        ("WS4REDIS_HEARTBEAT_INTERVAL", 0, "django_bridge.E012"),
        ("WS4REDIS_HEARTBEAT_INTERVAL", "4", "django_bridge.E012"),
        ("WS4REDIS_HEARTBEAT_INTERVAL", None, "django_bridge.E012"),
        ("WS4REDIS_PING_INTERVAL", -1, "django_bridge.E013"),
        ("WS4REDIS_PING_INTERVAL", None, "django_bridge.E013"),
        ("WS4REDIS_PING_INTERVAL", float("inf"), "django_bridge.E013"),
        ("WS4REDIS_PING_TIMEOUT", 0, "django_bridge.E014"),
        ("WS4REDIS_PING_TIMEOUT", True, "django_bridge.E014"),
        ("WS4REDIS_PING_TIMEOUT", 25, "django_bridge.E014"),
    ],
)
def test_a_wrong_value_is_a_system_check_error_naming_the_setting(setting, value, check_id):
    with override_settings(DEBUG=True, **{setting: value}):
        [error] = [m for m in run_checks() if m.id.startswith("django_bridge.")]
    assert error.id == check_id
    assert error.is_serious()
    assert error.msg.startswith(f"{setting} = {value!r}")
    assert error.hint.startswith(f"Set {setting} to")


def test_a_wrong_interval_is_reported_once_not_again_through_the_timeout():
    assert check_ids(WS4REDIS_PING_INTERVAL="often", WS4REDIS_PING_TIMEOUT=30) == ["django_bridge.E013"]


# -- served ----------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("bridge_settings", [{"WS4REDIS_HEARTBEAT": HEARTBEAT, "WS4REDIS_HEARTBEAT_INTERVAL": 50 * MS}])
async def test_heartbeats_come_at_the_interval_set(app, ws_url):
    async with websockets.connect(ws_url("beats", "subscribe-broadcast")) as ws:
        started = time.monotonic()
        beats = [await within(ws.recv(), 2000 * MS) for _ in range(4)]
        elapsed = time.monotonic() - started
    assert beats == [HEARTBEAT] * 4
    # At the default 4 s interval four heartbeats would take 12 s at least.
    assert elapsed < 2


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("bridge_settings", [{"WS4REDIS_PING_INTERVAL": 0.1, "WS4REDIS_PING_TIMEOUT": 0.1}])
async def test_pings_come_at_the_interval_set_and_a_silent_peer_is_closed(app, http_server, http_port, broker):
    reader, writer = await handshake("127.0.0.1", http_port, "/ws/pinged?subscribe-broadcast")
    try:
        # With the default 20 s interval neither frame would come within the test's timeout.
        opcode, _ = await within(read_frame(reader), 2000 * MS)
        assert opcode == PING
        opcode, _ = await within(read_frame(reader), 2000 * MS)
        assert opcode == CLOSE
    finally:
        writer.close()
