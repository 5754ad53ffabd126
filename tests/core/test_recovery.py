"""Recovery end to end: a real server, a real Redis, websocket clients that ask for ids and come back."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest
import websockets

from ws4redis_tornado.frames import CloseCode
from ws4redis_tornado.history import history_key, recover_value
from ws4redis_tornado.messages import RedisMessage
from ws4redis_tornado.publisher import Publisher, apublish

from ..utils import MS, wait_until, within
from ..wsclient import assert_silent, closed_with, recv, refused_with

HISTORY = 5


@pytest.fixture
def config_options() -> dict:
    return {"history_size": HISTORY, "reconnect_max_delay": 0.2}


@pytest.fixture
def publish(redis, config):
    """Publish as RedisPublisher does, to the broadcast channel of a facility; return each id's message."""

    async def send(facility: str, *messages: str | bytes | RedisMessage, expire: int | None = None) -> None:
        for message in messages:
            await apublish(redis, [f"{config.prefix}:broadcast:{facility}"], message, config=config, expire=expire)

    return send


def unwrap(data: str | bytes) -> tuple[dict, str | bytes]:
    """The header and the message of a frame sent to a client that opted in."""
    if isinstance(data, str):
        header, _, message = data.partition("\n")
        return json.loads(header), message
    header_bytes, _, payload = data.partition(b"\n")
    return json.loads(header_bytes), payload


async def opening(ws) -> tuple[list[tuple[str | None, str | bytes]], dict]:
    """The (id, message) pairs a socket gets before its report, and the report."""
    received = []
    while True:
        data = await recv(ws)
        if isinstance(data, str) and "\n" not in data:
            return received, json.loads(data)["recovery"]
        header, message = unwrap(data)
        received.append((header["id"], message))


def recovering(ws_url, facility: str, positions: dict | None = None, query: str = "subscribe-broadcast") -> str:
    value = "" if positions is None else "=" + quote(recover_value(positions))
    return ws_url(facility, f"{query}&recover{value}")


@pytest.mark.gen_test
async def test_a_plain_client_sees_exactly_todays_frames(ws_url, publish):
    await publish("plain", "persisted")
    async with websockets.connect(ws_url("plain", "subscribe-broadcast")) as ws:
        assert await recv(ws) == "persisted"
        await publish("plain", "live", RedisMessage(b"\x00\x01", binary=True))
        assert await recv(ws) == "live"
        assert await recv(ws) == b"\x00\x01"
        await assert_silent(ws)


@pytest.mark.gen_test
async def test_a_first_connection_gets_the_persisted_message_with_its_id_then_where_it_stands(ws_url, publish):
    await publish("first", "one", "two")
    async with websockets.connect(recovering(ws_url, "first")) as ws:
        received, report = await opening(ws)
        [(two_id, message)] = received
        assert message == "two"
        assert report == {"broadcast": {"id": two_id, "recovered": True}}
        await publish("first", "three")
        header, message = unwrap(await recv(ws))
        assert header["channel"] == "broadcast" and message == "three"
        assert header["id"] > two_id


@pytest.mark.gen_test
async def test_an_empty_channel_stands_before_everything_and_recovers_from_there(ws_url, publish):
    async with websockets.connect(recovering(ws_url, "empty")) as ws:
        received, report = await opening(ws)
    assert received == [] and report == {"broadcast": {"id": "0-0", "recovered": True}}
    await publish("empty", "a", "b")
    async with websockets.connect(recovering(ws_url, "empty", {"broadcast": "0-0"})) as ws:
        received, report = await opening(ws)
    assert [message for _, message in received] == ["a", "b"]
    assert report["broadcast"] == {"id": received[-1][0], "recovered": True}


@pytest.mark.gen_test
async def test_a_reconnecting_client_gets_what_it_missed_once_in_order_and_not_the_persisted_message_again(
    ws_url, publish
):
    await publish("gap", "seen")
    async with websockets.connect(recovering(ws_url, "gap")) as ws:
        [(seen_id, _)], _ = await opening(ws)
    await publish("gap", "m1", "m2", RedisMessage(b"\xffbin\n", binary=True))
    async with websockets.connect(recovering(ws_url, "gap", {"broadcast": seen_id})) as ws:
        received, report = await opening(ws)
        assert [message for _, message in received] == ["m1", "m2", b"\xffbin\n"]
        ids = [stream_id for stream_id, _ in received]
        assert ids == sorted(ids) and seen_id < ids[0]
        assert report == {"broadcast": {"id": ids[-1], "recovered": True}}
        await publish("gap", "live")
        assert unwrap(await recv(ws))[1] == "live"
        await assert_silent(ws)


@pytest.mark.gen_test
async def test_a_gap_longer_than_the_history_is_reported_not_recovered_instead_of_partly_replayed(ws_url, publish):
    await publish("trimmed", "seen")
    async with websockets.connect(recovering(ws_url, "trimmed")) as ws:
        [(seen_id, _)], _ = await opening(ws)
    await publish("trimmed", *(f"m{i}" for i in range(HISTORY + 1)))
    async with websockets.connect(recovering(ws_url, "trimmed", {"broadcast": seen_id})) as ws:
        received, report = await opening(ws)
        assert received == []
        assert report["broadcast"]["recovered"] is False
        # From where it stands now, the client recovers again.
        now = report["broadcast"]["id"]
    await publish("trimmed", "after")
    async with websockets.connect(recovering(ws_url, "trimmed", {"broadcast": now})) as ws:
        received, report = await opening(ws)
    assert [message for _, message in received] == ["after"] and report["broadcast"]["recovered"] is True


