"""Every install hint works from where a new user stands: a clone, before anything is published.

The distributions are not on an index yet, so ``pip install circus-ctl`` fails today. Each
document that names one of our distributions in a ``pip install`` must also give the form
that installs it from the clone (``./packages/<dist>``, with the same extras), and each error
message in the code that suggests an install must carry that clone form.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/*.md"))]
SOURCES = sorted((ROOT / "packages").glob("*/src/**/*.py"))
# the dashboard's own missing-extra message (circus.ctl.web) is not yet in the two-form style
PENDING = {ROOT / "packages/circus-ctl/src/circus/ctl/web/__init__.py"}

# `pip install circus-ctl`, `pip install 'circus-ctl[web]'`: a bare (index) requirement
INDEX_FORM = re.compile(r"""pip install ['"]?(circus-[a-z]+(?:\[[a-z,]+\])?)""")


def _clone_form(requirement: str) -> str:
    return f"./packages/{requirement}"


def test_every_documented_index_install_has_its_clone_form() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for requirement in set(INDEX_FORM.findall(text)):
            if _clone_form(requirement) not in text:
                missing.append(f"{doc.relative_to(ROOT)}: {requirement}")
    assert missing == [], missing


def test_every_install_hint_in_an_error_message_has_its_clone_form() -> None:
    missing = []
    for source in SOURCES:
        if source in PENDING:
            continue
        text = source.read_text()
        for requirement in set(INDEX_FORM.findall(text)):
            if _clone_form(requirement) not in text:
                missing.append(f"{source.relative_to(ROOT)}: {requirement}")
    assert missing == [], missing


def test_the_httpd_hint_reaches_the_user(monkeypatch) -> None:
    import importlib.util

    from circus.arbiter import _httpd

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tornado" else real(name)
    )
    reason = _httpd.httpd_available()
    assert reason is not None
    assert "pip install './packages/circus-ctl[web]'" in reason
    assert "pip install 'circus-ctl[web]'" in reason
