"""Bulk-sending benchmarks (not tests): ``python -m bench.bulk [unpaced|paced|crash|all] [options]``.

* ``unpaced``: N messages through ``RelayClient.send_many`` (window 64, no journal)
  next to a hand-written ``ThreadPoolExecutor`` of ``send_message(...).wait()`` (64
  threads), interleaved in the same run, against an emulator with zero delays in
  its own process; throughput and client CPU per message, medians of ``--repeat``.
* ``paced``: ``--senders`` sender numbers, each limited by ``RateLimit(--rate)`` in
  the client, against an emulator paced at the same rate (``Emulator(mps=...)``);
  the rate is measured at the emulator from each message's ``date_sent``, plus the
  sends refused by the emulated backlog and the duplicates.
* ``crash``: a sender process runs ``send_many`` with a journal over ``--keys`` keys
  and is killed with SIGKILL at a random moment, ``--kills`` times, each time rerun
  with the same journal; a last run finishes. Then the emulator counts: duplicates,
  and keys neither delivered nor reported unknown.

Each writes its section of docs/benchmarks.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from bench import workloads
from bench.common import emulator_process, median, pin, table, write_section
from swsync import Outbound, RateLimit, RelayClient

FROM = "+15551234567"


@contextmanager
def emulator(pinned: bool = True, **kwargs: Any) -> Iterator[tuple[dict[str, str], Any]]:
    """An emulator process (pinned to core 0 unless told not to); yields (its info, a command function).

    Commands: ``reset``, ``cpu`` (its process time) and ``report`` (what it sent, when).
    """
    with emulator_process(pinned=pinned, commands="bench.bulk_emulator", **kwargs) as emu:
        yield emu, emu.command


def client_for(emu: dict[str, str], **options: Any) -> RelayClient:
    return RelayClient(emu["project"], emu["token"], emu["relay_url"], **options)


# ------------------------------------------------------------------ (a) unpaced


def run_send_many(emu: dict[str, str], n: int) -> tuple[float, float, int]:
    with client_for(emu) as client:
        client.send_message("+15557654321", FROM, "warm-up").wait(10)
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        batch = client.send_many((Outbound("+15557654321", FROM, "benchmark", key=str(i)) for i in range(n)), window=64)
        done = sum(r.outcome == "delivered" for r in batch)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return n / wall, cpu / n * 1e6, n - done


def run_thread_pool(emu: dict[str, str], n: int) -> tuple[float, float, int]:
    with client_for(emu) as client:
        client.send_message("+15557654321", FROM, "warm-up").wait(10)

        def one(_: int) -> bool:
            return client.send_message("+15557654321", FROM, "benchmark").wait(60).message_state == "delivered"

        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(64) as pool:
            done = sum(pool.map(one, range(n)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return n / wall, cpu / n * 1e6, n - done


def unpaced(n: int, repeat: int, write: bool) -> dict[str, Any]:
    pin(1)
    results: dict[str, list[tuple[float, float, int]]] = {"send_many": [], "pool": []}
    with emulator() as (emu, command):
        for _ in range(repeat):  # interleaved: both see the same machine conditions
            for name, fn in (("send_many", run_send_many), ("pool", run_thread_pool)):
                command("reset")
                results[name].append(fn(emu, n))
                print(name, results[name][-1], file=sys.stderr)
    cells = {
        k: (median([r[0] for r in v]), median([r[1] for r in v]), sum(r[2] for r in v)) for k, v in results.items()
    }
    ratio = cells["send_many"][0] / cells["pool"][0]
    cpu_ratio = cells["send_many"][1] / cells["pool"][1]
    rows = [
        [
            "`client.send_many(..., window=64)`",
            f"{cells['send_many'][0]:,.0f}",
            f"{cells['send_many'][1]:.0f}",
            cells["send_many"][2],
        ],
        [
            "`ThreadPoolExecutor(64)` of `send_message(...).wait()`",
            f"{cells['pool'][0]:,.0f}",
            f"{cells['pool'][1]:.0f}",
            cells["pool"][2],
        ],
    ]
    body = (
        f"## Bulk: `send_many` vs a thread pool (unpaced)\n\n"
        f"`python -m bench.bulk unpaced --messages {n} --repeat {repeat}`: {n:,} messages each way, "
        "emulator with zero state delays in its own process on core 0, client on core 1, "
        f"plain `ws://`, the two interleaved in one run; medians of {repeat}.\n\n"
        + table(["client", "msgs/s", "client CPU µs/msg", "not delivered"], rows)
        + f"\n\nsend_many / thread pool: **{ratio:.2f}×** the throughput, "
        f"**{cpu_ratio:.2f}×** the CPU per message.\n"
    )
    if write:
        write_section("bulk-unpaced", body)
    print(body)
    return {"ratio": ratio, "cpu_ratio": cpu_ratio}


# ------------------------------------------------------------------ (b) paced


def _wait_sent(command: Any, total: int) -> dict[str, Any]:
    """The emulator's report once the emulated carrier sent every message it accepted (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        report: dict[str, Any] = command("report")
        if sum(len(v) for v in report["sent"].values()) >= total or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def _sender_rates(report: dict[str, Any], numbers: list[str], rate: float) -> tuple[list[float], ...]:
    """Per sender: the rate at the emulator, its error vs ``rate`` in %, the client's send rate after its burst."""
    rates = []
    for number in numbers:
        times = sorted(report["sent"].get(number, []))
        rates.append((len(times) - 1) / (times[-1] - times[0]))
    errors = [(r - rate) / rate * 100 for r in rates]
    burst = int(max(1.0, rate))  # RateLimit's default burst: one second's worth
    arrivals = []
    for number in numbers:
        times = sorted(report["created"].get(number, []))[burst:]
        arrivals.append((len(times) - 1) / (times[-1] - times[0]))
    return rates, errors, arrivals


