"""System checks: each wrong setting is reported under its own id, with the fix in the hint."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from django_bridge import conf


def bridge_messages(**overrides):
    with override_settings(**overrides):
        return {message.id: message for message in run_checks() if message.id.startswith("django_bridge.")}


def test_the_test_project_passes():
    assert bridge_messages(DEBUG=True) == {}


@pytest.mark.parametrize(
    ("setting", "value", "check_id"),
    [
        ("WEBSOCKET_URL", "ws", "django_bridge.E002"),
        ("WS4REDIS_CONNECTION", {"port": 0}, "django_bridge.E003"),
        ("WS4REDIS_EXPIRE", 1.5, "django_bridge.E004"),
        ("WS4REDIS_PREFIX", "a b", "django_bridge.E005"),
        ("WS4REDIS_HEARTBEAT", 42, "django_bridge.E006"),
        ("WS4REDIS_SUBSCRIBER", "ws4redis.subscriber.RedisSubscriber", "django_bridge.E007"),
        ("WS4REDIS_ALLOWED_CHANNELS", "tests.bridge.hooks.nothing_here", "django_bridge.E008"),
        ("WS4REDIS_PROCESS_REQUEST", 42, "django_bridge.E009"),
        ("WS4REDIS_ALLOWED_ORIGINS", "https://example.com", "django_bridge.E010"),
        ("WS4REDIS_HEALTH_URL", "/ws/health", "django_bridge.E011"),
        ("WS4REDIS_MAX_PERSISTED_SIZE", -1, "django_bridge.E017"),
        ("WS4REDIS_SUBPROTOCOLS", "chat.v1", "django_bridge.E018"),
        ("WS4REDIS_HISTORY_SIZE", -1, "django_bridge.E019"),
        ("WS4REDIS_HISTORY_TTL", 0, "django_bridge.E020"),
        ("WS4REDIS_PRESENCE", "chat", "django_bridge.E021"),
        ("WS4REDIS_PRESENCE_INTERVAL", 0, "django_bridge.E022"),
        ("WS4REDIS_MAX_SUBSCRIPTIONS", 0, "django_bridge.E023"),
        ("WS4REDIS_METRICS_URL", "/ws/metrics", "django_bridge.E025"),
        ("WS4REDIS_METRICS_PORT", 0, "django_bridge.E026"),
        ("WS4REDIS_STATUS_INTERVAL", -1, "django_bridge.E027"),
        ("WS4REDIS_ALLOWED_FACILITIES", "tests.bridge.hooks.nothing_here", "django_bridge.E024"),
        ("WS4REDIS_CONNECTION", {"hots": "redis"}, "django_bridge.E003"),
    ],
)
def test_a_wrong_setting_is_an_error_naming_it_and_the_fix(setting, value, check_id):
    messages = bridge_messages(DEBUG=True, **{setting: value})
    assert set(messages) == {check_id}
    error = messages[check_id]
    assert error.is_serious()
    assert setting in error.msg
    assert error.hint.startswith(f"Set {setting} to")


def test_every_wrong_setting_is_reported_at_once():
    messages = bridge_messages(DEBUG=True, WS4REDIS_EXPIRE=-5, WS4REDIS_PREFIX="a b", WEBSOCKET_URL="ws")
    assert set(messages) == {"django_bridge.E002", "django_bridge.E004", "django_bridge.E005"}


def test_an_argument_redis_py_refuses_is_reported_along_with_the_other_errors():
    messages = bridge_messages(DEBUG=True, WS4REDIS_EXPIRE=-5, WS4REDIS_CONNECTION={"hots": "redis"})
    assert set(messages) == {"django_bridge.E003", "django_bridge.E004"}
    assert "WS4REDIS_CONNECTION is refused by redis-py: " in messages["django_bridge.E003"].msg
    assert "'hots'" in messages["django_bridge.E003"].msg


def test_every_setting_has_its_own_check_id():
    ids = [setting.check_id for setting in conf.SETTINGS.values()]
    assert len(set(ids)) == len(ids)
    assert not {"django_bridge.E001", "django_bridge.W001", "django_bridge.W002"} & set(ids)


def test_open_channels_are_a_warning_when_debug_is_off():
    messages = bridge_messages(DEBUG=False)
    assert set(messages) == {"django_bridge.W001"}
    warning = messages["django_bridge.W001"]
    assert not warning.is_serious()
    assert "every client may subscribe and publish on every channel" in warning.msg
    assert "WS4REDIS_ALLOWED_CHANNELS" in warning.hint
    assert bridge_messages(DEBUG=False, WS4REDIS_ALLOWED_CHANNELS="tests.bridge.hooks.subscribe_only") == {}


def test_health_url_shadowing_a_view_is_a_warning():
    messages = bridge_messages(DEBUG=True, WS4REDIS_HEALTH_URL="/hello/")
    assert set(messages) == {"django_bridge.W002"}
    assert "'/hello/'" in messages["django_bridge.W002"].msg


def test_django_bridge_must_come_before_staticfiles():
    apps = [
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.staticfiles",
        "django_bridge",
    ]
    messages = bridge_messages(DEBUG=True, INSTALLED_APPS=apps)
    assert set(messages) == {"django_bridge.E001"}
    assert "INSTALLED_APPS" in messages["django_bridge.E001"].hint


def test_a_wrong_connection_is_reported_once():
    # The health URL check reads WEBSOCKET_URL, never the whole Config.
    with override_settings(WS4REDIS_CONNECTION={"db": -1}):
        ids = [m.id for m in run_checks() if m.id.startswith("django_bridge.E")]
    assert ids == ["django_bridge.E003"]
