"""The Node tests' dev dependencies (tests/js/package-lock.json), installed with ``npm ci`` into
tests/js/node_modules (git-ignored) when they are missing or the lock file changed since.

npm keeps no record of which lock file a node_modules came from that it would check on its own,
so the installation leaves one: the lock file's SHA-256 in node_modules/.installed-lock.sha256.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
JS_TESTS = REPO_ROOT / "tests" / "js"
NODE_MODULES = JS_TESTS / "node_modules"
LOCK_STAMP = NODE_MODULES / ".installed-lock.sha256"
NPM_TIMEOUT = 120


def output_of(exc: subprocess.TimeoutExpired) -> str:
    output = exc.stdout or b""  # always bytes here, whatever text=True says
    return output.decode(errors="replace") if isinstance(output, bytes) else output


def lock_digest() -> str:
    return hashlib.sha256((JS_TESTS / "package-lock.json").read_bytes()).hexdigest()


def installed_digest() -> str | None:
    try:
        return LOCK_STAMP.read_text().strip()
    except FileNotFoundError:
        return None


def install_dev_dependencies() -> None:
    """Run ``npm ci`` in tests/js unless node_modules was installed from the current lock file."""
    digest = lock_digest()
    if installed_digest() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the Node tests' dev dependencies (tests/js/package-lock.json)")
    command = [npm, "ci", "--no-audit", "--no-fund"]
    try:
        result = subprocess.run(command, cwd=JS_TESTS, capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"npm ci in tests/js timed out after {NPM_TIMEOUT} s\n{output_of(exc)}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"npm ci in tests/js exited with {result.returncode}:\n{output}"
    LOCK_STAMP.write_text(digest + "\n")
