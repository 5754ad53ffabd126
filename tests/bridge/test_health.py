"""WS4REDIS_HEALTH_URL served by the Django application: the same round trips as the core's, and
WS4REDIS_HEALTH_DETAIL.

Each test has a Redis of its own: ``DEBUG SLEEP`` makes it hang for everybody connected to it.
"""

from __future__ import annotations

import json

import pytest
import websockets
from django.core.checks import run_checks
from django.test import override_settings

from django_bridge import conf

from ..redis_topologies import HOST, RedisProcess, redis_hangs

HEALTH_URL = "/ws4redis/health"


@pytest.fixture
def redis_url(hangable_redis_server: RedisProcess) -> str:
    return f"redis://{HOST}:{hangable_redis_server.port}/0"


async def health(http_client, http_url) -> tuple[int, dict]:
    """The status and JSON body of the health check."""
    response = await http_client.fetch(http_url(HEALTH_URL), raise_error=False)
    return response.code, json.loads(response.body)


@pytest.mark.gen_test(timeout=30)
async def test_the_health_url_answers_503_while_redis_hangs(app, http_client, http_url, hangable_redis_server):
    code, body = await health(http_client, http_url)
    assert (code, body["redis"]) == (200, "up")
    async with redis_hangs(hangable_redis_server, 3):
        code, body = await health(http_client, http_url)
        assert (code, body["redis"]) == (503, "down")
    code, body = await health(http_client, http_url)
    assert (code, body["redis"]) == (200, "up")


@pytest.mark.gen_test
async def test_the_health_url_shows_no_counts_by_default(app, http_client, http_url, ws_url):
    async with websockets.connect(ws_url("counted", "subscribe-broadcast")):
        assert await health(http_client, http_url) == (200, {"redis": "up"})


@pytest.mark.gen_test
@pytest.mark.parametrize("bridge_settings", [{"WS4REDIS_HEALTH_DETAIL": True}])
async def test_ws4redis_health_detail_adds_the_numbers_of_sockets_and_channels(app, http_client, http_url, ws_url):
    async with websockets.connect(ws_url("counted", "subscribe-broadcast")):
        assert await health(http_client, http_url) == (200, {"redis": "up", "sockets": 1, "channels": 1})


def test_ws4redis_health_detail_is_off_by_default_and_becomes_the_config():
    assert conf.get_config().health_detail is False
    with override_settings(WS4REDIS_HEALTH_DETAIL=True):
        assert conf.get_config().health_detail is True


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_wrong_ws4redis_health_detail_is_a_system_check_error(value):
    with override_settings(DEBUG=True, WS4REDIS_HEALTH_DETAIL=value):
        [error] = [m for m in run_checks() if m.id.startswith("django_bridge.")]
    assert error.id == "django_bridge.E016"
    assert error.msg.startswith(f"WS4REDIS_HEALTH_DETAIL = {value!r}")
    assert error.hint.startswith("Set WS4REDIS_HEALTH_DETAIL to")
