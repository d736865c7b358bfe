"""Head-to-head benchmark (not a test): ``python -m bench.compare [--messages N] [--repeat R] [--quick] [--no-write]``.

Runs the same workloads, in one sitting, against one emulator (zero state delays,
TLS with a throwaway ``trustme`` CA, its own process pinned to core 0) with:

* swsync's ``RelayClient`` (threads);
* the official ``signalwire-sdk`` 3.7.5 asyncio ``RelayClient`` (tasks). Unpatched
  it loses the state events that arrive in the same read as the send result, so
  its outcome is reported once with a short wait timeout; it is then measured
  with :func:`install_early_event_shim` (benchmark-side only, see there);
* a bare websocket-client loop sending the same frames: one thread, a pipelined
  window, ``skip_utf8_validation=True``, one frame per ``send()`` (the ceiling).

Each client runs in its own subprocess pinned to core 1 and measures itself: wall
time, process CPU time (all threads) and ``ru_maxrss``. Workloads: send and wait
until delivered at concurrency 1, 8, 64, 256; fire-and-forget sends from 64
senders, counted as delivered through completion callbacks; inbound
``messaging.receive`` events injected by the emulator process. Then the one-shot
cold path (process start to delivered, ``swsync send --wait`` vs an official-SDK
script vs a bare websocket-client script) and REST (swsync ``RestClient`` vs
``twilio`` 9 vs a bare ``requests.Session``, over TLS: 1,000 creates; streaming
10,000 seeded records). Each cell repeats ``--repeat`` times back to back with the
clients interleaved; tables show medians, and ratios are medians of per-repetition
ratios. Results and plots go to docs/benchmarks.md and docs/img/ (``--no-write``
prints only). ``--profile`` samples swsync at concurrency 64 with py-spy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "bench" and "swsync" importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, runner
from bench.common import emulator_process, pin, tls_files, write_section

# The parts, modules and client programs: bench.workloads (the clients, run as
# subprocesses), bench.runner (the emulator, subprocesses, repetitions, cold path,
# py-spy), bench.report (tables, sections, headline, plots). This module parses the
# options and runs the parts in order.


@dataclass
class Plan:
    """What to run, from the command line."""

    n: int
    repeat: int
    quick: bool
    parts: set[str]
    baseline: str | None
    names: dict[str, str]  # client -> label (tables, plots)


@dataclass
class Results:
    """What the parts produced: the sections, the summary lines, the send + wait medians (for the plots)."""

    sections: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)
    send_wait: dict[int, report.Summary] | None = None
    lost_swsync: int | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=None, help="messages per cell (default 10,000; 2,000 --quick)")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per cell (default 3; 2 --quick)")
    parser.add_argument("--quick", action="store_true", help="smaller and fewer runs (about 3 minutes)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument(
        "--only",
        default="relay,unpatched,cold,rest",
        help="comma-separated parts: relay, unpatched, cold, rest, profile",
    )
    parser.add_argument("--profile", action="store_true", help="also profile swsync at concurrency 64 (py-spy)")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the swsync package in DIR as a baseline client, interleaved with this "
        "tree's (before/after; make DIR with: git archive REV swsync | tar -x -C DIR)",
    )
    parser.add_argument("--baseline-label", metavar="TEXT", help="what to call the baseline (e.g. a commit)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # older spelling of bench.workloads
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    """Defaults filled in: 10,000 messages and 3 repetitions (2,000 and 2 with ``--quick``)."""
    parts = set(args.only.split(","))
    if args.profile:
        parts.add("profile")
    return Plan(
        n=args.messages or (2000 if args.quick else 10_000),
        repeat=args.repeat or (2 if args.quick else 3),
        quick=args.quick,
        parts=parts,
        baseline=args.baseline,
        names=report.labels(args.baseline, args.baseline_label),
    )


def relay_part(bench: runner.Bench, plan: Plan, out: Results) -> None:
    """Send + wait at each concurrency, fire-and-forget, inbound; three sections."""
    clients = (*runner.CLIENTS[:1], runner.BASELINE, *runner.CLIENTS[1:]) if plan.baseline else runner.CLIENTS
    sw, other = runner.relay_cells(bench, plan.n, clients, plan.repeat)
    sw_sum = {c: report.summarize(sw[f"c={c}"], "bare") for c in runner.CONCURRENCY}
    other_sum = {k: report.summarize(other[k], "bare") for k in other}
    out.send_wait = sw_sum
    out.lost_swsync = report.lost_swsync(sw, other)
    out.headline += report.send_wait_headline(sw, sw_sum, plan.names)
    out.headline.append(report.other_headline(other, other_sum))
    out.sections.append(report.send_wait_section(plan.n, sw, sw_sum, plan.names))
    out.sections.append(report.other_section(plan.n, other_sum, plan.names))
    out.sections.append(report.breakdown_section(sw_sum, other_sum))


def unpatched_part(bench: runner.Bench, out: Results) -> None:
    """The official SDK without the shim: how many waits succeed."""
    n, conc, wait = 128, 64, 2.0
    print(f"official SDK unpatched: {n} messages, {conc} tasks, wait timeout {wait} s", flush=True)
    r = runner.official_unpatched(bench, n, conc, wait)
    print(f"  {r}", flush=True)
    out.sections.append(report.unpatched_section(r, n, conc, wait))
    out.headline.append(report.unpatched_headline(r, n, wait, out.lost_swsync))


def cold_part(bench: runner.Bench, plan: Plan, out: Results) -> None:
    """Process start to delivered, for one message, per program."""
    runs = 5 if plan.quick else 10
    print(f"one-shot cold path, {runs} runs each", flush=True)
    cold = runner.cold_path(bench, runs)
    print(f"  {cold}", flush=True)
    out.headline.append(report.cold_headline(cold))
    out.sections.append(report.cold_section(cold, runs, plan.names))


def rest_part(bench: runner.Bench, plan: Plan, out: Results) -> None:
    """REST creates and streaming: swsync vs twilio vs a bare session."""
    creates, records = (500 if plan.quick else 1000), 10_000
    rr = runner.rest_cells(bench, creates, records, plan.repeat)
    out.headline.append(report.rest_headline(rr))
    out.sections.append(report.rest_section(rr, creates, records))


def profile_part(bench: runner.Bench, plan: Plan, workdir: Path) -> None:
    """py-spy on swsync at concurrency 64; printed, not written."""
    print("profiling swsync at concurrency 64", flush=True)
    raw, header = runner.profile(bench, max(plan.n, 20_000), 64, workdir / "swsync-c64.raw", rate=500)
    print(report.summarize_profile(raw, header), flush=True)


def measure(plan: Plan) -> Results:
    """Start the emulator (TLS, core 0) and run the chosen parts, in order."""
    out = Results()
    with tempfile.TemporaryDirectory(prefix="swsync-bench-") as tmp:
        ca, server_pem = tls_files(tmp)
        with emulator_process(certfile=server_pem, state_delay=0.0) as emu:
            bench = runner.Bench(emu, ca, Path(tmp), plan.baseline)
            if "relay" in plan.parts:
                relay_part(bench, plan, out)
            if "unpatched" in plan.parts:
                unpatched_part(bench, out)
            if "cold" in plan.parts:
                cold_part(bench, plan, out)
            if "rest" in plan.parts:
                rest_part(bench, plan, out)
            if "profile" in plan.parts:
                profile_part(bench, plan, Path(tmp))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the head-to-head; print it, and write docs/benchmarks.md and docs/img/ unless ``--no-write``."""
    args = parse_args(argv)
    if args.worker:
        from bench.workloads.__main__ import main as worker_main

        return worker_main()
    plan = make_plan(args)
    started = time.perf_counter()
    pin(1)  # client subprocesses inherit core 1; the emulator process is moved to core 0
    out = measure(plan)
    if not out.sections:
        return 0
    body = "\n\n".join([report.intro(plan.repeat, time.perf_counter() - started, out.headline), *out.sections])
    print(body)
    if not args.no_write:
        if out.send_wait is not None:
            report.write_plots(out.send_wait, plan.names, plan.n, plan.repeat)
        write_section("head-to-head", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
