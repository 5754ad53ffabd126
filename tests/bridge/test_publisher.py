"""RedisPublisher against the real Redis: ws4redis' keys, SELF, persistence and fetch_message."""

from __future__ import annotations

import warnings
from importlib import import_module

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import connections
from django.test import RequestFactory, override_settings

import ws4redis_tornado
from django_bridge.conf import MEMBEROF_SESSION_KEY
from django_bridge.publisher import SELF, RedisMessage, RedisPublisher, UnresolvedSelfWarning
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.exceptions import BrokerUnavailable, InvalidFacility

FACILITY = "unittest"
MESSAGE = "".join(chr(c) for c in range(33, 128))


def session_store(key=None):
    return import_module(settings.SESSION_ENGINE).SessionStore(key)


@pytest.fixture
def john_request(users, john):
    """A request as a view of john's would see it: his user and his session (with his groups)."""
    request = RequestFactory().get("/chat/")
    request.user = users["john"]
    request.session = session_store(john)
    return request


@pytest.fixture
def anonymous_request(anonymous):
    request = RequestFactory().get("/chat/")
    request.user = AnonymousUser()
    request.session = session_store(anonymous)
    return request


def test_self_is_the_core_sentinel():
    assert SELF is ws4redis_tornado.SELF


def test_channels_are_ws4redis_keys(prefix):
    publisher = RedisPublisher(
        facility=FACILITY, broadcast=True, users=["john", "mary"], groups=["chatters"], sessions=["abc123"]
    )
    assert publisher.publish_channels == [
        f"{prefix}:broadcast:{FACILITY}",
        f"{prefix}:group:chatters:{FACILITY}",
        f"{prefix}:user:john:{FACILITY}",
        f"{prefix}:user:mary:{FACILITY}",
        f"{prefix}:session:abc123:{FACILITY}",
    ]


def test_without_prefix_the_keys_are_bare():
    with override_settings(WS4REDIS_PREFIX=None):
        publisher = RedisPublisher(facility=FACILITY, users=["john"])
    assert publisher.publish_channels == [f"user:john:{FACILITY}"]


def test_self_stands_for_the_requests_user_groups_and_session(prefix, john_request, john):
    publisher = RedisPublisher(facility=FACILITY, users=[SELF], groups=[SELF], sessions=[SELF], request=john_request)
    assert publisher.publish_channels == [
        f"{prefix}:group:chatters:{FACILITY}",
        f"{prefix}:group:admins:{FACILITY}",
        f"{prefix}:user:john:{FACILITY}",
        f"{prefix}:session:{john}:{FACILITY}",
    ]


def test_self_groups_are_the_users_groups_now_not_those_stored_in_the_session_at_login(prefix, john_request):
    john_request.session[MEMBEROF_SESSION_KEY] = ["a-group-john-left"]
    publisher = RedisPublisher(facility=FACILITY, groups=[SELF], request=john_request)
    assert publisher.publish_channels == [f"{prefix}:group:chatters:{FACILITY}", f"{prefix}:group:admins:{FACILITY}"]


def test_self_of_an_anonymous_request_is_only_its_session_and_the_others_are_warned_about(
    prefix, anonymous_request, anonymous
):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        publisher = RedisPublisher(
            facility=FACILITY, users=[SELF], groups=[SELF], sessions=[SELF], request=anonymous_request
        )
    assert publisher.publish_channels == [f"{prefix}:session:{anonymous}:{FACILITY}"]
    assert [(w.category, str(w.message)) for w in caught] == [
        (UnresolvedSelfWarning, "SELF in groups= stands for nobody and was dropped: the request's user is anonymous"),
        (UnresolvedSelfWarning, "SELF in users= stands for nobody and was dropped: the request's user is anonymous"),
    ]
    assert {w.filename for w in caught} == {__file__}, "the warning points at the caller"


def test_unresolved_self_is_a_runtime_warning():
    assert issubclass(UnresolvedSelfWarning, RuntimeWarning)


def test_self_of_a_user_in_no_group_says_so(anonymous):
    loner, _ = User.objects.get_or_create(username="loner")
    request = RequestFactory().get("/chat/")
    request.user = loner
    request.session = session_store(anonymous)
    with pytest.warns(
        UnresolvedSelfWarning, match=r"groups= stands for nobody and was dropped: 'loner' is in no group"
    ):
        publisher = RedisPublisher(facility=FACILITY, groups=[SELF], request=request)
    assert publisher.publish_channels == []
    connections.close_all()


