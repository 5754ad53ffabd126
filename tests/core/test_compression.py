"""permessage-deflate: what the server agrees to, each message compressed once for every socket,
and the bounds on what a client's compressed messages may cost, against a real server and Redis."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import zlib

import pytest
import redis.asyncio as aredis
import websockets
from hypothesis import given
from hypothesis import strategies as st
from tornado.httpclient import AsyncHTTPClient

from ws4redis_tornado.config import Config
from ws4redis_tornado.deflate import RSV1, FrameCompressor, deflate_frame, negotiate
from ws4redis_tornado.exceptions import ConfigurationError
from ws4redis_tornado.frames import PING_FRAME, encode_frame

from ..rawws import client_frame, raw_frame
from ..utils import MS, wait_until, within
from ..wsclient import recv

TAIL = b"\x00\x00\xff\xff"
OFFER = "permessage-deflate; client_max_window_bits"
# A message like the ones applications send: JSON with repeated keys, well over the minimum size.
MESSAGE = json.dumps([{"user": f"user{n}", "text": "hello there", "room": "lobby", "n": n} for n in range(40)])


def inflate(payload: bytes, wbits: int = 15) -> bytes:
    return zlib.decompressobj(-wbits).decompress(payload + TAIL)


def compress(message: bytes, compressor=None) -> bytes:
    compressor = compressor or zlib.compressobj(6, zlib.DEFLATED, -15)
    data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(TAIL)
    return data[:-4]


# -- negotiation, pure ----------------------------------------------------------------------------


def test_no_offer_agrees_to_nothing():
    assert negotiate(None) is None
    assert negotiate("") is None
    assert negotiate("x-webkit-deflate-frame") is None


@pytest.mark.parametrize(
    ("offer", "header", "wbits"),
    [
        ("permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15),
        (OFFER, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15),
        (
            "permessage-deflate; client_max_window_bits=12",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=12",
            15,
        ),
        (
            "permessage-deflate; server_max_window_bits=10; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
            10,
        ),
        ('permessage-deflate; server_max_window_bits="11"', None, 11),
    ],
)
def test_the_server_always_answers_without_context_takeover(offer, header, wbits):
    agreement = negotiate(offer)
    assert agreement is not None
    assert agreement.server_wbits == wbits
    if header is not None:
        assert agreement.header == header


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=8",  # zlib cannot write a 256-byte window
        "permessage-deflate; server_max_window_bits",  # the value is required
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=\u00b9\u00b2",
        "permessage-deflate; server_no_context_takeover=yes",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; mystery",
    ],
)
def test_an_offer_rfc_7692_does_not_allow_is_declined(offer):
    assert negotiate(offer) is None


@given(st.text(max_size=200))
def test_any_header_gets_an_answer_without_context_takeover_or_none(header):
    agreement = negotiate(header)
    if agreement is not None:
        assert "server_no_context_takeover" in agreement.header
        assert "client_no_context_takeover" in agreement.header
        assert 9 <= agreement.server_wbits <= 15


def test_a_declined_offer_falls_back_to_the_next_one():
    agreement = negotiate("permessage-deflate; mystery, permessage-deflate; server_max_window_bits=12")
    assert agreement is not None and agreement.server_wbits == 12


# -- compressing a frame, pure -------------------------------------------------------------------


@pytest.mark.parametrize("size", [200, 70_000])
def test_a_compressed_frame_inflates_to_the_message(size):
    message = (MESSAGE * (size // len(MESSAGE) + 1))[:size].encode()
    frame = deflate_frame(encode_frame(message, binary=False))
    assert frame[0] == 0x80 | RSV1 | 0x1
    length = frame[1] & 0x7F
    offset = 2 if length < 126 else 4
    if length == 126:
        (length,) = struct.unpack("!H", frame[2:4])
    assert len(frame) == offset + length < len(message)
    assert inflate(frame[offset:]) == message


def test_what_would_not_shrink_is_sent_as_it_is():
    assert deflate_frame(PING_FRAME) is PING_FRAME
    small = encode_frame(b"hi", binary=False)
    assert deflate_frame(small, min_size=128) is small
    noise = encode_frame(os.urandom(1000), binary=True)
    assert deflate_frame(noise) is noise


def test_a_frame_is_compressed_once_per_flush():
    compressor = FrameCompressor(min_size=16)
    frame = encode_frame(MESSAGE.encode(), binary=False)
    first = compressor.compress(frame, 15)
    assert compressor.compress(frame, 15) is first
    assert compressor.compress(frame, 10) is not first
    assert compressor.compressed == 2
    compressor.forget()
    assert compressor.compress(frame, 15) == first
    assert compressor.compressed == 3


def test_the_settings_are_checked():
    with pytest.raises(ConfigurationError, match="compression"):
        Config(compression="yes")
    with pytest.raises(ConfigurationError, match="compression_min_size"):
        Config(compression_min_size=-1)


# -- against a running server --------------------------------------------------------------------


@pytest.fixture
def publisher(io_loop, redis_url):
    client = aredis.Redis.from_url(redis_url)
    yield client
    io_loop.run_sync(client.aclose)


async def open_raw(port: int, path: str, offer: str | None = OFFER):
    """Open a websocket offering ``offer``; return the reader, the writer and the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    extension = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extension}\r\n"
        ).encode()
    )
    head = (await within(reader.readuntil(b"\r\n\r\n"))).decode()
    assert head.startswith("HTTP/1.1 101"), head
    return reader, writer, head


