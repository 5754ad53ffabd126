"""The project's own performance limits, checked against one run ("Against the targets").

Each limit is either absolute (KiB per idle socket, us per frame) or a ratio to another
target measured in the same run (the floor, the lean Tornado server, the project without
compression), because on a shared machine only ratios from interleaved runs are stable. A
limit that the run could not measure (no N=5,000, no floor, no json1k payload) says what it
needs instead of passing or failing. Lower is better for every figure here. Pure: the results
dict in, Markdown out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bench.stats import summarize

Record = dict[str, Any]
Results = dict[str, Any]

PROJECT = "ws4redis_tornado"
FLOOR = "floor"
LEAN = "lean"
DEFLATE = "ws4redis_tornado_deflate"


@dataclass(frozen=True)
class Measured:
    value: float
    detail: str  # the medians the value comes from


@dataclass(frozen=True)
class Missing:
    reason: str


@dataclass(frozen=True)
class Goal:
    label: str
    limit: float
    unit: str
    measure: Callable[[Results], Measured | Missing]


def _records(results: Results, target: str, n: int | None = None, section: str = "fanout") -> list[Record]:
    return [
        r
        for r in results.get(section, [])
        if r.get("target") == target and "error" not in r and (n is None or r.get("n") == n)
    ]


def _median(records: Iterable[Record], *keys: str) -> float | None:
    values = []
    for record in records:
        value: Any = record
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(value)
    return summarize(values)["median"]


def _ratio(results: Results, target: str, other: str, n: int, *keys: str, unit: str) -> Measured | Missing:
    """``target``'s median over ``other``'s, both at N = ``n`` in this run."""
    mine = _median(_records(results, target, n), *keys)
    theirs = _median(_records(results, other, n), *keys)
    if mine is None:
        return Missing(f"needs {target} at N={n:,}")
    if not theirs:
        return Missing(f"needs {other} at N={n:,}")
    return Measured(mine / theirs, f"{mine:,.2f} / {theirs:,.2f} {unit}")


def s1_cpu_vs_floor(results: Results) -> Measured | Missing:
    return _ratio(results, PROJECT, FLOOR, 1000, "s1", "server_cpu_us_per_frame", unit="us")


def one_message_vs_floor(results: Results) -> Measured | Missing:
    return _ratio(results, PROJECT, FLOOR, 5000, "variant", "completion_p50_ms", unit="ms")


def handshakes_vs_lean(results: Results) -> Measured | Missing:
    return _ratio(results, PROJECT, LEAN, 5000, "connect", "handshake_s", unit="s")


def rss_per_idle_socket(results: Results) -> Measured | Missing:
    """KiB per socket at the largest N measured: connected and warmed up, before S1."""
    records = _records(results, PROJECT)
    if not records:
        return Missing(f"needs {PROJECT} in S1")
    n = max(r["n"] for r in records)
    kib = _median(_records(results, PROJECT, n), "rss_per_conn")
    if kib is None:
        return Missing(f"needs {PROJECT}'s RSS at N={n:,}")
    return Measured(kib / 1024, f"at N={n:,}")


def s2_cpu(results: Results) -> Measured | Missing:
    value = _median(_records(results, PROJECT, section="throughput"), "s2", "server_cpu_us_per_frame")
    if value is None:
        return Missing(f"needs {PROJECT} in S2")
    return Measured(value, f"{results.get('plan', {}).get('s2_subscribers', '?')} sockets")


def deflate_cpu_vs_plain(results: Results) -> Measured | Missing:
    """CPU per frame with permessage-deflate over without, 1 KiB JSON to 1,000 sockets."""
    if results.get("plan", {}).get("payload") != "json1k":
        return Missing("needs --payload json1k")
    accepted = _median(_records(results, DEFLATE, 1000), "connect", "deflate_sockets")
    if accepted is not None and accepted == 0:
        return Missing(f"the server under {DEFLATE} did not accept permessage-deflate")
    return _ratio(results, DEFLATE, PROJECT, 1000, "s1", "server_cpu_us_per_frame", unit="us")


GOALS = [
    Goal("S1 N=1,000: server CPU per delivered frame", 1.25, "x floor", s1_cpu_vs_floor),
    Goal("one message to 5,000 sockets: completion p50", 1.3, "x floor", one_message_vs_floor),
    Goal("RSS per idle socket", 12.0, "KiB", rss_per_idle_socket),
    Goal("5,000 handshakes: wall time", 1.0, "x lean", handshakes_vs_lean),
    Goal("S2: server CPU per frame", 2.5, "us", s2_cpu),
    Goal("1 KiB JSON to 1,000 sockets: CPU per frame, deflate on", 1.2, "x off", deflate_cpu_vs_plain),
]


def verdict(value: float, limit: float) -> tuple[str, str]:
    """("yes"/"no", how far from the limit): lower is better, so over the limit misses."""
    pct = (value / limit - 1) * 100
    if value <= limit:
        return "yes", f"{-pct:.0f} % under"
    return "no", f"misses by {pct:.0f} %"


def render(results: Results, goals: list[Goal] = GOALS) -> str:
    """The "Against the targets" table for ws4redis_tornado in this run."""
    rows = [
        f"| target ({PROJECT}, medians) | measured | limit | met | margin |",
        "|---|---|---|---|---|",
    ]
    for goal in goals:
        outcome = goal.measure(results)
        limit = f"<= {goal.limit:g} {goal.unit}"
        if isinstance(outcome, Missing):
            rows.append(f"| {goal.label} | not measured: {outcome.reason} | {limit} | - | - |")
            continue
        met, margin = verdict(outcome.value, goal.limit)
        measured = f"{outcome.value:.2f} {goal.unit} ({outcome.detail})"
        rows.append(f"| {goal.label} | {measured} | {limit} | {met} | {margin} |")
    return "\n".join(rows)
