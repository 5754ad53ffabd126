"""Turn raw run records into the tables printed by the CLI and pasted into the README.

Each cell is the median over repeats with the min-max range, followed by the ratio to the
baseline target's median (``baseline`` with ``--baseline-rev``, else ws4redis_tornado when it
ran): ``x2.00`` means twice the
baseline's value, whichever direction is better for that figure. When the floor target ran,
the figures that measure the fan-out itself get a second row, "... / floor": each target's
median over the floor's median from the same run. ``against_targets`` checks the project's
medians against the limits it has set itself; ``quick_compare`` renders ``python -m bench
quick``. Pure: records in, Markdown out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bench import goals
from bench.stats import summarize

Record = dict[str, Any]


FLOOR = "floor"
PROJECT = "ws4redis_tornado"


@dataclass(frozen=True)
class Figure:
    label: str
    get: Callable[[Record], float | None]
    digits: int = 2
    floor_ratio: bool = False  # add a row with each target's median over the floor's


def _dig(*keys: str) -> Callable[[Record], float | None]:
    def get(record: Record) -> float | None:
        value: Any = record
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return get


def _client_share(section: str) -> Callable[[Record], float | None]:
    def get(record: Record) -> float | None:
        part = record.get(section) or {}
        wall = part.get("wall_s") or part.get("duration_s")
        return part["client_cpu_s"] * 100 / wall if wall else None

    return get


def _kib(record: Record) -> float | None:
    value = record.get("rss_per_conn")
    return None if value is None else value / 1024


S1 = [
    Figure("handshake time for N (s)", _dig("connect", "handshake_s")),
    Figure("completion p50 (ms)", _dig("s1", "completion_p50_ms"), 1, floor_ratio=True),
    Figure("completion p99 (ms)", _dig("s1", "completion_p99_ms"), 1),
    Figure("delivery latency p50 (ms)", _dig("s1", "latency_p50_ms"), 1),
    Figure("delivery latency p99 (ms)", _dig("s1", "latency_p99_ms"), 1),
    Figure("lost deliveries", _dig("s1", "lost"), 0),
    Figure("server CPU per frame (us)", _dig("s1", "server_cpu_us_per_frame"), 1, floor_ratio=True),
    Figure("wire bytes per frame", _dig("s1", "wire_bytes_per_frame"), 0),
    Figure("frames that came compressed", _dig("s1", "inflated_frames"), 0),
    Figure("sockets with permessage-deflate accepted", _dig("connect", "deflate_sockets"), 0),
    Figure("publish round trip p50 (us)", _dig("s1", "publish", "p50_us"), 1),
    Figure("publish round trip p99 (us)", _dig("s1", "publish", "p99_us"), 1),
    Figure("RSS per connection (KiB)", _kib, 1),
    Figure("Redis connections held", _dig("redis_conns"), 0),
    Figure("load client CPU (% of wall)", _client_share("s1"), 0),
    Figure("sockets open at the end", _dig("alive_at_end"), 0),
    Figure("frames carrying a stream id", _dig("s1", "with_id"), 0),
    Figure("recovery reports received", _dig("recovery_reports"), 0),
    Figure("other load on the server's CPU (%)", _dig("s1", "foreign_cpu0_pct"), 0),
]

VARIANT = [
    Figure("1 msg -> N: completion p50 (ms)", _dig("variant", "completion_p50_ms"), 1, floor_ratio=True),
    Figure("1 msg -> N: completion max (ms)", _dig("variant", "completion_max_ms"), 1),
    Figure("1 msg -> N: lost deliveries", _dig("variant", "lost"), 0),
    Figure("1 msg -> N: server CPU per frame (us)", _dig("variant", "server_cpu_us_per_frame"), 1, floor_ratio=True),
]

S2 = [
    Figure("messages/s", _dig("s2", "messages_per_s"), 0),
    Figure("delivered frames/s", _dig("s2", "frames_per_s"), 0),
    # No floor row: with 20 messages in flight a server that writes what one Redis read brought
    # in one send per socket beats a floor that sends once per message (see bench/README.md).
    Figure("server CPU per frame (us)", _dig("s2", "server_cpu_us_per_frame"), 1),
    Figure("wire bytes per frame", _dig("s2", "wire_bytes_per_frame"), 0),
    Figure("delivery latency p50 (ms)", _dig("s2", "latency_p50_ms"), 1),
    Figure("delivery latency p99 (ms)", _dig("s2", "latency_p99_ms"), 1),
    Figure("publish round trip p50 (us)", _dig("s2", "publish", "p50_us"), 1),
    Figure("publish round trip p99 (us)", _dig("s2", "publish", "p99_us"), 1),
    Figure("stalled windows", _dig("s2", "stalls"), 0),
    Figure("load client CPU (% of wall)", _client_share("s2"), 0),
    Figure("other load on the server's CPU (%)", _dig("s2", "foreign_cpu0_pct"), 0),
]


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cell(values: list[float | None], digits: int, base: float | None, is_base: bool) -> str:
    s = summarize(values)
    if s["median"] is None:
        return "-"
    text = _fmt(s["median"], digits)
    if s["n"] > 1:
        text += f" ({_fmt(s['min'], digits)}-{_fmt(s['max'], digits)})"
    if not is_base and base:
        text += f" x{s['median'] / base:.2f}"
    return text


def _median_of(records: Iterable[Record], get: Callable[[Record], float | None]) -> float | None:
    return summarize([get(r) for r in records])["median"]


def _floor_row(fig: Figure, by_target: dict[str, list[Record]], targets: list[str]) -> str | None:
    """``label / floor``: each target's median over the floor's median, or None without a floor."""
    floor = _median_of(by_target.get(FLOOR, []), fig.get)
    if not floor:
        return None
    cells = []
    for target in targets:
        value = _median_of(by_target[target], fig.get)
        cells.append("-" if value is None else f"x{value / floor:.2f}")
    return f"| {fig.label} / floor | " + " | ".join(cells) + " |"


def table(records: Iterable[Record], figures: list[Figure], targets: list[str], baseline: str) -> str:
    """Markdown table: one row per figure, one column per target (plus "/ floor" rows)."""
    by_target: dict[str, list[Record]] = {t: [] for t in targets}
    errors: dict[str, int] = dict.fromkeys(targets, 0)
    for record in records:
        if record["target"] in by_target:
            if "error" in record:
                errors[record["target"]] += 1
            else:
                by_target[record["target"]].append(record)
    head = "| figure | " + " | ".join(targets) + " |"
    rows = [head, "|" + "---|" * (len(targets) + 1)]
    for fig in figures:
        base = _median_of(by_target.get(baseline, []), fig.get)
        cells = [_cell([fig.get(r) for r in by_target[t]], fig.digits, base, t == baseline) for t in targets]
        rows.append(f"| {fig.label} | " + " | ".join(cells) + " |")
        floor_row = _floor_row(fig, by_target, targets) if fig.floor_ratio else None
        if floor_row:
            rows.append(floor_row)
    rows.append("| runs (failed) | " + " | ".join(
        f"{len(by_target[t])} ({errors[t]})" for t in targets
    ) + " |")  # fmt: skip
    return "\n".join(rows)


def scaling(results: dict[str, Any], processes: int = 16) -> str:
    """Capacity on paper from the measured medians at the largest N.

    One process is bounded by one core: frames/s = 1e6 / (CPU us per frame), and by memory:
    sockets per GiB = 1 GiB / RSS per connection. The per-frame cost is given twice: one
    message at a time (the S1 variant: every message meets an idle server, the conservative
    figure) and in bursts (S1: a server that batches writes gets cheaper per frame under load).
    ``processes`` processes on as many cores scale this linearly only if the balancer and
    Redis keep up (see the README).
    """
    fanout = [r for r in results.get("fanout", []) if "error" not in r]
    if not fanout:
        return ""
    n = max(r["n"] for r in fanout)
    rows = [
        f"| target (N = {n:,}) | CPU us/frame, one message at a time / in bursts | "
        f"frames/s per process | KiB/conn | sockets per GiB | msgs/s to all {n:,} sockets, "
        f"1 process | frames/s, {processes} processes |",
        "|---|---|---|---|---|---|---|",
    ]

    def pair(a: float | None, b: float | None, digits: int) -> str:
        return " / ".join("-" if v is None else f"{v:,.{digits}f}" for v in (a, b))

    for target in results["targets"]:
        records = [r for r in fanout if r["target"] == target and r["n"] == n]
        one = summarize([_dig("variant", "server_cpu_us_per_frame")(r) for r in records])["median"]
        burst = summarize([_dig("s1", "server_cpu_us_per_frame")(r) for r in records])["median"]
        kib = summarize([_kib(r) for r in records])["median"]
        if not (one or burst) or not kib:
            continue
        fps = [1e6 / v if v else None for v in (one, burst)]
        rows.append(
            f"| {target} | {pair(one, burst, 1)} | {pair(*fps, 0)} | {kib:.1f} | "
            f"{2**20 / kib:,.0f} | {pair(*(f / n if f else None for f in fps), 1)} | "
            f"{pair(*(processes * f if f else None for f in fps), 0)} |"
        )
    return "\n".join(rows)


QUICK = [
    ("fanout", Figure("S1: server CPU per frame (us)", _dig("s1", "server_cpu_us_per_frame"), 1)),
    ("throughput", Figure("S2: server CPU per frame (us)", _dig("s2", "server_cpu_us_per_frame"), 1)),
    ("fanout", Figure("RSS per socket (KiB)", _kib, 1)),
]
QUICK_BASELINE = "baseline"


def _spread(values: list[float | None], digits: int) -> str:
    s = summarize(values)
    if s["median"] is None:
        return "-"
    return f"{_fmt(s['median'], digits)} ({_fmt(s['min'], digits)}-{_fmt(s['max'], digits)})"


def quick_compare(results: dict[str, Any]) -> str:
    """``python -m bench quick``: the working tree over the baseline revision, three figures.

    The ratio is of the medians; the range beside it is the lowest and highest ratio of one
    repeat's pair (the two targets ran back to back in each repeat).
    """
    project = results.get("project", {})
    rows = [
        f"Working tree (HEAD {project.get('head', '?')}{', dirty' if project.get('dirty') else ''}) "
        f"vs {project.get('baseline', '?')}: N={results['ns'][0]:,} for S1, "
        f"{results['repeats']} interleaved repeat(s); ratio > 1: the working tree costs more.",
        "",
        f"| figure | working tree | {project.get('baseline', QUICK_BASELINE)} | ratio | ratio per repeat |",
        "|---|---|---|---|---|",
    ]
    for section, fig in QUICK:
        mine = [fig.get(r) for r in results.get(section, []) if r["target"] == PROJECT]
        base = [fig.get(r) for r in results.get(section, []) if r["target"] == QUICK_BASELINE]
        mine_median, base_median = summarize(mine)["median"], summarize(base)["median"]
        ratio = f"x{mine_median / base_median:.3f}" if mine_median is not None and base_median else "-"
        paired = [a / b for a, b in zip(mine, base, strict=False) if a is not None and b]
        per_repeat = f"x{min(paired):.3f}-x{max(paired):.3f}" if paired else "-"
        rows.append(
            f"| {fig.label} | {_spread(mine, fig.digits)} | {_spread(base, fig.digits)} | {ratio} | {per_repeat} |"
        )
    return "\n".join(rows)


def render(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    if results.get("mode") == "quick":
        return quick_compare(results)
    targets: list[str] = results["targets"]
    # With --baseline-rev the ratios say what a change did: working tree over the older revision.
    baseline = next((t for t in ("baseline", "ws4redis_tornado") if t in targets), targets[0])
    project = results.get("project", {})
    out = [
        f"ws4redis_tornado measured from {project.get('source', '?')} "
        f"(HEAD {project.get('head', '?')}{', dirty' if project.get('dirty') else ''}).",
        f"Targets: {', '.join(targets)}; ratios are vs {baseline}. "
        f"Cells: median (min-max) over {results['repeats']} interleaved repeat(s). "
        f"Payload: {results.get('plan', {}).get('payload', 'small')}.",
        "",
    ]
    if results.get("publish_rate"):
        rate = results["publish_rate"]
        out += [
            "redis-benchmark PUBLISH (100-byte message, 50 clients, no subscribers, Redis alone on CPU 1): "
            + ", ".join(f"pipeline {p}: {v:,.0f}/s" for p, v in rate.items()),
            "",
        ]
    fanout = results.get("fanout", [])
    for n in results.get("ns", []):
        records = [r for r in fanout if r["n"] == n]
        if not records:
            continue
        plan = results["plan"]
        out += [
            f"### S1 fan-out, N = {n:,} ({plan['messages']} messages, {plan['interval'] * 1000:.0f} ms apart)",
            "",
            table(records, S1, targets, baseline),
            "",
        ]
        if any("variant" in r for r in records):
            out += [
                f"### S1 variant, N = {n:,} (1 message to N, {plan['variant_messages']} "
                f"messages {plan['variant_interval']:g} s apart)",
                "",
                table(records, VARIANT, targets, baseline),
                "",
            ]
    if results.get("throughput"):
        plan = results["plan"]
        out += [
            f"### S2 throughput ({plan['s2_subscribers']} subscribers, closed loop, window "
            f"{plan['s2_window']}, {plan['s2_duration']:g} s)",
            "",
            table(results["throughput"], S2, targets, baseline),
            "",
        ]
    if PROJECT in targets:
        out += ["### Against the targets", "", goals.render(results), ""]
    paper = scaling(results)
    if paper:
        out += ["### Capacity on paper (from the medians above)", "", paper, ""]
    errors = [r for r in fanout + results.get("throughput", []) if "error" in r]
    for r in errors:
        out.append(f"- failed run: {r['target']} N={r['n']}: {r['error']}")
    return "\n".join(out)
