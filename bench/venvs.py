"""Virtualenvs for the peers, built by the benchmark itself under ``bench/.venvs/``.

The peers pin old or conflicting dependencies (uWSGI + gevent for ws4redis 0.6.0; daphne,
Twisted and channels_redis for Channels), so each gets its own venv instead of polluting the
project's. Versions are pinned so that reruns measure the same software.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV_DIR = ROOT / ".venvs"

SPECS: dict[str, list[str]] = {
    "ws4redis": [
        "django-websocket-redis==0.6.0",
        "uWSGI==2.0.31",
        "gevent==26.9.0",
        "Django==5.2.19",
        "redis==8.1.0",
        "hiredis==3.5.0",
    ],
    "channels": [
        "channels==4.3.2",
        "channels-redis==4.3.0",
        "daphne==4.2.3",
        "Django==5.2.19",
        "redis==8.1.0",
        "hiredis==3.5.0",
    ],
}


def path(name: str) -> Path:
    return VENV_DIR / name


def bin_path(name: str, program: str) -> Path:
    return path(name) / "bin" / program


def ensure(name: str, log: Path) -> Path:
    """Create venv ``name`` with its pinned packages unless it already has exactly them."""
    venv = path(name)
    marker = venv / ".bench-spec"
    wanted = "\n".join(SPECS[name]) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return venv
    print(f"[setup] building {venv} ({', '.join(SPECS[name])})", flush=True)
    with open(log, "ab") as out:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=out)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *SPECS[name]],
            check=True,
            stdout=out,
            stderr=out,
            timeout=1800,
        )
    marker.write_text(wanted)
    return venv
