"""Management commands of the test project run as real subprocesses, for tests/bridge/test_commands.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..processes import ManagedProcess

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


class ManageCommand(ManagedProcess):
    """``python -m django <args>``, its output in ``<settings>.stdout`` and ``.stderr`` in ``directory``.

    ``start()`` returns at once: a test waits for what its command does (``wait_for_url``,
    ``wait_until``). Leaving a ``with`` block kills the process group at once (forked servers, the
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
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_RUNSERVER_HIDE_WARNING": "true", **env}
        super().__init__(
            [python, "-m", "django", *args, f"--settings={settings}", f"--pythonpath={directory}"],
            log_dir=directory,
            log_name=settings,
            # None unsets a variable.
            env={name: value for name, value in environ.items() if value is not None},
            cwd=cwd,
        )

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
