"""Write the one version in ``VERSION`` into every distribution of the repository.

``VERSION`` at the repository root is the only place a version is decided. This script
copies it into the six ``packages/*/pyproject.toml`` files (their static ``version`` and the
lockstep ``==`` pins between them) and into ``circus.ctl.__version__``; ``make version
V=X.Y.Z`` writes ``VERSION`` and runs it, and ``tests/test_release.py`` fails while any copy
disagrees.

Usage: ``python scripts/set_version.py [X.Y.Z]`` (without an argument: the ``VERSION`` file).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = (
    "circus-process",
    "circus-watcher",
    "circus-sockets",
    "circus-ctl",
    "circus-arbiter",
    "circus-daemon",
)
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?(?:\.post\d+)?(?:\.dev\d+)?$")


def apply(version: str, root: Path = ROOT) -> list[Path]:
    """Write ``version`` everywhere it is copied; return the files that changed."""
    if not VERSION_RE.match(version):
        raise SystemExit(f"not a release version: {version!r} (expected X.Y.Z)")
    changed = []
    pins = "|".join(re.escape(name) for name in DISTRIBUTIONS)
    for dist in DISTRIBUTIONS:
        path = root / "packages" / dist / "pyproject.toml"
        text = path.read_text()
        new = re.sub(r'(?m)^version = "[^"]*"$', f'version = "{version}"', text, count=1)
        new = re.sub(rf'"({pins})(\[[^\]]*\])?==[^"]*"', rf'"\1\2=={version}"', new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    init = root / "packages/circus-ctl/src/circus/ctl/__init__.py"
    text = init.read_text()
    new = re.sub(r'(?m)^__version__ = "[^"]*"$', f'__version__ = "{version}"', text, count=1)
    if new != text:
        init.write_text(new)
        changed.append(init)
    return changed


def main(argv: list[str]) -> int:
    """Set the version from the argument (also written to ``VERSION``) or from ``VERSION``."""
    version_file = ROOT / "VERSION"
    if argv:
        version_file.write_text(argv[0].strip() + "\n")
    version = version_file.read_text().strip()
    for path in apply(version):
        print(f"{path.relative_to(ROOT)}: {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
