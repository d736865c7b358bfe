"""``bench.bulk crash``'s sender, killed and rerun: ``python crash_sender.py PROJECT TOKEN URL JOURNAL KEYS RATE``.

``send_many(window=32)`` over KEYS keys (one destination each, ``+1666NNNNNNN``)
with the journal JOURNAL, paced at RATE messages/s with ``RateLimit(burst=1)``
so that a kill lands mid-batch; prints ``[key, outcome, replayed]`` per result,
one JSON line each, as it goes.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Send, printing each result as soon as it is known."""
    from swsync import Outbound, RateLimit, RelayClient

    project, token, url, journal, keys, rate = argv[1:7]
    rows = (Outbound(f"+1666{i:07d}", "+15551234567", "crash test", key=f"k{i}") for i in range(int(keys)))
    limit = RateLimit(float(rate), burst=1)
    with RelayClient(project, token, url, rate_limit=limit) as client:
        for r in client.send_many(rows, journal=journal, window=32):
            print(json.dumps([r.key, r.outcome, r.replayed]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
