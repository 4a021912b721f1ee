"""Output throughput: how fast a child's stdout reaches a file through circus.process.

Prints a table with, for each size (argv; suffixes K/M/G; default 200M), the median of 3 runs:

* reference  - the child's stdout pipe spliced into the file with a blocking os.splice loop;
* cat        - ``head -c N /dev/zero | cat > file`` (what a shell pipeline does);
* ours       - Process + OutputRedirector + FileStream on asyncio (the splice fast path);
* ours+obs   - the same with an output observer attached (the read path: bytes enter Python).

The target for ``ours`` is >= 50 % of ``reference``. Run: ``python bench/bench_output.py 200M``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from circus.process import OutputRedirector, Process
from circus.process.streams import FileStream

RUNS = 3
PIPE_SIZE = 1 << 20


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def producer(size: int) -> list[str]:
    """A child writing ``size`` zero bytes to stdout in big blocks (the consumer is measured)."""
    if size % (1 << 20) == 0:
        return ["dd", "if=/dev/zero", "bs=1M", f"count={size >> 20}", "status=none"]
    return ["head", "-c", str(size), "/dev/zero"]


def reference(size: int, target: str) -> float:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass
    start = time.perf_counter()
    child = subprocess.Popen(producer(size), stdout=w)
    os.close(w)
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        while os.splice(r, out, PIPE_SIZE):
            pass
    finally:
        os.close(out)
        os.close(r)
    child.wait()
    return time.perf_counter() - start


def cat_pipeline(size: int, target: str) -> float:
    start = time.perf_counter()
    subprocess.run(["sh", "-c", f"{' '.join(producer(size))} | cat > {target}"], check=True)
    return time.perf_counter() - start


def ours(size: int, target: str, observe: bool = False) -> float:
    async def main() -> float:
        stream = FileStream(target)
        redirector = OutputRedirector()
        if observe:
            redirector.add_observer(lambda pid, name, data: None)
        start = time.perf_counter()
        proc = Process("bench", 1, " ".join(producer(size)), pipe_stderr=False)
        redirector.add(proc, stream)
        done = asyncio.get_running_loop().create_future()
        proc.add_exit_callback(lambda p: done.set_result(None))  # runs after the drain
        await done
        elapsed = time.perf_counter() - start
        redirector.remove(proc)
        proc.close()
        stream.close()
        return elapsed

    return asyncio.run(main())


def timed(fn: Callable[[int, str], float], size: int, target: str) -> float:
    elapsed = fn(size, target)
    got = os.path.getsize(target)
    os.unlink(target)
    if got != size:
        raise SystemExit(f"{fn.__name__}: wrote {got} bytes, expected {size}")
    return elapsed


def main(argv: list[str]) -> int:
    sizes = [parse_size(a) for a in argv] or [200 << 20]
    workdir = tempfile.mkdtemp(prefix="circus-bench-output-")
    methods: list[tuple[str, Callable[[int, str], float]]] = [
        ("reference (os.splice loop)", reference),
        ("cat pipe-to-file", cat_pipeline),
        ("ours (Process+Redirector+FileStream)", ours),
        ("ours + observer (read path)", lambda s, t: ours(s, t, observe=True)),
    ]
    try:
        print(f"{'method':40} {'size':>8} {'median s':>9} {'MB/s':>9} {'vs ref':>7}")
        for size in sizes:
            # Rounds interleave the methods so page-cache and CPU-frequency drift hit all alike.
            times: dict[str, list[float]] = {label: [] for label, _ in methods}
            for _ in range(RUNS):
                for label, fn in methods:
                    times[label].append(timed(fn, size, os.path.join(workdir, "out.bin")))
            ref_rate = None
            for label, _ in methods:
                elapsed = statistics.median(times[label])
                rate = size / elapsed / 1e6
                ref_rate = ref_rate or rate
                print(
                    f"{label:40} {size >> 20:>7}M {elapsed:>9.3f} {rate:>9.0f} "
                    f"{rate / ref_rate:>6.0%}"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
