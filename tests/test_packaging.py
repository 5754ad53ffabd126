"""The release, as a user gets it: build the sdist and the wheel from this checkout, install the
wheel into a new virtualenv, and serve the chat example from that install, away from the checkout.

Marked ``packaging`` (deselect with ``-m "not packaging"``): it needs ``build`` and ``twine`` in
the test environment, and PyPI or pip's cache for the build backend and the wheel's dependencies.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from websockets.sync.client import ClientConnection, connect

from ws4redis_tornado.channels import Audience, channel_key
from ws4redis_tornado.embedded import free_port

from .bridge.processes import REPO, ManageCommand
from .processes import http_get
from .utils import MS

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(300)]

COMMAND_TIMEOUT = 180_000 * MS
"""For one build or one pip install: generous, since pip may have to download."""

WHEEL_MUST_HOLD = {
    "ws4redis_tornado/py.typed",
    "ws4redis_tornado/static/demo.html",
    "django_bridge/static/django_bridge/js/ws4redis.js",
    "django_bridge/static/django_bridge/js/ws4redis.mjs",
    "django_bridge/static/django_bridge/js/ws4redis.d.ts",
    "django_bridge/static/django_bridge/js/ws4redis.d.mts",
    "django_bridge/static/django_bridge/js/package.json",
    "django_bridge/management/commands/runserver.py",
    "django_bridge/management/commands/runtornado.py",
}
PROJECT_URLS = ("Documentation", "Changelog", "Source", "Issues")

# What the sdist ships (see MANIFEST.in), and what the build writes into it of its own.
SDIST_FOLDERS = ("ws4redis_tornado", "django_bridge", "tests", "examples", "docs")
SDIST_FILES = ("LICENSE", "README.md", "CHANGELOG.md", "MANIFEST.in", "pyproject.toml", "setup.cfg", "setup.py")
SDIST_FILES += ("tox.ini", "ruff.toml", "ARCHITECTURE.md", "constraints/lowest.txt")
SDIST_GENERATED = re.compile(r"PKG-INFO|ws4redis_tornado\.egg-info/[^/]+")

CHAT_EXAMPLE = REPO / "examples" / "chatserver"
HEARTBEAT = "--heartbeat--"  # WS4REDIS_HEARTBEAT in the example's settings


@dataclass
class Build:
    sdist: Path
    wheel: Path
    output: str


def run(command: list[str], *, env: Mapping[str, str], cwd: Path) -> str:
    """Run ``command`` in ``cwd``; return its output (stdout and stderr), or fail the test with it.

    Outside the checkout, as ``-m`` puts the working directory first on ``sys.path``.
    """
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert result.returncode == 0, f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout}"
    return result.stdout


def environment(**values: str) -> dict[str, str]:
    """This process's environment without what would point a child at the checkout, plus ``values``.

    PYTHONDONTWRITEBYTECODE goes too: with it, setuptools warns that it skips byte-compiling,
    which it does not do for a wheel anyway.
    """
    dropped = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "RUN_MAIN")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in dropped and not name.startswith(("WS4REDIS_", "CHATSERVER_", "DJANGO_"))
    }
    return {**env, **values}


def require(distribution: str) -> None:
    """Fail, saying what to install, unless ``distribution`` is installed here.

    Not by trying to import it: the checkout's own build/ folder would pass for the build package.
    """
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{distribution} is not installed here: pip install build twine (the test extra has them)")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """``python -m build`` of this checkout, as a release is made: the sdist, then a wheel from it."""
    require("build")
    outdir = tmp_path_factory.mktemp("dist")
    # From the checkout, `-m build` could import its build/ folder rather than the build package.
    command = [sys.executable, "-m", "build", "--outdir", str(outdir), str(REPO)]
    output = run(command, env=environment(), cwd=outdir)
    (sdist,) = outdir.glob("*.tar.gz")
    (wheel,) = outdir.glob("*.whl")
    return Build(sdist=sdist, wheel=wheel, output=output)


@pytest.fixture(scope="module")
def venv(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with the wheel installed, with the extras the README's quick start names."""
    path = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(path)], env=environment(), cwd=path)
    python = str(path / "bin" / "python")
    install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run([*install, f"{build.wheel}[django,embedded]"], env=environment(), cwd=path)
    return path


def test_the_build_prints_no_warning(build: Build) -> None:
    warnings = [line for line in build.output.splitlines() if "warning" in line.lower()]
    assert not warnings, "the build warned:\n" + "\n".join(warnings)


def test_twine_check_passes(build: Build) -> None:
    require("twine")
    command = [sys.executable, "-m", "twine", "check", "--strict", str(build.sdist), str(build.wheel)]
    output = run(command, env={**environment(), "NO_COLOR": "1"}, cwd=build.sdist.parent)
    assert output.count("PASSED") == 2, output


def test_the_wheel_holds_the_packages_their_data_and_the_license_but_no_tests(build: Build) -> None:
    with zipfile.ZipFile(build.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    assert not WHEEL_MUST_HOLD - names, f"missing: {sorted(WHEEL_MUST_HOLD - names)}"
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"ws4redis_tornado", "django_bridge"}
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "License-Expression: MIT" in metadata
    assert [label for label in PROJECT_URLS if f"Project-URL: {label}, https://" not in metadata] == []


