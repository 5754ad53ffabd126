"""The Redis commands shared by the broker and the publisher: what they send, how replies are read, errors.

No server: the commands and replies are values, and the error translation is a context manager.
"""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import ClusterDownError, RedisClusterException, ResponseError
from redis.sentinel import MasterNotFoundError

from ws4redis_tornado import redis_commands
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.exceptions import BrokerClosed, BrokerUnavailable

CHANNELS = ["p:broadcast:f", "p:user:john:f"]


def test_publish_commands_publish_to_each_channel_and_persist_under_its_key_when_expiring():
    assert redis_commands.publish_commands(CHANNELS, b"m", expire=30) == [
        ("PUBLISH", "p:broadcast:f", b"m"),
        ("SET", "p:broadcast:f", b"m", "EX", 30),
        ("PUBLISH", "p:user:john:f", b"m"),
        ("SET", "p:user:john:f", b"m", "EX", 30),
    ]


def test_publish_commands_without_expiry_only_publish():
    assert redis_commands.publish_commands(CHANNELS, b"m", expire=0) == [
        ("PUBLISH", "p:broadcast:f", b"m"),
        ("PUBLISH", "p:user:john:f", b"m"),
    ]
    assert redis_commands.publish_commands([], b"m", expire=30) == []


def test_receivers_are_read_from_the_publish_replies_only():
    # PUBLISH answers a count, SET answers True (redis-py's reading of OK).
    assert redis_commands.receivers([2, True, 0, True], expire=30) == [2, 0]
    assert redis_commands.receivers([1, 3], expire=0) == [1, 3]
    assert redis_commands.receivers([], expire=30) == []


def test_nothing_to_publish_or_fetch_sends_nothing():
    # A client of a port nobody listens on: any round trip would raise.
    client = redis.Redis(port=free_port(), socket_connect_timeout=1)
    assert redis_commands.publish(client, [], b"m", expire=30) == []
    assert redis_commands.fetch(client, []) == []


@pytest.mark.parametrize(
    "error",
    [
        redis.ConnectionError("refused"),
        redis.TimeoutError("timed out"),
        MasterNotFoundError("no master for mymaster"),
        ClusterDownError("CLUSTERDOWN"),
        RedisClusterException("Redis Cluster cannot be connected"),
        ResponseError("LOADING"),
        OSError("unreachable"),
        ConnectionError("redis did not answer a ping"),
        TimeoutError(),
    ],
    ids=type,
)
def test_every_connection_error_becomes_broker_unavailable_naming_the_action_and_address(error):
    translated = redis_commands.unavailable_on_error("publish", address="redis://h:1/0")
    with pytest.raises(BrokerUnavailable) as raised, translated:
        raise error
    assert str(raised.value) == f"cannot publish: redis unreachable at redis://h:1/0: {error}"
    assert raised.value.__cause__ is error
    assert isinstance(raised.value, ConnectionError)


@pytest.mark.parametrize("error", [ValueError("bad expire"), BrokerClosed("closed"), KeyError("k")], ids=type)
def test_other_errors_pass_through_untranslated(error):
    translated = redis_commands.unavailable_on_error("read", address="redis://h:1/0")
    with pytest.raises(type(error)) as raised, translated:
        raise error
    assert raised.value is error


def test_unavailable_without_an_action_names_only_the_address_and_the_cause():
    cause = redis.ConnectionError("Error 111 connecting")
    error = redis_commands.unavailable(cause, address="sentinel://h:1/mymaster")
    assert str(error) == "redis unreachable at sentinel://h:1/mymaster: Error 111 connecting"
    assert error.__cause__ is cause
