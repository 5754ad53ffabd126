"""examples/deploy/stack.py, loaded from its file: examples/ holds programs, not an importable package.

Importing it as ``examples.deploy.stack`` would rely on a namespace package, which any installed
distribution shipping a top-level ``examples`` package would shadow.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PATH = Path(__file__).resolve().parents[2] / "examples" / "deploy" / "stack.py"


def _load(name: str = "ws4redis_deploy_stack") -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PATH)
    assert spec is not None and spec.loader is not None, f"cannot load {PATH}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


stack = _load()
DEPLOY_DIR: Path = stack.DEPLOY_DIR
Service = stack.Service
Stack = stack.Stack
find_haproxy = stack.find_haproxy
find_prometheus = stack.find_prometheus
has_prometheus_exporter = stack.has_prometheus_exporter
http_get = stack.http_get
