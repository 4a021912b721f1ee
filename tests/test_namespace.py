"""`circus` is a PEP 420 namespace shared by every installed portion."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import circus

PORTIONS = ["process", "watcher", "sockets", "ctl", "arbiter"]


def test_circus_is_a_namespace_package() -> None:
    assert circus.__file__ is None
    assert not any((Path(p) / "__init__.py").exists() for p in circus.__path__)


def test_every_portion_is_on_the_namespace_path() -> None:
    namespace_dirs = {str(Path(p).resolve()) for p in circus.__path__}
    for name in PORTIONS:
        spec = importlib.util.find_spec(f"circus.{name}")
        assert spec is not None, f"circus.{name} is not installed"
        module = importlib.import_module(f"circus.{name}")
        portion_dir = str(Path(module.__file__).resolve().parent.parent)
        assert portion_dir in namespace_dirs, f"circus.{name} lives outside circus.__path__"
