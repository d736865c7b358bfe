"""``bench.scaling``'s one-process cell: ``python send_many.py URL PROJECT TOKEN N``.

N messages through ``send_many(window=64, wait=False)``; prints
``{"seconds": ..., "cpu": ..., "summary": ...}`` (wall and CPU seconds of the batch).
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main(argv: list[str]) -> int:
    """Send the batch; print its wall and CPU time."""
    from swsync import RelayClient
    from swsync.bulk import Outbound

    url, project, token, n = argv[1], argv[2], argv[3], int(argv[4])
    with RelayClient(project, token, url) as client:
        outs = (
            Outbound(to_number="+15551230000", from_number="+15557770000", body=f"m{i}", key=f"k{i}") for i in range(n)
        )
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        batch = client.send_many(outs, window=64, wait=False)
        outcomes = [result.outcome for result in batch]
        summary = batch.summary
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    assert outcomes.count("accepted") == n, summary
    print(json.dumps({"seconds": t1 - t0, "cpu": cpu, "summary": str(summary)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
