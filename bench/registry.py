"""The named targets: how to start each server, how to publish to it, whether it is there.

Every server listens on ``ws://127.0.0.1:PORT/ws/<facility>?subscribe-broadcast``. Redis
targets get ``PUBLISH broadcast:<facility>``; Channels targets get ``group_send`` through
their layer (see ``bench/targets/channels_project/publisher.py`` for why). The history targets
publish through ws4redis_tornado's own ``publish`` (``bench/project_publisher.py``), and the
recover target's sockets add ``&recover`` to the URL, so that every message reaches them with
its channel label and stream id in a header line. The deflate target's sockets offer
permessage-deflate in their handshake. The floor target is ``bench/targets/floor.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import venvs

REPO = Path(__file__).resolve().parent.parent
FACILITY = "bench"
HISTORY_SIZE = 100  # messages kept per channel by the history targets

Argv = list[str]


@dataclass(frozen=True)
class Target:
    """A server under test; ``venv`` names a peer virtualenv built on demand."""

    name: str
    summary: str
    server: Callable[[int, str], Argv]  # (port, redis_url) -> argv
    publisher: Callable[[str], Argv]  # (redis_url) -> argv
    env: Callable[[str], dict[str, str]] = field(default=lambda url: {})
    venv: str | None = None
    stop_signal: int = signal.SIGTERM
    project: bool = False  # runs this project's ws4redis_tornado (working tree or --project-rev)
    needs_option: str | None = None  # a command line option that server must offer
    recover: bool = False  # sockets pass ``recover``: every frame is a header line, then the message
    deflate: bool = False  # sockets offer permessage-deflate (the client inflates RSV1 frames)

    @property
    def ws_path(self) -> str:
        """The websocket URL's path and query for this target's sockets."""
        return f"/ws/{FACILITY}?subscribe-broadcast" + ("&recover" if self.recover else "")

    def unavailable(self) -> str | None:
        """Why this target cannot run here, or ``None`` if it can."""
        if not self.project:
            return None
        probe = subprocess.run(
            [*_project_python(), "-m", "ws4redis_tornado", "--help"],
            cwd=REPO,
            env=_project_env(""),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
            return f"`python -m ws4redis_tornado --help` failed: {last}"
        if self.needs_option and self.needs_option not in probe.stdout:
            return f"this ws4redis_tornado has no {self.needs_option} option"
        return None


# Set by use_project_snapshot(): run ws4redis_tornado from an exported commit instead of the
# working tree, so that edits made while a long run is going cannot change what is measured.
_snapshot: Path | None = None


def use_project_snapshot(path: Path) -> None:
    global _snapshot
    _snapshot = path


def _project_python() -> Argv:
    # -P: do not put the cwd (the repo root, holding the working-tree package) on sys.path.
    return [sys.executable, "-P"] if _snapshot else [sys.executable]


def _project_env(url: str) -> dict[str, str]:
    # The snapshot first, then the repo root for the bench package (the project publisher needs both).
    return {"PYTHONPATH": f"{_snapshot}{os.pathsep}{REPO}"} if _snapshot else {}


def _project_server(port: int, url: str) -> Argv:
    return [
        *_project_python(), "-m", "ws4redis_tornado",
        "--host", "127.0.0.1", "--port", str(port), "--redis", url,
    ]  # fmt: skip


def _history_server(port: int, url: str) -> Argv:
    return [*_project_server(port, url), "--history-size", str(HISTORY_SIZE)]


def _project_publisher(history_size: int) -> Callable[[str], Argv]:
    def argv(url: str) -> Argv:
        module = "bench.project_publisher"
        return [*_project_python(), "-m", module, url, f"broadcast:{FACILITY}", str(history_size)]

    return argv


def _lean_server(port: int, url: str) -> Argv:
    return [sys.executable, "-m", "bench.targets.lean_tornado", "--port", str(port), "--redis", url]


def _floor_server(port: int, url: str) -> Argv:
    return [sys.executable, "-m", "bench.targets.floor", "--port", str(port), "--redis", url]


def _redis_publisher(url: str) -> Argv:
    return [sys.executable, "-m", "bench.publisher", url, f"broadcast:{FACILITY}"]


def _ws4redis_server(port: int, url: str) -> Argv:
    venv = venvs.path("ws4redis")
    return [
        str(venvs.bin_path("ws4redis", "uwsgi")),
        "--http-socket", f"127.0.0.1:{port}",
        "--http-websockets",
        "--gevent", "12000",  # async cores: one per websocket, 10k + headroom
        "--virtualenv", str(venv),
        "--chdir", str(REPO),
        "--pythonpath", str(REPO),
        "--module", "bench.targets.ws4redis_project.wsgi:application",
        "--listen", "1024",
        "--die-on-term",
        "--disable-logging",
    ]  # fmt: skip


def _ws4redis_env(drain: bool) -> Callable[[str], dict[str, str]]:
    def env(url: str) -> dict[str, str]:
        return {
            "BENCH_REDIS_URL": url,
            "BENCH_WS4REDIS_DRAIN": "1" if drain else "0",
            "DJANGO_SETTINGS_MODULE": "bench.targets.ws4redis_project.settings",
        }

    return env


def _daphne_server(port: int, url: str) -> Argv:
    return [
        str(venvs.bin_path("channels", "daphne")),
        "-b", "127.0.0.1",
        "-p", str(port),
        "-v", "0",
        "bench.targets.channels_project.asgi:application",
    ]  # fmt: skip


def _channels_publisher(url: str) -> Argv:
    python = str(venvs.bin_path("channels", "python"))
    return [python, "-m", "bench.targets.channels_project.publisher", FACILITY]


def _channels_env(layer: str) -> Callable[[str], dict[str, str]]:
    def env(url: str) -> dict[str, str]:
        return {
            "BENCH_REDIS_URL": url,
            "BENCH_CHANNEL_LAYER": layer,
            "DJANGO_SETTINGS_MODULE": "bench.targets.channels_project.settings",
            "PYTHONPATH": str(REPO),
        }

    return env


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "ws4redis_tornado",
            "this project: python -m ws4redis_tornado",
            server=_project_server,
            publisher=_redis_publisher,
            env=_project_env,
            project=True,
        ),
        Target(
            "ws4redis_tornado_publish",
            "this project, history off, published by ws4redis_tornado.publisher.publish (PUBLISH + SET)",
            server=_project_server,
            publisher=_project_publisher(0),
            env=_project_env,
            project=True,
        ),
        Target(
            "ws4redis_tornado_history",
            f"this project with --history-size {HISTORY_SIZE}, published through the history path (EVAL)",
            server=_history_server,
            publisher=_project_publisher(HISTORY_SIZE),
            env=_project_env,
            project=True,
            needs_option="--history-size",
        ),
        Target(
            "ws4redis_tornado_recover",
            "as ws4redis_tornado_history, with sockets that pass recover (every frame carries a header)",
            server=_history_server,
            publisher=_project_publisher(HISTORY_SIZE),
            env=_project_env,
            project=True,
            needs_option="--history-size",
            recover=True,
        ),
        Target(
            "ws4redis_tornado_deflate",
            "this project, sockets offering permessage-deflate (compare with --payload json1k)",
            server=_project_server,
            publisher=_redis_publisher,
            env=_project_env,
            project=True,
            deflate=True,
        ),
        Target(
            "lean",
            "lean Tornado reference (bench/targets/lean_tornado.py)",
            server=_lean_server,
            publisher=_redis_publisher,
        ),
        Target(
            "floor",
            "the floor: selectors, one send() per socket per message (bench/targets/floor.py)",
            server=_floor_server,
            publisher=_redis_publisher,
        ),
        Target(
            "ws4redis06",
            "django-websocket-redis 0.6.0, uWSGI + gevent, 1 worker (stock subscriber)",
            server=_ws4redis_server,
            publisher=_redis_publisher,
            env=_ws4redis_env(drain=False),
            venv="ws4redis",
        ),
        Target(
            "ws4redis06_drain",
            "django-websocket-redis 0.6.0 with the buffered-message fix (DrainingSubscriber)",
            server=_ws4redis_server,
            publisher=_redis_publisher,
            env=_ws4redis_env(drain=True),
            venv="ws4redis",
        ),
        Target(
            "channels_pubsub",
            "Django Channels 4 on daphne, channels_redis RedisPubSubChannelLayer",
            server=_daphne_server,
            publisher=_channels_publisher,
            env=_channels_env("pubsub"),
            venv="channels",
        ),
        Target(
            "channels_core",
            "Django Channels 4 on daphne, channels_redis RedisChannelLayer",
            server=_daphne_server,
            publisher=_channels_publisher,
            env=_channels_env("core"),
            venv="channels",
        ),
    ]
}


def add_baseline(snapshot: Path, rev: str) -> str:
    """Register the target ``baseline``: ws4redis_tornado exported at ``rev`` into ``snapshot``.

    Measured interleaved with ``ws4redis_tornado`` in one run, it gives before/after ratios for a
    change to the hot path on the same machine at the same moment.
    """

    def server(port: int, url: str) -> Argv:
        # -P: the repo root (the working tree's package) stays off sys.path.
        return [
            sys.executable, "-P", "-m", "ws4redis_tornado",
            "--host", "127.0.0.1", "--port", str(port), "--redis", url,
        ]  # fmt: skip

    TARGETS["baseline"] = Target(
        "baseline",
        f"this project as of {rev}",
        server=server,
        publisher=_redis_publisher,
        env=lambda url: {"PYTHONPATH": str(snapshot)},
    )
    return "baseline"


def project_processes(name: str, processes: int) -> Target:
    """This project served by ``processes`` processes on one port (``--processes``, SO_REUSEPORT)."""

    def server(port: int, url: str) -> Argv:
        return [*_project_server(port, url), "--processes", str(processes)]

    return Target(
        name,
        f"this project: python -m ws4redis_tornado --processes {processes}",
        server=server,
        publisher=_redis_publisher,
        env=_project_env,
        project=True,
        needs_option="--processes",
    )


DEFAULT = ["ws4redis_tornado", "lean", "floor"]
PEERS = ["ws4redis06", "ws4redis06_drain", "channels_pubsub", "channels_core"]
HISTORY = ["ws4redis_tornado_publish", "ws4redis_tornado_history", "ws4redis_tornado_recover"]
