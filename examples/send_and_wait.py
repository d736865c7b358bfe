"""Send one SMS over RELAY and wait until the carrier reports its final state.

Run it (credentials from the environment)::

    export SIGNALWIRE_PROJECT_ID=... SIGNALWIRE_API_TOKEN=...
    export SIGNALWIRE_SPACE=example.signalwire.com
    python examples/send_and_wait.py --to +15551234567 --from +15559876543

Against the local emulator, paste the lines ``swsync emulator`` prints and run it
without arguments. Exits 0 when the message was delivered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from swsync import RelayClient, WaitTimeout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", default="+15551234567", help="destination number (E.164)")
    parser.add_argument("--from", dest="from_", default="+15559876543", help="your number (E.164)")
    parser.add_argument("--body", default="Hello from swsync!")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the outcome")
    args = parser.parse_args(argv)

    # RelayClient() reads SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN and SIGNALWIRE_SPACE.
    with RelayClient() as client:
        message = client.send_message(to_number=args.to, from_number=args.from_, body=args.body)
        print(f"accepted {message.message_id}")
        # Print the intermediate states as they happen (on a callback thread).
        message.on(lambda event: print(f"  -> {event.message_state}"))
        try:
            message.wait(timeout=args.timeout)
        except WaitTimeout:
            print(f"no final state after {args.timeout} s (last: {message.state})", file=sys.stderr)
            return 1
    outcome = message.state + (f" ({message.reason})" if message.reason else "")
    print(f"final state: {outcome}")
    return 0 if message.state == "delivered" else 1


if __name__ == "__main__":
    sys.exit(main())
