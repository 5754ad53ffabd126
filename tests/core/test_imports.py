"""Importing the package has no side effects, and it exports what it says."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import ws4redis_tornado

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(ws4redis_tornado.__path__, "ws4redis_tornado.")
    if not name.endswith("__main__")
)

CHECK = """
import asyncio, sys, threading
for name in sys.argv[1:]:
    __import__(name)
assert "django" not in sys.modules, "the core imported Django"
assert threading.active_count() == 1, "a thread was started at import"
loop = asyncio.get_event_loop_policy()._local._loop
assert loop is None, "an event loop was created at import"
"""


def test_importing_every_module_starts_nothing_and_never_imports_django():
    result = subprocess.run([sys.executable, "-c", CHECK, *MODULES], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_exports_exist():
    for module_name in ["ws4redis_tornado", *MODULES]:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"
    assert ws4redis_tornado.__version__
