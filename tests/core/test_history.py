"""The pure parts of history and recovery: keys, labels, ids on the wire, positions, the opening."""

from __future__ import annotations

import json

import pytest
from redis.crc import key_slot

from ws4redis_tornado.broker import Delivery
from ws4redis_tornado.config import Config
from ws4redis_tornado.exceptions import ConfigurationError, InvalidRecovery
from ws4redis_tornado.frames import encode_frame
from ws4redis_tornado.history import (
    ID_MARKER,
    ChannelHistory,
    channel_label,
    history_key,
    message_frame,
    opening_frames,
    order,
    parse_positions,
    recover_value,
    split_id,
)
from ws4redis_tornado.messages import RedisMessage
from ws4redis_tornado.redis_commands import entries_after, publish_commands, receivers


def read_frame_bytes(frame: bytes) -> tuple[int, bytes]:
    """The opcode and payload of one unmasked frame, as the server writes it."""
    length, offset = frame[1] & 0x7F, 2
    if length >= 126:
        size = 2 if length == 126 else 8
        length, offset = int.from_bytes(frame[2 : 2 + size], "big"), 2 + size
    assert len(frame) == offset + length
    return frame[0] & 0x0F, frame[offset:]


@pytest.mark.parametrize(
    "channel",
    [
        "broadcast:chat",
        "app:user:john:chat",
        "group:{staff}:chat",  # a hash tag of its own
        "user:{a:chat",  # an opening brace, never closed
        "user:{}x}:chat",  # an empty tag does not count
        "session:abc:chat",
    ],
)
def test_the_history_lives_in_its_channels_cluster_slot(channel):
    key = history_key(channel)
    assert key != channel
    assert key_slot(key.encode()) == key_slot(channel.encode())


@pytest.mark.parametrize(
    ("channel", "prefix", "label"),
    [
        ("broadcast:chat", "", "broadcast"),
        ("app:broadcast:chat", "app", "broadcast"),
        ("a:b:user:john:chat", "a:b", "user"),
        ("session:0123abcd:chat", "", "session"),
        ("group:staff:chat", "", "group:staff"),
        ("app:group:Site Admins:chat", "app", "group:Site Admins"),
    ],
)
def test_a_channel_label_never_holds_the_session_key_or_the_prefix(channel, prefix, label):
    assert channel_label(channel, prefix=prefix) == label


def test_an_id_travels_in_front_of_the_payload_and_only_a_marked_payload_has_one():
    assert split_id(ID_MARKER + b"1700000000000-3\x00hello\x00world") == ("1700000000000-3", b"hello\x00world")
    assert split_id(b"hello") == (None, b"hello")
    binary = RedisMessage(b"\xff\x00abc", binary=True).payload
    assert split_id(binary) == (None, binary)


def test_ids_compare_as_numbers():
    assert order("1700000000000-10") > order("1700000000000-9")
    assert order("1700000000001-0") > order("1700000000000-99")
    assert not order("1700000000000-3") > order("1700000000000-3")


class TestPositions:
    def test_round_trip(self):
        positions = {"broadcast": "1700000000000-3", "group:Site Admins": "0-0", "user": None}
        assert parse_positions(recover_value(positions)) == positions

    def test_a_bare_parameter_is_a_first_connection(self):
        assert parse_positions("") == {}

    @pytest.mark.parametrize(
        ("value", "says"),
        [
            ("{", "JSON object"),
            ("[1]", "JSON object"),
            ('{"broadcast": 3}', "'<ms>-<seq>' or null"),
            ('{"broadcast": "3"}', "'<ms>-<seq>' or null"),
            ('{"broadcast": "1-2-3"}', "'<ms>-<seq>' or null"),
            (json.dumps({"x" * 600: None}), "longer than"),
        ],
    )
    def test_a_malformed_value_says_what_is_expected(self, value, says):
        with pytest.raises(InvalidRecovery, match=says.replace("[", r"\[")):
            parse_positions(value)


