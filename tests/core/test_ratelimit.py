"""Publishing is rate-limited per socket."""

import pytest
import websockets

from ws4redis_tornado.ratelimit import TokenBucket

from ..utils import MS, within


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
        with pytest.raises(websockets.ConnectionClosed) as info:
            await within(ws.recv(), 3000 * MS)
        assert info.value.rcvd.code == 1008
    # The burst went through; the message over the limit did not.
    assert redis_client.get(f"{prefix}:broadcast:chat") == b"m2"
