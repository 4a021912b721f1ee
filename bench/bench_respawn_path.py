"""Where a respawn's time goes inside circusd: a timeline from the SIGKILL to the spawn event.

Runs our circusd (one ``sleep`` copy, crash-loop backoff off, as the bench's respawn row) with
entry/exit timestamps on the steps of a respawn, kills the copy ``--kills`` times and prints,
for each step, the median of its start (ms after the kill), wall duration and CPU time, then
what the daemon's threads spent per respawn from ``/proc/<pid>/task/*/schedstat``: time on a
CPU and time waiting for one (run-queue wait, what a loaded machine adds). ``perf_counter``
is CLOCK_MONOTONIC on Linux, so the daemon's timestamps and the bench's kill time compare.

    python bench/bench_respawn_path.py --kills 300
    python bench/bench_respawn_path.py --plain      # no timestamps, the daemon as shipped
    python bench/bench_respawn_path.py --patch old.py   # old.py monkeypatches the daemon first
                                                        # (not with --plain)

The timestamps cost a few microseconds per step; ``--plain`` gives the undisturbed total.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).parent))
from benchkit.backends.base import ProgramSpec  # noqa: E402
from benchkit.backends.circus import render_ini  # noqa: E402

# (module, class or "", attribute, label): the steps of a respawn, in the order they run.
STEPS = [
    ("_posixsubprocess", "", "fork_exec", "fork_exec"),  # first: subprocess binds it at import
    ("circus.process._mux", "FdMux", "_dispatch", "fd events"),
    ("circus.process._process_exit", "ExitWatching", "_on_exit_event", "reap"),
    ("circus.arbiter._publisher", "Publisher", "publish", "publish"),
    ("circus.watcher._spawner", "Spawner", "_after_death", "after_death"),
    ("circus.watcher._spawner", "Spawner", "spawn_now", "spawn_now"),
    ("circus.process._process", "Process", "_plan", "plan"),
    ("circus.process._process", "", "launch", "launch"),
    ("circus.watcher._spawner", "Spawner", "_register", "register"),
    ("circus.arbiter._reaper", "", "reap_adopted", "orphan look (SIGCHLD)"),
    ("circus.arbiter._watcher_set", "", "reap_adopted", "orphan look (reap)"),
    ("selectors", "EpollSelector", "select", "loop idle (select)"),  # the first after the spawn
]

IDLE = STEPS[-1][3]

# Runs inside the daemon: wraps STEPS, then runs circusd's main; the log goes to $TL_OUT.
_WRAPPER = r"""
import atexit, functools, importlib, json, os, sys, time
pc, tt = time.perf_counter, time.thread_time
LOG = []
def wrap(mod, cls, attr, label):
    owner = importlib.import_module(mod)
    owner = getattr(owner, cls) if cls else owner
    f = getattr(owner, attr)
    # a publish is labelled by its event (the last part of its topic)
    name = (lambda a: f"{label} {a[1].rsplit('.', 1)[-1]}") if label == "publish" else None
    @functools.wraps(f)
    def w(*a, **k):
        t, c = pc(), tt()
        try:
            return f(*a, **k)
        finally:
            LOG.append((name(a) if name else label, t, pc(), tt() - c))
    setattr(owner, attr, w)
if os.environ.get("TL_PATCH"):  # --patch: e.g. an older behaviour put back, for an A/B
    exec(compile(open(os.environ["TL_PATCH"]).read(), os.environ["TL_PATCH"], "exec"))
for step in json.loads(os.environ["TL_STEPS"]):
    wrap(*step)
