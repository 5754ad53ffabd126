"""Run Tornado coroutine tests under pytest: a fresh IOLoop per test and a live HTTP server.

It replaces pytest-tornado, which imports ``pkg_resources`` (gone from current setuptools) and
makes its loop current with ``IOLoop.make_current()``, deprecated since Tornado 6.2 and a warning
on Python 3.12+. The fixture and marker names are pytest-tornado's, so the tests read the same:
``io_loop``, ``http_port``, ``http_server`` (serves the test's ``app`` fixture), ``base_url``,
``http_client`` and ``@pytest.mark.gen_test(timeout=...)``. The loop is set up the way Tornado's
own ``AsyncTestCase`` does it, with public APIs only.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.testing import bind_unused_port

DEFAULT_TIMEOUT = 5.0


def _default_timeout() -> float:
    """pytest-tornado's default: ``ASYNC_TEST_TIMEOUT`` from the environment, else 5 seconds."""
    try:
        return float(os.environ["ASYNC_TEST_TIMEOUT"])
    except (KeyError, ValueError):
        return DEFAULT_TIMEOUT


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("tornado").addoption(
        "--async-test-timeout",
        type=float,
        default=_default_timeout(),
        help="seconds a @gen_test test may run when its marker names no timeout",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gen_test(timeout=None): run the coroutine test on the test's own IOLoop")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Give every coroutine test the ``io_loop`` fixture, even when it does not ask for it."""
    if item.get_closest_marker("gen_test") and "io_loop" not in item.fixturenames:
        item.fixturenames.append("io_loop")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a ``gen_test`` coroutine to completion on ``io_loop``, within the marker's timeout."""
    marker = pyfuncitem.get_closest_marker("gen_test")
    if marker is None:
        return None
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        raise TypeError(f"{pyfuncitem.name} is marked gen_test but is not an async def function")
    timeout = marker.kwargs.get("timeout", pyfuncitem.config.getoption("async_test_timeout"))
    io_loop: IOLoop = pyfuncitem.funcargs["io_loop"]
    arguments = {name: pyfuncitem.funcargs[name] for name in _required_arguments(pyfuncitem.obj)}
    io_loop.run_sync(lambda: pyfuncitem.obj(**arguments), timeout=timeout)
    return True


def _required_arguments(function: Any) -> list[str]:
    """The parameters the test function must be given: its fixtures and parametrized names."""
    parameters = inspect.signature(function).parameters.values()
    return [parameter.name for parameter in parameters if parameter.default is parameter.empty]


@pytest.fixture
def io_loop() -> Iterator[IOLoop]:
    """A new IOLoop, set as the thread's asyncio loop while the test runs (as ``AsyncTestCase`` does)."""
    loop = IOLoop(make_current=False)
    asyncio.set_event_loop(loop.asyncio_loop)  # type: ignore[attr-defined]
    try:
        yield loop
    finally:
        _cancel_leftover_tasks(loop)
        asyncio.set_event_loop(None)
        loop.close(all_fds=True)


def _cancel_leftover_tasks(loop: IOLoop) -> None:
    """Cancel the tasks a test left running and let them unwind, so none is destroyed pending."""
    pending = [task for task in asyncio.all_tasks(loop.asyncio_loop) if not task.done()]  # type: ignore[attr-defined]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_sync(lambda: asyncio.wait(pending))


@pytest.fixture
def _unused_socket() -> Iterator[tuple[socket.socket, int]]:
    """A listening socket on a free port of 127.0.0.1, closed after the test if no server took it."""
    sock, port = bind_unused_port()
    yield sock, port
    sock.close()


@pytest.fixture
def http_port(_unused_socket: tuple[socket.socket, int]) -> int:
    """The port ``http_server`` listens on (127.0.0.1)."""
    return _unused_socket[1]


@pytest.fixture
def base_url(http_port: int) -> str:
    return f"http://localhost:{http_port}"


@pytest.fixture
def http_server(
    request: pytest.FixtureRequest, io_loop: IOLoop, _unused_socket: tuple[socket.socket, int]
) -> Iterator[HTTPServer]:
    """An HTTPServer serving the test's ``app`` fixture; its connections are closed afterwards."""
    server = HTTPServer(request.getfixturevalue("app"))
    server.add_socket(_unused_socket[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=request.config.getoption("async_test_timeout"))


@pytest.fixture
def http_client(http_server: HTTPServer) -> Iterator[AsyncHTTPClient]:
    """The loop's AsyncHTTPClient, closed after the test."""
    client = AsyncHTTPClient()
    yield client
    client.close()
