"""The load client's permessage-deflate path against a real websockets server that compresses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from bench import payload
from bench.client import LoadClient
from tests.utils import wait_until

FRAME_HEADER = 4  # FIN/opcode byte, 126, two length bytes: a 1,024-byte message


async def fan_out(messages: list[bytes], sockets: int, *, offer: bool, **deflate: Any) -> dict[str, Any]:
    """Connect ``sockets`` load-client sockets, send each message to all, return what the client saw."""
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        await ws.wait_closed()

    extensions = [ServerPerMessageDeflateFactory(**deflate)]
    async with serve(handler, "127.0.0.1", 0, compression=None, extensions=extensions) as server:
        port = server.sockets[0].getsockname()[1]
        client = LoadClient(publisher_cmd=[], payload_kind=payload.JSON1K)
        connected = await client.connect(n=sockets, port=port, path="/ws/bench", inflight=sockets, deflate=offer)
        await wait_until(lambda: len(connections) == sockets, what="the server to hold every socket")
        received: list[bytes] = []
        client.take_frame = lambda body, now: received.append(body)
        wire0 = client.wire_bytes
        for message in messages:
            for ws in connections:
                await ws.send(message.decode())
        await wait_until(lambda: len(received) == len(messages) * sockets, what="every frame")
        client.close_all()
    return {
        "connected": connected,
        "received": received,
        "inflated": client.inflated,
        "wire_bytes_per_frame": (client.wire_bytes - wire0) / len(received),
    }


@pytest.mark.parametrize("no_context_takeover", [True, False], ids=["no-context-takeover", "context-takeover"])
def test_compressed_frames_are_inflated_to_the_published_bytes(no_context_takeover: bool) -> None:
    messages = [payload.make_json1k(seq) for seq in range(1, 6)]

    seen = asyncio.run(
        fan_out(
            messages,
            3,
            offer=True,
            server_no_context_takeover=no_context_takeover,
            client_no_context_takeover=no_context_takeover,
        )
    )

    assert seen["connected"]["deflate_sockets"] == 3
    assert sorted(seen["received"]) == sorted(messages * 3)
    assert seen["inflated"] == 15
    assert seen["wire_bytes_per_frame"] < 1024 / 2


def test_without_the_offer_the_frames_come_plain_and_the_wire_bytes_are_the_frames() -> None:
    messages = [payload.make_json1k(seq) for seq in range(1, 4)]

    seen = asyncio.run(fan_out(messages, 2, offer=False))

    assert seen["connected"]["deflate_sockets"] == 0
    assert sorted(seen["received"]) == sorted(messages * 2)
    assert seen["inflated"] == 0
    assert seen["wire_bytes_per_frame"] == 1024 + FRAME_HEADER
