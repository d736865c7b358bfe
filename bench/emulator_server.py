"""The emulator process of the benchmarks: ``python -m bench.emulator_server KWARGS_JSON [MODULE]``.

Runs ``Emulator(**KWARGS)``, prints its URLs and credentials (one JSON line), then
serves one control command per stdin line, replying with one JSON line, until
stdin closes (see :meth:`bench.common.EmulatorHandle.command`). MODULE, when
given, is imported and its ``extra_command(emu, words)`` serves the commands
this module does not know (a benchmark's own, e.g. ``bench.bulk_emulator``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

Extra = Callable[[Any, list[str]], dict[str, Any]] | None


async def _inject(emu: Any, k: int, context: str) -> None:
    # k injections in one loop pass: the emulator's per-call thread hop would
    # otherwise cap injection far below what a client can read.
    for _ in range(k):
        await emu._inject("+15551230000", "+15557654321", "benchmark inbound", context, [])


def inject(emu: Any, n: int, context: str, batch: int) -> dict[str, Any]:
    """``n`` ``messaging.receive`` events, ``batch`` per loop pass (1: the public ``inject_inbound``)."""
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(batch, n - done)
        if batch == 1:
            emu.inject_inbound("+15551230000", "+15557654321", "benchmark inbound", context=context)
        else:
            emu._call(_inject, emu, k, context)
        done += k
    return {"seconds": time.perf_counter() - t0}


def command(emu: Any, words: list[str], extra: Extra) -> dict[str, Any]:
    """Run one control command: reset, seed N, inject N CONTEXT [BATCH], stats, or ``extra``'s."""
    if words[0] == "reset":
        emu.reset()
        return {}
    if words[0] == "seed":
        emu.add_messages(
            int(words[1]), to="+15557654321", from_="+15551234567", body="seeded message {i} for the benchmark"
        )
        return {}
    if words[0] == "inject":
        return inject(emu, int(words[1]), words[2], int(words[3]) if len(words) > 3 else 64)
    if words[0] == "stats":
        return {"stats": dataclasses.asdict(emu.stats), "unacked": emu.unacked_events}
    if extra is not None:
        return extra(emu, words)
    raise ValueError(f"unknown command {words[0]!r}")


def main(argv: list[str]) -> int:
    """Serve until the parent closes stdin."""
    from swsync.emulator import Emulator

    kwargs = json.loads(argv[1])
    extra: Extra = importlib.import_module(argv[2]).extra_command if len(argv) > 2 and argv[2] else None
    with Emulator(**kwargs) as emu:
        info = {"relay_url": emu.relay_url, "rest_url": emu.rest_url, "project": emu.project, "token": emu.token}
        print(json.dumps(info), flush=True)
        for line in sys.stdin:
            try:
                reply = command(emu, line.split(), extra)
            except Exception as exc:
                reply = {"error": repr(exc)}
            print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
