#!/usr/bin/env python3
"""A thousand chatty children: N processes writing short numbered lines steadily, their
stdout sent to a file by each manager, and (ours) followed live on the ``output.*`` topic.

Per peer (ours, upstream Circus 0.19, Supervisor 4.3), one fresh daemon:

* N copies of a tiny C writer (built with ``cc`` in the work dir): each waits on a FIFO so all
  start together, then for ``--seconds`` writes ``--rate``/N bytes per second of
  ``--line``-byte lines ``"<pid> <seq> xxx...\\n"``, one ``write()`` per 10 ms tick (whole
  lines, like a stdio buffer flushed on a timer; ``--cut`` splits each tick's buffer at an odd
  offset so lines straddle writes, as a block-buffered program's do), then records how many
  lines it wrote in ``counts/<pid>`` and exits;
* circus flavours: ``stdout_stream.class = FileStream`` into one file for the watcher;
  Supervisor: ``stdout_logfile`` per process (``%(process_num)d``, its users' layout), no
  rotation;
* while they write, a thread times ``status`` (circus) / ``supervisor.getState()`` every
  20 ms on its own connection; for ``ours+cli`` (ours again, followed; the row of ``make
  bench``) a real ``circusctl logs -f chatty -n 0`` runs in a session (so a scheduling
  autogroup) of its own, as from a user's terminal, its output to a file checked once the
  flood is over, the lines it says circusd dropped read from its stderr, with when
  (``cli-here``: in the bench's session; ``cli-hwm<N>``: its SUB socket's ``ZMQ_RCVHWM``);
  for ``ours+follow`` a SUB socket in a thread of the bench follows
  ``output.<watcher>.stdout`` (what ``circusctl logs -f`` reads) and checks every line it gets
  as it comes (``+defer``: keeps them and checks them after the flood), with how far behind
  it ran and when the ``seq`` gaps came; ``sndhwm-<N>``: circusd's pub/sub ``ZMQ_SNDHWM``;
  ``ours+own-autogroup`` runs circusd in a session of its own (``setsid``) whose scheduling
  autogroup gets nice -10 (root only), to see what the CPU scheduler's share does to ``status``.
  More such experiments combine with ``+``: ``own-session`` (circusd in a session of its
  own), ``ag-<nice>`` (that session's autogroup nice, e.g. ``ag--20``), ``pgroup`` (children
  in circusd's session, each in a process group of its own, as Supervisor's), ``nice-<n>``
  (circusd's threads at nice n, children forked at 0), ``lazy-<ms>`` (the loop stops
  watching the shared epoll reader for that long after each dispatch: circusd sleeps between
  batches of output), ``pause-<ms>`` (the shared epoll reader's pause after a batch of
  output, ``circus.process._mux.PAUSE``), ``batch-<n>`` (fds served per dispatch
  while output floods, ``FLOOD_BATCH``), ``probe`` (circusd records its loop passes,
  dispatches and when each ``status`` was handled and answered; the row then splits each call
  into inbound / handler / outbound with the run-queue wait of the bench's calling thread and
  of circusd's main thread meanwhile, and the machine's busy share and the writers' own CPU),
  e.g. ``ours+pgroup+own-session+nice-10``;
  ``--client-session`` puts this bench (the status client) in a session of its own, as a
  user's shell is.

Checked afterwards: every line in the files parses, belongs to a writer, and each writer's
sequence is complete (lost = written - distinct seen, torn = lines that do not parse,
duplicated = seen twice). CPU per MB is the daemon's user+system CPU from the go signal until
every written byte is in the files, divided by the MB written (10^6 bytes); ``wait s`` is
the time its threads spent runnable but waiting for a CPU in that window (``schedstat``).

Usage: python bench/bench_chatty.py [--peers ours,ours+cli,circus,supervisor] [--n 1000]
       [--rate 50] [--seconds 10] [--line 100] [--cut] [--client-autogroup]
Heavy: run it under ``flock /tmp/bench.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.chatty import build_writer, run_peer  # noqa: E402
from benchkit.procs import raise_nofile  # noqa: E402


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'peer':<11} {'MB':>6} {'MB/s':>6} {'CPU s':>6} {'wait s':>6} {'CPU ms/MB':>9} "
        f"{'lost':>7} {'torn':>6} {'follow lost':>11} {'follow torn':>11} "
        f"{'status med/p99/max ms':>22} {'>10ms':>6}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            out.append(f"{r['peer']:<11} FAIL {r['error']}")
            continue
        s = r["status"]
        fl = r.get("follower")
        out.append(
            f"{r['peer']:<11} {r['mb_written']:>6.0f} {r['mb_per_s']:>6.1f} "
            f"{r['daemon_cpu_s']:>6.2f} {r['daemon_runq_wait_s']:>6.2f} {r['cpu_ms_per_mb']:>9.1f} "
            f"{r['files']['lost']:>7} {r['files']['torn']:>6} "
            f"{(fl['lost'] if fl else '-'):>11} {(fl['torn'] if fl else '-'):>11} "
            f"{s['median_ms']:>6.2f}/{s['p99_ms']:.2f}/{s['max_ms']:.1f}".rjust(22 + 0)
            + f" {s['over_10ms']:>3}/{s['samples']}"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="ours,ours+cli,circus,supervisor")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=50.0, help="MB/s written by all writers")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--line", type=int, default=100, help="bytes per line, newline included")
    ap.add_argument("--cut", action="store_true", help="split each write mid-line")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--client-autogroup",
        action="store_true",
        help="run this bench (the status client) in an autogroup of its own at nice -10 (root)",
    )
    ap.add_argument(
        "--client-session",
        action="store_true",
        help="run this bench (the status client) in a session (autogroup) of its own, nice 0",
    )
    args = ap.parse_args()
    raise_nofile()
    if args.client_session and not args.client_autogroup:
        os.setsid()  # as a user's shell: a session, so an autogroup, of its own
    if args.client_autogroup:
        # The client's own wake-ups must not be what a round trip measures: 1,000 writers,
        # each a session leader, are 1,000 scheduling groups beside the bench's.
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write("-10")
    build = Path(tempfile.mkdtemp(prefix="ch-build-", dir="/tmp"))
    try:
        writer = build_writer(build)
        rows = []
        for peer in args.peers.split(","):
            rows.append(run_peer(peer, args, writer))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.node()}  "
        f"{os.cpu_count()} cpus  load {os.getloadavg()[0]:.1f}  N={args.n} "
        f"rate={args.rate:g} MB/s  {args.seconds:g} s  line={args.line} B"
        f"{'  cut' if args.cut else ''}{'  client-autogroup' if args.client_autogroup else ''}"
    )
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
