"""A stand-in service: records its argv, cwd and environment, then waits to be stopped."""

import json
import os
import signal
import sys
import time

out = os.environ["APP_RECORD_DIR"]
name = os.environ.get("SUPERVISOR_PROCESS_NAME", "unknown")
record = {
    "pid": os.getpid(),
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith(("APP_", "SUPERVISOR_"))},
}
tmp = os.path.join(out, name + ".tmp")
with open(tmp, "w") as fh:
    json.dump(record, fh)
os.replace(tmp, os.path.join(out, name + ".json"))
print(f"{name} started", flush=True)
print(f"{name} to stderr", file=sys.stderr, flush=True)
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(60)
