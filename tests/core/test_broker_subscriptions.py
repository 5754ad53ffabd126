"""The broker's subscription bookkeeping, confirmations and reconnection, without a network.

The broker's pub/sub connection is replaced by :class:`PubSubStandIn`, a small in-memory stand-in
for redis-py's ``Connection`` that records the commands the broker writes and hands it the
replies a test queues: Redis's side of the conversation is played by the test. That is a fake of
a Redis connection, which this suite otherwise avoids. It is here because the same behaviours
are covered against a real redis-server, where the timing cannot be controlled, in:

- tests/core/test_broker.py: test_a_channel_is_subscribed_once_and_released_by_its_last_listener,
  test_unsubscribe_then_subscribe_again_keeps_the_channel,
  test_a_failing_listener_does_not_stop_the_others and
  test_an_unconfirmed_subscription_is_refused_and_forgotten;
- tests/core/test_resilience.py: test_500_sockets_on_500_facilities_share_at_most_3_redis_connections
  (each channel subscribed once) and
  test_delivery_resumes_after_redis_restarts_without_clients_reconnecting (the resubscription,
  and one warning per outage).

The stand-in is reached only the way the broker reaches its connection: through
``RedisTopology.pubsub_connection`` (patched) and the broker's ``_pubsub`` attribute. Replies are
fed either through the reader task or straight to ``Broker._dispatch``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from ws4redis_tornado import broker as broker_module
from ws4redis_tornado.broker import Broker, Delivery
from ws4redis_tornado.config import Config
from ws4redis_tornado.connections import RedisTopology
from ws4redis_tornado.exceptions import BrokerUnavailable
from ws4redis_tornado.revocation import control_channel

from ..utils import MS, quiet_window, wait_until
from .test_broker import Collector

PREFIX = "unit"
NEWS, ALERTS, SPORTS = (f"{PREFIX}:broadcast:{name}".encode() for name in ("news", "alerts", "sports"))
CONTROL = control_channel(PREFIX).encode()
HEARTBEAT = "--heartbeat--"


class PubSubStandIn:
    """What the broker uses of redis-py's pub/sub ``Connection``, in memory.

    ``written`` holds every command the broker sent, as tuples. ``reply(...)`` queues what the
    broker reads next; ``break_connection()`` makes the pending read fail as a reset would.
    """

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.written: list[tuple[Any, ...]] = []
        self._replies: asyncio.Queue[Any] = asyncio.Queue()

    async def connect(self) -> None:
        if self.refuse:
            raise ConnectionRefusedError("the stand-in refuses connections")

    async def disconnect(self) -> None:
        self.break_connection()

    def pack_commands(self, commands: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return list(commands)

    async def send_packed_command(self, packed: list[tuple[Any, ...]], check_health: bool = True) -> None:
        self.written.extend(packed)

    async def send_command(self, *args: Any, **options: Any) -> None:
        self.written.append(args)

    async def read_response(self, timeout: float | None = None) -> Any:
        try:
            reply = await asyncio.wait_for(self._replies.get(), timeout)
        except TimeoutError:
            return None
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def reply(self, *parts: Any) -> None:
        self._replies.put_nowait(list(parts))

    def break_connection(self) -> None:
        self._replies.put_nowait(ConnectionResetError("the stand-in's connection was reset"))


class StandInRedis:
    """Hands out the broker's pub/sub connections; while ``down``, each one refuses to connect."""

    def __init__(self) -> None:
        self.connections: list[PubSubStandIn] = []
        self.down = False

    def pubsub_connection(self) -> PubSubStandIn:
        self.connections.append(PubSubStandIn(refuse=self.down))
        return self.connections[-1]

    @property
    def current(self) -> PubSubStandIn:
        return self.connections[-1]

    def confirm(self, *keys: bytes) -> None:
        """Answer a SUBSCRIBE of ``keys`` on the current connection, as Redis does: one reply per key."""
        for count, key in enumerate(keys, start=1):
            self.current.reply(b"subscribe", key, count)


@pytest.fixture
def redis_side(monkeypatch) -> StandInRedis:
    side = StandInRedis()
    monkeypatch.setattr(RedisTopology, "pubsub_connection", lambda topology: side.pubsub_connection())
    return side


