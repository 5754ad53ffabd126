"""README.md as a newcomer reads it: its runnable program runs, its command lines parse.

A README example that drifts from the code fails here instead of on a reader's machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
import redis
import websockets

from ws4redis_tornado.__main__ import parse_args
from ws4redis_tornado.embedded import free_port

from .processes import ManagedProcess
from .utils import MS
from .wsclient import refused_with

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
RUNS_MARKER = "<!-- tests/test_readme.py runs this program"


def runnable_blocks() -> list[str]:
    """The ```python blocks of the README marked as programs to run."""
    return re.findall(re.escape(RUNS_MARKER) + r".*?-->\n```python\n(.*?)```\n", README, re.S)


def core_server_command_lines() -> list[str]:
    """The arguments of each ``python -m ws4redis_tornado`` line in the README's shell blocks."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        lines += re.findall(r"python -m ws4redis_tornado\b(.*)", block)
    return lines


def test_the_readme_program_is_examples_token_server():
    [program] = runnable_blocks()
    assert program == (REPO / "examples" / "token_server.py").read_text(encoding="utf-8")


def test_the_readme_shows_the_core_server_command_lines():
    assert len(core_server_command_lines()) >= 2, "the synopsis and the demo"


@pytest.mark.parametrize("arguments", core_server_command_lines())
def test_each_command_line_of_the_core_server_in_the_readme_parses(arguments):
    # "[--prefix app]" marks an optional argument: take them all. argparse exits on what it refuses.
    parse_args(shlex.split(arguments.replace("[", "").replace("]", "")))


def test_the_readme_program_relays_between_websockets_through_redis(tmp_path, redis_url):
    [program] = runnable_blocks()
    path = tmp_path / "readme_program.py"
    path.write_text(program, encoding="utf-8")
    port = free_port()
    program = ManagedProcess(
        [sys.executable, str(path)],
        log_dir=tmp_path,
        log_name="readme_program",
        merge_output=True,
        env={**os.environ, "REDIS_URL": redis_url, "PORT": str(port)},
        cwd=tmp_path,
        ready_url=f"http://127.0.0.1:{port}/health",
        ready_status=200,
    )
    try:
        with program:
            asyncio.run(relay_for_john(port))
    finally:
        with redis.Redis.from_url(redis_url) as client:
            client.delete("user:john:inbox")  # persisted by the publishing socket
    assert "Traceback" not in program.stdout, program.output


async def relay_for_john(port: int) -> None:
    base = f"ws://127.0.0.1:{port}/ws/inbox"
    refused = await refused_with(websockets.connect(f"{base}?token=wrong&subscribe-user"))
    assert refused.status_code == 403
    async with (
        websockets.connect(f"{base}?token=john-secret&subscribe-user") as inbox,
        websockets.connect(f"{base}?token=john-secret&publish-user") as sender,
    ):
        await sender.send("hello john")
        assert await asyncio.wait_for(inbox.recv(), 5000 * MS) == "hello john"
