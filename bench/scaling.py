"""Scaling out with Celery: throughput per worker count, the shared limit's accuracy, Redis overhead.

Run from the repository root (needs the ``dev`` extras and ``redis-server``)::

    python -m bench.scaling                 # 10,000 messages per cell; writes docs/benchmarks.md
    python -m bench.scaling -n 2000 --no-doc

Cells:

* ``send_many`` in one process (window 64, no wait) against the emulator;
* the same messages as ``swsync.send_message`` Celery tasks (no wait) run by one
  prefork worker with 1, 2 and 4 processes: the tasks are queued first, then the
  worker starts; the rate is measured at the emulator from its first to its last
  message, and CPU is the worker processes' user+system time over that span;
* the shared limit: 2 worker pools x 2 processes, one ``RateLimit(redis_url=...)``,
  rate measured at the emulator from its stored timestamps;
* the per-message cost of one limiter reservation and of one send record
  (claim + outcome), timed in this process against the same Redis.

The emulator runs in this process (zero state delay); workers are real
``celery worker`` subprocesses (``tests/support/celery_app.py``), Redis a real
``redis-server``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from bench import workloads
from bench.common import median, table, write_section
from tests.support.celeryd import WorkerPool, worker_env
from tests.support.redisd import RedisServer

FROM = "+15557770000"
TICK = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> float:
    """User+system seconds of every live process in process group ``pgid``."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ...; utime=11, stime=12
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def outbound_count(emu: Any) -> int:
    return len(emu.store.select(lambda r: r.direction != "inbound"))


