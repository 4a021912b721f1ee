"""Hostile output: a child writing text fast, binary data, or one endless line.

circusd must keep answering during the flood, keep its memory bounded (not growing with the
flood), and its log file must get every byte (size and SHA-256 compared). ``make soak``
repeats the text flood with 1 GB.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flood import flood_run

MB = 2**20
# circusd's RSS may move a little (allocator, pipe buffers); a flood-sized growth may not
RSS_MARGIN = 24 * MB


@pytest.mark.parametrize(
    ("kind", "size"),
    [("text", 160 * MB), ("binary", 48 * MB), ("noline", 96 * MB)],
)
def test_flood_is_logged_whole_and_memory_stays_bounded(
    tmp_path: Path, kind: str, size: int
) -> None:
    report = flood_run(tmp_path, size, kind, timeout=90)
    summary = report.summary()
    assert not report.problems, f"{report.problems}: {summary}"
    assert report.written == size
    assert report.rss_max - report.rss_before < RSS_MARGIN, summary
    # answered during and after the flood; the median is robust on a loaded 2-core machine
    assert report.latencies, summary
    assert report.median_latency < 0.5, summary
    assert not (tmp_path / "flood.out").exists()  # checked, then removed: pytest keeps tmp_path
