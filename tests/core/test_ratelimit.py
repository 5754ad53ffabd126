"""Publishing is rate-limited per socket."""

import pytest
import websockets

from ws4redis_tornado.ratelimit import TokenBucket

from ..rawws import client_frame, handshake, read_frame
from ..utils import MS, within
from ..wsclient import assert_silent, close_code

OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x1, 0x8, 0x9, 0xA


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(now=0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(now=0.05) is False  # half a token
    assert bucket.take(now=0.1) is True
    # Idle time refills up to the burst, never beyond.
    assert [bucket.take(now=100.0) for _ in range(4)] == [True, True, True, False]


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"publish_rate": 5, "publish_burst": 3}])
async def test_a_socket_publishing_too_fast_is_closed_with_1008(ws_url, redis_client, prefix):
    async with websockets.connect(ws_url("chat", "publish-broadcast")) as ws:
        for i in range(4):
            await ws.send(f"m{i}")
        assert await close_code(ws, 3000 * MS) == 1008
    # The burst went through; the message over the limit did not.
    assert redis_client.get(f"{prefix}:broadcast:chat") == b"m2"


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"publish_rate": 5, "publish_burst": 3}])
@pytest.mark.parametrize("opcode", [OPCODE_PING, OPCODE_PONG, OPCODE_TEXT])
async def test_a_socket_flooding_frames_is_closed_with_1008(http_port, config, ws_url, opcode):
    # Pings, unsolicited pongs and messages count alike, even on a socket that may not publish.
    ws_url("flood")  # starts the server
    reader, writer = await handshake("127.0.0.1", http_port, f"{config.websocket_url}flood?subscribe-broadcast")
    try:
        writer.write(b"".join(client_frame(opcode, b"x") for _ in range(50)))
        answers = []
        while not answers or answers[-1][0] != OPCODE_CLOSE:
            answers.append(await within(read_frame(reader), 3000 * MS))
        code = int.from_bytes(answers[-1][1][:2], "big")
        assert code == 1008
        # Within the burst, pings were answered.
        pongs = [payload for answer_opcode, payload in answers if answer_opcode == OPCODE_PONG]
        assert len(pongs) == (3 if opcode == OPCODE_PING else 0)
    finally:
        writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"publish_rate": 5, "publish_burst": 3, "ping_interval": 0.05}])
async def test_pongs_answering_the_servers_pings_are_free(ws_url):
    async with websockets.connect(ws_url("quiet", "subscribe-broadcast"), ping_interval=None) as ws:
        # About 20 pings answered with pongs in a second: far past the burst, and still open.
        await assert_silent(ws, 1000 * MS)
        assert ws.state is websockets.State.OPEN
