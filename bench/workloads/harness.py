"""What every client program shares: the numbers it sends to, the parent handshake, the meter."""

from __future__ import annotations

import gc
import json
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.common import percentile

TO, FROM = "+15557654321", "+15551234567"  # the numbers the emulator's "seed" command uses
INBOUND_CONTEXT = "bench"


def ready() -> None:
    """Tell the parent this client is connected and warm; block until it says ``go``."""
    gc.collect()
    print(json.dumps({"ready": True}), flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go'")


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB since it was exec'd.

    Linux's ``ru_maxrss`` also counts the parent's RSS at fork time (it survives
    ``execve``), so read the memory map's own high-water mark, ``VmHWM``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Meter:
    """Wall time and this process's resource usage (all threads) from creation to ``stop()``."""

    def __init__(self, thread_prefix: str | None = None) -> None:
        # CPU clocks of the named threads (e.g. swsync-reader), read at start and stop.
        self.clocks: dict[str, int] = {}
        if thread_prefix and hasattr(time, "pthread_getcpuclockid"):
            for t in threading.enumerate():
                if t.name.startswith(thread_prefix) and t.ident is not None:
                    self.clocks[t.name] = time.pthread_getcpuclockid(t.ident)
        self.thread_cpu = {name: time.clock_gettime(c) for name, c in self.clocks.items()}
        self.wall = time.perf_counter()
        self.usage = resource.getrusage(resource.RUSAGE_SELF)

    def stop(self) -> dict[str, Any]:
        """Return ``wall``, ``cpu`` (user + system), ``user``, ``sys`` seconds, context switches
        and ``threads`` (CPU seconds of each named thread)."""
        wall = time.perf_counter() - self.wall
        now, then = resource.getrusage(resource.RUSAGE_SELF), self.usage
        threads = {name: time.clock_gettime(c) - self.thread_cpu[name] for name, c in self.clocks.items()}
        user, sys_ = now.ru_utime - then.ru_utime, now.ru_stime - then.ru_stime
        return {
            "wall": wall,
            "cpu": user + sys_,
            "user": user,
            "sys": sys_,
            "vcsw": now.ru_nvcsw - then.ru_nvcsw,
            "ivcsw": now.ru_nivcsw - then.ru_nivcsw,
            "threads": threads,
        }


def result(n: int, usage: dict[str, Any], lat: Sequence[float] | None, lost: int = 0, **extra: Any) -> dict[str, Any]:
    """The JSON result line of a client program: counts, ``usage``, peak RSS and latency percentiles."""
    out: dict[str, Any] = {
        "n": n,
        **usage,
        "lost": lost,
        "rss_kib": peak_rss_kib(),
        "p50": percentile(lat, 50) if lat else None,
        "p99": percentile(lat, 99) if lat else None,
    }
    out.update(extra)
    return out


def start_threads(
    count: int, fn: Callable[[int], None], cpu: list[float]
) -> tuple[threading.Event, list[threading.Thread]]:
    """Start ``count`` threads that run ``fn(i)`` once the returned Event is set.

    The threads exist before the clock starts; each appends the CPU time it spent
    in ``fn`` to ``cpu``.
    """
    start = threading.Event()

    def run(i: int) -> None:
        start.wait()
        t0 = time.thread_time()
        fn(i)
        cpu.append(time.thread_time() - t0)

    threads = [threading.Thread(target=run, args=(i,), name=f"bench-{i}") for i in range(count)]
    for t in threads:
        t.start()
    return start, threads


def run_threads(start: threading.Event, threads: Sequence[threading.Thread]) -> None:
    """Release the threads made by :func:`start_threads` and wait for them all."""
    start.set()
    for t in threads:
        t.join()