async def read_raw_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame: its first byte and its payload, as they were on the wire."""
    first, second = await within(reader.readexactly(2))
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first, await within(reader.readexactly(length))


async def close_code(reader: asyncio.StreamReader) -> int:
    """Read frames until the server's close frame; return its code."""
    while True:
        first, payload = await read_raw_frame(reader)
        if first & 0x0F == 0x8:
            return struct.unpack("!H", payload[:2])[0]


def extensions_of(head: str) -> str | None:
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-extensions":
            return value.strip()
    return None


@pytest.mark.gen_test
async def test_a_websockets_client_gets_compressed_messages_and_sends_them(ws_url, publisher, prefix):
    async with websockets.connect(ws_url("news", "subscribe-broadcast&publish-broadcast&echo")) as ws:
        agreed = ws.response.headers["Sec-WebSocket-Extensions"]
        assert "server_no_context_takeover" in agreed and "client_no_context_takeover" in agreed
        await publisher.publish(f"{prefix}:broadcast:news", MESSAGE)
        assert await recv(ws) == MESSAGE
        # The client compresses what it publishes; the server inflates it and publishes it.
        await ws.send(MESSAGE + "!")
        assert await recv(ws) == MESSAGE + "!"


@pytest.mark.gen_test
async def test_every_socket_gets_the_same_bytes_compressed_once(ws_url, http_port, publisher, prefix, app):
    path = "/ws/news?subscribe-broadcast"
    sockets = [await open_raw(http_port, path) for _ in range(50)]
    plain_reader, plain_writer, plain_head = await open_raw(http_port, path, offer=None)
    assert extensions_of(plain_head) is None
    for _, _, head in sockets:
        assert extensions_of(head) == "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
    before = app.frame_writer.compressor.compressed
    await publisher.publish(f"{prefix}:broadcast:news", MESSAGE)
    frames = {await read_raw_frame(reader) for reader, _, _ in sockets}
    assert len(frames) == 1, "every socket got the very same bytes"
    ((first, payload),) = frames
    assert first == 0x80 | RSV1 | 0x1
    assert inflate(payload) == MESSAGE.encode()
    assert len(payload) < len(MESSAGE) / 3
    assert app.frame_writer.compressor.compressed == before + 1
    # A client that did not offer it gets the message as ws4redis always sent it.
    assert await read_raw_frame(plain_reader) == (0x81, MESSAGE.encode())
    # Short messages go uncompressed, also to a socket that agreed.
    await publisher.publish(f"{prefix}:broadcast:news", "short")
    assert await read_raw_frame(sockets[0][0]) == (0x81, b"short")
    for _, writer, _ in [*sockets, (plain_reader, plain_writer, None)]:
        writer.close()


@pytest.mark.gen_test
async def test_the_window_a_client_asked_for_is_kept(app, http_server, http_port, publisher, prefix):
    reader, writer, head = await open_raw(
        http_port, "/ws/news?subscribe-broadcast", "permessage-deflate; server_max_window_bits=9"
    )
    assert "server_max_window_bits=9" in extensions_of(head)
    # Repeats 600 bytes apart: a 512-byte window cannot refer back to them, a 32 KiB one would.
    block = os.urandom(300).hex().encode()
    message = block + b"-" + block
    await publisher.publish(f"{prefix}:broadcast:news", message)
    first, payload = await read_raw_frame(reader)
    assert first & RSV1
    assert inflate(payload, wbits=9) == message
    writer.close()


@pytest.mark.gen_test
async def test_the_persisted_message_is_compressed_too(app, http_server, http_port, publisher, prefix):
    await publisher.set(f"{prefix}:broadcast:kept", MESSAGE)
    reader, writer, _ = await open_raw(http_port, "/ws/kept?subscribe-broadcast")
    first, payload = await read_raw_frame(reader)
    assert first == 0x80 | RSV1 | 0x1
    assert inflate(payload) == MESSAGE.encode()
    writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"compression": False}])
