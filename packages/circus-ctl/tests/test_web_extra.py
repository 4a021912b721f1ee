"""Without the web extra, circushttpd says what to install instead of a traceback.

Runs whether or not tornado is installed: the test hides it from the child interpreter.
"""

from __future__ import annotations

import subprocess
import sys

HIDE_AND_RUN = """
import sys
sys.modules["tornado"] = None  # as if the web extra were not installed
from circus.ctl.web import main
sys.exit(main(["--port", "0"]))
"""


def test_circushttpd_without_the_web_extra_names_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HIDE_AND_RUN], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "circushttpd needs tornado, part of the web extra: pip install 'circus-ctl[web]'"
    )


def test_importing_the_package_needs_no_tornado() -> None:
    code = (
        "import sys; sys.modules['tornado'] = None; "
        "import circus.ctl.web as w; print(sorted(w.__all__)[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AuthPolicy"
