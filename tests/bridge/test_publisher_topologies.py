"""RedisPublisher and the server's broker on one WS4REDIS_CONNECTION naming Sentinel or a Cluster.

The topologies are real redis-server processes (tests/redis_topologies.py), one per test. The
private Redis of the other tests is not used here: ``live_settings`` is replaced.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from importlib import import_module

import pytest
import websockets
from django.conf import settings
from django.db import connections
from django.test import RequestFactory, override_settings
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from django_bridge import publisher as publisher_module
from django_bridge.publisher import RedisPublisher, close_websockets
from django_bridge.sessions import database_connections
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.exceptions import BrokerUnavailable
from ws4redis_tornado.revocation import CLOSE_ACCESS_CHANGED

from ..redis_topologies import HOST, SentinelSetup
from ..utils import MS, wait_until, within
from ..wsclient import close_code

logger = logging.getLogger(__name__)

FACILITY = "chat"
RECOVERY_BOUND = 15_000 * MS
"""How long after the master dies publishing must reach the sockets again."""


@pytest.fixture
def live_settings(connection, prefix):
    """WS4REDIS_CONNECTION names the test's topology (instead of the private Redis)."""
    with override_settings(WS4REDIS_CONNECTION=connection, WS4REDIS_PREFIX=prefix):
        yield
    publisher_module.close_pools()
    connections.close_all()


async def in_thread(function, *args):
    """Run blocking code (the sync publisher, the ORM) off the IOLoop, as a view would run.

    As at the end of a view's request, the thread's database connections are closed afterwards.
    """

    def as_a_view():
        with database_connections():
            return function(*args)

    return await asyncio.get_running_loop().run_in_executor(None, as_a_view)


def request_of(user, session_key):
    request = RequestFactory().get("/chat/")
    request.user = user
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return request


def connect(url, session=None):
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"} if session else {}
    return websockets.connect(url, additional_headers=headers)


# -- Sentinel --------------------------------------------------------------------------------------


class TestSentinel:
    @pytest.fixture
    def connection(self, sentinel_setup) -> dict:
        return {
            "sentinels": list(sentinel_setup.sentinel_addresses),
            "service_name": sentinel_setup.service_name,
            "socket_timeout": 1,
            "socket_connect_timeout": 1,
        }

    @pytest.mark.gen_test(timeout=60)
    async def test_publishing_reaches_the_sockets_again_after_the_master_is_killed(
        self, sentinel_setup, connection, broker, app, ws_url, anonymous
    ):
        assert broker.config.redis_address.startswith("sentinel://")
        request = request_of(None, anonymous)
        publisher = RedisPublisher(facility=FACILITY, broadcast=True)
        async with connect(ws_url(FACILITY, "subscribe-broadcast")) as ws:
            assert await in_thread(publisher.publish_message, "sync, before") == 1
            assert await within(ws.recv()) == "sync, before"
            assert await publisher.apublish_message("async, before") == 1
            assert await within(ws.recv()) == "async, before"
            assert await in_thread(publisher.fetch_message, request, FACILITY) == b"async, before"

            killed_at = time.monotonic()
            await in_thread(sentinel_setup.master.kill)
            await wait_until(lambda: not broker.connected)

            # Until the sentinels have promoted the replica and the broker has subscribed on it,
            # publishing fails or reaches nobody; then it reaches the socket, which never closed.
            message = await publish_until_heard(lambda m: in_thread(publisher.publish_message, m), "sync")
            recovered_after = time.monotonic() - killed_at
            logger.info("sentinel: the sync publisher reached the socket %.2fs after SIGKILL", recovered_after)
            assert recovered_after < RECOVERY_BOUND
            assert await within(ws.recv()) == message
            assert sentinel_setup.master_address() == sentinel_setup.replica.address

            message = await publish_until_heard(publisher.apublish_message, "async")
            assert await within(ws.recv()) == message
            assert time.monotonic() - killed_at < RECOVERY_BOUND
            assert await publisher.afetch_message(request, FACILITY) == message.encode()
            assert await in_thread(publisher.fetch_message, request, FACILITY) == message.encode()
            assert ws.close_code is None

        # Closing the pools closes the publisher's connections to the sentinels too; named, to tell
        # them from the broker's and from the sentinels' links to each other.
        with override_settings(WS4REDIS_CONNECTION={**connection, "sentinel_kwargs": {"client_name": "publisher"}}):
            await in_thread(publisher.publish_message, "sync, named")
            await publisher.apublish_message("async, named")
            assert await in_thread(clients_named, sentinel_setup, "publisher") >= 2
            await in_thread(publisher_module.close_pools)
            await publisher_module.aclose_pools()
        await wait_until(lambda: clients_named(sentinel_setup, "publisher") == 0)


def clients_named(setup: SentinelSetup, name: str) -> int:
    count = 0
    for sentinel in setup.sentinels:
        with sentinel.client() as client:
            count += sum(1 for each in client.client_list() if each["name"] == name)
    return count


