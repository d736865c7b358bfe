"""A client subprocess of ``bench.compare``: ``python -m bench.workloads`` (protocol: ``bench.workloads``)."""

from __future__ import annotations

import importlib
import json
import sys

# spec["client"] -> the module whose run(spec) measures it; imported on demand, so a
# subprocess loads one client library only.
PROGRAMS = {
    "swsync": "bench.workloads.swsync_relay",
    "swsync-base": "bench.workloads.swsync_relay",  # another swsync tree first on sys.path
    "official": "bench.workloads.official_relay",
    "bare": "bench.workloads.bare_relay",
}
REST = "bench.workloads.rest_clients"


def main() -> int:
    """Read the spec from stdin, run it, print the result line."""
    spec = json.loads(sys.stdin.readline())
    module = importlib.import_module(REST if spec.get("rest") else PROGRAMS[spec["client"]])
    print(json.dumps(module.run(spec)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
