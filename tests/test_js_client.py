"""Run the JavaScript client's tests (tests/js/) with Node's built-in test runner.

The client has no dependencies, but its Node tests drive it with the `ws` package, a dev
dependency pinned in tests/js/package-lock.json: it is installed with `npm ci` into
tests/js/node_modules (git-ignored) when it is not there yet. Its recovery tests run the real
server, ``python -m ws4redis_tornado``, and its presence tests the same server with named users
(tests/js/named_server.py), both with this interpreter, and a private redis-server: both are
named to them through the environment (tests/js/harness.mjs).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ws4redis_tornado.embedded import find_redis_server

REPO_ROOT = Path(__file__).resolve().parent.parent
JS_TESTS = REPO_ROOT / "tests" / "js"
NODE_TIMEOUT = 120
NPM_TIMEOUT = 120


def output_of(exc: subprocess.TimeoutExpired) -> str:
    output = exc.stdout or b""  # always bytes here, whatever text=True says
    return output.decode(errors="replace") if isinstance(output, bytes) else output


def install_dev_dependencies() -> None:
    """Install tests/js's locked dev dependencies unless they are installed."""
    if (JS_TESTS / "node_modules" / "ws" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the Node tests' dev dependency ws (tests/js/package-lock.json)")
    command = [npm, "ci", "--no-audit", "--no-fund"]
    try:
        result = subprocess.run(command, cwd=JS_TESTS, capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"npm ci in tests/js timed out after {NPM_TIMEOUT} s\n{output_of(exc)}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"npm ci in tests/js exited with {result.returncode}:\n{output}"


@pytest.mark.timeout(NPM_TIMEOUT + NODE_TIMEOUT + 30)
def test_js_client() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    install_dev_dependencies()
    try:
        result = subprocess.run(
            [node, "--test", "tests/js/"],
            cwd=REPO_ROOT,
            env={**os.environ, "WS4REDIS_PYTHON": sys.executable, "WS4REDIS_REDIS_SERVER": find_redis_server()},
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"node --test tests/js/ timed out after {NODE_TIMEOUT} s\n{output_of(exc)}")
    if result.returncode != 0:
        print(result.stdout)
        print(result.stderr)
    assert result.returncode == 0, f"node --test tests/js/ exited with {result.returncode}; its output is printed above"
