"""Runs the one-shot cold-path programs for ``bench.compare``: ``python -S cold_launcher.py RUNS``.

Reads ``[[name, argv, env], ...]`` (one JSON line) from stdin; runs each program
RUNS + 1 times, interleaved (the first round warms the page cache and is
dropped), with ``posix_spawn`` and ``wait4``; prints ``[[name, wall_s, ru_maxrss_kib], ...]``.
A child's ``ru_maxrss`` starts from its parent's RSS (it survives fork and exec),
so this parent stays tiny: standard library only, run with ``-S``.
"""

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    """Run the programs; print the samples; exit non-zero when one of them fails."""
    runs = int(argv[1])
    jobs = json.loads(sys.stdin.readline())
    quiet = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
    ]
    out = []
    for i in range(runs + 1):
        for name, args, env in jobs:
            t0 = time.perf_counter()
            pid = os.posix_spawn(args[0], args, env, file_actions=quiet)
            _, status, usage = os.wait4(pid, 0)
            wall = time.perf_counter() - t0
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"{name} exited {os.waitstatus_to_exitcode(status)}")
            if i:
                out.append([name, wall, usage.ru_maxrss])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
