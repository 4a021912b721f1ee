"""Property: a free-form option's value is read back exactly as written."""

from __future__ import annotations

import string
from pathlib import Path

from circus.arbiter.config import load_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Anything but what the INI syntax gives a meaning to: newlines (line structure) and ';'
# (inline comments after whitespace). Includes form feeds, '#', '%', '=', ':', quotes, unicode.
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r;")
_VALUES = st.text(_CHARS, min_size=1, max_size=40).map(str.strip).filter(lambda v: v != '""')
_NAMES = st.text(string.ascii_letters + "_", min_size=1, max_size=12).filter(
    lambda n: n.lower() not in {"rem", "cmd"}
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=_NAMES, value=_VALUES)
def test_free_form_value_round_trips(tmp_path: Path, name: str, value: str) -> None:
    path = tmp_path / "circus.ini"
    key = f"zz_custom_{name}"  # far from every known option: no typo warning
    path.write_text(f"[watcher:w]\ncmd = run\n{key} = {value}\n", encoding="utf-8")
    assert load_config(path, environ={}).watchers[0].kwargs[key] == value
