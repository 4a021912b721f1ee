"""The PNG of start time and daemon memory against N, drawn by matplotlib in its own venv.

matplotlib is not a project dependency: it is installed into ``.cache/bench-plot`` (a
bench-only venv, built on first use) and ``_plot_mpl.py`` runs there on a JSON of the
series. A --small run only draws when that venv is already cached; any failure skips the plot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import venvs
from .procs import BenchError

SCRIPT = Path(__file__).with_name("_plot_mpl.py")


def series(doc: dict[str, Any]) -> dict[str, dict[str, list[list[float]]]]:
    """``{"start"|"rss": {backend: [[N, median], ...]}}`` from the JSON document."""
    out: dict[str, dict[str, list[list[float]]]] = {"start": {}, "rss": {}}
    for key, metric in doc["metrics"].items():
        kind, _, n = key.partition(".")
        if kind not in out or not n.isdigit():
            continue
        for backend, v in metric["values"].items():
            if v["median"] is not None:
                out[kind].setdefault(backend, []).append([int(n), v["median"]])
    for by_backend in out.values():
        for points in by_backend.values():
            points.sort()
    return out


def draw(doc: dict[str, Any], png: Path, build_venv: bool) -> str:
    """Write ``png``; return a one-line note saying where, or why it was skipped."""
    data = series(doc)
    if not any(data.values()):
        return "plot skipped: no start/RSS figures"
    if not build_venv and not venvs.is_cached(venvs.PLOT):
        return "plot skipped: matplotlib venv not cached (a full run builds it)"
    try:
        python = venvs.ensure_venv(venvs.PLOT) / "bin" / "python"
    except BenchError as exc:
        return f"plot skipped: {exc}"
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({"series": data, "machine": doc["machine"], "runs": doc["settings"]["runs"]}, f)
        f.flush()
        done = subprocess.run(
            [str(python), str(SCRIPT), f.name, str(png)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if done.returncode != 0:
        print(done.stderr[-800:], file=sys.stderr)
        return "plot skipped: matplotlib failed (see above)"
    return f"plot: {png}"