def unwrap(frame: bytes) -> tuple[bool, dict, bytes]:
    """(binary, header, payload) of a frame sent to a client that opted in."""
    opcode, data = read_frame_bytes(frame)
    header, _, payload = data.partition(b"\n")
    return opcode == 2, json.loads(header), payload


def test_text_and_binary_messages_keep_their_type_behind_the_header():
    assert unwrap(message_frame("broadcast", "5-0", b"caf\xc3\xa9")) == (
        False,
        {"channel": "broadcast", "id": "5-0"},
        "café".encode(),
    )
    binary = RedisMessage(b"\x00\n\xff", binary=True)
    assert unwrap(message_frame("group:Ü", None, binary.payload)) == (
        True,
        {"channel": "group:Ü", "id": None},
        b"\x00\n\xff",
    )


def test_the_opening_sends_the_persisted_message_or_the_gap_then_one_report():
    fresh = ChannelHistory(b"broadcast:c", "broadcast", "7-0", persisted=b"last", persisted_id="7-0")
    recovering = ChannelHistory(b"user:j:c", "user", "3-0", asked=True, entries=[("4-0", b"four"), ("5-0", b"five")])
    lost = ChannelHistory(b"session:s:c", "session", "9-0", asked=True, recovered=False)
    frames = opening_frames([fresh, recovering, lost])
    assert [unwrap(frame)[1:] for frame in frames[:-1]] == [
        ({"channel": "broadcast", "id": "7-0"}, b"last"),
        ({"channel": "user", "id": "4-0"}, b"four"),
        ({"channel": "user", "id": "5-0"}, b"five"),
    ]
    assert json.loads(read_frame_bytes(frames[-1])[1]) == {
        "recovery": {
            "broadcast": {"id": "7-0", "recovered": True},
            "user": {"id": "5-0", "recovered": True},
            "session": {"id": "9-0", "recovered": False},
        }
    }


def test_a_delivery_builds_its_envelope_once_for_every_socket():
    delivery = Delivery(b"broadcast:c", b"hi", "1-0")
    assert delivery.envelope("broadcast") is delivery.envelope("broadcast")
    assert delivery.frame == encode_frame(b"hi", binary=False)


class TestCommands:
    def test_with_history_each_channel_is_one_script(self):
        commands = publish_commands(["a", "b"], b"x", expire=60, history_size=10, history_ttl=30)
        assert [command[0] for command in commands] == ["EVAL", "EVAL"]
        assert [command[3:5] for command in commands] == [("a", history_key("a")), ("b", history_key("b"))]
        assert commands[0][5:] == (b"x", 10, 30_000, 60, ID_MARKER)
        assert receivers([[b"1-0", 2], [b"1-1", 0]], expire=60, history_size=10) == [2, 0]

    def test_without_history_the_commands_are_ws4redis_ones(self):
        assert publish_commands(["a"], b"x", expire=60) == [("PUBLISH", "a", b"x"), ("SET", "a", b"x", "EX", 60)]

    def test_reading_after_a_position(self):
        assert entries_after([[b"ok", b"2-0", b"two"], [b"lost", b"9-0"], [b"lost", None]]) == [
            (True, [("2-0", b"two")], None),
            (False, [], "9-0"),
            (False, [], None),
        ]


class TestSettings:
    def test_history_is_off_by_default_and_lives_as_long_as_persisted_messages(self):
        config = Config()
        assert config.history_size == 0
        assert config.replace(history_size=10).history_seconds == config.expire
        assert config.replace(history_size=10, history_ttl=5).history_seconds == 5

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"history_size": -1}, "history_size"),
            ({"history_size": 1.5}, "history_size"),
            ({"history_ttl": 0}, "history_ttl"),
            ({"history_size": 10, "expire": 0}, "history_ttl"),
        ],
    )
    def test_a_wrong_value_names_its_field(self, changes, field):
        with pytest.raises(ConfigurationError) as raised:
            Config(**changes)
        assert raised.value.field == field
