"""List recent messages over the REST API and redact (blank) the bodies of finished ones.

Redaction keeps the message record (for billing and audits) but erases its text;
only messages in a final state can be redacted.

Run it (credentials from the SIGNALWIRE_* environment variables; REST needs no
websocket)::

    python examples/rest_list_redact.py --limit 20 --dry-run
    python examples/rest_list_redact.py --limit 20
"""

from __future__ import annotations

import argparse
import sys

from swsync import RestClient, RestError

FINAL = {"delivered", "undelivered", "failed", "received"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20, help="how many recent messages to look at")
    parser.add_argument("--dry-run", action="store_true", help="only list, change nothing")
    args = parser.parse_args(argv)

    failures = 0
    # RestClient() reads SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN and SIGNALWIRE_SPACE.
    with RestClient() as rest:
        for record in rest.messages.stream(limit=args.limit):
            sent = record.date_sent.isoformat(timespec="seconds") if record.date_sent else "-"
            print(f"{record.sid}  {sent}  {record.status!s:<11} {record.to}  {record.body!r}")
            if args.dry_run or not record.body or str(record.status) not in FINAL:
                continue
            try:
                rest.messages(record.sid).update(body="")
            except RestError as exc:
                failures += 1
                print(f"  could not redact {record.sid}: {exc}", file=sys.stderr)
            else:
                print(f"  redacted {record.sid}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
