"""``python -m circus.ctl.cli`` runs circusctl."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
