"""Channels publisher: ``group_send`` through the configured layer, one per stdin line.

A Channels app cannot be fed with a bare Redis PUBLISH: RedisChannelLayer keeps group
membership in sorted sets and queues per channel (its ``group_send`` is a Lua script), and
RedisPubSubChannelLayer wraps messages in msgpack on its own channel names. So the message
goes through the same layer the server uses, from this separate process, exactly as a
Django view or task would send it. Run from the repo root with the Channels venv's python:
``python -m bench.targets.channels_project.publisher GROUP``.
"""

import asyncio
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.targets.channels_project.settings")

import django

django.setup()

from channels.layers import get_channel_layer  # noqa: E402

from bench import payload  # noqa: E402


async def main(group):
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        text = payload.make(int(line)).decode()
        await layer.group_send(group, {"type": "relay.message", "text": text})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
