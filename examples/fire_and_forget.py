"""Send many messages without blocking on each one; collect outcomes in callbacks.

``send_message(..., on_completed=...)`` returns as soon as the server accepted the
message; the callback runs later, on a swsync callback thread, with the final
event. The main thread then waits for all of them with one ``threading.Condition``.

Run it (credentials from the SIGNALWIRE_* environment variables)::

    python examples/fire_and_forget.py --count 20 --to +15551234567 --from +15559876543

Exits 0 when every message was delivered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import threading

from swsync import MessageStateEvent, RelayClient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="how many messages to send")
    parser.add_argument("--to", default="+15551234567", help="destination number (E.164)")
    parser.add_argument("--from", dest="from_", default="+15559876543", help="your number (E.164)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for all outcomes")
    args = parser.parse_args(argv)

    outcomes: dict[str, str] = {}
    # Guards outcomes; the callbacks add to it, the main thread waits on it.
    finished = threading.Condition()

    def on_completed(event: MessageStateEvent) -> None:
        with finished:
            outcomes[event.message_id] = event.message_state
            finished.notify_all()

    with RelayClient() as client:
        for i in range(args.count):
            client.send_message(
                to_number=args.to,
                from_number=args.from_,
                body=f"Message {i + 1} of {args.count}",
                on_completed=on_completed,
            )
        print(f"{args.count} messages accepted; waiting for their outcomes...")
        with finished:
            all_done = finished.wait_for(lambda: len(outcomes) == args.count, args.timeout)
            results = dict(outcomes)

    delivered = sum(1 for state in results.values() if state == "delivered")
    print(
        f"delivered: {delivered}, not delivered: {len(results) - delivered}, "
        f"no outcome yet: {args.count - len(results)}"
    )
    return 0 if all_done and delivered == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
