"""HAProxy's share of a deployment: memory per websocket and CPU per relayed frame, beside the server's.

Starts the deployment example (examples/deploy/stack.py: HAProxy in TCP mode in front of one
``runtornado --ws-only`` process, its own Redis), opens N websockets through HAProxy, and reads
from /proc the RSS of HAProxy and of the websocket process before and after, then their CPU time
while M broadcasts reach every socket. Both processes handle every frame once: the server writes
it, HAProxy reads it from the server and writes it to the client.
"""

from __future__ import annotations

import asyncio
import importlib.util
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import websockets

from bench import procstat

REPO = Path(__file__).resolve().parent.parent
FACILITY = "bench"
MESSAGE = "x" * 100


def _stack_module() -> Any:
    spec = importlib.util.spec_from_file_location("ws4redis_deploy_stack", REPO / "examples" / "deploy" / "stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _fan_out(url: str, redis_url: str, n: int, messages: int, pids: dict[str, int]) -> dict[str, Any]:
    sockets = []
    for start in range(0, n, 200):
        batch = [websockets.connect(url, open_timeout=30, max_queue=None) for _ in range(start, min(n, start + 200))]
        sockets += await asyncio.gather(*batch)
    await asyncio.sleep(1.0)
    rss = {name: procstat.rss_bytes(pid) for name, pid in pids.items()}
    cpu = {name: procstat.cpu_seconds(pid) for name, pid in pids.items()}
    received = 0

    async def drain(ws: Any) -> None:
        nonlocal received
        for _ in range(messages):
            await ws.recv()
            received += 1

    readers = [asyncio.ensure_future(drain(ws)) for ws in sockets]
    with redis.Redis.from_url(redis_url) as client:
        for _ in range(messages):
            client.publish(f"broadcast:{FACILITY}", MESSAGE)
            await asyncio.sleep(0.1)
    await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
    used = {name: procstat.cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
    for ws in sockets:
        await ws.close()
    return {"rss": rss, "cpu": used, "frames": received}


def measure(n: int, messages: int) -> dict[str, Any]:
    stack_module = _stack_module()
    haproxy = stack_module.find_haproxy()
    if haproxy is None:
        raise SystemExit("haproxy is not installed (Debian: apt-get install haproxy)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 3 * n + 1000)), hard))
    with tempfile.TemporaryDirectory(prefix="bench-haproxy-") as workdir:
        stack = stack_module.Stack(
            websocket_servers=1, django_servers=1, haproxy=haproxy, workdir=Path(workdir), prefix=""
        )
        stack.start()
        try:
            [server] = stack.websocket_servers
            pids = {"haproxy": stack.haproxy.pid, "server": server.pid}
            idle = {name: procstat.rss_bytes(pid) for name, pid in pids.items()}
            url = stack.websocket_url + f"{FACILITY}?subscribe-broadcast"
            result = asyncio.run(_fan_out(url, stack.redis_url, n, messages, pids))
        finally:
            stack.stop()
    result["idle_rss"] = idle
    result["n"] = n
    return result


def render(result: dict[str, Any]) -> str:
    n, frames = result["n"], result["frames"]
    lines = [
        f"### HAProxy beside the server: {n:,} websockets, {frames:,} frames of 100 B\n",
        "| process | RSS per websocket (KiB) | CPU per frame (us) |",
        "|---|---|---|",
    ]
    for name in ("haproxy", "server"):
        per_socket = (result["rss"][name] - result["idle_rss"][name]) / n / 1024
        per_frame = result["cpu"][name] / frames * 1e6
        lines.append(f"| {name} | {per_socket:.1f} | {per_frame:.2f} |")
    return "\n".join(lines)


def cmd_haproxy_cost(args: Any) -> None:
    started = time.monotonic()
    result = measure(args.n, args.messages)
    print(render(result))
    print(f"\n(measured in {time.monotonic() - started:.0f} s)")
