"""Run the JavaScript client's tests (tests/js/) with Node's built-in test runner."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_TIMEOUT = 120


@pytest.mark.timeout(NODE_TIMEOUT + 30)
def test_js_client():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    try:
        result = subprocess.run(
            [node, "--test", "tests/js/"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout or b""  # always bytes here, whatever text=True says
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        pytest.fail(f"node --test tests/js/ timed out after {NODE_TIMEOUT} s\n{output}")
    if result.returncode != 0:
        print(result.stdout)
        print(result.stderr)
    assert result.returncode == 0, f"node --test tests/js/ exited with {result.returncode}; its output is printed above"