def test_self_without_a_session_says_so(users):
    request = RequestFactory().get("/chat/")
    request.user = users["john"]
    with pytest.warns(UnresolvedSelfWarning, match=r"sessions= stands for nobody and was dropped: .*no session"):
        assert RedisPublisher(facility=FACILITY, sessions=[SELF], request=request).publish_channels == []
    request.session = session_store()  # new, not saved yet
    with pytest.warns(UnresolvedSelfWarning, match=r"sessions= stands for nobody and was dropped: .*no key yet"):
        assert RedisPublisher(facility=FACILITY, sessions=[SELF], request=request).publish_channels == []


def test_self_without_a_request_says_so():
    with pytest.warns(UnresolvedSelfWarning, match=r"users= stands for nobody and was dropped: no request= was given"):
        assert (
            RedisPublisher(facility=FACILITY, users=[SELF, "mary"])
            .publish_channels[0]
            .endswith("user:mary:" + FACILITY)
        )


def test_ws4redis_deprecated_audience_forms_still_work_with_a_warning(prefix, john_request):
    with pytest.warns(DeprecationWarning, match=r"users=\[SELF\]"):
        publisher = RedisPublisher(facility=FACILITY, users=True, request=john_request)
    assert publisher.publish_channels == [f"{prefix}:user:john:{FACILITY}"]
    with pytest.warns(DeprecationWarning, match=r"groups=\['chatters'\]"):
        publisher = RedisPublisher(facility=FACILITY, groups="chatters")
    assert publisher.publish_channels == [f"{prefix}:group:chatters:{FACILITY}"]


def test_a_facility_that_would_make_keys_ambiguous_is_refused():
    with pytest.raises(InvalidFacility):
        RedisPublisher(facility="a:b", broadcast=True)


def test_publish_persists_for_the_configured_time_and_counts_receivers(redis_client, prefix):
    channel = f"{prefix}:broadcast:{FACILITY}"
    pubsub = redis_client.pubsub()
    pubsub.subscribe(channel)
    try:
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        publisher = RedisPublisher(facility=FACILITY, broadcast=True, users=["nobody"])
        assert publisher.publish_message(RedisMessage(MESSAGE)) == 1
        assert pubsub.get_message(timeout=1)["data"] == MESSAGE.encode()
    finally:
        pubsub.close()
    assert redis_client.get(channel) == MESSAGE.encode()
    assert 0 < redis_client.ttl(channel) <= settings.WS4REDIS_EXPIRE
    assert redis_client.get(f"{prefix}:user:nobody:{FACILITY}") == MESSAGE.encode()


def test_publish_takes_one_round_trip(request, redis_client, prefix):
    publisher = RedisPublisher(facility=FACILITY, broadcast=True, users=["john", "mary"])
    publisher.publish_message("warm up the pool")
    sends = request.getfixturevalue("packets_sent")
    assert publisher.publish_message("three channels, six commands", expire=30) == 0
    assert len(sends) == 1
    assert redis_client.ttl(f"{prefix}:user:mary:{FACILITY}") > 10


def test_expire_zero_publishes_without_persisting(redis_client, prefix):
    RedisPublisher(facility=FACILITY, broadcast=True).publish_message("gone", expire=0)
    assert redis_client.get(f"{prefix}:broadcast:{FACILITY}") is None


def test_str_bytes_and_binary_messages(redis_client, prefix, john_request):
    publisher = RedisPublisher(facility=FACILITY, broadcast=True)
    publisher.publish_message(b"utf-8 bytes")
    assert publisher.fetch_message(john_request, FACILITY, "broadcast") == RedisMessage("utf-8 bytes")
    publisher.publish_message(b"\x00\xff binary")
    fetched = publisher.fetch_message(john_request, FACILITY, "broadcast")
    assert (fetched, fetched.binary) == (b"\x00\xff binary", True)
    publisher.publish_message(RedisMessage(b"binary though valid utf-8", binary=True))
    fetched = publisher.fetch_message(john_request, FACILITY, "broadcast")
    assert (fetched, fetched.binary) == (b"binary though valid utf-8", True)
    with pytest.raises(TypeError):
        publisher.publish_message(42)


