"""Queue messages for the workers and print each task's result: ``python -m examples.celery_app.enqueue N``.

Each message gets a key (``demo-<i>``): run it twice and the second run sends
nothing, it prints the recorded results.
"""

from __future__ import annotations

import json
import sys

from .app import app


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    count = int(args[0]) if args else 5
    to, from_ = (args[1], args[2]) if len(args) > 2 else ("+15557654321", "+15551234567")
    results = [
        app.send_task(
            "swsync.send_message",
            args=[to, from_, f"Hello #{i}"],
            kwargs={"key": f"demo-{i}", "wait": True, "timeout": 30},
        )
        for i in range(count)
    ]
    outcomes = [result.get(timeout=120) for result in results]
    for outcome in outcomes:
        print(json.dumps(outcome))
    return 0 if all(o["outcome"] == "delivered" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