async def publish_until_heard(publish, name: str) -> str:
    """Publish ``name 1``, ``name 2``... until one reports a receiver; return that one.

    A message PUBLISHed while nobody listens is lost, so the one reporting a receiver is the
    first one the socket gets.
    """
    attempts = itertools.count(1)

    async def heard() -> str | None:
        message = f"{name} {next(attempts)}"
        return message if await publish(message) >= 1 else None

    # BrokerUnavailable: no master named yet, or the dead one still named.
    return await wait_until(
        heard, RECOVERY_BOUND, step=50 * MS, ignore=(BrokerUnavailable,), what=f"somebody hearing {name!r}"
    )


# -- Cluster ---------------------------------------------------------------------------------------


class TestCluster:
    @pytest.fixture
    def connection(self, cluster) -> dict:
        return {"startup_nodes": list(cluster.addresses), "socket_timeout": 2}

    @pytest.mark.gen_test(timeout=60)
    async def test_publish_persist_and_fetch_across_slots(self, cluster, broker, app, ws_url, users, john, prefix):
        assert broker.config.redis_address.startswith("cluster://")
        keys = {
            "broadcast": f"{prefix}:broadcast:{FACILITY}",
            "group": f"{prefix}:group:chatters:{FACILITY}",
            "user": f"{prefix}:user:john:{FACILITY}",
        }
        # A plain MGET over these would be refused with CROSSSLOT.
        assert len({key_slot(key.encode()) for key in keys.values()}) > 1
        to_all = RedisPublisher(facility=FACILITY, broadcast=True, groups=["chatters"], users=["john"])
        to_john = RedisPublisher(facility=FACILITY, users=["john"])
        request = request_of(users["john"], john)
        channels = "subscribe-broadcast&subscribe-group&subscribe-user"

        async with connect(ws_url(FACILITY, channels), session=john) as ws:
            # A node counts only its own subscribers: the broker listens on one node of three.
            assert 0 <= await in_thread(to_all.publish_message, "sync hello") <= len(keys)
            assert [await within(ws.recv()) for _ in keys] == ["sync hello"] * len(keys)
            await to_john.apublish_message("async hello")
            assert await within(ws.recv()) == "async hello"

        reader = RedisCluster(host=HOST, port=cluster.nodes[0].port)
        try:
            assert reader.get(keys["broadcast"]) == reader.get(keys["group"]) == b"sync hello"
            assert reader.get(keys["user"]) == b"async hello"
            assert all(0 < reader.ttl(key) <= settings.WS4REDIS_EXPIRE for key in keys.values())
        finally:
            reader.close()

        fetch = RedisPublisher().fetch_message
        for audience, expected in [("broadcast", b"sync hello"), ("group", b"sync hello"), ("user", b"async hello")]:
            assert await in_thread(fetch, request, FACILITY, audience) == expected
            assert await RedisPublisher().afetch_message(request, FACILITY, audience) == expected
        # 'any' reads every key of the request at once, slot by slot.
        assert await in_thread(fetch, request, FACILITY) == b"async hello"
        assert await RedisPublisher().afetch_message(request, FACILITY) == b"async hello"
        # What the publisher persisted, a socket opened later is sent.
        async with connect(ws_url(FACILITY, channels), session=john) as late:
            received = sorted([await within(late.recv()) for _ in keys])
        assert received == ["async hello", "sync hello", "sync hello"]


# -- nobody there ----------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    ("connection", "address"),
    [
        (
            # No retries: redis-py's default retries each sentinel for about 4 s.
            {"sentinels": [(HOST, free_port())], "sentinel_kwargs": {"retry": Retry(NoBackoff(), 0)}},
            r"sentinel://127\.0\.0\.1:\d+/mymaster",
        ),
        ({"startup_nodes": [(HOST, free_port())], "socket_connect_timeout": 1}, r"cluster://127\.0\.0\.1:\d+"),
    ],
)
async def test_an_unreachable_topology_is_reported_with_its_address(address):
    publisher = RedisPublisher(facility=FACILITY, broadcast=True)
    with pytest.raises(BrokerUnavailable, match=f"cannot publish: redis unreachable at {address}"):
        await in_thread(publisher.publish_message, "lost")
    with pytest.raises(BrokerUnavailable, match=f"cannot publish: redis unreachable at {address}"):
        await publisher.apublish_message("lost")
    with pytest.raises(BrokerUnavailable, match=f"cannot read: redis unreachable at {address}"):
        await publisher.afetch_message(None, FACILITY)

    @pytest.mark.gen_test(timeout=60)
    async def test_close_websockets_reaches_the_broker_whichever_node_it_listens_on(self, broker, app, ws_url, john):
        async with connect(ws_url(FACILITY, "subscribe-user"), session=john) as ws:
            await in_thread(lambda: close_websockets(users=["john"]))
            assert await close_code(ws, 5000 * MS) == CLOSE_ACCESS_CHANGED
