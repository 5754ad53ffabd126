"""The replaceable subscriber class, with ws4redis' method names."""

from __future__ import annotations

import pytest
import redis.asyncio as aredis
import websockets

from ws4redis_tornado import RedisSubscriber
from ws4redis_tornado.channels import Audience, channel_key

from ..utils import wait_until, within


class AlsoSystemNotices(RedisSubscriber):
    """Adds a site-wide channel to every socket, as a ws4redis subclass might."""

    async def set_pubsub_channels(self, request, channels):
        await super().set_pubsub_channels(request, channels)
        extra = channel_key(Audience.BROADCAST, "system", prefix=self._config.prefix)
        self.subscribe_channels.append(extra)
        await self._broker.subscribe(self._listener, [extra])


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"subscriber_class": AlsoSystemNotices}])
async def test_a_subscriber_subclass_adds_channels(ws_url, config, broker):
    client = aredis.Redis.from_url(config.redis_url)
    try:
        async with websockets.connect(ws_url("chat", "subscribe-broadcast")) as ws:
            await client.publish(f"{config.prefix}:broadcast:system", "maintenance at noon")
            assert await within(ws.recv()) == "maintenance at noon"
        # release() dropped the extra channel too
        await wait_until(lambda: broker.channel_count == 0)
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_a_ws4redis_style_override_of_the_misspelt_name_is_still_called():
    with pytest.warns(DeprecationWarning, match="send_persited_messages"):

        class Legacy(RedisSubscriber):
            async def send_persited_messages(self, websocket):
                websocket.calls.append("legacy")

    class Sink:
        calls: list[str] = []

    sink = Sink()
    await Legacy.send_persisted_messages(object.__new__(Legacy), sink)
    assert sink.calls == ["legacy"]


@pytest.mark.gen_test
async def test_the_misspelt_alias_still_works_with_a_warning():
    calls = []

    class Modern(RedisSubscriber):
        async def send_persisted_messages(self, websocket):
            calls.append(websocket)

    with pytest.warns(DeprecationWarning):
        await Modern.send_persited_messages(object.__new__(Modern), "ws")
    assert calls == ["ws"]
