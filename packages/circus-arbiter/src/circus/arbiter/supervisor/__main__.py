"""``python -m circus.arbiter.supervisor convert FILE``: print the Circus INI equivalent of a
supervisord.conf (what ``circusctl convert`` runs). Warnings go to stderr as ``file:line:``;
an invalid file exits 1 with its error."""

from __future__ import annotations

import os
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "convert":
        print("usage: python -m circus.arbiter.supervisor convert FILE", file=sys.stderr)
        return 2
    from ..config import ConfigError
    from . import ConvertError, detect_format, load_supervisor, to_circus_ini
    from ._emit import unconverted

    if detect_format(args[1]) != "supervisor" and os.path.isfile(args[1]):
        print(
            f"error: {args[1]}: not a supervisord.conf (no [supervisord], [program:x] or "
            "[group:x] section, or Circus sections in it)",
            file=sys.stderr,
        )
        return 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = load_supervisor(args[1])
            text = to_circus_ini(loaded)
            left_out = unconverted(loaded)
        except (ConfigError, ConvertError) as exc:
            error: Exception | None = exc
        else:
            error = None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    for message in [] if error is not None else left_out:
        print(f"warning: {message}", file=sys.stderr)
    if error is not None:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
