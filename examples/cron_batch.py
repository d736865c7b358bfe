"""A cron job: send a batch over one connection from a thread pool; exit 1 if any failed.

One ``RelayClient`` is shared by every worker (``send_message`` and ``wait`` are
thread-safe); each worker blocks only itself while its message is delivered.

Run it (credentials from the SIGNALWIRE_* environment variables)::

    python examples/cron_batch.py --from +15559876543 --to +15551230001 --to +15551230002
    python examples/cron_batch.py --from +15559876543 --file numbers.txt   # one number a line

Crontab::

    0 8 * * *  cd /srv/app && python examples/cron_batch.py --file numbers.txt || mail-admin

Exits 0 when every message was delivered, 1 when any was not (each is listed).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from swsync import RelayClient, SwsyncError

DEFAULT_RECIPIENTS = ["+15551230001", "+15551230002", "+15551230003", "+15551230004", "+15551230005"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", action="append", help="recipient (repeatable)")
    parser.add_argument("--file", help="file with one recipient per line")
    parser.add_argument("--from", dest="from_", default="+15559876543", help="your number (E.164)")
    parser.add_argument("--body", default="Your daily report is ready.")
    parser.add_argument("--workers", type=int, default=8, help="messages in flight at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each outcome")
    args = parser.parse_args(argv)

    recipients = list(args.to or [])
    if args.file:
        with open(args.file, encoding="utf-8") as fh:
            recipients += [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    recipients = recipients or DEFAULT_RECIPIENTS

    with RelayClient() as client:

        def deliver(number: str) -> tuple[str, str]:
            try:
                message = client.send_message(to_number=number, from_number=args.from_, body=args.body)
                message.wait(timeout=args.timeout)
            except SwsyncError as exc:  # refused, timed out, connection lost
                return number, f"error: {exc}"
            except ValueError as exc:  # a malformed number in the list
                return number, f"invalid: {exc}"
            if message.state == "delivered":
                return number, "delivered"
            return number, f"{message.state} ({message.reason or 'no reason given'})"

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(deliver, recipients))

    failed = [(number, outcome) for number, outcome in results if outcome != "delivered"]
    print(f"{len(results) - len(failed)} of {len(results)} delivered")
    for number, outcome in failed:
        print(f"  {number}: {outcome}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