@pytest.fixture
def broker(io_loop, redis_side) -> Iterator[Broker]:
    """A broker reading and writing its stand-in connection, as ``start()`` leaves it.

    ``start()`` itself also PINGs the command pool, which needs a network: this sets up what
    it sets up for the pub/sub connection, the reader and the writer.
    """
    config = Config(redis_url="redis://127.0.0.1:1/0", prefix=PREFIX, heartbeat=HEARTBEAT, reconnect_max_delay=0.05)
    broker = Broker(config)

    async def start_on_the_stand_in() -> None:
        broker._pubsub = broker._topology.pubsub_connection()
        await broker._pubsub.connect()
        broker._connected = True
        broker._reader = asyncio.create_task(broker._read_forever())
        broker._writer = asyncio.create_task(broker._write_forever())

    io_loop.run_sync(start_on_the_stand_in)
    yield broker
    io_loop.run_sync(broker.aclose)


def channels(*keys: bytes) -> list[str]:
    return [key.decode() for key in keys]


async def written(redis_side: StandInRedis, *commands: tuple[Any, ...]) -> None:
    """Wait until the current connection holds exactly ``commands``, in order."""
    await wait_until(lambda: redis_side.current.written == list(commands), what=f"{commands} written")


# -- reference counting ----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_the_first_listener_of_a_channel_subscribes_it_and_the_last_one_unsubscribes_it(broker, redis_side):
    one, two = Collector(), Collector()
    first = asyncio.ensure_future(broker.subscribe(one, channels(NEWS)))
    await written(redis_side, ("SUBSCRIBE", NEWS))
    redis_side.confirm(NEWS)
    await first
    await broker.subscribe(two, channels(NEWS))
    assert broker.channel_count == 1 and broker.listener_count(NEWS.decode()) == 2

    broker.unsubscribe(one, channels(NEWS))
    broker._dispatch([b"message", NEWS, b"only two"])
    assert (one.received, two.received) == ([], [(NEWS, b"only two")])

    broker.unsubscribe(two, channels(NEWS))
    assert broker.channel_count == 0
    await written(redis_side, ("SUBSCRIBE", NEWS), ("UNSUBSCRIBE", NEWS))


@pytest.mark.gen_test
async def test_a_listener_leaving_a_channel_it_never_joined_changes_nothing(broker, redis_side):
    listener = Collector()
    subscribing = asyncio.ensure_future(broker.subscribe(listener, channels(NEWS)))
    redis_side.confirm(NEWS)
    await subscribing
    broker.unsubscribe(Collector(), channels(NEWS, ALERTS))
    assert broker.listener_count(NEWS.decode()) == 1
    # Commands are written in order: an UNSUBSCRIBE would come before the next SUBSCRIBE.
    subscribing = asyncio.ensure_future(broker.subscribe(listener, channels(SPORTS)))
    await written(redis_side, ("SUBSCRIBE", NEWS), ("SUBSCRIBE", SPORTS))
    redis_side.confirm(SPORTS)
    await subscribing


@pytest.mark.gen_test
async def test_a_channel_left_and_joined_again_is_unsubscribed_then_subscribed_again(broker, redis_side):
    first, second = Collector(), Collector()
    subscribing = asyncio.ensure_future(broker.subscribe(first, channels(NEWS)))
    redis_side.confirm(NEWS)
    await subscribing
    broker.unsubscribe(first, channels(NEWS))
    again = asyncio.ensure_future(broker.subscribe(second, channels(NEWS)))
    await written(redis_side, ("SUBSCRIBE", NEWS), ("UNSUBSCRIBE", NEWS), ("SUBSCRIBE", NEWS))
    assert not again.done()
    redis_side.current.reply(b"unsubscribe", NEWS, 0)
    redis_side.confirm(NEWS)
    await again
    redis_side.current.reply(b"message", NEWS, b"still here")
    await wait_until(lambda: second.received == [(NEWS, b"still here")])
    assert first.received == []


