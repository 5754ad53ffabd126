"""Management commands of the test project run as real subprocesses, for tests/bridge/test_commands.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from ..utils import MS

REPO = Path(__file__).resolve().parents[2]


def write_settings(directory: Path, name: str, **values: object) -> str:
    """Write a settings module extending tests.bridge.settings with ``values``; return its name.

    A value of None removes the setting, so the module reads as if it had never been set.
    """
    lines = ["from tests.bridge.settings import *  # noqa: F403", ""]
    for setting, value in values.items():
        lines.append(f"{setting} = {value!r}" if value is not None else f"globals().pop({setting!r}, None)")
    (directory / f"{name}.py").write_text("\n".join(lines) + "\n")
    return name


class ManageCommand:
    """``python -m django <args>`` in its own process group, its output collected in two files.

    The process group lets :meth:`kill` reach the command's children too (forked servers, the
    embedded redis-server), so a failing test leaves nothing behind.
    """

    def __init__(
        self,
        *args: str,
        settings: str,
        directory: Path,
        env: Mapping[str, str | None] = {},
        python: str = sys.executable,
        cwd: Path = REPO,
    ) -> None:
        """``python`` and ``cwd`` let a test run another interpreter (a virtualenv's) away from the checkout."""
        self.command = [python, "-m", "django", *args, f"--settings={settings}", f"--pythonpath={directory}"]
        self.cwd = cwd
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_RUNSERVER_HIDE_WARNING": "true", **env}
        # None unsets a variable.
        self.env = {name: value for name, value in environ.items() if value is not None}
        self.stdout_path = directory / f"{settings}.stdout"
        self.stderr_path = directory / f"{settings}.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManageCommand:
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def poll(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = 15_000 * MS) -> None:
        """Poll ``predicate`` until it holds; fail with the output if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.poll() is not None:
                raise AssertionError(f"exited with {self.poll()} before {what}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:.1f}s:\n{self.output}")
            time.sleep(20 * MS)

    def wait_for_url(self, url: str, timeout: float = 15_000 * MS) -> None:
        """Wait until ``url`` answers with any HTTP status."""
        self.wait_until(lambda: http_status(url) is not None, f"answer from {url}", timeout)

    def wait(self, timeout: float = 15_000 * MS) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout:.1f}s:\n{self.output}") from None

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """Kill the whole process group (SIGKILL) unless it is gone already."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    @property
    def output(self) -> str:
        return f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"

    def __enter__(self) -> ManageCommand:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def http_status(url: str, timeout: float = 1000 * MS) -> int | None:
    """Return the status of a GET to ``url``, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def http_get(url: str, timeout: float = 5000 * MS) -> tuple[int, dict[str, str], bytes]:
    """Return the status, headers and body of a GET to ``url`` (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