def test_the_sdist_holds_exactly_the_tracked_sources_tests_examples_and_docs(build: Build) -> None:
    with tarfile.open(build.sdist) as sdist:
        root = f"{build.sdist.name.removesuffix('.tar.gz')}/"
        shipped = {member.name.removeprefix(root) for member in sdist.getmembers() if member.isfile()}
    shipped = {name for name in shipped if not SDIST_GENERATED.fullmatch(name)}
    expected = shippable_files()
    assert not expected - shipped, f"the sdist lacks: {sorted(expected - shipped)}"
    assert not shipped - expected, f"the sdist ships files git does not track: {sorted(shipped - expected)}"


def shippable_files() -> set[str]:
    """The files that should ship: those git tracks (or, in an unpacked sdist, those present)."""
    paths = [*SDIST_FOLDERS, *SDIST_FILES]
    if (REPO / ".git").exists() and shutil.which("git"):
        listed = run(["git", "ls-files", "-z", "--", *paths], env=environment(), cwd=REPO).split("\0")
        return {name for name in listed if name and (REPO / name).is_file()}
    found = {path for path in SDIST_FILES if (REPO / path).is_file()}
    for folder in SDIST_FOLDERS:
        for file in (REPO / folder).rglob("*"):
            ignored = {"__pycache__", "node_modules"} & set(file.parts)
            if file.is_file() and not ignored and not file.name.endswith((".pyc", ".sqlite3")):
                found.add(file.relative_to(REPO).as_posix())
    return found


def test_the_chat_example_runs_on_the_installed_wheel(
    venv: Path, tmp_path: Path, redis_url: str, prefix: str, redis_client: redis.Redis
) -> None:
    """A copy of the example, outside the checkout, serves its page, the client script from the
    wheel's static files, and a websocket that gets what is published to Redis."""
    example = tmp_path / "chatserver"
    shutil.copytree(CHAT_EXAMPLE, example, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    python = str(venv / "bin" / "python")
    env = environment(
        CHATSERVER_REDIS_URL=redis_url,
        CHATSERVER_REDIS_PREFIX=prefix,
        CHATSERVER_DATABASE=str(tmp_path / "db.sqlite3"),
    )

    where = "import django_bridge, ws4redis_tornado; print(django_bridge.__file__); print(ws4redis_tornado.__file__)"
    for module_file in run([python, "-c", where], env=env, cwd=example).split():
        assert Path(module_file).resolve().is_relative_to(venv.resolve()), module_file

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = ManageCommand(
        *("demo", f"127.0.0.1:{port}", "--noreload"),
        settings="chatserver.settings",
        directory=example,
        env={**dict.fromkeys(os.environ), **env},  # None unsets what env leaves out
        python=python,
        cwd=example,
    )
    with demo:
        demo.wait_for_url(f"{base}/accounts/login/", timeout=30_000 * MS)
        status, _, page = http_get(f"{base}/chat/")
        assert status == 200, demo.output
        script = re.search(rb'<script src="([^"]*/ws4redis\.js)"', page)
        assert script, page.decode(errors="replace")
        status, _, body = http_get(base + script[1].decode())
        assert status == 200, demo.output
        (installed_js,) = venv.glob("lib/python*/site-packages/django_bridge/static/django_bridge/js/ws4redis.js")
        assert body == installed_js.read_bytes()

        channel = channel_key(Audience.BROADCAST, "lobby", prefix=prefix)
        with connect(f"ws://127.0.0.1:{port}/ws/lobby?subscribe-broadcast", origin=base, open_timeout=5000 * MS) as ws:
            # The page's view published a greeting, which Redis keeps: the socket gets it first.
            assert json.loads(next_message(ws))["text"] == "Hello everybody"
            demo.wait_until(lambda: dict(redis_client.pubsub_numsub(channel))[channel.encode()] == 1, "subscription")
            redis_client.publish(channel, json.dumps({"id": "from-redis", "text": "published through Redis"}))
            assert json.loads(next_message(ws)) == {"id": "from-redis", "text": "published through Redis"}


def test_the_chat_examples_tests_pass_on_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    """django_bridge.testing ships in the wheel and needs nothing beyond the django and embedded
    extras: no Redis configured and no redis-server on PATH."""
    example = tmp_path / "chatserver"
    shutil.copytree(CHAT_EXAMPLE, example, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    (tmp_path / "no-programs").mkdir()
    env = environment(PATH=str(tmp_path / "no-programs"))
    result = subprocess.run(
        [str(venv / "bin" / "python"), "manage.py", "test"],
        env=env,
        cwd=example,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^Ran \d+ tests", result.stderr, re.M), result.stderr


def next_message(ws: ClientConnection) -> str:
    """Return the next message that is not a heartbeat."""
    while (message := ws.recv(timeout=5000 * MS)) == HEARTBEAT:
        pass
    assert isinstance(message, str)
    return message
