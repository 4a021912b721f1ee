"""Runs inside the bench-plot venv: draw start time and RSS against N (log-log) to a PNG.

Usage: python _plot_mpl.py series.json out.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

STYLE = {"raw": "k--", "ours": "C0-o", "circus": "C1-s", "supervisor": "C2-^"}


def main() -> None:
    """Read the series JSON (argv[1]) and write the figure (argv[2])."""
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    ns = sorted({p[0] for pts in doc["series"]["start"].values() for p in pts})
    for ax, kind, title, unit, logy in (
        (axes[0], "start", "time to start N processes", "seconds", True),
        (axes[1], "rss", "daemon RSS with N processes", "MiB", False),
    ):
        for backend, points in sorted(doc["series"][kind].items()):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, STYLE.get(backend, "-x"), label=backend)
        ax.set_xscale("log")
        if ns:
            ax.set_xticks(ns, [f"{n:,}" for n in ns])
            ax.minorticks_off()
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("N processes")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    m = doc["machine"]
    fig.suptitle(
        f"medians of {doc['runs']} run(s) - {m['cpu']}, {m['cores']} cores, Python {m['python']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
