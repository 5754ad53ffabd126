"""Prometheus metrics: the endpoint parses with prometheus_client's own parser and its numbers match
what the test did, against a real server and a real Redis."""

from __future__ import annotations

import pytest
import redis.asyncio as aredis
import websockets
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

from ws4redis_tornado.config import Config
from ws4redis_tornado.exceptions import ConfigurationError
from ws4redis_tornado.metrics import FANOUT_BUCKETS, FanoutHistogram

from ..utils import wait_until
from ..wsclient import recv, refused_with

SOCKETS = 5
MESSAGES = 4


@pytest.fixture
def config_options() -> dict:
    return {"metrics_url": "/metrics"}


@pytest.fixture
def publisher(io_loop, redis_url):
    client = aredis.Redis.from_url(redis_url)
    yield client
    io_loop.run_sync(client.aclose)


async def scrape(http_port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of the endpoint, by name and labels (without the process label)."""
    response = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{http_port}/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            assert sample.labels.pop("process") == "0"
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@pytest.mark.gen_test
async def test_the_numbers_match_what_the_sockets_did(ws_url, http_port, publisher, prefix):
    sockets = [await websockets.connect(ws_url("news", "subscribe-broadcast")) for _ in range(SOCKETS)]
    await refused_with(websockets.connect(ws_url("a:b", "subscribe-broadcast")))
    for number in range(MESSAGES):
        assert (
            await publisher.publish(f"{prefix}:broadcast:news", f"m{number}") == 1
        )  # one pub/sub connection per process
    for ws in sockets:
        assert [await recv(ws) for _ in range(MESSAGES)] == [f"m{number}" for number in range(MESSAGES)]
    samples = await scrape(http_port)
    assert samples[("ws4redis_sockets_open", ())] == SOCKETS
    assert samples[("ws4redis_channels_subscribed", ())] == 1
    assert samples[("ws4redis_redis_connected", ())] == 1
    assert samples[("ws4redis_handshakes_total", (("status", "101"),))] == SOCKETS
    assert samples[("ws4redis_handshakes_total", (("status", "400"),))] == 1
    assert samples[("ws4redis_redis_messages_total", ())] == MESSAGES
    assert samples[("ws4redis_frames_delivered_total", ())] == SOCKETS * MESSAGES
    assert samples[("ws4redis_bytes_sent_total", ())] == SOCKETS * MESSAGES * (2 + len("m0"))
    assert samples[("ws4redis_persisted_fetches_total", ())] >= 1
    assert samples[("ws4redis_fanout_seconds_count", ())] >= 1
    assert (
        samples[("ws4redis_fanout_seconds_bucket", (("le", "+Inf"),))] == samples[("ws4redis_fanout_seconds_count", ())]
    )
    for ws in sockets[:2]:
        await ws.close(1000)
    await wait_until(lambda: _open_sockets(http_port, SOCKETS - 2), what="two sockets closed")
    samples = await scrape(http_port)
    assert samples[("ws4redis_closes_total", (("code", "1000"),))] == 2
    for ws in sockets[2:]:
        await ws.close()


async def _open_sockets(http_port: int, expected: int) -> bool:
    return (await scrape(http_port))[("ws4redis_sockets_open", ())] == expected


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"metrics_url": "/metrics", "publish_rate": 2, "publish_burst": 2}])
async def test_client_publishes_and_rate_limit_closes_are_counted(ws_url, http_port):
    async with websockets.connect(ws_url("chat", "publish-broadcast")) as ws:
        await ws.send("one")
        await ws.send("two")
        await wait_until(lambda: _count(http_port, "ws4redis_client_publishes_total", 2), what="two publishes")
        for _ in range(5):
            await ws.send("too fast")
        await ws.wait_closed()
    await wait_until(lambda: _count(http_port, "ws4redis_rate_limit_closes_total", 1), what="the rate-limit close")


async def _count(http_port: int, name: str, expected: float) -> bool:
    return (await scrape(http_port)).get((name, ())) == expected


def test_the_histogram_puts_each_time_in_its_bucket_and_lists_them_cumulatively():
    histogram = FanoutHistogram()
    for seconds in (0.0001, 0.0005, 0.003, 7.0):
        histogram.observe(seconds)
    buckets = dict(histogram.cumulative())
    assert buckets["0.0005"] == 2 and buckets["0.005"] == 3 and buckets["2.5"] == 3 and buckets["+Inf"] == 4
    assert len(buckets) == len(FANOUT_BUCKETS) + 1
    assert histogram.count == 4 and histogram.total == pytest.approx(7.0036)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"metrics_url": "metrics"}, "metrics_url"),
        ({"metrics_url": "/ws/metrics"}, "metrics_url"),
        ({"metrics_port": 0}, "metrics_port"),
        ({"metrics_port": 70000}, "metrics_port"),
    ],
)
def test_a_wrong_metrics_setting_is_refused_naming_it(options, field):
    with pytest.raises(ConfigurationError) as error:
        Config(**options)
    assert error.value.field == field
