"""Run the JavaScript client's tests (tests/js/) with Node's built-in test runner.

The client has no dependencies, but its Node tests drive it with the `ws` package, a dev
dependency pinned in tests/js/package-lock.json and installed with `npm ci` into
tests/js/node_modules (git-ignored) when it is missing or the lock file changed
(tests/node_packages.py). Its recovery tests run the real server, ``python -m ws4redis_tornado``,
and its presence tests the same server with named users (tests/js/named_server.py), both with
this interpreter, and a private redis-server: both are named to them through the environment
(tests/js/harness.mjs).
"""

import os
import shutil
import subprocess
import sys

import pytest

from ws4redis_tornado.embedded import find_redis_server

from .node_packages import NPM_TIMEOUT, REPO_ROOT, install_dev_dependencies, output_of

NODE_TIMEOUT = 120


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
