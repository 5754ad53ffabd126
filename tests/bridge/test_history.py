"""RedisPublisher with WS4REDIS_HISTORY_SIZE: the message goes into the channel's stream, in the same round trip."""

from __future__ import annotations

import asyncio

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from django_bridge.publisher import RedisMessage, RedisPublisher
from ws4redis_tornado.history import history_key, split_id

FACILITY = "history"


@pytest.fixture
def pubsub(redis_client, prefix):
    subscriber = redis_client.pubsub()
    subscriber.subscribe(f"{prefix}:broadcast:{FACILITY}")
    assert subscriber.get_message(timeout=1)["type"] == "subscribe"
    yield subscriber
    subscriber.close()


@override_settings(WS4REDIS_HISTORY_SIZE=3, WS4REDIS_HISTORY_TTL=120)
def test_publish_appends_to_the_history_and_publishes_the_entrys_id(redis_client, prefix, pubsub):
    publisher = RedisPublisher(facility=FACILITY, broadcast=True, users=["ann"])
    assert publisher.publish_message("one") == 1
    assert asyncio.run(publisher.apublish_message(RedisMessage(b"\x00two", binary=True))) == 1
    channel = f"{prefix}:broadcast:{FACILITY}"
    entries = redis_client.xrange(history_key(channel))
    assert [fields[b"d"] for _, fields in entries] == [b"one", RedisMessage(b"\x00two", binary=True).payload]
    published = [split_id(pubsub.get_message(timeout=1)["data"]) for _ in entries]
    assert published == [(entry_id.decode(), fields[b"d"]) for entry_id, fields in entries]
    assert 0 < redis_client.ttl(history_key(channel)) <= 120
    # The persisted copy is as ws4redis keeps it, and the user's channel has a history of its own.
    assert redis_client.get(channel) == RedisMessage(b"\x00two", binary=True).payload
    assert redis_client.xlen(history_key(f"{prefix}:user:ann:{FACILITY}")) == 2


@override_settings(WS4REDIS_HISTORY_SIZE=3)
def test_the_history_keeps_its_size_and_takes_one_round_trip(monkeypatch, redis_client, prefix):
    publisher = RedisPublisher(facility=FACILITY, broadcast=True, users=["ann", "bob"])
    publisher.publish_message("warm up the pool")
    sends = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sends.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    for i in range(5):
        publisher.publish_message(f"m{i}")
    assert len(sends) == 5
    assert redis_client.xlen(history_key(f"{prefix}:broadcast:{FACILITY}")) == 3
    assert 0 < redis_client.ttl(history_key(f"{prefix}:user:bob:{FACILITY}")) <= settings.WS4REDIS_EXPIRE


def test_without_history_nothing_but_ws4redis_keys_is_written(redis_client, prefix, pubsub):
    RedisPublisher(facility=FACILITY, broadcast=True).publish_message("plain")
    assert pubsub.get_message(timeout=1)["data"] == b"plain"
    assert not redis_client.exists(history_key(f"{prefix}:broadcast:{FACILITY}"))
