"""The benchmark harness behind ``bench/run.py``.

Modules, one job each:

* ``settings``  -- what one bench invocation measures (N values, sizes, repeats).
* ``procs``     -- cheap /proc helpers: children of a pid, waiting on a condition.
* ``venvs``     -- cached, isolated venvs for the peers (upstream Circus, Supervisor, matplotlib).
* ``backends``  -- one adapter per thing measured: raw reference, circusd (ours or upstream),
  supervisord.  They all implement :class:`benchkit.backends.base.Backend`.
* ``workloads`` -- the measurements, written once against the backend interface.
* ``report``    -- medians, ratios, targets, the text table and the JSON file.
* ``plot``      -- the PNG of start time and daemon memory against N.
"""
