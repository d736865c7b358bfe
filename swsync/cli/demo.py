"""``swsync demo``: no account needed; send, track, receive and list messages against an in-process emulator."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from ._shared import (
    OUTPUT,
    CommandError,
    Parser,
    Progress,
    format_table,
    global_options,
    import_emulator,
    non_negative_float,
    short,
    track,
    write,
)

if TYPE_CHECKING:
    from ..relay import Message

__all__ = ["add_parser", "run"]

_CONTEXT = "demo"


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> None:
    """Add ``demo`` to ``swsync``'s commands."""
    p = subparsers.add_parser(
        "demo",
        parents=[global_options()],
        description="Start an in-process emulator and walk through sending a message, "
        "watching it get delivered, receiving a reply and listing messages over REST.",
    )
    p.add_argument(
        "--state-delay",
        type=non_negative_float,
        default=0.3,
        metavar="SECONDS",
        help="seconds between state changes, to make them visible (default: 0.3)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``swsync demo``; return its exit code (0 once the tour is done)."""
    emulator = import_emulator()
    from ..relay import RelayClient

    out = sys.stdout
    ours, theirs = "+15550001111", "+15557654321"

    def say(text: str = "") -> None:
        write(out, text)

    with emulator.Emulator(state_delay=args.state_delay) as emu:
        say(f"Started a local SignalWire emulator at {emu.relay_url} (RELAY) and {emu.rest_url} (REST).")
        say("No account and no network needed: everything below runs on this machine.")
        say()
        client = RelayClient(emu.project, emu.token, emu.relay_url, contexts=[_CONTEXT])
        with client:
            say(f"1. Sending 'Hello from swsync!' to {theirs} over RELAY and waiting for delivery:")
            start = time.monotonic()
            progress = Progress(out, as_json=False, start=start)
            message = client.send_message(theirs, ours, "Hello from swsync!")
            progress.show(message.message_id, "queued", detail=f"message {message.message_id}")
            track(message, progress, 30.0)
            say()

            say(f"2. {theirs} replies; the client receives it through on_message:")
            import queue

            inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
            client.on_message(inbox.put)
            emu.inject_inbound(to_number=ours, from_number=theirs, body="Got it, thanks!", context=_CONTEXT)
            try:
                reply = inbox.get(timeout=10)
            except queue.Empty:
                raise CommandError("the demo's inbound message did not arrive within 10 s") from None
            say(f"   from {reply.from_number} to {reply.to_number} on context {reply.context!r}: {reply.body!r}")
            say()
        say("3. Listing the messages over the cXML REST API (RestClient):")
        from ..rest import RestClient

        with RestClient(emu.project, emu.token, emu.rest_url) as rest:
            records = rest.messages.list(limit=10)
        rows = [
            (r.sid[:8] + "…", r.direction or "-", r.from_ or "-", r.to or "-", str(r.status or "-"), short(r.body, 30))
            for r in records
        ]
        for line in format_table(rows, ("SID", "DIRECTION", "FROM", "TO", "STATUS", "BODY")):
            say("   " + line)
        say()
    say("Done. Next: 'swsync emulator' runs the emulator in the foreground; point the")
    say("SIGNALWIRE_* variables it prints at it and try 'swsync send' or examples/.")
    return OUTPUT.exit_code()
