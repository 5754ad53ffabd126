"""The report's floor ratios, its "Against the targets" table and the quick comparison: records in, Markdown out."""

from __future__ import annotations

from typing import Any

from bench import goals
from bench.report import S1, S2, VARIANT, quick_compare, render, table

Record = dict[str, Any]


def s1_record(target: str, n: int, cpu_us: float, *, completion_ms: float = 10.0, **extra: Any) -> Record:
    return {
        "target": target,
        "n": n,
        "connect": {"handshake_s": extra.pop("handshake_s", 1.0), "deflate_sockets": extra.pop("deflate", 0)},
        "rss_per_conn": extra.pop("rss_kib", 14.0) * 1024,
        "s1": {"server_cpu_us_per_frame": cpu_us, "completion_p50_ms": completion_ms, "wire_bytes_per_frame": 102},
        **extra,
    }


def s2_record(target: str, cpu_us: float) -> Record:
    return {"target": target, "n": 100, "s2": {"server_cpu_us_per_frame": cpu_us, "wire_bytes_per_frame": 102.0}}


def row(markdown: str, label: str) -> list[str]:
    """The cells of the row whose first cell is ``label``."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{markdown}")


PLAN = {
    "messages": 50,
    "interval": 0.1,
    "variant_messages": 6,
    "variant_interval": 2.0,
    "s2_subscribers": 100,
    "s2_window": 20,
    "s2_duration": 10.0,
}


def results(fanout: list[Record], throughput: list[Record] | None = None, **plan: Any) -> dict[str, Any]:
    throughput = throughput or []
    targets = list(dict.fromkeys(r["target"] for r in [*fanout, *throughput]))
    return {
        "targets": targets,
        "ns": sorted({r["n"] for r in fanout}),
        "repeats": 3,
        "plan": {**PLAN, **plan},
        "fanout": fanout,
        "throughput": list(throughput),
    }


def test_each_target_gets_its_median_over_the_floors_median_in_the_same_run() -> None:
    records = [
        *(s1_record("ws4redis_tornado", 1000, cpu) for cpu in (15.0, 16.0, 14.0)),
        *(s1_record("floor", 1000, cpu) for cpu in (10.0, 9.0, 11.0)),
    ]

    markdown = table(records, S1, ["ws4redis_tornado", "floor"], "ws4redis_tornado")

    assert row(markdown, "server CPU per frame (us) / floor") == ["x1.50", "x1.00"]
    assert row(markdown, "completion p50 (ms) / floor") == ["x1.00", "x1.00"]
    assert row(markdown, "wire bytes per frame") == ["102 (102-102)", "102 (102-102) x1.00"]


def test_without_a_floor_there_is_no_floor_row() -> None:
    records = [s1_record("ws4redis_tornado", 1000, 15.0), s1_record("lean", 1000, 20.0)]

    markdown = table(records, S1, ["ws4redis_tornado", "lean"], "ws4redis_tornado")

    assert "/ floor" not in markdown
    assert row(markdown, "server CPU per frame (us)") == ["15.0", "20.0 x1.33"]


def test_the_one_message_rows_get_floor_ratios_too_and_s2_does_not() -> None:
    variant = [
        {"target": "ws4redis_tornado", "n": 5000, "variant": {"completion_p50_ms": 130.0}},
        {"target": "floor", "n": 5000, "variant": {"completion_p50_ms": 100.0}},
    ]
    s2 = [s2_record("ws4redis_tornado", 4.0), s2_record("floor", 2.0)]

    targets = ["ws4redis_tornado", "floor"]
    assert row(table(variant, VARIANT, targets, targets[0]), "1 msg -> N: completion p50 (ms) / floor") == [
        "x1.30",
        "x1.00",
    ]
    assert "/ floor" not in table(s2, S2, targets, targets[0])


def test_against_the_targets_says_met_or_by_how_much_it_misses_or_what_it_needs() -> None:
    run = results(
        [
            s1_record("ws4redis_tornado", 1000, 15.0, rss_kib=14.6, handshake_s=0.9),
            s1_record("floor", 1000, 10.0),
            s1_record("lean", 1000, 26.0),
        ],
        [s2_record("ws4redis_tornado", 2.0)],
    )

    markdown = goals.render(run)

    assert row(markdown, "S1 N=1,000: server CPU per delivered frame") == [
        "1.50 x floor (15.00 / 10.00 us)",
        "<= 1.25 x floor",
        "no",
        "misses by 20 %",
    ]
    assert row(markdown, "RSS per idle socket") == ["14.60 KiB (at N=1,000)", "<= 12 KiB", "no", "misses by 22 %"]
    assert row(markdown, "S2: server CPU per frame") == ["2.00 us (100 sockets)", "<= 2.5 us", "yes", "20 % under"]
    assert row(markdown, "one message to 5,000 sockets: completion p50")[0] == (
        "not measured: needs ws4redis_tornado at N=5,000"
    )
    assert row(markdown, "5,000 handshakes: wall time")[2:] == ["-", "-"]
    assert row(markdown, "1 KiB JSON to 1,000 sockets: CPU per frame, deflate on")[0] == (
        "not measured: needs --payload json1k"
    )


def test_the_compression_target_needs_the_server_to_accept_deflate() -> None:
    plain = s1_record("ws4redis_tornado", 1000, 20.0)
    refused = s1_record("ws4redis_tornado_deflate", 1000, 20.0, deflate=0)
    accepted = s1_record("ws4redis_tornado_deflate", 1000, 26.0, deflate=1000)

    refusal = goals.deflate_cpu_vs_plain(results([plain, refused], payload="json1k"))
    outcome = goals.deflate_cpu_vs_plain(results([plain, accepted], payload="json1k"))

    assert refusal == goals.Missing("the server under ws4redis_tornado_deflate did not accept permessage-deflate")
    assert outcome == goals.Measured(1.3, "26.00 / 20.00 us")
    assert goals.verdict(outcome.value, 1.2) == ("no", "misses by 8 %")


def test_the_full_report_ends_with_the_targets_table_when_the_project_ran() -> None:
    run = results([s1_record("ws4redis_tornado", 1000, 12.0), s1_record("floor", 1000, 10.0)], payload="json1k")

    markdown = render(run)

    assert "Payload: json1k." in markdown
    assert "### Against the targets" in markdown
    assert row(markdown, "S1 N=1,000: server CPU per delivered frame")[2] == "yes"


def test_quick_compare_gives_the_ratio_of_medians_and_the_range_of_per_repeat_ratios() -> None:
    fanout = []
    for mine, base in ((10.0, 10.0), (11.0, 10.0), (12.0, 8.0)):
        fanout += [s1_record("ws4redis_tornado", 1000, mine), s1_record("baseline", 1000, base)]
    fanout.append({"target": "baseline", "n": 1000, "error": "RuntimeError('boom')"})
    run = {
        **results(fanout, [s2_record("ws4redis_tornado", 3.0), s2_record("baseline", 2.0)]),
        "mode": "quick",
        "project": {"head": "abc1234", "dirty": True, "baseline": "def5678"},
    }

    markdown = render(run)

    assert "Working tree (HEAD abc1234, dirty) vs def5678" in markdown
    assert row(markdown, "S1: server CPU per frame (us)") == [
        "11.0 (10.0-12.0)",
        "10.0 (8.0-10.0)",
        "x1.100",
        "x1.000-x1.500",
    ]
    assert row(markdown, "S2: server CPU per frame (us)")[2:] == ["x1.500", "x1.500-x1.500"]
    assert row(markdown, "RSS per socket (KiB)")[2] == "x1.000"
    assert quick_compare(run) == markdown
