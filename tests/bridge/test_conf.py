"""Settings are read when used, cached, re-read after override_settings, and wrong ones are named."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from django_bridge import conf
from django_bridge.conf import SettingError
from ws4redis_tornado import RedisSubscriber

from . import hooks

ROOT = Path(__file__).resolve().parents[2]


class Subscriber(RedisSubscriber):
    pass


def config_of(**overrides):
    with override_settings(**overrides):
        return conf.get_config()


def test_defaults_are_those_of_ws4redis():
    with override_settings():
        from django.conf import settings

        for name in ("WS4REDIS_CONNECTION", "WS4REDIS_PREFIX", "WS4REDIS_EXPIRE"):
            delattr(settings, name)
        conf.clear_cache()
        config = conf.get_config()
    conf.clear_cache()
    assert config.redis_url == "redis://localhost:6379/0"
    assert dict(config.redis_options) == {}
    assert (config.prefix, config.expire, config.heartbeat) == ("", 3600, None)
    assert config.websocket_url == "/ws/"


def test_settings_become_the_config():
    config = config_of(
        WEBSOCKET_URL="/sockets/", WS4REDIS_PREFIX="site1", WS4REDIS_EXPIRE=None, WS4REDIS_HEARTBEAT="--beat--"
    )
    assert config.websocket_url == "/sockets/"
    assert config.prefix == "site1"
    assert config.expire == 0
    assert config.heartbeat == "--beat--"


@pytest.mark.parametrize(
    ("connection", "url", "options"),
    [
        ({}, "redis://localhost:6379/0", {}),
        ({"port": 6380, "db": 2}, "redis://localhost:6380/2", {}),
        ({"host": "redis.internal", "password": "pw"}, "redis://redis.internal:6379/0", {"password": "pw"}),
        ({"host": "::1"}, "redis://[::1]:6379/0", {}),
        ({"ssl": True, "socket_timeout": 5}, "rediss://localhost:6379/0", {"socket_timeout": 5}),
        ({"unix_socket_path": "/run/redis sock", "db": 3}, "unix:///run/redis%20sock?db=3", {}),
        ("rediss://:pw@cache.example.com:6390/1", "rediss://:pw@cache.example.com:6390/1", {}),
    ],
)
def test_ws4redis_connection_dict_or_url(connection, url, options):
    config = config_of(WS4REDIS_CONNECTION=connection)
    assert config.redis_url == url
    assert dict(config.redis_options) == options


def test_config_is_cached_until_a_setting_changes():
    first = conf.get_config()
    assert conf.get_config() is first
    with override_settings(WS4REDIS_PREFIX="other"):
        assert conf.get_config().prefix == "other"
    assert conf.get_config() == first


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("WS4REDIS_CONNECTION", {"port": "6379"}, "WS4REDIS_CONNECTION['port']"),
        # redis-py judges the connection arguments, in its own words.
        ("WS4REDIS_CONNECTION", {"hots": "redis"}, "refused by redis-py: "),
        ("WS4REDIS_CONNECTION", {"hots": "redis"}, "unexpected keyword argument 'hots'"),
        ("WS4REDIS_CONNECTION", "http://redis:6379", "not a Redis URL"),
        ("WS4REDIS_CONNECTION", "redis://localhost:port/0", "refused by redis-py: "),
        ("WS4REDIS_CONNECTION", {"unix_socket_path": "/s", "ssl": True}, "WS4REDIS_CONNECTION['ssl']"),
        ("WS4REDIS_EXPIRE", -1, "WS4REDIS_EXPIRE = -1"),
        ("WS4REDIS_EXPIRE", "60", "WS4REDIS_EXPIRE = '60'"),
        ("WS4REDIS_PREFIX", "my site", "WS4REDIS_PREFIX = 'my site'"),
        ("WS4REDIS_HEARTBEAT", "", "WS4REDIS_HEARTBEAT = ''"),
        ("WEBSOCKET_URL", "ws/", "WEBSOCKET_URL = 'ws/'"),
        ("WS4REDIS_SUBPROTOCOLS", "chat.v1", "WS4REDIS_SUBPROTOCOLS = 'chat.v1' is not valid: expected a list"),
    ],
)
def test_a_wrong_setting_is_named_with_its_fix(setting, value, words):
    with override_settings(**{setting: value}), pytest.raises(SettingError) as info:
        conf.get_config()
    assert info.value.setting == setting
    assert words in info.value.problem
    assert info.value.hint.startswith(f"Set {setting} to")
    assert str(info.value) == f"{info.value.problem} {info.value.hint}"


def test_subscriber_class_by_default_by_path_and_as_a_class():
    assert conf.get_subscriber_class() is RedisSubscriber
    with override_settings(WS4REDIS_SUBSCRIBER=f"{__name__}.Subscriber"):
        assert conf.get_subscriber_class() is Subscriber
    with override_settings(WS4REDIS_SUBSCRIBER=Subscriber):
        assert conf.get_subscriber_class() is Subscriber


@pytest.mark.parametrize("value", ["ws4redis.subscriber.RedisSubscriber", "tests.bridge.hooks.deny_on_header"])
def test_a_subscriber_that_is_not_a_redis_subscriber_is_refused(value):
    with override_settings(WS4REDIS_SUBSCRIBER=value), pytest.raises(SettingError) as info:
        conf.get_subscriber_class()
    assert info.value.setting == "WS4REDIS_SUBSCRIBER"
    assert repr(value) in info.value.problem


@pytest.mark.parametrize(
    ("setting", "accessor"),
    [
        ("WS4REDIS_ALLOWED_CHANNELS", conf.get_allowed_channels),
        ("WS4REDIS_ALLOWED_FACILITIES", conf.get_allowed_facilities),
        ("WS4REDIS_PROCESS_REQUEST", conf.get_process_request),
    ],
)
def test_hooks_are_callables_or_dotted_paths(setting, accessor):
    assert accessor() is None
    with override_settings(**{setting: "tests.bridge.hooks.subscribe_only"}):
        assert accessor() is hooks.subscribe_only
    with override_settings(**{setting: hooks.deny_on_header}):
        assert accessor() is hooks.deny_on_header
    for wrong in ("tests.bridge.hooks.missing", 42):
        with override_settings(**{setting: wrong}), pytest.raises(SettingError) as info:
            accessor()
        assert info.value.setting == setting


def test_allowed_origins_are_normalised():
    origins = ["https://Example.com:443/", "http://localhost:8000", "https://*.example.org"]
    with override_settings(WS4REDIS_ALLOWED_ORIGINS=origins):
        assert conf.get_allowed_origins() == (
            "https://example.com",
            "http://localhost:8000",
            "https://*.example.org",
        )


@pytest.mark.parametrize("value", ["https://example.com", ["example.com"], ["https://example.com/app"], [None]])
def test_allowed_origins_must_be_a_list_of_origins(value):
    with override_settings(WS4REDIS_ALLOWED_ORIGINS=value), pytest.raises(SettingError) as info:
        conf.get_allowed_origins()
    assert info.value.setting == "WS4REDIS_ALLOWED_ORIGINS"


def test_health_url_has_a_namespaced_default_and_can_be_turned_off():
    assert conf.get_health_url() == "/ws4redis/health"
    with override_settings(WS4REDIS_HEALTH_URL=None):
        assert conf.get_health_url() is None
    for wrong in ("health", "/ws/health"):
        with override_settings(WS4REDIS_HEALTH_URL=wrong), pytest.raises(SettingError):
            conf.get_health_url()


def test_importing_reads_no_setting_and_connects_nothing():
    # Without DJANGO_SETTINGS_MODULE any settings access raises ImproperlyConfigured.
    modules = [
        "django_bridge",
        "django_bridge.apps",
        "django_bridge.conf",
        "django_bridge.checks",
        "django_bridge.receivers",
        "django_bridge.publisher",
        "django_bridge.sessions",
        "django_bridge.handlers",
        "django_bridge.server",
        "django_bridge.context_processors",
    ]
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def readme_settings() -> dict[str, str]:
    """The README's table of Django settings: each name, and its default as written there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### Settings\n", 1)[1].split("\n### ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \| `(.*?)` \|", section, re.M))


def test_the_readme_lists_every_setting_with_its_default():
    written = readme_settings()
    assert sorted(written) == sorted(conf.SETTINGS)
    for name, default in written.items():
        documented, actual = ast.literal_eval(default), conf.SETTINGS[name].default
        # A list setting's default is written [] and held as ().
        if isinstance(actual, tuple):
            documented = tuple(documented)
        assert documented == actual, name
