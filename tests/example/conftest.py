"""The chat example served by its own `manage.py demo`, one server per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..chat_example import ChatServer, chat_environment


@pytest.fixture(scope="module")
def chat(request, tmp_path_factory, redis_url) -> Iterator[ChatServer]:
    directory = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    env = chat_environment(directory / "db.sqlite3", redis_url, CHATSERVER_REDIS_PREFIX=directory.name)
    server = ChatServer(env=env, log_dir=directory, command="demo")
    try:
        yield server.start()
    finally:
        server.stop()