def test_fetch_message_for_each_audience(john_request, john):
    for audience, publisher in {
        "broadcast": RedisPublisher(facility=FACILITY, broadcast=True),
        "group": RedisPublisher(facility=FACILITY, groups=["admins"]),
        "user": RedisPublisher(facility=FACILITY, users=["john"]),
        "session": RedisPublisher(facility=FACILITY, sessions=[john]),
    }.items():
        assert publisher.fetch_message(john_request, FACILITY, audience) is None
        publisher.publish_message(f"for the {audience}")
        message = RedisPublisher().fetch_message(john_request, FACILITY, audience)
        assert message == f"for the {audience}".encode()
        assert isinstance(message, RedisMessage)
        # 'any' prefers session over user over group over broadcast: the newest is the most specific.
        assert RedisPublisher().fetch_message(john_request, FACILITY) == message


def test_fetch_message_finds_nothing_for_an_anonymous_user(users, anonymous_request):
    RedisPublisher(facility=FACILITY, users=["john"], groups=["chatters"]).publish_message("members only")
    publisher = RedisPublisher()
    assert publisher.fetch_message(anonymous_request, FACILITY, "user") is None
    assert publisher.fetch_message(anonymous_request, FACILITY, "group") is None
    anonymous_request.user = None  # as ws4redis' own test did
    assert publisher.fetch_message(anonymous_request, FACILITY, "user") is None
    assert publisher.fetch_message(None, FACILITY) is None


def test_fetch_message_refuses_an_unknown_audience(john_request):
    with pytest.raises(ValueError, match="'everyone'"):
        RedisPublisher().fetch_message(john_request, FACILITY, "everyone")


def test_the_pool_follows_override_settings_of_the_connection(redis_client, redis_server, prefix):
    db1 = redis.Redis(host=redis_server.host, port=redis_server.port, db=1)
    try:
        with override_settings(WS4REDIS_CONNECTION={"host": redis_server.host, "port": redis_server.port, "db": 1}):
            RedisPublisher(facility=FACILITY, broadcast=True).publish_message("in db 1")
        RedisPublisher(facility=FACILITY, broadcast=True).publish_message("in db 0")
        assert db1.get(f"{prefix}:broadcast:{FACILITY}") == b"in db 1"
        assert redis_client.get(f"{prefix}:broadcast:{FACILITY}") == b"in db 0"
    finally:
        db1.delete(f"{prefix}:broadcast:{FACILITY}")
        db1.close()


def test_expire_follows_override_settings(redis_client, prefix):
    with override_settings(WS4REDIS_EXPIRE=500):
        RedisPublisher(facility=FACILITY, broadcast=True).publish_message("kept longer")
    assert redis_client.ttl(f"{prefix}:broadcast:{FACILITY}") > settings.WS4REDIS_EXPIRE


def test_unreachable_redis_is_reported_with_its_address():
    with override_settings(WS4REDIS_CONNECTION={"port": free_port(), "socket_connect_timeout": 1}):
        publisher = RedisPublisher(facility=FACILITY, broadcast=True)
        with pytest.raises(BrokerUnavailable, match=r"redis unreachable at redis://localhost:\d+/0"):
            publisher.publish_message("lost")


@pytest.mark.gen_test
async def test_async_twins(redis_client, prefix, users, john):
    # Built here, on the loop, with a lazy session: afetch_message must read it in a thread.
    request = RequestFactory().get("/chat/")
    request.session = session_store(john)
    request.user = users["john"]
    publisher = RedisPublisher(facility=FACILITY, users=["john"], broadcast=True)
    assert await publisher.apublish_message("async hello", expire=20) == 0
    assert 10 < redis_client.ttl(f"{prefix}:user:john:{FACILITY}") <= 20
    assert await RedisPublisher().afetch_message(request, FACILITY, "user") == b"async hello"
    assert await RedisPublisher().afetch_message(None, FACILITY, "broadcast") == b"async hello"
    await RedisPublisher(facility=FACILITY, sessions=[john]).apublish_message(b"\x01\xfe")
    fetched = await RedisPublisher().afetch_message(request, FACILITY)
    assert (fetched, fetched.binary) == (b"\x01\xfe", True)
