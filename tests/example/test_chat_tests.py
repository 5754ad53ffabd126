"""The chat example's own tests (examples/chatserver/chat/tests.py) pass as a user runs them.

They are written with django_bridge.testing and run by Django's test runner in a subprocess, from
the repository root, with no Redis configured and no redis-server on PATH: the live server starts
the embedded one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from ..chat_example import MANAGE, REPO_ROOT

TIMEOUT = 120


def test_manage_py_test_runs_the_chat_tests_with_no_redis_configured(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WS4REDIS_", "CHATSERVER_", "DJANGO_")) and key != "RUN_MAIN"
    }
    env["PATH"] = str(tmp_path)  # an empty directory: no redis-server but the embedded extra's
    result = subprocess.run(
        [sys.executable, str(MANAGE), "test"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    ran = re.search(r"^Ran (\d+) tests? ", result.stderr, re.M)
    assert ran and int(ran.group(1)) >= 8, output
    assert "Traceback" not in output, output
