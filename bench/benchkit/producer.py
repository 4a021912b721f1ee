"""Write exactly N bytes of 100-byte text lines to stdout, fast; the stdout workload's child.

Usage: python producer.py N
"""

from __future__ import annotations

import os
import sys

LINE = b"x" * 99 + b"\n"
BLOCK = LINE * 655  # 65,500 bytes: one pipe buffer's worth of whole lines


def main() -> None:
    """Write ``argv[1]`` bytes to fd 1 and exit."""
    left = int(sys.argv[1])
    view = memoryview(BLOCK)
    while left > 0:
        chunk = view[: min(left, len(BLOCK))]
        while chunk:
            chunk = chunk[os.write(1, chunk) :]
        left -= min(left, len(BLOCK))


if __name__ == "__main__":
    main()
