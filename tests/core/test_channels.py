"""Channel naming and query parsing: pure functions, no server."""

import pytest

from ws4redis_tornado.channels import (
    SELF,
    Audience,
    Principal,
    Subscription,
    channel_key,
    channel_keys,
    parse_subscription,
    validate_facility,
)
from ws4redis_tornado.exceptions import InvalidFacility


@pytest.mark.parametrize(
    ("audience", "ident", "prefix", "expected"),
    [
        (Audience.BROADCAST, None, "", "broadcast:chat"),
        (Audience.USER, "john", "", "user:john:chat"),
        (Audience.GROUP, "staff", "", "group:staff:chat"),
        (Audience.SESSION, "abc123", "", "session:abc123:chat"),
        (Audience.BROADCAST, None, "app", "app:broadcast:chat"),
        (Audience.USER, "john", "app", "app:user:john:chat"),
    ],
)
def test_channel_key_matches_ws4redis(audience, ident, prefix, expected):
    assert channel_key(audience, "chat", ident, prefix=prefix) == expected


def test_channel_key_refuses_missing_or_extra_ident():
    with pytest.raises(ValueError, match="needs an ident"):
        channel_key(Audience.USER, "chat")
    with pytest.raises(ValueError, match="no ident"):
        channel_key(Audience.BROADCAST, "chat", "john")


def test_parse_subscription_reads_every_parameter():
    query = (
        "subscribe-broadcast&subscribe-user&subscribe-group&subscribe-session"
        "&publish-broadcast&publish-user&publish-group&publish-session&echo"
    )
    sub = parse_subscription(query)
    assert sub.subscribe == frozenset(Audience)
    assert sub.publish == frozenset(Audience)
    assert sub.echo is True


def test_parse_subscription_is_case_insensitive_and_ignores_unknown_names():
    sub = parse_subscription("Subscribe-Broadcast&PUBLISH-USER&foo=bar&subscribe-everything")
    assert sub == Subscription(
        subscribe=frozenset({Audience.BROADCAST}), publish=frozenset({Audience.USER}), echo=False
    )


def test_parse_subscription_accepts_values_as_ws4redis_clients_send_them():
    assert parse_subscription("subscribe-broadcast=1&echo=").subscribe == frozenset({Audience.BROADCAST})
    assert parse_subscription("").parameters == []


def test_parameters_round_trip_and_restriction():
    sub = parse_subscription("subscribe-user&subscribe-broadcast&publish-group&echo")
    assert sub.parameters == ["subscribe-broadcast", "subscribe-user", "publish-group"]
    narrowed = sub.restricted_to(["subscribe-broadcast", "PUBLISH-GROUP", "publish-user"])
    assert narrowed.subscribe == frozenset({Audience.BROADCAST})
    # restriction never grants what was not asked for
    assert narrowed.publish == frozenset({Audience.GROUP})
    assert narrowed.echo is True


@pytest.mark.parametrize("facility", ["", "a:b", "a b", "tab\there", "nl\n", "nul\x00", "del\x7f", "\u2003"])
def test_validate_facility_refuses_ambiguous_names(facility):
    with pytest.raises(InvalidFacility):
        validate_facility(facility)


@pytest.mark.parametrize("facility", ["chat", "foo-bar_1.2", "ünïcode", "a/b"])
def test_validate_facility_accepts_plain_names(facility):
    assert validate_facility(facility) == facility


def test_channel_keys_for_a_principal():
    principal = Principal(user="john", groups=("staff", "chatters"), session="s1")
    keys = channel_keys(frozenset(Audience), "chat", principal, prefix="p")
    assert keys == [
        "p:broadcast:chat",
        "p:group:staff:chat",
        "p:group:chatters:chat",
        "p:user:john:chat",
        "p:session:s1:chat",
    ]


def test_channel_keys_skip_what_an_anonymous_principal_lacks():
    keys = channel_keys(frozenset(Audience), "chat", Principal())
    assert keys == ["broadcast:chat"]


def test_self_is_a_singleton_with_a_readable_repr():
    import pickle

    from ws4redis_tornado import SELF as exported

    assert exported is SELF
    assert repr(SELF) == "SELF"
    assert pickle.loads(pickle.dumps(SELF)) is SELF


def test_equal_subscriptions_are_one_shared_object():
    # Every open socket keeps its Subscription: equal ones share one object and its frozensets.
    first = parse_subscription("subscribe-broadcast&publish-user")
    assert parse_subscription("publish-user&Subscribe-Broadcast") is first
    narrowed = parse_subscription("subscribe-broadcast&subscribe-user").restricted_to(["subscribe-broadcast"])
    assert narrowed is parse_subscription("subscribe-broadcast")
    assert narrowed == Subscription(subscribe=frozenset({Audience.BROADCAST}))
    assert parse_subscription("echo") is not parse_subscription("")