# -- confirmations ---------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_channel_left_before_its_confirmation_and_joined_again_waits_for_its_own(broker, redis_side):
    # The first SUBSCRIBE's reply comes before Redis runs the UNSUBSCRIBE and the second
    # SUBSCRIBE: taken for the second one's, it would let a message published in between be lost.
    first, second = Collector(), Collector()
    subscribing = asyncio.ensure_future(broker.subscribe(first, channels(NEWS)))
    await written(redis_side, ("SUBSCRIBE", NEWS))
    broker.unsubscribe(first, channels(NEWS))
    await subscribing  # nobody waits for a channel its listener left
    again = asyncio.ensure_future(broker.subscribe(second, channels(NEWS)))
    await written(redis_side, ("SUBSCRIBE", NEWS), ("UNSUBSCRIBE", NEWS), ("SUBSCRIBE", NEWS))
    redis_side.confirm(NEWS)
    redis_side.current.reply(b"unsubscribe", NEWS, 0)
    await quiet_window(20 * MS)
    assert not again.done()
    redis_side.confirm(NEWS)
    await again


@pytest.mark.gen_test
async def test_subscribe_returns_once_redis_confirmed_every_new_channel(broker, redis_side):
    subscribing = asyncio.ensure_future(broker.subscribe(Collector(), channels(NEWS, ALERTS)))
    await written(redis_side, ("SUBSCRIBE", NEWS, ALERTS))
    broker._dispatch([b"subscribe", NEWS, 1])
    await quiet_window(20 * MS)  # for a return that must wait for the second confirmation
    assert not subscribing.done()
    broker._dispatch([b"subscribe", ALERTS, 2])
    await subscribing


@pytest.mark.gen_test
async def test_listeners_joining_an_unconfirmed_channel_share_its_one_subscribe_and_confirmation(broker, redis_side):
    waiting = [asyncio.ensure_future(broker.subscribe(Collector(), channels(NEWS))) for _ in range(3)]
    await written(redis_side, ("SUBSCRIBE", NEWS))
    assert not any(task.done() for task in waiting)
    broker._dispatch([b"subscribe", NEWS, 1])
    await asyncio.gather(*waiting)
    # Joining a confirmed channel writes nothing and waits for nothing.
    await broker.subscribe(Collector(), channels(NEWS))
    assert redis_side.current.written == [("SUBSCRIBE", NEWS)]


@pytest.mark.gen_test
async def test_an_unconfirmed_subscription_times_out_as_broker_unavailable_and_unregisters_the_listener(
    broker, redis_side, monkeypatch
):
    monkeypatch.setattr(broker_module, "_CONFIRM_TIMEOUT", 50 * MS)
    listener = Collector()
    with pytest.raises(BrokerUnavailable, match="did not confirm the subscription"):
        await broker.subscribe(listener, channels(NEWS))
    assert broker.channel_count == 0
    await written(redis_side, ("SUBSCRIBE", NEWS), ("UNSUBSCRIBE", NEWS))
    broker._dispatch([b"message", NEWS, b"too late"])
    assert listener.received == []

    # The late replies change nothing: the next listener subscribes anew and waits for its own.
    broker._dispatch([b"subscribe", NEWS, 1])
    broker._dispatch([b"unsubscribe", NEWS, 0])
    again = asyncio.ensure_future(broker.subscribe(Collector(), channels(NEWS)))
    await written(redis_side, ("SUBSCRIBE", NEWS), ("UNSUBSCRIBE", NEWS), ("SUBSCRIBE", NEWS))
    assert not again.done()
    redis_side.confirm(NEWS)
    await again


# -- dispatch --------------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_message_goes_once_to_every_listener_of_its_channel_and_heartbeats_to_none(broker, redis_side):
    news, both, alerts = Collector(), Collector(), Collector()
    subscribing = asyncio.gather(
        broker.subscribe(news, channels(NEWS)),
        broker.subscribe(both, channels(NEWS, ALERTS)),
        broker.subscribe(alerts, channels(ALERTS)),
    )
    await wait_until(lambda: len(redis_side.current.written) == 2)
    redis_side.confirm(NEWS, ALERTS)
    await subscribing

    redis_side.current.reply(b"message", NEWS, b"read by the reader")
    broker._dispatch([b"message", ALERTS, HEARTBEAT.encode()])
    broker._dispatch([b"message", SPORTS, b"nobody listens"])
    broker._dispatch([b"message", ALERTS, b"fed to dispatch"])
    await wait_until(lambda: news.received)
    assert news.received == [(NEWS, b"read by the reader")]
    assert alerts.received == [(ALERTS, b"fed to dispatch")]
    assert sorted(both.received) == [(ALERTS, b"fed to dispatch"), (NEWS, b"read by the reader")]


