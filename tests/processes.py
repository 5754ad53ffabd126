"""Child processes for tests: one managed-process class, and the core server built on it.

Every server a test runs as a real process (``python -m ws4redis_tornado``, Django's management
commands, the chat example, redis-server, the deployment launcher) is a :class:`ManagedProcess`:
its output goes to files that failure messages quote, it runs in a process group of its own
that teardown kills whole, and it is waited for by polling, never by sleeping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self

from ws4redis_tornado.embedded import free_port

from .utils import MS, memory, wait_until_blocking

STOP_TIMEOUT = 15_000 * MS
"""How long a process gets to exit after SIGTERM before its group is killed."""


class ManagedProcess:
    """A command (``argv``) run in its own process group, its stdout and stderr written to files.

    ``start()`` launches it and returns once :meth:`wait_ready` holds: by default once
    ``ready_url`` answers (with ``ready_status``, if given), or at once without a URL. ``stop()``
    sends SIGTERM, waits, then SIGKILLs the whole group, so forked servers and an embedded
    redis-server go too; leaving a ``with`` block stops it. The files live in ``log_dir``, or in
    a temporary directory that lasts as long as this object; a restart appends to them.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_dir: Path | None = None,
        log_name: str = "process",
        merge_output: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_url: str | None = None,
        ready_status: int | None = None,
        ready_timeout: float = 15_000 * MS,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_url = ready_url
        self.ready_status = ready_status
        self.ready_timeout = ready_timeout
        if log_dir is None:
            log_dir = Path(tempfile.mkdtemp(prefix="ws4redis-process-"))
            weakref.finalize(self, shutil.rmtree, log_dir, ignore_errors=True)
        self.log_dir = log_dir
        self.stdout_path = log_dir / f"{log_name}.{'log' if merge_output else 'stdout'}"
        self.stderr_path = None if merge_output else log_dir / f"{log_name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    # -- running -----------------------------------------------------------------------------

    def launch(self) -> Self:
        """Start the command and return at once."""
        mode = "ab" if self.process is not None else "wb"
        with contextlib.ExitStack() as files:
            stdout = files.enter_context(self.stdout_path.open(mode))
            stderr: IO[bytes] | int = subprocess.STDOUT
            if self.stderr_path is not None:
                stderr = files.enter_context(self.stderr_path.open(mode))
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        return self

    def start(self) -> Self:
        """Start the command and return once it is ready; kill it and fail with its output if it is not."""
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self) -> None:
        """Return once the process serves: once ``ready_url`` answers, or at once without one."""
        if self.ready_url is not None:
            self.wait_for_url(self.ready_url, status=self.ready_status, timeout=self.ready_timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the process, SIGKILL its group after ``timeout``; return the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.send_signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group now, unless it is gone already: as in a crash."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to exit and return its status; fail with its output if it does not."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout:.1f}s:\n{self.output}") from None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def poll(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def memory(self) -> dict[str, int]:
        """The process's ``Vm*`` figures in bytes (see :func:`tests.utils.memory`)."""
        return memory(self.pid)

    @property
    def stdout(self) -> str:
        """What the process wrote to stdout so far (and to stderr, with ``merge_output``)."""
        return _read(self.stdout_path)

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr so far; empty with ``merge_output``."""
        return "" if self.stderr_path is None else _read(self.stderr_path)

    @property
    def output(self) -> str:
        """All the process wrote, labelled, for assertion messages."""
        if self.stderr_path is None:
            return f"--- output\n{self.stdout}"
        return f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"

    # -- waiting -----------------------------------------------------------------------------

    def wait_until(
        self,
        predicate: Callable[[], Any],
        what: str,
        timeout: float = 15_000 * MS,
        *,
        ignore: tuple[type[BaseException], ...] = (),
    ) -> Any:
        """Poll ``predicate`` until it holds; fail with the output if the process exits or time runs out."""

        def holds_while_running() -> Any:
            if outcome := predicate():
                return outcome
            if self.poll() is not None:
                raise AssertionError(f"exited with {self.poll()} before {what}:\n{self.output}")
            return None

        return wait_until_blocking(holds_while_running, timeout, what=what, ignore=ignore, details=lambda: self.output)

    def wait_for_url(self, url: str, *, status: int | None = None, timeout: float = 15_000 * MS) -> None:
        """Wait until ``url`` answers: with ``status``, or with any HTTP status if None."""
        if status is None:
            self.wait_until(lambda: http_status(url) is not None, f"an answer from {url}", timeout)
        else:
            self.wait_until(lambda: http_status(url) == status, f"{status} from {url}", timeout)

    def wait_for_output(self, text: str, timeout: float = 15_000 * MS) -> None:
        """Wait until ``text`` appears in what the process wrote."""
        self.wait_until(lambda: text in self.stdout or text in self.stderr, f"{text!r} in the output", timeout)


class ServerProcess(ManagedProcess):
    """``python -m ws4redis_tornado`` on a free loopback port (or ``port``); ready once /health answers 200.

    ``host=None`` leaves the server on its default address; without ``redis_url`` or ``prefix``
    the server uses its defaults (a test that expects it to refuse its arguments needs neither).
    """

    def __init__(
        self,
        *args: str,
        redis_url: str | None = None,
        prefix: str | None = None,
        host: str | None = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        command = [sys.executable, "-m", "ws4redis_tornado", "--port", str(self.port)]
        command += [] if host is None else ["--host", host]
        command += [] if redis_url is None else ["--redis", redis_url]
        command += [] if prefix is None else ["--prefix", prefix]
        super().__init__(
            [*command, *args], log_name="ws4redis", ready_url=f"http://127.0.0.1:{self.port}/health", ready_status=200
        )


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


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
