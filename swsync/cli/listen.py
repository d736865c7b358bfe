"""``swsync listen``: print inbound messages as JSON lines, or hand them to Celery, until Ctrl-C or SIGTERM.

A message is acknowledged only once it was printed (or enqueued): one that could
not be is left for the server to deliver again, and listening stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ._shared import (
    EXIT_CONNECTION,
    OUTPUT,
    CommandError,
    Parser,
    err,
    global_options,
    relay_client,
    to_json,
    write,
)

if TYPE_CHECKING:
    from ..celery import InboundForwarder
    from ..relay import Message, RelayClient

__all__ = ["add_parser", "message_json", "run"]


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> None:
    """Add ``listen`` to ``swsync``'s commands."""
    p = subparsers.add_parser(
        "listen",
        parents=[global_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Receive inbound messages over RELAY and print each as one JSON line.",
    )
    p.add_argument(
        "--context", action="append", metavar="CONTEXT", help="context to receive on (repeatable; default: 'default')"
    )
    g = p.add_argument_group("hand inbound messages to Celery (pip install 'swsync[celery]'; docs/scaling.md)")
    g.add_argument(
        "--celery-app",
        metavar="MODULE:APP",
        help="Celery app to enqueue each message with, "
        "instead of printing it; the RELAY event is ACKed once the task is enqueued",
    )
    g.add_argument(
        "--task",
        metavar="NAME",
        help="Celery task that receives each message (a dict); "
        "it must be registered in the app (checked at start, exit 2)",
    )
    g.add_argument(
        "--redis-url",
        metavar="URL",
        help="Redis deduplicating message ids (default: the app's broker, if Redis); exit 4 "
        "when it does not answer at start, or fails while listening",
    )


def message_json(message: Message) -> dict[str, Any]:
    """The JSON-ready dict ``swsync listen`` prints for an inbound RELAY message."""
    from ..relay.message import message_fields

    return message_fields(message)


def _celery_forwarder(args: argparse.Namespace) -> InboundForwarder | None:
    if not args.celery_app and not args.task:
        return None
    if not (args.celery_app and args.task):
        raise ConfigurationError("--celery-app and --task go together")
    if os.getcwd() not in sys.path:  # find pkg.module from the current directory, as celery does
        sys.path.insert(0, os.getcwd())
    from ..celery import InboundForwarder
    from ..errors import RedisUnavailable

    forwarder = InboundForwarder(args.celery_app, args.task, redis_url=args.redis_url)
    try:
        forwarder.check()  # the task is registered and Redis answers, before connecting
    except RedisUnavailable as exc:
        raise CommandError(str(exc), EXIT_CONNECTION) from exc
    return forwarder


class _Printer:
    """The ``on_message`` handler that prints each message as one JSON line.

    The message is acknowledged (``ack_after``) only once printed. One that cannot
    be printed stops listening: the client is disconnected from a thread of its own.
    """

    def __init__(self, client: RelayClient) -> None:
        self._client = client
        # Guards _stopper: the thread that disconnects once printing failed.
        self._lock = threading.Lock()
        self._stopper: threading.Thread | None = None

    def __call__(self, message: Message) -> None:
        line = to_json(message_json(message))
        if write(sys.stdout, line):
            return  # and only now is the message acknowledged (ack_after)
        # Not printed: stop receiving, and raise so the message is not acknowledged
        # (the server may deliver it again). It also goes to stderr whole, as does
        # each one already queued behind it, so none is lost without a word. The
        # disconnect runs on its own thread: this dispatch thread cannot wait for
        # its own queue to drain.
        err(f"swsync: not printed, not acknowledged ({OUTPUT.problem}): {line}")
        with self._lock:
            if self._stopper is None:
                self._stopper = threading.Thread(target=self._client.disconnect, name="swsync-cli-stop", daemon=False)
                self._stopper.start()
        raise _Unprintable(message.message_id)

    def join(self) -> None:
        """Wait for the stopping thread, if one was started."""
        with self._lock:
            stopper = self._stopper
        if stopper is not None:
            stopper.join(timeout=30)  # disconnect() is bounded; this is a backstop


def run(args: argparse.Namespace) -> int:
    """Run ``swsync listen`` until Ctrl-C, SIGTERM or a failure; return its exit code."""
    contexts = args.context or ["default"]
    forwarder = _celery_forwarder(args)
    if forwarder is None and sys.stdout is None:
        # Nothing may be received (and acknowledged) that cannot be printed.
        raise ConfigurationError("standard output is closed: listen has nowhere to print messages")
    client = relay_client(args, contexts=contexts)
    printer = _Printer(client)
    import signal

    def on_sigterm(*_: Any) -> None:
        raise KeyboardInterrupt  # until run() installs its own handler

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    log_handler: logging.Handler | None = None
    try:
        if forwarder is not None:
            forwarder.on_failure = client.disconnect  # Redis failed: stop taking a share of inbound
            client.on_message(forwarder, ack_after=True)
        else:
            client.on_message(printer, ack_after=True)
        if not getattr(args, "debug", False):
            log_handler = _OneLineErrors()
            logging.getLogger("swsync").addHandler(log_handler)
        client.connect()
        err(f"swsync: listening on context(s) {', '.join(contexts)}; Ctrl-C to stop")
        client.run()  # returns on Ctrl-C, SIGTERM or disconnect(), disconnected
    except KeyboardInterrupt:
        client.disconnect()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        printer.join()
        if forwarder is not None:
            forwarder.join()
        if log_handler is not None:
            logging.getLogger("swsync").removeHandler(log_handler)
    if forwarder is not None and forwarder.failure is not None:
        raise CommandError(f"{forwarder.failure}; stopped listening", EXIT_CONNECTION)
    return OUTPUT.exit_code()


class _Unprintable(Exception):
    """Raised by ``listen``'s handler for a message it could not print: not acknowledged."""


class _OneLineErrors(logging.Handler):
    """swsync's ERROR records as one stderr line each, while ``listen`` runs without --debug.

    A failing callback is otherwise printed with its traceback; ``listen``'s own
    deliberate :class:`_Unprintable` is already reported, so it is not repeated.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and (
            isinstance(record.exc_info[1], _Unprintable) or getattr(record.exc_info[1], "reported", False)
        ):
            return
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:  # a handler raised: say what
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        err(f"swsync: error: {' '.join(text.split())}")
