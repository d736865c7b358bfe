"""``bench.bulk``'s emulator-side commands, imported in the emulator process (``bench.emulator_server``)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any


def report(emu: Any) -> dict[str, Any]:
    """What the emulator was asked to send: per destination and per sender, with timestamps."""
    records = emu.store.select(lambda r: r.direction == "outbound-api")
    sent: defaultdict[str, list[float]] = defaultdict(list)
    created: defaultdict[str, list[float]] = defaultdict(list)
    for r in records:
        created[r.from_].append(r.date_created.timestamp())
        if r.date_sent is not None:
            sent[r.from_].append(r.date_sent.timestamp())
    return {
        "to": Counter(r.to for r in records),
        "delivered": Counter(r.to for r in records if r.status == "delivered"),
        "segments": {r.from_: r.num_segments for r in records},
        "sent": sent,
        "created": created,
        "refused": emu.pacing.refused,
    }


def extra_command(emu: Any, words: list[str]) -> dict[str, Any]:
    """``cpu`` (this process's CPU time) and ``report`` (see :func:`report`)."""
    if words[0] == "cpu":
        return {"cpu": time.process_time()}
    if words[0] == "report":
        return report(emu)
    raise ValueError(f"unknown command {words[0]!r}")