def wait_count(emu: Any, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while outbound_count(emu) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{outbound_count(emu)} of {n} messages after {timeout} s")
        time.sleep(0.01)


def send_many_cell(emu: Any, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(workloads.DIR / "send_many.py"), emu.relay_url, emu.project, emu.token, str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    data = json.loads(out.stdout)
    return {"rate": n / data["seconds"], "cpu_us": data["cpu"] / n * 1e6}


def celery_cell(emu: Any, broker: str, n: int, processes: int) -> dict[str, float]:
    import redis
    from celery import Celery

    redis.Redis.from_url(broker).flushdb()
    emu.reset()
    app = Celery("bench", broker=broker, backend=broker)
    for i in range(n):  # queued before any worker runs: the cell measures the workers only
        app.send_task(
            "swsync.send_message", args=["+15551230000", FROM, f"m{i}"], kwargs={"key": f"k{i}"}, ignore_result=False
        )
    app.close()
    pool = WorkerPool(
        f"bench{processes}", worker_env(broker=broker, emu=emu), concurrency=processes, loglevel="warning"
    )
    try:
        wait_count(emu, 1, 120)
        t0, c0 = time.perf_counter(), group_cpu(pool.proc.pid)
        wait_count(emu, n, 900)
        t1, c1 = time.perf_counter(), group_cpu(pool.proc.pid)
    finally:
        pool.stop()
    return {"rate": (n - 1) / (t1 - t0), "cpu_us": (c1 - c0) / n * 1e6}


def noop_cell(emu: Any, broker: str, n: int) -> dict[str, float]:
    """Celery's own floor: the same worker running a task that does nothing (result stored)."""
    import redis
    from celery import Celery

    r = redis.Redis.from_url(broker)
    r.flushdb()
    app = Celery("bench", broker=broker, backend=broker)
    for i in range(n):
        app.send_task("tests.noop", args=["+15551230000", FROM, f"m{i}"], kwargs={"key": f"k{i}"})
    app.close()
    base = r.dbsize()  # the queue (and kombu bindings); each finished task adds one result key
    pool = WorkerPool("bench-noop", worker_env(broker=broker, emu=emu), concurrency=1, loglevel="warning")
    try:
        deadline = time.monotonic() + 600
        while r.dbsize() <= base:
            time.sleep(0.005)
        t0, c0, k0 = time.perf_counter(), group_cpu(pool.proc.pid), r.dbsize() - base
        while r.dbsize() - base < n:
            if time.monotonic() > deadline:
                raise TimeoutError("no-op tasks did not finish")
            time.sleep(0.01)
        t1, c1 = time.perf_counter(), group_cpu(pool.proc.pid)
    finally:
        pool.stop()
    done = n - k0
    return {"rate": done / (t1 - t0), "cpu_us": (c1 - c0) / done * 1e6}


def limit_cell(emu: Any, broker: str, rate: float, n: int) -> dict[str, float]:
    import redis
    from celery import Celery

    redis.Redis.from_url(broker).flushdb()
    emu.reset()
    env = worker_env(broker=broker, emu=emu, SWSYNC_TEST_RATE=str(rate), SWSYNC_TEST_LIMIT_REDIS=broker)
    pools = [WorkerPool(name, env, loglevel="warning") for name in ("limit-a", "limit-b")]
    app = Celery("bench", broker=broker, backend=broker)
    try:
        for i in range(n):
            app.send_task("swsync.send_message", args=["+15551230000", FROM, f"m{i}"], kwargs={"key": f"k{i}"})
        wait_count(emu, n, n / rate * 3 + 60)
    finally:
        for p in pools:
            p.stop()
        app.close()
    times = sorted(r.date_created.timestamp() for r in emu.store.select(lambda r: r.direction != "inbound"))
    measured = (len(times) - 1) / (times[-1] - times[0])
    return {"rate": measured, "error_pct": (measured / rate - 1) * 100}


def overhead_cell(url: str, n: int) -> dict[str, float]:
    from swsync._redis_limiter import RedisBackend
    from swsync.celery import _Records

    backend = RedisBackend(url, per_second=1e9, burst=1e9, namespace=f"bench:{uuid.uuid4().hex}")
    records = _Records(url, 600)
    limiter, record = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            backend.reserve("+15557770000", 1.0, None)
        limiter.append((time.perf_counter() - t0) / n * 1e6)
        t0 = time.perf_counter()
        for _ in range(n):
            key = f"bench:{uuid.uuid4().hex}"
            records.get(key)  # what swsync.send_message does: read, claim, record the outcome
            records.claim(key, '{"outcome":"claimed"}')
            records.save(key, '{"outcome":"accepted"}')
        record.append((time.perf_counter() - t0) / n * 1e6)
    backend.close()
    records.close()
    return {"limiter_us": median(limiter), "record_us": median(record)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=10_000, help="messages per throughput cell")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts")
    parser.add_argument("--rate", type=float, default=50.0, help="shared limit (messages/s)")
    parser.add_argument("--limit-n", type=int, default=1000, help="messages in the limit cell")
    parser.add_argument("--no-doc", action="store_true", help="print only; do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    from swsync.emulator import Emulator

    rows, results = [], {}
    load0 = os.getloadavg()[0]
    with RedisServer() as server, Emulator(state_delay=0.0) as emu:
        broker = server.db_url(1)
        results["send_many"] = send_many_cell(emu, args.n)
        rows.append(
            [
                "`send_many` (window 64), one process",
                f"{results['send_many']['rate']:,.0f}",
                f"{results['send_many']['cpu_us']:,.0f}",
            ]
        )
        for p in (int(x) for x in args.processes.split(",")):
            r = results[f"celery{p}"] = celery_cell(emu, broker, args.n, p)
            rows.append(
                [f"Celery, 1 worker x {p} process{'es' if p > 1 else ''}", f"{r['rate']:,.0f}", f"{r['cpu_us']:,.0f}"]
            )
            print(rows[-1], flush=True)
        r = results["noop"] = noop_cell(emu, broker, args.n)
        rows.append(["Celery no-op task (Celery's own cost), 1 process", f"{r['rate']:,.0f}", f"{r['cpu_us']:,.0f}"])
        lim = results["limit"] = limit_cell(emu, broker, args.rate, args.limit_n)
        over = results["overhead"] = overhead_cell(server.url, 2000)
    load = (load0 + os.getloadavg()[0]) / 2
    print(json.dumps(results, indent=2))
    body = "\n\n".join(
        [
            "## Scaling out with Celery",
            f"{args.n:,} messages per row, no wait for delivery, emulator with zero state delay in the "
            "benchmark process, real `celery worker` subprocesses (prefork) and `redis-server`. The Celery "
            "rate is measured at the emulator from its first to its last message (tasks queued before the "
            "worker starts); CPU is the worker processes' user+system time per message. "
            f"Command: `python -m bench.scaling`. Load average around the run: {load:.1f} (other work "
            "shares the machine: compare CPU per message, and rows of one run, not absolute rates).",
            table(["sender", "msgs/s", "CPU µs/msg"], rows),
            f"**One limit for all workers**: 2 worker pools x 2 processes sharing "
            f'`RateLimit({args.rate:g}, burst=1, weight="messages", redis_url=...)`, {args.limit_n:,} messages: '
            f"{lim['rate']:.2f} msgs/s at the emulator ({lim['error_pct']:+.2f}% of the limit).",
            f"**Redis overhead per message** (wall time in this process, loopback Redis, median of 3 x 2,000): "
            f"one limiter reservation (Lua GCRA) {over['limiter_us']:.0f} µs; one send record (read, claim, "
            f"outcome: three round trips) {over['record_us']:.0f} µs. The rest of a Celery send's cost is Celery's own "
            "(the no-op row) and the RELAY send (the `send_many` row).",
        ]
    )
    if not args.no_doc:
        write_section("scaling", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
