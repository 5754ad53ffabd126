"""Config validation: pure, no server."""

import pytest

from ws4redis_tornado import Config
from ws4redis_tornado.config import field_settings
from ws4redis_tornado.exceptions import ConfigurationError


def test_defaults_follow_ws4redis():
    config = Config()
    assert config.expire == 3600
    assert config.prefix == ""
    assert config.heartbeat is None
    assert config.websocket_url == "/ws/"
    assert config.max_message_size == 1024 * 1024
    assert config.ping_interval > 0


def test_normalisation():
    config = Config(prefix="app:", expire=None, websocket_url="/sockets")
    assert config.prefix == "app"
    assert config.expire == 0
    assert config.websocket_url == "/sockets/"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("redis_url", "http://localhost"),
        ("redis_url", 6379),
        ("expire", -1),
        ("expire", "3600"),
        ("heartbeat", ""),
        ("heartbeat_interval", 0),
        ("websocket_url", "ws/"),
        ("max_message_size", 0),
        ("max_buffered_bytes", 1.5),
        ("ping_interval", float("nan")),
        ("prefix", "has space"),
        ("redis_options", ["password"]),
        ("handshake_timeout", 0),
        ("handshake_timeout", None),
        ("health_detail", "yes"),
        ("redis_sharded_pubsub", "yes"),
    ],
)
def test_wrong_values_name_the_setting(name, value):
    with pytest.raises(ConfigurationError, match=name) as info:
        Config(**{name: value})
    assert isinstance(info.value, ValueError)
    assert (info.value.field, info.value.value) == (name, value)
    assert info.value.problem.startswith("is not valid: expected ")


def test_connections_get_a_few_seconds_for_their_headers_and_health_shows_no_counts_by_default():
    config = Config()
    assert 0 < config.handshake_timeout <= 10
    assert config.health_detail is False


def test_from_mapping_refuses_unknown_names():
    with pytest.raises(ConfigurationError, match="'expyre'"):
        Config.from_mapping({"expyre": 10})
    assert Config.from_mapping({"expire": 10}).expire == 10


def test_redis_address_hides_the_password():
    config = Config(redis_url="redis://:s3cret@localhost:6379/0")
    assert "s3cret" not in config.redis_address
    assert "localhost:6379" in config.redis_address


def test_replace_validates():
    with pytest.raises(ConfigurationError):
        Config().replace(expire=-5)


def test_ping_timeout_may_not_exceed_the_interval():
    with pytest.raises(ConfigurationError, match="ping_timeout") as info:
        Config(ping_interval=5, ping_timeout=10)
    # A framework names both fields its own way.
    assert (info.value.field, info.value.related) == ("ping_timeout", ("ping_interval",))
    assert info.value.problem == "is longer than ping_interval (5)"
    assert Config(ping_interval=0, ping_timeout=10).ping_timeout == 10


def test_sharded_pubsub_needs_a_cluster():
    for elsewhere in ({}, {"redis_sentinels": [("127.0.0.1", 26379)]}):
        with pytest.raises(ConfigurationError, match="redis_sharded_pubsub") as info:
            Config(redis_sharded_pubsub=True, **elsewhere)
        assert (info.value.field, info.value.related) == ("redis_sharded_pubsub", ("redis_cluster_nodes",))
        assert info.value.problem == "needs a Redis Cluster: redis_cluster_nodes is empty"
    assert Config(redis_cluster_nodes=[("127.0.0.1", 7000)], redis_sharded_pubsub=True).redis_sharded_pubsub
    assert Config().redis_sharded_pubsub is False


def test_each_setting_is_declared_once_with_a_hint_naming_it_and_its_own_check_id():
    settings = field_settings()
    assert {"expire", "prefix", "websocket_url", "ping_timeout"} <= set(settings)
    assert len({each.name for each in settings.values()}) == len(settings)
    assert len({each.check_id for each in settings.values()}) == len(settings)
    for field, each in settings.items():
        assert each.hint.startswith(f"Set {each.name} to "), field
        Config(**{field: each.default})  # the setting's default is a right value


def test_a_setting_keeps_its_own_default_where_it_differs_in_form():
    assert field_settings()["prefix"].default is None
    assert Config(prefix=None).prefix == Config().prefix == ""
    assert field_settings()["expire"].default == Config().expire == 3600
