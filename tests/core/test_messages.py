"""Messages and frames: pure functions, no server."""

import struct

import pytest

from ws4redis_tornado import RedisMessage
from ws4redis_tornado.messages import BINARY_MARKER, decode_payload, encode_frame, is_heartbeat


def test_text_message_is_stored_as_plain_utf8_like_ws4redis():
    message = RedisMessage("héllo")
    assert message == "héllo".encode()
    assert message.binary is False
    assert message.payload == "héllo".encode()


def test_bytes_are_text_when_valid_utf8_as_ws4redis_published_them():
    assert RedisMessage(b"hello").binary is False
    assert RedisMessage(b"\xff\x00").binary is True


@pytest.mark.parametrize("data", [b"plain ascii", b"\x00\x01\x02\xff", b"", BINARY_MARKER + b"tricky", "é".encode()])
def test_binary_messages_round_trip_through_redis_payloads(data):
    message = RedisMessage(data, binary=True)
    decoded = decode_payload(message.payload)
    assert decoded == data
    assert decoded.binary is True


def test_invalid_utf8_binary_is_stored_without_marker():
    # So that a ws4redis process reading the channel sees the same bytes.
    assert RedisMessage(b"\xff\xfe", binary=True).payload == b"\xff\xfe"


def test_text_payload_decodes_as_text():
    assert decode_payload(b"hi").binary is False


def test_str_cannot_be_binary_and_other_types_are_refused():
    with pytest.raises(ValueError):
        RedisMessage("x", binary=True)
    with pytest.raises(TypeError):
        RedisMessage(42)  # type: ignore[arg-type]


def test_is_heartbeat():
    assert is_heartbeat("--heartbeat--", "--heartbeat--")
    assert is_heartbeat(b"--heartbeat--", "--heartbeat--")
    assert not is_heartbeat("--heartbeat--", None)
    assert not is_heartbeat("hello", "--heartbeat--")


@pytest.mark.parametrize(("length", "header_size"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_encode_frame_lengths(length, header_size):
    data = b"x" * length
    frame = encode_frame(data, binary=False)
    assert frame[0] == 0x81
    assert frame[header_size:] == data
    if header_size == 2:
        assert frame[1] == length
    elif header_size == 4:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == length
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == length


def test_encode_frame_binary_opcode():
    assert encode_frame(b"\x00", binary=True)[0] == 0x82
