"""Each process's status report in Redis: written by one timer, read by anybody, stale ones dropped."""

from __future__ import annotations

import logging

import pytest
import redis as sync_redis
import websockets

from ws4redis_tornado.status import STALE_INTERVALS, read_status, status_key

from ..utils import quiet_window, wait_until

INTERVAL = 0.2


@pytest.fixture
def config_options() -> dict:
    return {"status_interval": INTERVAL}


@pytest.fixture
def reader(redis_url):
    with sync_redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.mark.gen_test
async def test_the_report_follows_the_sockets_and_keeps_the_last_warnings(app, ws_url, reader, prefix):
    def report() -> dict | None:
        reports = read_status(reader, prefix=prefix, interval=INTERVAL)
        return reports[0] if reports else None

    async with websockets.connect(ws_url("room", "subscribe-broadcast")):
        await wait_until(lambda: (report() or {}).get("sockets") == 1, what="a report with the socket")
        logging.getLogger("ws4redis_tornado.broker").warning("something odd")
        logging.getLogger("ws4redis_tornado.broker").info("nothing odd")
        await wait_until(lambda: report()["errors"], what="the warning in a report")
    [warning] = report()["errors"]
    assert (warning["level"], warning["logger"], warning["message"]) == (
        "WARNING",
        "ws4redis_tornado.broker",
        "something odd",
    )
    ttl = reader.pttl(status_key(prefix))
    assert 0 < ttl <= INTERVAL * STALE_INTERVALS * 1000
    app.stop()
    await wait_until(
        lambda: report() is None, timeout=INTERVAL * STALE_INTERVALS + 2, what="the stopped process dropped"
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"status_interval": 0}])
async def test_an_interval_of_0_writes_nothing(app, reader, prefix):
    await quiet_window(3 * INTERVAL)  # a reporter would have written at once and again since
    assert not reader.exists(status_key(prefix))