async def test_compression_can_be_turned_off(app, http_server, http_port, publisher, prefix):
    reader, writer, head = await open_raw(http_port, "/ws/news?subscribe-broadcast")
    assert extensions_of(head) is None
    await publisher.publish(f"{prefix}:broadcast:news", MESSAGE)
    assert await read_raw_frame(reader) == (0x81, MESSAGE.encode())
    writer.close()


# -- what a client's compressed messages may cost --------------------------------------------------


def compressed_frame(payload: bytes, *, opcode: int = 0x1, fin: bool = True) -> bytes:
    return raw_frame((0x80 if fin else 0) | RSV1 | opcode, payload)


ECHO = "/ws/news?subscribe-broadcast&publish-broadcast&echo"


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"max_message_size": 64 * 1024}])
async def test_a_deflate_bomb_is_closed_with_1009(app, http_server, http_port):
    reader, writer, _ = await open_raw(http_port, ECHO)
    bomb = compress(b"\0" * (10 * 1024 * 1024))
    assert len(bomb) < 64 * 1024 / 4
    writer.write(compressed_frame(bomb))
    assert await close_code(reader) == 1009
    writer.close()


@pytest.mark.gen_test
async def test_data_that_does_not_inflate_is_closed_with_1002(app, http_server, http_port):
    reader, writer, _ = await open_raw(http_port, ECHO)
    writer.write(compressed_frame(b"\xff\xff\xff\xff not deflate"))
    assert await close_code(reader) == 1002
    writer.close()


@pytest.mark.gen_test
async def test_no_inflater_outlives_a_message(app, http_server, http_port):
    """The server agreed to client_no_context_takeover: a message that refers back to the one
    before cannot inflate, which shows the server kept nothing of it."""
    reader, writer, _ = await open_raw(http_port, ECHO)
    context = zlib.compressobj(6, zlib.DEFLATED, -15)
    writer.write(compressed_frame(compress(MESSAGE.encode(), context)))
    _, payload = await read_raw_frame(reader)
    assert inflate(payload) == MESSAGE.encode()
    writer.write(compressed_frame(compress(MESSAGE.encode(), context)))
    assert await close_code(reader) == 1002
    writer.close()


@pytest.mark.gen_test
async def test_a_ping_between_the_fragments_of_a_compressed_message(app, http_server, http_port):
    reader, writer, _ = await open_raw(http_port, ECHO)
    data = compress(MESSAGE.encode())
    half = len(data) // 2
    writer.write(compressed_frame(data[:half], fin=False))
    writer.write(client_frame(0x9, b"ping"))
    writer.write(raw_frame(0x80 | 0x0, data[half:]))
    assert await read_raw_frame(reader) == (0x8A, b"ping")
    _, payload = await read_raw_frame(reader)
    assert inflate(payload) == MESSAGE.encode()
    writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("offer", "frame"),
    [
        (None, raw_frame(0x80 | RSV1 | 0x1, b"not agreed")),  # no extension agreed
        (OFFER, raw_frame(0x80 | RSV1 | 0x9, b"ping")),  # a control frame cannot be compressed
        (OFFER, raw_frame(0x01, b"a") + raw_frame(0x80 | RSV1 | 0x0, b"b")),  # nor a continuation
        (OFFER, raw_frame(0x80 | 0x20 | 0x1, b"rsv2")),  # no extension uses RSV2
    ],
)
async def test_reserved_bits_nobody_agreed_on_are_closed_with_1002(app, http_server, http_port, offer, frame):
    reader, writer, _ = await open_raw(http_port, ECHO, offer)
    writer.write(frame)
    assert await close_code(reader) == 1002
    writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"metrics_url": "/metrics"}])
async def test_the_compressions_are_counted(app, ws_url, http_port, publisher, prefix):
    async with (
        websockets.connect(ws_url("news", "subscribe-broadcast")) as a,
        websockets.connect(ws_url("news", "subscribe-broadcast")) as b,
    ):
        await publisher.publish(f"{prefix}:broadcast:news", MESSAGE)
        assert await recv(a) == await recv(b) == MESSAGE

        async def counted() -> bool:
            body = (await AsyncHTTPClient().fetch(f"http://127.0.0.1:{http_port}/metrics")).body.decode()
            return 'ws4redis_frames_compressed_total{process="0"} 1.0' in body

        await wait_until(counted, timeout=2000 * MS, what="one compression counted")
