"""The heartbeat: one process-wide timer, never published, never delivered as a message."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aredis
import websockets

from ws4redis_tornado.heartbeat import Heartbeat
from ws4redis_tornado.timers import JITTER, periodic

from ..utils import MS, quiet_window, wait_until, within

HEARTBEAT = "--heartbeat--"


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("config_options", [{"heartbeat": HEARTBEAT, "heartbeat_interval": 0.05}])
async def test_every_socket_gets_heartbeats_from_one_timer(ws_url, app):
    assert isinstance(app.heartbeat, Heartbeat) and app.heartbeat.running
    timers_before = _periodic_callbacks()
    async with (
        websockets.connect(ws_url("a", "subscribe-broadcast")) as first,
        websockets.connect(ws_url("b", "subscribe-broadcast")) as second,
    ):
        # Opening sockets adds no timer of its own.
        assert _periodic_callbacks() == timers_before
        for ws in (first, second):
            beats = [await within(ws.recv(), 2000 * MS) for _ in range(3)]
            assert beats == [HEARTBEAT] * 3


@pytest.mark.gen_test
async def test_timers_spread_their_periods_without_pythons_global_random_generator():
    # An application's tests may seed that generator, and Hypothesis watches it; a server running
    # in the test process (django_bridge.testing) must not draw from it at every tick.
    state = random.getstate()
    ticks = []
    timers = [periodic(lambda: ticks.append(1), 0.002) for _ in range(3)]
    for timer in timers:
        timer.start()
    await wait_until(lambda: len(ticks) >= 15)
    for timer in timers:
        timer.stop()
    assert random.getstate() == state
    for timer in timers:
        assert abs(timer.callback_time - 2.0) <= 2.0 * JITTER / 2


def _periodic_callbacks() -> int:
    import gc

    from tornado.ioloop import PeriodicCallback

    return sum(1 for obj in gc.get_objects() if type(obj) is PeriodicCallback and obj.is_running())


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("config_options", [{"heartbeat": HEARTBEAT, "heartbeat_interval": 60}])
async def test_heartbeats_are_neither_published_nor_delivered(ws_url, config):
    channel = f"{config.prefix}:broadcast:room"
    client = aredis.Redis.from_url(config.redis_url)
    try:
        async with websockets.connect(ws_url("room", "subscribe-broadcast&publish-broadcast&echo")) as ws:
            await ws.send(HEARTBEAT)  # what ws4redis' JavaScript client sends
            await ws.send("a real message")
            assert await within(ws.recv()) == "a real message"
            assert await client.get(channel) == b"a real message"
            # A heartbeat string published by someone else is not a message either.
            await client.publish(channel, HEARTBEAT)
            await client.publish(channel, "after")
            assert await within(ws.recv()) == "after"
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_no_heartbeat_configured_means_no_timer(app):
    assert app.heartbeat is None


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("config_options", [{"ping_interval": 0.05, "ping_timeout": 0.05}])
async def test_pings_come_from_one_process_timer_not_a_task_per_socket(ws_url, app):
    async with (
        websockets.connect(ws_url("a", "subscribe-broadcast")) as first,
        websockets.connect(ws_url("b", "subscribe-broadcast")) as second,
    ):
        assert app.pinger is not None and app.pinger.running
        names = [task.get_coro().__qualname__ for task in asyncio.all_tasks()]
        assert not any("periodic_ping" in name for name in names), names
        # Both clients answer pings (websockets does so by itself), so both stay open well past
        # several ping timeouts: a window in which nothing may happen.
        await quiet_window(0.5)
        await within(first.ping())
        await within(second.ping())


def test_ping_action_timeline():
    from ws4redis_tornado.keepalive import ping_action

    # opened at t=0, interval 10, timeout 5
    assert ping_action(now=9, last_ping=0, pong_pending=False, interval=10, timeout=5) == "wait"
    assert ping_action(now=10, last_ping=0, pong_pending=False, interval=10, timeout=5) == "ping"
    assert ping_action(now=14, last_ping=10, pong_pending=True, interval=10, timeout=5) == "wait"
    assert ping_action(now=15, last_ping=10, pong_pending=True, interval=10, timeout=5) == "close"
    assert ping_action(now=15, last_ping=10, pong_pending=False, interval=10, timeout=5) == "wait"
