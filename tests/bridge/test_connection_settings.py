"""WS4REDIS_CONNECTION naming Redis Sentinel or a Redis Cluster: the Config it becomes, and its errors."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from django_bridge import conf
from django_bridge.conf import SettingError

SENTINELS = [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
NODES = [("10.0.1.1", 7000), ("10.0.1.2", 7001)]


def config_of(connection):
    with override_settings(WS4REDIS_CONNECTION=connection):
        return conf.get_config()


def problem_of(connection) -> str:
    with override_settings(WS4REDIS_CONNECTION=connection), pytest.raises(SettingError) as info:
        conf.get_config()
    assert info.value.setting == "WS4REDIS_CONNECTION"
    return info.value.problem


def test_sentinels_become_the_configs_sentinel_fields():
    config = config_of(
        {
            "sentinels": SENTINELS,
            "service_name": "cache",
            "sentinel_kwargs": {"password": "sentinels' own", "socket_timeout": 1},
            "password": "the master's",
            "db": 2,
            "socket_timeout": 2,
        }
    )
    assert config.redis_sentinels == tuple(SENTINELS)
    assert config.redis_service_name == "cache"
    assert dict(config.redis_sentinel_options) == {"password": "sentinels' own", "socket_timeout": 1}
    assert dict(config.redis_options) == {"password": "the master's", "db": 2, "socket_timeout": 2}
    assert config.redis_cluster_nodes == ()
    # Passwords never show where the config is named in logs and errors.
    assert config.redis_address == "sentinel://10.0.0.1:26379,10.0.0.2:26379/cache"


def test_sentinels_alone_watch_mymaster():
    config = config_of({"sentinels": [["10.0.0.1", 26379]]})
    assert config.redis_sentinels == (("10.0.0.1", 26379),)
    assert config.redis_service_name == "mymaster"
    assert dict(config.redis_sentinel_options) == {}
    assert dict(config.redis_options) == {}


def test_tls_to_the_master_is_passed_on_with_sentinels():
    assert dict(config_of({"sentinels": SENTINELS, "ssl": True}).redis_options) == {"ssl": True}
    assert dict(config_of({"sentinels": SENTINELS, "ssl": False}).redis_options) == {}


def test_startup_nodes_become_the_configs_cluster_nodes():
    config = config_of({"startup_nodes": NODES, "password": "pw", "client_name": "web", "db": 0})
    assert config.redis_cluster_nodes == tuple(NODES)
    assert dict(config.redis_options) == {"password": "pw", "client_name": "web"}
    assert config.redis_sentinels == ()
    assert config.redis_address == "cluster://10.0.1.1:7000,10.0.1.2:7001"


@pytest.mark.parametrize(
    ("connection", "words"),
    [
        ({"sentinels": []}, "WS4REDIS_CONNECTION['sentinels'] = []; expected a non-empty list"),
        ({"sentinels": "10.0.0.1:26379"}, "WS4REDIS_CONNECTION['sentinels'] = '10.0.0.1:26379'"),
        ({"sentinels": [("10.0.0.1", "26379")]}, "['sentinels'] holds ('10.0.0.1', '26379')"),
        ({"sentinels": [("10.0.0.1",)]}, "['sentinels'] holds ('10.0.0.1',)"),
        ({"sentinels": SENTINELS, "service_name": ""}, "WS4REDIS_CONNECTION['service_name'] = ''"),
        ({"sentinels": SENTINELS, "sentinel_kwargs": "pw"}, "WS4REDIS_CONNECTION['sentinel_kwargs'] = 'pw'"),
        ({"sentinels": SENTINELS, "sentinel_kwargs": {"pasword": "x"}}, "keyword argument 'pasword'"),
        ({"sentinels": SENTINELS, "sentinel_kwargs": {"port": 1}}, "misplaced key(s) port"),
        ({"sentinels": SENTINELS, "host": "redis"}, "has 'host', which has no use with 'sentinels'"),
        ({"sentinels": SENTINELS, "startup_nodes": NODES}, "has 'startup_nodes', which has no use with 'sentinels'"),
        ({"sentinels": SENTINELS, "db": -1}, "WS4REDIS_CONNECTION['db'] = -1"),
        ({"service_name": "mymaster"}, "has 'service_name', which has no use without 'sentinels'"),
        ({"host": "redis", "sentinel_kwargs": {}}, "has 'sentinel_kwargs', which has no use without"),
        ({"startup_nodes": [("10.0.1.1", 70000)]}, "['startup_nodes'] holds ('10.0.1.1', 70000)"),
        ({"startup_nodes": NODES, "port": 7000}, "has 'port', which has no use with 'startup_nodes'"),
        ({"startup_nodes": NODES, "service_name": "x"}, "has 'service_name', which has no use with 'startup_nodes'"),
        ({"startup_nodes": NODES, "db": 1}, "WS4REDIS_CONNECTION['db'] = 1; expected 0"),
        ({"startup_nodes": NODES, "ssl": True}, "WS4REDIS_CONNECTION['ssl'] = True; expected False"),
        ({"startup_nodes": NODES, "socket_type": 0}, "keyword argument 'socket_type'"),
        ({"startup_nodes": NODES, "sentinels_": []}, "keyword argument 'sentinels_'"),
    ],
)
def test_a_wrong_topology_is_named_with_its_fix(connection, words):
    assert words in problem_of(connection)


def test_the_hint_shows_every_form():
    with override_settings(WS4REDIS_CONNECTION={"sentinels": []}), pytest.raises(SettingError) as info:
        conf.get_config()
    assert "'sentinels': [(host, port), ...]" in info.value.hint
    assert "'service_name'" in info.value.hint
    assert "'sentinel_kwargs'" in info.value.hint
    assert "'startup_nodes': [(host, port), ...]" in info.value.hint


def test_a_wrong_topology_is_a_system_check_error():
    with override_settings(DEBUG=True, WS4REDIS_CONNECTION={"startup_nodes": NODES, "db": 3}):
        messages = [m for m in run_checks() if m.id.startswith("django_bridge.")]
    assert [m.id for m in messages] == ["django_bridge.E003"]
    assert "WS4REDIS_CONNECTION['db'] = 3" in messages[0].msg
    with override_settings(DEBUG=True, WS4REDIS_CONNECTION={"sentinels": SENTINELS, "service_name": "cache"}):
        assert [m for m in run_checks() if m.id.startswith("django_bridge.")] == []