@pytest.mark.gen_test
async def test_a_recreated_history_is_not_taken_for_the_old_one(ws_url, publish, redis, config):
    await publish("recreated", "seen")
    async with websockets.connect(recovering(ws_url, "recreated")) as ws:
        [(seen_id, _)], _ = await opening(ws)
    await redis.delete(history_key(f"{config.prefix}:broadcast:recreated"))  # as if it expired
    await publish("recreated", "new")
    async with websockets.connect(recovering(ws_url, "recreated", {"broadcast": seen_id})) as ws:
        received, report = await opening(ws)
    assert received == [] and report["broadcast"]["recovered"] is False


@pytest.mark.gen_test
async def test_the_history_expires_with_its_ttl_and_is_trimmed_to_its_size(publish, redis, config):
    await publish("kept", *(f"m{i}" for i in range(HISTORY * 2)))
    key = history_key(f"{config.prefix}:broadcast:kept")
    assert await redis.xlen(key) == HISTORY
    assert 0 < await redis.ttl(key) <= config.history_seconds


@pytest.mark.gen_test
async def test_a_plain_publish_reaches_every_socket_and_is_not_recoverable(ws_url, redis, config):
    async with (
        websockets.connect(recovering(ws_url, "legacy")) as opted_in,
        websockets.connect(ws_url("legacy", "subscribe-broadcast")) as plain,
    ):
        await opening(opted_in)
        # What a ws4redis process sends: PUBLISH and SET, no history.
        await redis.publish(f"{config.prefix}:broadcast:legacy", "old style")
        assert await recv(plain) == "old style"
        assert unwrap(await recv(opted_in)) == ({"channel": "broadcast", "id": None}, "old style")


@pytest.mark.gen_test
async def test_what_a_socket_publishes_is_kept_and_carries_its_id(ws_url, redis, config):
    async with (
        websockets.connect(recovering(ws_url, "talk")) as listener,
        websockets.connect(ws_url("talk", "publish-broadcast")) as speaker,
    ):
        await opening(listener)
        await speaker.send("hello")
        header, message = unwrap(await recv(listener))
    [(entry_id, _)] = await redis.xrange(history_key(f"{config.prefix}:broadcast:talk"))
    assert message == "hello" and header["id"] == entry_id.decode()


@pytest.mark.gen_test
async def test_the_core_publisher_keeps_history_without_django(ws_url, config, io_loop):
    publisher = Publisher(config)
    try:
        async with websockets.connect(recovering(ws_url, "core")) as ws:
            await opening(ws)
            count = await asyncio.get_running_loop().run_in_executor(
                None, lambda: publisher.publish("core", "from a thread", broadcast=True)
            )
            assert count == 1
            assert await publisher.apublish("core", "from a loop", broadcast=True) == 1
            first, second = unwrap(await recv(ws)), unwrap(await recv(ws))
        assert [first[1], second[1]] == ["from a thread", "from a loop"]
        assert first[0]["id"] < second[0]["id"]
    finally:
        publisher.close()
        await publisher.aclose()


@pytest.mark.gen_test
@pytest.mark.parametrize("value", ["{", '{"broadcast": 5}', '{"broadcast": "x-y"}'])
async def test_a_malformed_recover_value_is_refused_with_400_and_a_reason(ws_url, value):
    response = await refused_with(websockets.connect(ws_url("bad", f"subscribe-broadcast&recover={quote(value)}")))
    assert response.status_code == 400
    assert b"recover" in response.body


@pytest.mark.gen_test
async def test_losing_redis_closes_the_sockets_that_recover_so_they_come_back_for_what_they_missed(
    ws_url, broker, redis, config
):
    async with (
        websockets.connect(recovering(ws_url, "blink")) as opted_in,
        websockets.connect(ws_url("blink", "subscribe-broadcast")) as plain,
    ):
        await opening(opted_in)
        await redis.client_kill_filter(_type="pubsub")
        code, reason = await closed_with(opted_in)
        assert code == CloseCode.SERVICE_RESTART and "recover" in reason
        await wait_until(lambda: broker.connected, 10_000 * MS)
        # Once resubscribed, the plain socket receives again: it was never closed.
        await wait_until(lambda: broker.listener_count(f"{config.prefix}:broadcast:blink") == 1)

        async def delivered() -> bool:
            await redis.publish(f"{config.prefix}:broadcast:blink", "still here")
            try:
                return await within(plain.recv(), 200 * MS) == "still here"
            except TimeoutError:
                return False

        await wait_until(delivered, 5_000 * MS)


class TestHistoryOff:
    @pytest.fixture
    def config_options(self) -> dict:
        return {"history_size": 0}

    @pytest.mark.gen_test
    async def test_a_client_asking_to_recover_is_told_there_is_nothing_to_recover_from(self, ws_url, publish):
        await publish("off", "persisted")
        async with websockets.connect(recovering(ws_url, "off")) as ws:
            received, report = await opening(ws)
        assert received == [(None, "persisted")]
        assert report == {"broadcast": {"id": None, "recovered": True}}
        async with websockets.connect(recovering(ws_url, "off", {"broadcast": None})) as ws:
            received, report = await opening(ws)
        assert report == {"broadcast": {"id": None, "recovered": False}}
