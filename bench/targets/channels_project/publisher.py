"""Channels publisher: ``group_send`` through the configured layer, one per stdin line.

A Channels app cannot be fed with a bare Redis PUBLISH: RedisChannelLayer keeps group
membership in sorted sets and queues per channel (its ``group_send`` is a Lua script), and
RedisPubSubChannelLayer wraps messages in msgpack on its own channel names. So the message
goes through the same layer the server uses, from this separate process, exactly as a
Django view or task would send it. Run from the repo root with the Channels venv's python:
``python -m bench.targets.channels_project.publisher GROUP``. Each ``group_send`` is timed and a
``stats`` line is answered as by the other publishers (see ``bench/roundtrips.py``).
"""

import asyncio
import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.targets.channels_project.settings")

import django

django.setup()

from channels.layers import get_channel_layer  # noqa: E402

from bench import payload, roundtrips  # noqa: E402


async def main(group):
    layer = get_channel_layer()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    trips = roundtrips.RoundTrips()
    make = payload.maker_from_env()  # the kind the harness chose, in BENCH_PAYLOAD
    while line := await reader.readline():
        if line == roundtrips.STATS:
            sys.stdout.buffer.write(json.dumps(trips.take()).encode() + b"\n")
            sys.stdout.buffer.flush()
            continue
        text = make(int(line)).decode()
        start = time.monotonic_ns()
        await layer.group_send(group, {"type": "relay.message", "text": text})
        trips.ns.append(time.monotonic_ns() - start)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
