"""Reply to every inbound message until Ctrl-C or SIGTERM.

``on_message`` handlers run on a swsync callback thread (never the socket
reader), so a handler may send, and even wait, without stalling the connection.
``client.run()`` blocks until SIGINT/SIGTERM and then disconnects cleanly, which
makes this script a well-behaved systemd service or container entry point.

Run it (credentials from the SIGNALWIRE_* environment variables)::

    python examples/auto_responder.py --context default

Point your number's inbound messaging at the same RELAY context. Careful: two
auto-responders texting each other would reply forever.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from swsync import Message, RelayClient

log = logging.getLogger("auto_responder")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", action="append", help="context to receive on (default: default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    contexts = args.context or ["default"]

    client = RelayClient(contexts=contexts)

    @client.on_message
    def reply(message: Message) -> None:
        log.info("from %s: %r", message.from_number, message.body)
        answer = client.send_message(
            to_number=message.from_number,  # back to the sender...
            from_number=message.to_number,  # ...from the number they wrote to
            body=f"Thanks! You said: {message.body or '(media)'}",
        )
        answer.on(lambda event: log.info("reply %s: %s", answer.message_id, event.message_state))

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt  # until run() takes over signal handling

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        client.connect()
        log.info("listening on %s; Ctrl-C or SIGTERM to stop", ", ".join(contexts))
        client.run()  # returns after SIGINT/SIGTERM, disconnected
    except KeyboardInterrupt:  # a signal before run() had started
        client.disconnect()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
