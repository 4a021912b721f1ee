"""circusctl: the command-line client (one-shot commands, an interactive shell, logs, listen).

``main(argv)`` runs it and returns the exit code; the ``circusctl`` script calls it.
"""

from __future__ import annotations

from ._app import main

__all__ = ["main"]
