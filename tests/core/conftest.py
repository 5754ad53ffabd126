"""Fixtures for the core: a started broker and the application the http_server fixture serves."""

from __future__ import annotations

import pytest
import redis.asyncio as aredis

from ws4redis_tornado import Broker, Config, WebSocketApplication


@pytest.fixture
def config_options() -> dict:
    """Override with ``@pytest.mark.parametrize("config_options", [{...}])``."""
    return {}


@pytest.fixture
def app_options() -> dict:
    """Override with ``@pytest.mark.parametrize("app_options", [{...}])``."""
    return {}


@pytest.fixture
def config(redis_url, prefix, config_options) -> Config:
    options = {"redis_url": redis_url, "prefix": prefix, **config_options}
    options.setdefault("redis_options", {"client_name": f"ws4redis-{prefix}"})
    return Config(**options)


@pytest.fixture
def redis(io_loop, redis_url):
    """An asyncio redis-py client of the test's Redis, for publishing and reading as a Django view would."""
    client = aredis.Redis.from_url(redis_url)
    yield client
    io_loop.run_sync(client.aclose)


@pytest.fixture
def broker(io_loop, config):
    broker = Broker(config)
    io_loop.run_sync(broker.start)
    yield broker
    io_loop.run_sync(broker.aclose)


@pytest.fixture
def app(broker, app_options) -> WebSocketApplication:
    application = WebSocketApplication(broker, **app_options)
    application.start()
    yield application
    application.stop()


@pytest.fixture
def ws_url(app, http_server, http_port, config):
    """Build the websocket URL of a facility on the running server."""

    def build(facility: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{http_port}{config.websocket_url}{facility}" + (f"?{query}" if query else "")

    return build
