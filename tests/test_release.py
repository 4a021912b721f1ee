"""Release hygiene: one version everywhere, and wheels that install and run in a fresh venv."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSION = (ROOT / "VERSION").read_text().strip()
DISTRIBUTIONS = (
    "circus-process",
    "circus-watcher",
    "circus-sockets",
    "circus-ctl",
    "circus-arbiter",
    "circus-daemon",
)


def _project(dist: str) -> dict[str, object]:
    with open(ROOT / "packages" / dist / "pyproject.toml", "rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def _set_version_module() -> object:
    spec = importlib.util.spec_from_file_location("set_version", ROOT / "scripts/set_version.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_distribution_carries_the_version_file() -> None:
    from circus.ctl import __version__

    assert __version__ == VERSION
    for dist in DISTRIBUTIONS:
        project = _project(dist)
        assert project["version"] == VERSION, dist
        requirements = list(project.get("dependencies", []))  # type: ignore[call-overload]
        for extra in dict(project.get("optional-dependencies", {})).values():  # type: ignore[call-overload]
            requirements += extra
        for requirement in requirements:
            if requirement.startswith("circus-"):
                assert requirement.endswith(f"=={VERSION}"), (dist, requirement)


def test_set_version_rewrites_every_copy(tmp_path: Path) -> None:
    for dist in DISTRIBUTIONS:
        target = tmp_path / "packages" / dist
        target.mkdir(parents=True)
        shutil.copy(ROOT / "packages" / dist / "pyproject.toml", target)
    init = tmp_path / "packages/circus-ctl/src/circus/ctl/__init__.py"
    init.parent.mkdir(parents=True)
    shutil.copy(ROOT / "packages/circus-ctl/src/circus/ctl/__init__.py", init)
    changed = _set_version_module().apply("7.8.9", tmp_path)  # type: ignore[attr-defined]
    assert len(changed) == len(DISTRIBUTIONS) + 1
    for dist in DISTRIBUTIONS:
        text = (tmp_path / "packages" / dist / "pyproject.toml").read_text()
        assert 'version = "7.8.9"' in text
        assert VERSION not in text.replace("7.8.9", "")
    assert '__version__ = "7.8.9"' in init.read_text()
    with pytest.raises(SystemExit):
        _set_version_module().apply("not-a-version", tmp_path)  # type: ignore[attr-defined]


def _uv() -> str | None:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(ROOT / ".tools/bin/uv")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_built_wheels_install_and_run_in_a_fresh_venv(tmp_path: Path) -> None:
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed (make installs it into .tools/)")
    # TMPDIR: uv's lock and build files go to the test's own directory
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": "", "TMPDIR": str(tmp_path)}
    dist = tmp_path / "dist"
    subprocess.run(
        [uv, "build", "--quiet", "--all-packages", "--wheel", "-o", str(dist)],
        cwd=ROOT,
        check=True,
        env=env,
        timeout=300,
    )
    wheels = sorted(dist.glob("*.whl"))
    assert {w.name.split("-")[0].replace("_", "-") for w in wheels} == set(DISTRIBUTIONS)
    assert all(f"-{VERSION}-" in w.name for w in wheels)
    for wheel in wheels:
        names = zipfile.ZipFile(wheel).namelist()
        assert "circus/__init__.py" not in names, wheel.name
        assert not any(n.endswith("testing/upstream.py") for n in names), wheel.name
        assert "circus/ctl/web/testing.py" not in names, wheel.name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", python, *map(str, wheels)],
        check=True,
        env=env,
        timeout=300,
    )
    version = subprocess.run(
        [str(venv / "bin" / "circusd"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert version.returncode == 0, version.stderr
    assert VERSION in version.stdout
    for command in ("circusctl", "circus-top", "circus-plugin"):
        assert (venv / "bin" / command).exists(), command
