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
import json
import threading
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor

import websocket

from bench.common import emulator_process, median, percentile, pin, table, write_section
from swsync import RelayClient
from swsync.relay.dispatcher import Dispatcher
from swsync.relay.message import MessageTracker

TO, FROM = "+15557654321", "+15551234567"


def swsync_send_wait(emu: dict[str, str], n: int, threads: int) -> tuple[float, float, int]:
    """Return (messages/s, client CPU µs/message, lost) for send+wait from ``threads``."""
    with RelayClient(project=emu["project"], token=emu["token"], host=emu["relay_url"]) as client:
        client.send_message(to_number=TO, from_number=FROM, body="warm-up").wait(10)
        per = n // threads
        lost = 0
        lock = threading.Lock()

        def work(_: int) -> None:
            nonlocal lost
            for _ in range(per):
                msg = client.send_message(to_number=TO, from_number=FROM, body="benchmark")
                try:
                    msg.wait(30)
                except TimeoutError:
                    with lock:
                        lost += 1

        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    done = per * threads
    return done / wall, cpu / done * 1e6, lost


def bare_loop(emu: dict[str, str], n: int, window: int = 64) -> tuple[float, float]:
    """The ceiling: one websocket-client thread, pipelined, doing the same frames."""
    ws = websocket.create_connection(emu["relay_url"], skip_utf8_validation=True)
    ws.send(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "c",
                "method": "signalwire.connect",
                "params": {
                    "version": {"major": 2, "minor": 0, "revision": 0},
                    "agent": "bench",
                    "event_acks": True,
                    # State events go only to sessions receiving the message's context ("default" here).
                    "contexts": ["default"],
                    "authentication": {"project": emu["project"], "token": emu["token"]},
                },
            }
        )
    )
    while json.loads(ws.recv()).get("id") != "c":
        pass
    sent = delivered = 0
    in_flight = 0
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while delivered < n:
        while in_flight < window and sent < n:
            ws.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": str(uuid.uuid4()),
                        "method": "messaging.send",
                        "params": {"context": "default", "to_number": TO, "from_number": FROM, "body": "benchmark"},
                    }
                )
            )
            sent += 1
            in_flight += 1
        frame = json.loads(ws.recv())
        if frame.get("method") == "signalwire.event":
            ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
            inner = frame["params"].get("params", {})
            if inner.get("message_state") == "delivered":
                delivered += 1
                in_flight -= 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ws.close()
    return n / wall, cpu / n * 1e6


def rpc_latency(emu: dict[str, str], n: int) -> tuple[float, float]:
    """p50 and p99 of ``execute('signalwire.ping')`` round trips, in µs."""
    with RelayClient(project=emu["project"], token=emu["token"], host=emu["relay_url"]) as client:
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.execute("signalwire.ping", {})
            samples.append((time.perf_counter() - t0) * 1e6)
    return percentile(samples, 50), percentile(samples, 99)


def tracked_bytes(count: int = 100_000) -> float:
    """tracemalloc bytes per tracked in-flight message (the reader's registration path)."""
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