def paced(senders: int, rate: float, seconds: float, write: bool) -> dict[str, Any]:
    per_sender = int(rate * seconds)
    numbers = [f"+1555100{s:04d}" for s in range(senders)]
    total = per_sender * senders
    with emulator(pinned=False, mps=rate) as (emu, command):
        limit = RateLimit(rate, max_wait=None)
        with client_for(emu, rate_limit=limit) as client:
            rows = (Outbound(f"+1777{i:07d}", numbers[i % senders], "paced", key=str(i)) for i in range(total))
            wall0, cpu0, emu0 = time.perf_counter(), time.process_time(), command("cpu")["cpu"]
            outcomes = Counter(r.outcome for r in client.send_many(rows, window=256, wait=False))
            wall = time.perf_counter() - wall0
            cpu, emu_cpu = time.process_time() - cpu0, command("cpu")["cpu"] - emu0

        report = _wait_sent(command, total)
    rates, errors, arrivals = _sender_rates(report, numbers, rate)
    duplicates = sum(c - 1 for c in report["to"].values() if c > 1)
    body = (
        f"## Bulk: paced sending\n\n"
        f"`python -m bench.bulk paced --senders {senders} --rate {rate:g} --seconds {seconds:g}`: "
        f"{senders} senders × {per_sender} one-segment messages, each sender limited in the client by "
        f"`RateLimit({rate:g})` (per sender, by segments) and paced at the emulator by "
        f"`Emulator(mps={rate:g})`; `send_many(window=256, wait=False)` (a campaign that takes delivery "
        "receipts from status callbacks: a sender thread is free once SignalWire accepted the message, "
        "so the client keeps SignalWire's queue fed through latency spikes). The rate is measured at the emulator "
        "from each message's `date_sent` (when the emulated carrier sent it): "
        "(messages − 1) / (last − first), per sender. The emulator never sends faster than "
        "its `mps`, so what this measures is that the client kept each sender's queue fed "
        "(a gap would lower it) without overflowing the backlog; the client's own rate is "
        "measured from each message's arrival (`date_created`).\n\n"
        + table(
            ["measure", "value"],
            [
                ["messages", f"{total:,}"],
                ["outcomes", ", ".join(f"{n} {o}" for o, n in outcomes.items())],
                [
                    "rate at the emulator per sender (median, min, max)",
                    f"{statistics.median(rates):.2f}, {min(rates):.2f}, {max(rates):.2f} segments/s",
                ],
                [
                    "error vs the limit (median, worst)",
                    f"{statistics.median(errors):+.2f}%, {max(errors, key=abs):+.2f}%",
                ],
                [
                    "client's send rate per sender, after its first-second burst (median, min, max)",
                    f"{statistics.median(arrivals):.2f}, {min(arrivals):.2f}, {max(arrivals):.2f} messages/s",
                ],
                ["refused by the emulated backlog", report["refused"]],
                ["duplicates at the emulator", duplicates],
                ["wall time", f"{wall:.1f} s"],
                ["CPU, client / emulator (share of one core)", f"{cpu / wall:.0%} / {emu_cpu / wall:.0%}"],
            ],
        )
        + "\n"
    )
    if write:
        write_section("bulk-paced", body)
    print(body)
    return {"errors": errors, "refused": report["refused"], "duplicates": duplicates}


