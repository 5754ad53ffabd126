"""``python -m ws4redis_tornado``, unchanged, with a memory snapshot on demand (``SIGUSR1``).

Usage: ``python [-X tracemalloc=25] bench/targets/traced_server.py SNAPSHOT_DIR <arguments of
python -m ws4redis_tornado>``. Each ``SIGUSR1`` collects garbage, then writes
``snapshot-<k>.tracemalloc`` (when tracemalloc traces) and ``snapshot-<k>.json`` (VmRSS, the traced
total, which ws4redis_tornado runs). The JSON is renamed into place last, so a reader that sees it
finds the snapshot complete.

The snapshot is taken in the signal handler, on the IOLoop's thread between two callbacks, so no
handler is half-way through a handshake in it. This script imports nothing of the benchmark, so
that ``-P`` with ``PYTHONPATH`` picks which ws4redis_tornado runs (working tree or an exported rev).
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

import ws4redis_tornado
from ws4redis_tornado.__main__ import main

_snapshots = itertools.count(1)


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _write_snapshot(directory: Path) -> None:
    number = next(_snapshots)
    gc.collect()
    record = {
        "rss_bytes": _rss_bytes(),
        "traced": tracemalloc.is_tracing(),
        "module": os.path.dirname(ws4redis_tornado.__file__),
    }
    if tracemalloc.is_tracing():
        record["traced_bytes"] = tracemalloc.get_traced_memory()[0]
        record["tracemalloc_overhead_bytes"] = tracemalloc.get_tracemalloc_memory()
        tracemalloc.take_snapshot().dump(str(directory / f"snapshot-{number}.tracemalloc"))
    partial = directory / f"snapshot-{number}.json.tmp"
    partial.write_text(json.dumps(record))
    partial.rename(directory / f"snapshot-{number}.json")


def run(argv: list[str]) -> int:
    directory = Path(argv[0])

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _write_snapshot(directory)

    signal.signal(signal.SIGUSR1, on_signal)
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