@pytest.mark.gen_test
async def test_a_failing_listener_is_logged_and_the_others_still_get_the_message(broker, redis_side, caplog):
    class Broken:
        def on_broker_message(self, delivery: Delivery) -> None:
            raise RuntimeError("boom")

    good = Collector()
    subscribing = asyncio.gather(broker.subscribe(Broken(), channels(NEWS)), broker.subscribe(good, channels(NEWS)))
    redis_side.confirm(NEWS)
    await subscribing
    broker._dispatch([b"message", NEWS, b"m"])
    assert good.received == [(NEWS, b"m")]
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Broken" in error.getMessage() and error.getMessage().endswith("failed to take a message")
    assert error.exc_info is not None and str(error.exc_info[1]) == "boom"


# -- reconnection ----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_reconnection_subscribes_what_is_registered_then_in_one_command(broker, redis_side):
    stays, leaves, late = Collector(), Collector(), Collector()
    subscribing = asyncio.gather(broker.subscribe(stays, channels(NEWS)), broker.subscribe(leaves, channels(ALERTS)))
    redis_side.confirm(NEWS, ALERTS)
    await subscribing

    redis_side.down = True
    redis_side.current.break_connection()
    await wait_until(lambda: not broker.connected)
    # While Redis is away: one listener leaves, another arrives (and waits for its confirmation).
    broker.unsubscribe(leaves, channels(ALERTS))
    arriving = asyncio.ensure_future(broker.subscribe(late, channels(SPORTS)))
    await wait_until(lambda: len(redis_side.connections) >= 3, what="two attempts to reconnect")
    assert not arriving.done()

    redis_side.down = False
    await wait_until(lambda: broker.connected)
    # What was queued meanwhile is dropped: the resubscription names exactly what is registered.
    assert redis_side.current.written == [("SUBSCRIBE", CONTROL, NEWS, SPORTS)]
    redis_side.confirm(CONTROL, NEWS, SPORTS)
    await arriving
    redis_side.current.reply(b"message", SPORTS, b"after the outage")
    await wait_until(lambda: late.received == [(SPORTS, b"after the outage")])


@pytest.mark.gen_test
async def test_an_outage_is_one_warning_however_many_attempts_fail_and_the_next_outage_another(
    broker, redis_side, caplog
):
    caplog.set_level(logging.DEBUG, logger="ws4redis_tornado.broker")
    subscribing = asyncio.ensure_future(broker.subscribe(Collector(), channels(NEWS)))
    redis_side.confirm(NEWS)
    await subscribing

    await outage_of_three_failed_attempts(broker, redis_side)
    assert broker_messages(caplog, logging.WARNING) == [
        "lost the redis pub/sub connection to redis://127.0.0.1:1/0 (the stand-in's connection was reset);"
        " 1 channels will be resubscribed, retrying with backoff up to 0.1s"
    ]
    assert broker_messages(caplog, logging.INFO) == [
        "reconnected to redis at redis://127.0.0.1:1/0; resubscribed 1 channels"
    ]
    assert len(broker_messages(caplog, logging.DEBUG)) >= 2  # "still unreachable", once per failed attempt

    await outage_of_three_failed_attempts(broker, redis_side)
    assert len(broker_messages(caplog, logging.WARNING)) == 2
    assert len(broker_messages(caplog, logging.INFO)) == 2


async def outage_of_three_failed_attempts(broker: Broker, redis_side: StandInRedis) -> None:
    """Reset the connection, refuse the next three attempts, and wait until the broker is back."""
    attempts = len(redis_side.connections)
    redis_side.down = True
    redis_side.current.break_connection()
    await wait_until(lambda: len(redis_side.connections) >= attempts + 3, what="three failed attempts")
    redis_side.down = False
    await wait_until(lambda: broker.connected)


def broker_messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ws4redis_tornado.broker" and r.levelno == level]
