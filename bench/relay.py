"""RELAY benchmark (not a test): ``python -m bench.relay [--messages N] [--repeat R] [--no-write]``.

Runs an emulator with zero state delays in its own process (pinned to core 0) and
the client here (pinned to core 1), then measures:

* send + wait-until-delivered throughput and client CPU per message from 1, 8 and
  64 threads, with swsync's ``RelayClient``;
* the same frames driven by a bare websocket-client loop (one thread, a pipelined
  window of 64, ``skip_utf8_validation=True``): the ceiling;
* ``execute("signalwire.ping")`` round-trip latency p50/p99;
* tracemalloc bytes per tracked in-flight message at 100,000 messages.

Each cell is the median of ``--repeat`` runs. Client CPU is this process's CPU
time (all threads) divided by messages. The table goes to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
import uuid

from bench.common import emulator_process, median, percentile, pin, table, write_section
from bench.workloads import bare_relay, swsync_relay
from bench.workloads.harness import FROM, TO, Meter


def swsync_send_wait(emu: dict[str, str], n: int, threads: int) -> tuple[float, float, int]:
    """Return (messages/s, client CPU µs/message, lost) for send+wait from ``threads``."""
    with swsync_relay.connect(emu) as client:
        client.send_message(to_number=TO, from_number=FROM, body="warm-up").wait(10)
        senders = swsync_relay.Senders(client, n // threads, threads, 30.0)
        gc.collect()
        meter = Meter()
        senders.run()
        usage = meter.stop()
    done = senders.total
    return done / usage["wall"], usage["cpu"] / done * 1e6, senders.lost


def bare_loop(emu: dict[str, str], n: int, window: int = 64) -> tuple[float, float]:
    """The ceiling: one websocket-client thread, pipelined, doing the same frames."""
    # State events go only to sessions receiving the message's context ("default" here).
    ws = bare_relay.connect(emu, ["default"])
    gc.collect()
    meter = Meter()
    bare_relay.pipeline(ws, n, window)
    usage = meter.stop()
    ws.close()
    return n / usage["wall"], usage["cpu"] / n * 1e6


def rpc_latency(emu: dict[str, str], n: int) -> tuple[float, float]:
    """p50 and p99 of ``execute('signalwire.ping')`` round trips, in µs."""
    with swsync_relay.connect(emu) as client:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.execute("signalwire.ping", {})
            samples.append((time.perf_counter() - t0) * 1e6)
    return percentile(samples, 50), percentile(samples, 99)


def tracked_bytes(count: int = 100_000) -> float:
    """tracemalloc bytes per tracked in-flight message (the reader's registration path)."""
    from swsync.relay.dispatcher import Dispatcher
    from swsync.relay.message import MessageTracker

    tracker = MessageTracker(Dispatcher(), max_tracked=count * 2)
    fields = {
        "context": "default",
        "to_number": TO,
        "from_number": FROM,
        "body": "benchmark",
        "direction": "outbound",
        "message_state": "queued",
        "media": [],
        "tags": [],
    }
    ids = [str(uuid.uuid4()) for _ in range(count)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    keep = [tracker.register(mid, dict(fields), None) for mid in ids]
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(keep) == len(tracker) == count
    return used / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    pin(1)
    rows = []
    with emulator_process() as emu:
        for threads in (1, 8, 64):
            n = args.messages if threads > 1 else max(1000, args.messages // 5)
            runs = [swsync_send_wait(emu, n, threads) for _ in range(args.repeat)]
            rows.append(
                [
                    f"swsync RelayClient, {threads} thread(s)",
                    f"{median([r[0] for r in runs]):,.0f}",
                    f"{median([r[1] for r in runs]):.0f}",
                    sum(r[2] for r in runs),
                ]
            )
            print(rows[-1], flush=True)
        bare = [bare_loop(emu, args.messages) for _ in range(args.repeat)]
        rows.append(
            [
                "bare websocket-client loop, window 64 (ceiling)",
                f"{median([b[0] for b in bare]):,.0f}",
                f"{median([b[1] for b in bare]):.0f}",
                "–",
            ]
        )
        print(rows[-1], flush=True)
        p50, p99 = rpc_latency(emu, 2000)
    per_msg = tracked_bytes()
    body = "\n".join(
        [
            "## RELAY: send and wait until delivered",
            "",
            f"`python -m bench.relay --messages {args.messages} --repeat {args.repeat}`: emulator with zero state "
            "delays in its own process on core 0, client on core 1, plain `ws://` on loopback. Each message is "
            "`messaging.send`, its result, four `messaging.state` events and four ACKs. Medians of "
            f"{args.repeat} runs; CPU is the client process's CPU time per message.",
            "",
            table(["client", "msgs/s", "client CPU µs/msg", "lost events"], rows),
            "",
            f"RPC round trip (`execute('signalwire.ping')`, 2,000 sequential): p50 {p50:.0f} µs, p99 {p99:.0f} µs.",
            "",
            f"Memory: {per_msg:,.0f} bytes (tracemalloc) per tracked in-flight message at 100,000 messages.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("relay", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