# ------------------------------------------------------------------ (c) crash


def crash(keys: int, kills: int, seed: int, rate: float, write: bool) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp, emulator(state_delay=0.002) as (emu, command):
        journal = os.path.join(tmp, "sends.db")
        argv = [
            sys.executable,
            str(workloads.DIR / "crash_sender.py"),
            emu["project"],
            emu["token"],
            emu["relay_url"],
            journal,
            str(keys),
            str(rate),
        ]
        progress = []
        for _ in range(kills):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(rng.uniform(0.15, 0.8))  # a random moment: start-up, connecting, or mid-batch
            os.kill(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            progress.append(sum(1 for line in out.splitlines() if line and not json.loads(line)[2]))
        final = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        results = {k: o for k, o, _ in (json.loads(x) for x in final.stdout.splitlines())}
        report = command("report")
    sent, delivered = Counter(report["to"]), Counter(report["delivered"])
    duplicates = sum(c - 1 for c in sent.values() if c > 1)
    unknown = [k for k, o in results.items() if o == "unknown"]
    bad = [k for k, o in results.items() if o != "unknown" and delivered[f"+1666{int(k[1:]):07d}"] != 1]
    missing = keys - len(results)
    unknown_sent = sum(1 for k in unknown if sent[f"+1666{int(k[1:]):07d}"])
    rows = [
        ["keys", keys],
        ["SIGKILLs (each followed by a rerun)", kills],
        ["new results printed by the killed runs", f"{sum(progress)} ({', '.join(map(str, progress))})"],
        ["duplicates at the emulator", duplicates],
        [
            "keys reported delivered or accepted, and delivered once at the emulator",
            sum(1 for k, o in results.items() if o != "unknown" and delivered[f"+1666{int(k[1:]):07d}"] == 1),
        ],
        ["keys reported unknown by the final run", f"{len(unknown)} ({unknown_sent} of them had reached the emulator)"],
        ["keys neither delivered nor reported unknown", len(bad) + missing],
    ]
    body = (
        "## Bulk: the crash test (never twice)\n\n"
        f"`python -m bench.bulk crash --keys {keys} --kills {kills} --seed {seed} --crash-rate {rate:g}`: "
        f"a sender process runs `send_many(window=32)`, paced at {rate:g} messages/s (`RateLimit(burst=1)`, "
        f"so that the kills land mid-batch), with a journal over {keys} keys (one destination each) against "
        "an emulator (state delay 2 ms) in another process; it is killed with SIGKILL at a random "
        f"moment 0.15-0.8 s after it starts, {kills} times, each time started again with the same "
        "journal; then one last run finishes. The emulator then counts what it received.\n\n"
        + table(["measure", "value"], rows)
        + "\n"
    )
    if write:
        write_section("bulk-crash", body)
    print(body)
    return {"duplicates": duplicates, "unknown": len(unknown), "bad": len(bad) + missing}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="?", default="all", choices=("unpaced", "paced", "crash", "all"))
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keys", type=int, default=800)
    parser.add_argument(
        "--crash-rate",
        type=float,
        default=100.0,
        help="messages per second of the killed sender (so kills land mid-batch)",
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    write = not args.no_write
    if args.which in ("unpaced", "all"):
        unpaced(args.messages, args.repeat, write)
    if args.which in ("paced", "all"):
        paced(args.senders, args.rate, args.seconds, write)
    if args.which in ("crash", "all"):
        crash(args.keys, args.kills, args.seed, args.crash_rate, write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