atexit.register(lambda: json.dump(LOG, open(os.environ["TL_OUT"], "w")))
from circus.arbiter.circusd import main
sys.argv = ["circusd"] + sys.argv[1:]
sys.exit(main())
"""


def _sched(pid: int) -> tuple[int, int]:
    run = wait = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            a, b, _ = Path(path).read_text().split()
        except (OSError, ValueError):
            continue
        run, wait = run + int(a), wait + int(b)
    return run, wait


def _call(sock: zmq.Socket[Any], command: str, **props: Any) -> dict[str, Any]:
    sock.send(json.dumps({"command": command, "properties": props, "id": "b"}).encode())
    if not sock.poll(60_000):
        raise SystemExit(f"circusd: no answer to {command}")
    return dict(json.loads(sock.recv()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=300)
    ap.add_argument("--plain", action="store_true", help="no timestamps in the daemon")
    ap.add_argument(
        "--patch",
        metavar="FILE",
        help="Python run inside the daemon before circusd's main (monkeypatches for an A/B)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="respawn-path-") as tmp:
        wd = Path(tmp)
        spec = ProgramSpec("w", ("/usr/bin/sleep", "3600"), "sleep", 1, no_backoff=True)
        ctl, pub = f"ipc://{wd}/ctl.sock", f"ipc://{wd}/pub.sock"
        (wd / "c.ini").write_text(render_ini(spec, ctl, pub, ("backoff_initial = 0",)))
        env = dict(os.environ, TL_OUT=str(wd / "tl.json"), TL_STEPS=json.dumps(STEPS))
        if args.patch:
            env["TL_PATCH"] = os.path.abspath(args.patch)
        if args.plain:
            cmd = [sys.executable, "-m", "circus.arbiter.circusd", str(wd / "c.ini")]
        else:
            (wd / "wrapper.py").write_text(_WRAPPER)
            cmd = [sys.executable, str(wd / "wrapper.py"), str(wd / "c.ini")]
        with open(wd / "circusd.log", "w") as log:
            daemon = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        ctx = zmq.Context()
        dealer, sub = ctx.socket(zmq.DEALER), ctx.socket(zmq.SUB)
        try:
            dealer.linger = sub.linger = 0
            dealer.connect(ctl)
            sub.subscribe(b"watcher.w.")
            deadline = time.monotonic() + 60
            while not os.path.exists(f"{wd}/pub.sock") and time.monotonic() < deadline:
                time.sleep(0.05)
            sub.connect(pub)
            _call(dealer, "start", name="w", waiting=True)
            old = _call(dealer, "list", name="w")["pids"][0]
            time.sleep(0.5)  # the subscription reaches the daemon (a late SUB misses events)
            took, marks = [], []
            before = _sched(daemon.pid)
            for i in range(args.kills + 1):
                while sub.poll(0):
                    sub.recv_multipart()
                t0 = time.perf_counter()
                os.kill(old, signal.SIGKILL)
                while True:
                    if not sub.poll(10_000):
                        raise SystemExit("no spawn event within 10 s")
                    topic, payload = sub.recv_multipart()
                    pid = json.loads(payload).get("process_pid")
                    if topic.endswith(b".spawn") and pid != old:
                        break
                t1 = time.perf_counter()
                if i:  # the first is a warm-up
                    took.append(t1 - t0)
                    marks.append((t0, t1))
                old = pid
                time.sleep(0.002)
            after = _sched(daemon.pid)
            _call(dealer, "quit")
            daemon.wait(60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            dealer.close()
            sub.close()
            ctx.term()
        n = args.kills + 1
        print(
            f"respawn, kill to spawn event: median {statistics.median(took) * 1e3:.3f} ms over "
            f"{args.kills}; daemon per respawn: {(after[0] - before[0]) / 1e3 / n:.0f} us on a "
            f"CPU, {(after[1] - before[1]) / 1e3 / n:.0f} us waiting for one; load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        if not args.plain:
            _timeline(json.loads((wd / "tl.json").read_text()), marks)


def _timeline(log: list[list[Any]], marks: list[tuple[float, float]]) -> None:
    log.sort(key=lambda e: e[1])
    rows: dict[str, list[tuple[float, float, float]]] = {}
    i = 0
    for t0, t1 in marks:
        while i < len(log) and log[i][1] < t0:
            i += 1
        seen: set[str] = set()
        spawned = False
        j = i
        while j < len(log) and log[j][1] <= t1:
            label, start, end, cpu = log[j]
            spawned = spawned or label == "publish spawn"
            if label == IDLE and not spawned:
                label = "loop pass ends"  # a select before the spawn event (returned at once?)
            if label not in seen:  # the first of each step after the kill
                seen.add(label)
                rows.setdefault(label, []).append((start - t0, end - start, cpu))
            j += 1
        rows.setdefault("spawn event at the bench", []).append((t1 - t0, 0.0, 0.0))
    print(f"{'step (first after the kill)':28s} {'start ms':>9s} {'wall ms':>8s} {'cpu ms':>7s}  n")
    order = sorted(rows, key=lambda k: statistics.median(r[0] for r in rows[k]))
    for label in order:
        r = rows[label]
        med = [statistics.median(x[k] for x in r) * 1e3 for k in range(3)]
        print(f"{label:28s} {med[0]:9.3f} {med[1]:8.3f} {med[2]:7.3f}  {len(r)}")


if __name__ == "__main__":
    main()
