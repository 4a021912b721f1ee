"""The respawn path before session 3's changes, put back inside circusd for an A/B.

    python bench/bench_respawn_path.py --patch bench/respawn_s3_old.py

Monkeypatches (run before circusd's main): one epoll poll per dispatch and the shared epoll
reader closed as soon as it empties (94d70bb), every event sent at once (e5476bf), the crash
state file written on the event loop (3008168). ``B()``, when the runner defines it, turns
the new code back on at run time (kill-by-kill A/B in one daemon); otherwise the old code
runs. Tied to those commits' code: it will not apply once that code changes.
"""

# ruff: noqa
B = globals().get("B", lambda: False)
import circus.process._mux as _m

_new_disp = _m.FdMux._dispatch
_new_rel = _m.release


def _one(self):
    try:
        ready = self._epoll.poll(0, _m.MAX_EVENTS)
    except InterruptedError:
        return
    for fd, _events in ready:
        entry = self._callbacks.get(fd)
        if entry is None:
            continue
        callback, args = entry
        try:
            callback(*args)
        except Exception as exc:
            pass


def _old_rel(loop, fd):
    mux = _m._muxes.get(loop)
    if mux is None:
        return
    mux.remove(fd)
    if not mux:
        del _m._muxes[loop]
        mux.close()


def _disp(self):
    return _new_disp(self) if B() else _one(self)


def _rel(loop, fd):
    return _new_rel(loop, fd) if B() else _old_rel(loop, fd)


_m.FdMux._dispatch = _disp
_m.release = _rel
from circus.arbiter._publisher import Publisher as _P

_orig_pub = _P.publish


def _pub(self, topic, payload):
    _orig_pub(self, topic, payload)
    if not B():
        self.flush()


_P.publish = _pub
from circus.arbiter._crashstate import CrashState as _C

_new_due = _C._due


def _old_due(self):
    self._handle = None
    self.write()


_C._due = lambda self: _new_due(self) if B() else _old_due(self)
