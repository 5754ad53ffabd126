"""Optional sampling profile of the server during S1 (``--profile``), with py-spy.

py-spy samples from outside the process (ptrace), so the server needs no change; the
collapsed stacks are summarised into the functions that hold the most samples, which is
what the README quotes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.procs import LOAD_CPU


def start(pid: int, duration: float, out: Path, native: bool) -> subprocess.Popen[bytes] | None:
    """Start py-spy on ``pid`` for ``duration`` seconds (None if py-spy is missing)."""
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if exe is None:
        return None
    argv = ["taskset", "-c", str(LOAD_CPU), exe, "record", "--pid", str(pid), "--rate", "200"]
    argv += ["--duration", str(max(1, round(duration))), "--format", "raw", "-o", str(out)]
    argv += ["--native"] if native else ["--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(collapsed: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Top functions by self and by inclusive share of samples."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_counts[frames[-1]] += n
        for frame in set(frames):
            incl_counts[frame] += n
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "samples": [("total", float(total))],
        "self": [(f, c * 100 / total) for f, c in self_counts.most_common(top)],
        "inclusive": [(f, c * 100 / total) for f, c in incl_counts.most_common(top * 2)],
    }
