"""``swsync send``: send one SMS/MMS over RELAY (default) or REST and wait for its final state.

The cron-job command: its exit code tells what happened to the message
(``EXIT_CODES_HELP``), and ``--timeout`` bounds the whole command.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import TYPE_CHECKING

from .. import _validate
from ..errors import ConfigurationError, ConnectionClosedError, RestTimeout, WaitTimeout
from ..relay.events import TERMINAL_STATES
from ._shared import (
    EXIT_CODES_HELP,
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_TIMEOUT,
    CommandError,
    Parser,
    Progress,
    add_from,
    add_wait,
    global_options,
    not_delivered,
    relay_client,
    rest_client,
    seconds,
    timeout,
    track,
)

if TYPE_CHECKING:
    from ..rest import MessageRecord, RestClient

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> None:
    """Add ``send`` to ``swsync``'s commands."""
    p = subparsers.add_parser(
        "send",
        parents=[global_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send a message and print each state change with its elapsed time.",
        epilog=EXIT_CODES_HELP + "\nexample (cron):\n"
        "  swsync send --to +15551234567 --from +15559876543 --body 'backup done' "
        "|| echo 'not delivered'\n",
    )
    p.add_argument("--to", required=True, metavar="NUMBER", help="destination: E.164 (+15551234567) or a short code")
    add_from(p)
    p.add_argument("--body", help="message text; '-' reads it from standard input")
    p.add_argument("--media", action="append", metavar="URL", help="media URL (repeatable, up to 10)")
    p.add_argument("--tag", action="append", metavar="TAG", help="tag stored with the message (repeatable; RELAY)")
    p.add_argument("--context", help="RELAY context for the message's events (default: the session's)")
    p.add_argument(
        "--via",
        choices=("relay", "rest"),
        default="relay",
        help="send over the RELAY websocket (default) or the cXML REST API",
    )
    add_wait(p, "wait for a final state (default); --no-wait exits once the server accepted it")
    p.add_argument(
        "--timeout",
        type=timeout,
        default=30.0,
        metavar="SECONDS",
        help="give up after this long: connecting, sending and waiting (default: 30; 'inf' waits forever)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per state change")


def run(args: argparse.Namespace) -> int:
    """Run ``swsync send``; return its exit code (see ``EXIT_CODES_HELP``)."""
    body = _read_stdin().rstrip("\n") if args.body == "-" else args.body
    # Check everything before touching the network, so a typo exits 2 at once.
    _validate.phone_number(args.to, "--to")
    _validate.phone_number(args.from_, "--from")
    body, media = _validate.content(body, args.media)
    if args.via == "rest" and (args.tag or args.context):
        raise ConfigurationError("--tag and --context are RELAY options; drop them or use --via relay")
    if args.via == "rest":
        return _send_rest(args, body, media)
    return _send_relay(args, body, media)


def _read_stdin() -> str:
    """Standard input's text for ``--body -``; a closed or unreadable stdin is a usage error."""
    if sys.stdin is None:  # started with stdin closed (<&-)
        raise ConfigurationError("--body - reads standard input, but standard input is closed")
    try:
        return sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"--body -: standard input is not valid text: {exc}") from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"--body -: cannot read standard input: {exc}") from None


def _send_relay(args: argparse.Namespace, body: str | None, media: list[str]) -> int:
    # --timeout bounds the whole command: connecting, sending and waiting. A timer
    # disconnects the client at the deadline, which ends whichever step is running.
    timeout: float | None = args.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    # The message's state events reach only clients receiving its context.
    contexts = [args.context] if args.context else None
    client = relay_client(args, contexts, timeout=timeout)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        client.disconnect()

    timer = None if timeout is None else threading.Timer(timeout, expire)
    if timer is not None:
        timer.name = "swsync-cli-deadline"
        timer.daemon = True
        timer.start()
    connected = False
    try:
        with client:
            connected = True
            progress = Progress(sys.stdout, as_json=args.json, start=time.monotonic())
            message = client.send_message(
                args.to, args.from_, body, media=media or None, tags=args.tag, context=args.context
            )
            progress.show(message.message_id, "queued", detail=f"message {message.message_id} to {args.to}")
            if not args.wait:
                return EXIT_OK
            return track(message, progress, timeout, deadline)
    except (ConnectionClosedError, WaitTimeout):
        if expired.is_set() and not connected:
            raise CommandError(f"connection failed: not connected within {seconds(timeout)}", EXIT_CONNECTION) from None
        if expired.is_set():
            raise CommandError(f"timed out after {seconds(timeout)}", EXIT_TIMEOUT) from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()


class _Deadline:
    """The whole command's deadline (``--timeout``), applied to each REST call in turn."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    def bound(self, rest: RestClient) -> None:
        """Make the next call on ``rest`` end, retries and waits included, by the deadline."""
        remaining = self.remaining()
        if remaining is not None:
            rest.total_timeout = max(remaining, 0.001)

    def expired(self) -> bool:
        # A call cut short by the deadline ends within a few ms of it.
        remaining = self.remaining()
        return remaining is not None and remaining < 0.05


def _send_rest(args: argparse.Namespace, body: str | None, media: list[str]) -> int:
    deadline = _Deadline(args.timeout)
    with rest_client(args, timeout=args.timeout) as rest:
        progress = Progress(sys.stdout, as_json=args.json, start=time.monotonic())
        try:
            deadline.bound(rest)
            record = rest.messages.create(to=args.to, from_=args.from_, body=body, media_url=media or None)
        except RestTimeout as exc:
            if not deadline.expired():
                raise
            maybe = " (the message may have been sent: check 'swsync messages list')"
            raise CommandError(
                f"timed out after {seconds(args.timeout)}" + (maybe if exc.may_have_been_sent else ""), EXIT_TIMEOUT
            ) from None
        status = str(record.status or "queued")
        progress.show(record.sid, status, record.error_message, detail=f"message {record.sid} to {args.to}")
        if status in ("undelivered", "failed"):
            raise not_delivered(record.sid, status, record.error_message)
        if not args.wait:
            return EXIT_OK
        return _poll_rest(rest, record, progress, deadline)


def _poll_rest(rest: RestClient, record: MessageRecord, progress: Progress, deadline: _Deadline) -> int:
    """Fetch the message until its status is final or the deadline passes."""
    status = str(record.status or "queued")
    pause = 0.1
    context = rest.messages(record.sid)

    def timed_out() -> CommandError:
        return CommandError(
            f"timed out after {seconds(deadline.timeout)} waiting for message {record.sid} (last status: {status})",
            EXIT_TIMEOUT,
        )

    while status not in TERMINAL_STATES:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise timed_out()
        # REST has no push: poll, backing off to one request a second.
        time.sleep(pause if remaining is None else min(pause, remaining))
        pause = min(pause * 2, 1.0)
        try:
            deadline.bound(rest)
            record = context.fetch()
        except RestTimeout:
            if not deadline.expired():
                raise
            raise timed_out() from None
        status = str(record.status or status)
        progress.show(record.sid, status, record.error_message)
    if status != "delivered":
        raise not_delivered(record.sid, status, record.error_message)
    return EXIT_OK
