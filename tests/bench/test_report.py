"""The report layer of the bench: medians, ratios, targets and the table, on made-up numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from benchkit import report  # noqa: E402 - bench/ is not a package
from benchkit.settings import parse_args  # noqa: E402
from benchkit.workloads import Results  # noqa: E402


def made_up() -> tuple[dict, str]:
    settings = parse_args(["--ns", "10,1000", "--runs", "3"])
    r = Results()
    for v in (1.0, 3.0, 2.0):
        r.add("raw", "start.1000", v)
    for v in (2.0, 4.0, 100.0):
        r.add("ours", "start.1000", v)
    for v in (8.0, 8.0):
        r.add("circus", "start.1000", v)
    r.fail("circus", "start.1000", "boom")
    r.add("ours", "rss.1000", 30.0)
    r.add("circus", "rss.1000", 20.0)
    r.add("raw", "stdout", 1000.0)
    r.add("ours", "stdout", 400.0)
    r.add("supervisor", "stdout", 800.0)
    r.fail("supervisor", "respawn", "no spawn")
    info = {p: {"available": True, "reason": None, "what": p} for p in settings.peers}
    info["supervisor"] = {"available": False, "reason": "not here", "what": None}
    doc = report.build(settings, r, info)
    return doc, report.table(doc)


def test_medians_and_ratios_use_the_median_of_the_runs() -> None:
    doc, _ = made_up()
    start = doc["metrics"]["start.1000"]
    assert start["values"]["raw"]["median"] == 2.0
    assert start["values"]["ours"]["median"] == 4.0  # the 100 s outlier does not move it
    assert start["values"]["circus"] == {"runs": [8.0, 8.0], "errors": ["boom"], "median": 8.0}
    assert start["ratios"] == {"ours/raw": 2.0, "circus/raw": 4.0, "ours/circus": 0.5}


def test_targets_compare_ours_with_the_named_reference() -> None:
    doc, _ = made_up()
    by_metric = {t["metric"]: t for t in doc["targets"]}
    assert by_metric["start.1000"]["figure"] == 2.0
    assert by_metric["start.1000"]["met"] is False  # 2x raw > 1.5x
    assert by_metric["rss.1000"]["met"] is False  # 30 MiB > Circus's 20
    assert by_metric["stdout"]["figure"] == 0.5 and by_metric["stdout"]["met"] is False
    assert by_metric["respawn"]["met"] is None  # not measured: neither met nor missed
    assert by_metric["rtt.list"]["met"] is None


def test_a_target_against_several_peers_takes_the_hardest() -> None:
    settings = parse_args(["--runs", "1"])
    r = Results()
    r.add("ours", "chatty.cpu", 3.0)
    r.add("circus", "chatty.cpu", 12.0)
    r.add("supervisor", "chatty.cpu", 2.0)
    r.add("ours", "chatty.lost", 0.0)
    r.add("ours", "chatty.status_max", 40.0)
    info = {p: {"available": True, "reason": None, "what": p} for p in settings.peers}
    doc = report.build(settings, r, info)
    by_metric = {t["metric"]: t for t in doc["targets"]}
    assert by_metric["chatty.cpu"]["figure"] == 1.5  # ours/supervisor, not ours/circus 0.25
    assert by_metric["chatty.cpu"]["met"] is False
    assert by_metric["chatty.lost"]["met"] is True
    assert by_metric["chatty.status_max"]["met"] is False
    r.add("supervisor", "chatty.cpu", 6.0)  # median of 2 and 6: 4, ratio 0.75
    doc = report.build(settings, r, info)
    assert {t["metric"]: t for t in doc["targets"]}["chatty.cpu"]["met"] is True
    small = report.build(parse_args(["--small"]), r, info)
    assert "chatty.status_max" not in {t["metric"] for t in small["targets"]}  # 20 writers


def test_table_marks_failures_partial_runs_and_skipped_backends() -> None:
    _, text = made_up()
    lines = text.splitlines()
    start = next(line for line in lines if line.startswith("start 1,000"))
    assert "8.00*" in start and "NO" in start  # circus had one failed run
    respawn = next(line for line in lines if line.startswith("respawn"))
    assert "FAIL" in respawn
    assert "supervisor: skipped: not here" in text
    assert "start 10 " not in text  # rows with no figure at all are left out


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "-"), (0.000123456, "0.000123"), (1.234, "1.23"), (12.34, "12.3"), (1234.5, "1,234")],
)
def test_fmt_keeps_about_three_significant_digits(value: float | None, shown: str) -> None:
    assert report.fmt(value) == shown


def test_small_settings_and_metrics_n() -> None:
    small = parse_args(["--small"])
    assert (small.ns, small.respawns, small.idle_seconds, small.runs) == ((10,), 3, 1.0, 1)
    assert small.stdout_bytes == 5_000_000 and small.metrics_n == 10
    assert (small.chatty_n, small.chatty_rate, small.chatty_seconds) == (20, 1.0, 1.0)
    assert (parse_args([]).chatty_n, parse_args([]).chatty_rate) == (1000, 50.0)
    assert small.launch_ns == (10,) and parse_args([]).launch_ns == (200, 1000)
    assert parse_args(["--launch-ns", "5,50"]).launch_ns == (5, 50)
    full = parse_args([])
    assert full.ns == (10, 100, 1000, 5000) and full.metrics_n == 1000 and full.runs == 3
    assert parse_args(["--only", "rtt,cli"]).only == {"rtt", "cli"}


def test_plot_series_are_sorted_by_n_and_skip_failed_medians() -> None:
    from benchkit import plot

    doc = {
        "metrics": {
            "start.100": {"values": {"ours": {"median": 0.5}, "raw": {"median": None}}},
            "start.10": {"values": {"ours": {"median": 0.1}}},
            "rss.10": {"values": {"circus": {"median": 30.0}}},
            "stdout": {"values": {"ours": {"median": 900.0}}},
        }
    }
    assert plot.series(doc) == {
        "start": {"ours": [[10, 0.1], [100, 0.5]]},
        "rss": {"circus": [[10, 30.0]]},
    }
