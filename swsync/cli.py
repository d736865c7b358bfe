"""The ``swsync`` command line: ``send``, ``listen``, ``messages``, ``emulator``, ``demo``.

``main(argv)`` parses arguments with argparse and returns the process exit code;
``python -m swsync`` and the ``swsync`` console script both call it. Errors are one
line on stderr (``swsync: error: ...``); ``--debug`` adds DEBUG logging and full
tracebacks. Imports are lazy: ``swsync send`` over RELAY never imports ``requests``
or the emulator, which keeps a cron job's cold start short.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import _config, _validate
from ._version import __version__
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionClosedError,
    RelayError,
    RestError,
    RestTimeout,
    WaitTimeout,
)
from .relay.events import MessageStateEvent, RelayEvent

if TYPE_CHECKING:
    from .celery import InboundForwarder
    from .relay import Message, RelayClient
    from .rest import MessageRecord, RestClient

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_NOT_DELIVERED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0  # delivered (send --wait), accepted (send --no-wait), or the command succeeded
EXIT_NOT_DELIVERED = 1  # undelivered, failed, refused by the server; any other API error
EXIT_USAGE = 2  # bad arguments or configuration (argparse uses 2 as well)
EXIT_TIMEOUT = 3  # no final state within --timeout
EXIT_CONNECTION = 4  # credentials rejected, or the server could not be reached
EXIT_INTERRUPTED = 130  # Ctrl-C during a one-shot command

EXIT_CODES_HELP = """\
exit codes of 'swsync send':
  0  delivered (with --no-wait: accepted by the server)
  1  undelivered, failed, or refused by the server (the reason is printed)
  2  usage or configuration error (bad arguments, missing credentials)
  3  timed out waiting for a final state (see --timeout)
  4  authentication or connection failure
"""

CREDENTIALS_HELP = f"""\
credentials: --project, --token and --space, else the environment variables
{_config.ENV_PROJECT}, {_config.ENV_TOKEN} and {_config.ENV_SPACE}.
The space is a host name (example.signalwire.com) or, for a local emulator, a URL
such as ws://127.0.0.1:8765 or http://127.0.0.1:8765: one server serves RELAY and
REST, so either form works for every command. Without a space, 'send' and 'listen'
use SignalWire's RELAY host relay.signalwire.com; REST commands need the space.
"""

# Order of states for printing each one once, forward only (REST adds "sending").
_RANK = {
    "queued": 0,
    "initiated": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "received": 4,
}
_TERMINAL = frozenset({"delivered", "undelivered", "failed"})
_DEMO_CONTEXT = "demo"


class CommandError(Exception):
    """A failure the command line reports as one line with a specific exit code."""

    def __init__(self, message: str, code: int = EXIT_NOT_DELIVERED) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------- parsing


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors read ``swsync: error: ...`` and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"swsync: error: {message}\n")


def _global_options() -> _Parser:
    # SUPPRESS defaults let the options appear before or after the subcommand
    # without the subcommand's (absent) value overwriting the global one.
    common = _Parser(add_help=False)
    group = common.add_argument_group("credentials and diagnostics")
    group.add_argument("--project", default=argparse.SUPPRESS, help=f"project ID (default: ${_config.ENV_PROJECT})")
    group.add_argument("--token", default=argparse.SUPPRESS, help=f"API token (default: ${_config.ENV_TOKEN})")
    group.add_argument(
        "--space",
        default=argparse.SUPPRESS,
        help=f"space host or URL (default: ${_config.ENV_SPACE}; RELAY commands fall back to relay.signalwire.com)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log at DEBUG to stderr and show full tracebacks",
    )
    return common


COMMANDS = ("send", "send-batch", "listen", "messages", "emulator", "demo")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the ``swsync`` argument parser (exposed for documentation and tests).

    With ``only``, the other commands get a placeholder that accepts anything and
    marks the result for a full re-parse: building every sub-parser costs more
    than a one-shot ``swsync send`` spends talking to the network (argparse
    formats and translates each option as it is added).
    """
    common = _global_options()
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="swsync",
        description="Send and receive SignalWire messages from the command line.",
        epilog=CREDENTIALS_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=fmt,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"swsync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def wanted(name: str, helptext: str) -> bool:
        if only is None or only == name:
            return True
        placeholder = sub.add_parser(name, help=helptext, add_help=False)
        placeholder.add_argument("rest", nargs=argparse.REMAINDER)
        placeholder.set_defaults(reparse=True)
        return False

    if wanted("send", "send an SMS/MMS and (by default) wait until it is delivered"):
        _add_send(sub, common, fmt)
    if wanted("send-batch", "send one message per CSV row, paced and resumable (never twice)"):
        from ._cli_batch import add_parser as add_send_batch

        add_send_batch(sub, common, fmt)
    if wanted("listen", "print inbound messages as JSON lines until Ctrl-C or SIGTERM"):
        _add_listen(sub, common, fmt)
    if wanted("messages", "list, get, redact or delete messages over REST"):
        _add_messages(sub, common)
    if wanted("emulator", "run the local emulator (RELAY + REST) in the foreground"):
        _add_emulator(sub, common, fmt)
    if wanted("demo", "no account needed: send, track, receive and list messages against a local emulator"):
        _add_demo(sub, common)
    return parser


def _add_send(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "send",
        parents=[common],
        formatter_class=fmt,
        help="send an SMS/MMS and (by default) wait until it is delivered",
        description="Send a message and print each state change with its elapsed time.",
        epilog=EXIT_CODES_HELP + "\nexample (cron):\n"
        "  swsync send --to +15551234567 --from +15559876543 --body 'backup done' "
        "|| echo 'not delivered'\n",
    )
    p.add_argument("--to", required=True, metavar="NUMBER", help="destination: E.164 (+15551234567) or a short code")
    p.add_argument("--from", dest="from_", required=True, metavar="NUMBER", help="your sending number or short code")
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
    p.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for a final state (default); --no-wait exits once the server accepted it",
    )
    p.add_argument(
        "--timeout",
        type=_timeout,
        default=30.0,
        metavar="SECONDS",
        help="give up after this long: connecting, sending and waiting (default: 30; 'inf' waits forever)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per state change")
    p.set_defaults(func=_cmd_send)


def _add_listen(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "listen",
        parents=[common],
        formatter_class=fmt,
        help="print inbound messages as JSON lines until Ctrl-C or SIGTERM",
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
    p.set_defaults(func=_cmd_listen)


def _add_messages(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "messages",
        parents=[common],
        help="list, get, redact or delete messages over REST",
        description="Work with stored messages through the cXML REST API.",
    )
    msub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    q = msub.add_parser("list", parents=[common], help="list messages, newest first")
    q.add_argument("--to", metavar="NUMBER", help="only messages to this number")
    q.add_argument("--from", dest="from_", metavar="NUMBER", help="only messages from this number")
    q.add_argument("--status", help="only messages with this status (delivered, failed, ...)")
    q.add_argument("--date-sent", metavar="YYYY-MM-DD", help="only messages sent on this day (UTC)")
    q.add_argument("--limit", type=_positive_int, default=50, help="at most this many (default: 50)")
    q.add_argument("--json", action="store_true", help="one JSON object per message")
    q.set_defaults(func=_cmd_messages_list)
    for action, helptext, func in (
        ("get", "show one message", _cmd_messages_get),
        ("redact", "blank a message's body", _cmd_messages_redact),
        ("delete", "delete a message", _cmd_messages_delete),
    ):
        q = msub.add_parser(action, parents=[common], help=helptext)
        q.add_argument("sid", help="the message SID")
        q.add_argument("--json", action="store_true", help="print the message as JSON")
        q.set_defaults(func=func)


def _add_emulator(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    from . import _emulator_cli

    p = sub.add_parser(
        "emulator",
        parents=[common],
        formatter_class=fmt,
        help="run the local emulator (RELAY + REST) in the foreground; 'emulator inject' sends it inbound",
        description="Run a local SignalWire emulator until Ctrl-C. It prints the "
        "export lines a client needs. Needs: pip install 'swsync[emulator]'.\n\n"
        "Credentials: --project, --token, --signing-key, else SIGNALWIRE_PROJECT_ID, "
        "SIGNALWIRE_API_TOKEN and SIGNALWIRE_SIGNING_KEY while SIGNALWIRE_SPACE is unset or "
        "local (so exported lines keep working after a restart), else random.\n\n"
        "'swsync emulator inject --to ... --from ... --body ...' hands a running emulator an "
        "inbound message (credentials and space from the exported variables).",
    )
    _emulator_cli.add_server_arguments(p, default_port=8765, credentials=False)
    p.set_defaults(func=_cmd_emulator)
    actions = p.add_subparsers(dest="emulator_command", metavar="ACTION", parser_class=_Parser)
    q = actions.add_parser(
        "inject",
        parents=[common],
        help="send a running emulator an inbound message (as if a phone texted you)",
        description="POST an inbound message to a running emulator's control API "
        "(/_emulator/api/inbound), authenticated with its project and token. Prints its SID.",
    )
    _emulator_cli.add_inject_arguments(q)
    q.set_defaults(func=_cmd_emulator_inject)


def _add_demo(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="no account needed: send, track, receive and list messages against a local emulator",
        description="Start an in-process emulator and walk through sending a message, "
        "watching it get delivered, receiving a reply and listing messages over REST.",
    )
    p.add_argument(
        "--state-delay",
        type=_non_negative_float,
        default=0.3,
        metavar="SECONDS",
        help="seconds between state changes, to make them visible (default: 0.3)",
    )
    p.set_defaults(func=_cmd_demo)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


NO_LIMIT = 1e9  # seconds (about 31 years): a --timeout this long or longer means no limit


def _timeout(text: str) -> float | None:
    """A ``--timeout``: a positive number of seconds; ``inf`` or >= 1e9 s is ``None`` (no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return None if value >= NO_LIMIT else value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


# ------------------------------------------------------------------ entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``swsync`` command line and return its exit code.

    Args:
        argv: the arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        The exit code (see ``swsync --help``); argparse usage errors exit with 2
        through ``SystemExit`` as usual.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _reserve_std_fds()
    _OUTPUT.reset()
    args = _parse(argv)
    debug = bool(getattr(args, "debug", False))
    if debug:
        logging.basicConfig(
            level=logging.DEBUG,
            stream=sys.stderr,
            format="%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s",
        )
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        _flush_quietly()
        _err("swsync: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, grep -m) went away: stop quietly, as Unix tools do.
        _discard(sys.stdout)
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the CLI's one error boundary
        code, text = _describe(exc)
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        _flush_quietly()
        _err(f"swsync: error: {text}")
        return code


_GLOBAL_VALUE_OPTIONS = frozenset({"--project", "--token", "--space"})


def _command_of(argv: Sequence[str]) -> str | None:
    """The command word in ``argv``, skipping the values of global options.

    ``--project demo send`` names the command ``send``: ``demo`` is the value of
    ``--project``. Only a guess (argparse has the last word), used to build one
    sub-parser instead of all of them.
    """
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _GLOBAL_VALUE_OPTIONS:
            skip = True
        elif arg == "--":
            return None
        elif arg in COMMANDS:
            return arg
    return None


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse with only the command's own parser built; anything unexpected gets the full one."""
    args, extra = build_parser(_command_of(argv)).parse_known_args(argv)
    if extra or getattr(args, "reparse", False):
        args = build_parser().parse_args(argv)
    return args


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        if sys.stdout is not None:
            _discard(sys.stdout)


def _reserve_std_fds() -> None:
    """Open /dev/null on any of file descriptors 0-2 the shell left closed (``>&-``).

    Otherwise the next socket the client opens could get descriptor 1 or 2, and a
    stray write meant for standard output or error would land in the websocket.
    Python has already set ``sys.stdout`` (or ``stdin``, ``stderr``) to ``None`` for
    a closed one, which is how the commands learn about it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)


def _describe(exc: BaseException) -> tuple[int, str]:
    """Map an exception to (exit code, one-line message)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "WRONG_VERSION_NUMBER" in text and "not TLS" not in text:
        # A TLS client talking to a plain-HTTP server, typically a bare --space
        # pointing at the local emulator.
        import re

        where = re.search(r"(?:wss|https)://([^\s/]+)", text)
        text += (
            "; the server answered in plain text, not TLS: for a local emulator give "
            f"--space as a URL, e.g. --space http://{where.group(1) if where else '127.0.0.1:8765'}"
        )
    if isinstance(exc, CommandError):
        return exc.code, text
    if isinstance(exc, AuthenticationError):
        return EXIT_CONNECTION, f"authentication failed: {text}"
    if isinstance(exc, ConfigurationError):
        return EXIT_USAGE, text
    if isinstance(exc, RelayError):
        return EXIT_NOT_DELIVERED, f"the server refused the request: {text}"
    if isinstance(exc, RestError):
        if exc.status in (401, 403):
            return EXIT_CONNECTION, f"authentication failed: {text}"
        return EXIT_NOT_DELIVERED, text
    if isinstance(exc, ConnectionClosedError):  # includes REST transport errors and timeouts
        return EXIT_CONNECTION, f"connection failed: {text}"
    if isinstance(exc, WaitTimeout):
        return EXIT_TIMEOUT, text
    if isinstance(exc, (ValueError, TypeError)):
        return EXIT_USAGE, text
    if isinstance(exc, OSError):
        return EXIT_CONNECTION, f"connection failed: {text}"
    return EXIT_NOT_DELIVERED, f"{type(exc).__name__}: {text}"


# ------------------------------------------------------------------ credentials


def _arg_or_env(args: argparse.Namespace, name: str, env: str) -> str | None:
    value = getattr(args, name, None)
    if value is None:
        value = os.environ.get(env) or None
    if value is not None and not value.strip():
        raise ConfigurationError(f"--{name} must not be empty")
    return value


def _require(value: str | None, flag: str, env: str) -> str:
    if value is None:
        raise ConfigurationError(f"missing {flag[2:]}: pass {flag} or set {env}")
    return value


def _relay_client(
    args: argparse.Namespace,
    contexts: Sequence[str] | None = None,
    *,
    timeout: float | None = 10.0,
    **options: Any,
) -> RelayClient:
    """The RELAY client from --project/--token/--space or the environment; ``options``
    (e.g. ``rate_limit``, ``request_timeout``) go to ``RelayClient`` as given."""
    from .relay import RelayClient

    project = _arg_or_env(args, "project", _config.ENV_PROJECT)
    token = _arg_or_env(args, "token", _config.ENV_TOKEN)
    # No space: RelayClient uses SignalWire's public RELAY host, as the official SDK does.
    space = _arg_or_env(args, "space", _config.ENV_SPACE)
    if token is None and not os.environ.get(_config.ENV_JWT):
        raise ConfigurationError(f"missing token: pass --token or set {_config.ENV_TOKEN} (or {_config.ENV_JWT})")
    if token is not None:
        _require(project, "--project", _config.ENV_PROJECT)
    # Connecting and each request; --timeout may shorten it.
    timeout = 10.0 if timeout is None else min(timeout, 10.0)
    settings: dict[str, Any] = {"contexts": contexts, "connect_timeout": timeout, "request_timeout": timeout, **options}
    return RelayClient(project, token, space, **settings)


def _rest_client(args: argparse.Namespace, *, timeout: float | None = 10.0) -> RestClient:
    from .rest import RestClient

    project = _require(_arg_or_env(args, "project", _config.ENV_PROJECT), "--project", _config.ENV_PROJECT)
    token = _require(_arg_or_env(args, "token", _config.ENV_TOKEN), "--token", _config.ENV_TOKEN)
    space = _arg_or_env(args, "space", _config.ENV_SPACE)
    if space is None:
        raise ConfigurationError(
            "missing space: the REST API has no default host and needs your space "
            f"(--space example.signalwire.com, or set {_config.ENV_SPACE})"
        )
    # Each attempt's connect and read timeouts; --timeout also bounds each whole call.
    return RestClient(project, token, space, timeout=10.0 if timeout is None else min(timeout, 10.0))


# ------------------------------------------------------------------------ output


_READER_GONE = "the reader went away"  # EPIPE: `swsync ... | head` finished reading


class _OutputState:
    """Whether standard output still works, for this run of :func:`main`.

    The first failed write is reported as one line on stderr; every later write is
    skipped. Commands decide what a failure means for their exit code: ``send``'s
    still tells the message's outcome, ``messages list`` and ``get`` fail with 1.
    """

    def __init__(self) -> None:
        # Guards problem; held while one line is written, so lines never interleave.
        self.lock = threading.Lock()
        self.problem: str | None = None

    def reset(self) -> None:
        with self.lock:
            self.problem = None

    def exit_code(self, code: int = EXIT_OK) -> int:
        """``code``, or 1 when output was lost to anything but a reader that went away."""
        problem = self.problem
        return code if problem in (None, _READER_GONE) else EXIT_NOT_DELIVERED


_OUTPUT = _OutputState()


def _err(line: str) -> None:
    """Write one line to stderr, ignoring a closed or broken stderr (nowhere left to report)."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _discard(out: TextIO) -> None:
    """Point ``out``'s descriptor at /dev/null, so its buffer can flush at exit without error."""
    try:
        fd = out.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return  # not a real file (a test's capture), or nothing to open: nothing to do
    os.dup2(devnull, fd)
    os.close(devnull)


def _try_write(out: TextIO | None, line: str) -> str | None:
    """Write and flush one line; return why that failed, or ``None``."""
    if out is None:
        return "it is closed"
    try:
        out.write(line + "\n")
        out.flush()
        return None
    except BrokenPipeError:
        _discard(out)
        return _READER_GONE
    except (OSError, ValueError) as exc:
        _discard(out)
        return " ".join(str(exc).split()) or type(exc).__name__


def _write(out: TextIO | None, line: str) -> bool:
    """Write one line to standard output; return False once it no longer works.

    A reader that went away (a closed pipe: ``swsync ... | head``) ends the output
    quietly, as Unix tools do; any other failure (stdout closed with ``>&-``, a full
    disk, ``>/dev/full``) is reported once on stderr. Either way the command carries
    on: ``send``'s exit code must still tell what happened to the message.
    """
    with _OUTPUT.lock:
        if _OUTPUT.problem is not None:
            return False
        problem = _try_write(out, line)
        if problem is None:
            return True
        _OUTPUT.problem = problem
    if problem != _READER_GONE:
        _err(f"swsync: error: cannot write to standard output: {problem}")
    return False


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, default=str)


class _Progress:
    """Prints one message's state changes, each at most once and never backwards.

    Called from the main thread and from the client's dispatch thread.
    """

    def __init__(self, out: TextIO, *, as_json: bool, start: float) -> None:
        self._out = out
        self._json = as_json
        self._start = start
        # Guards _rank/_last and the write of one line; held only while printing it.
        self._lock = threading.Lock()
        self._rank = -1
        self._last: str | None = None

    @property
    def last(self) -> str | None:
        """The last state printed."""
        return self._last

    def on_event(self, event: RelayEvent) -> None:
        """``Message.on`` handler: print a ``messaging.state`` event."""
        if isinstance(event, MessageStateEvent):
            self.show(event.message_id, event.message_state, event.reason)

    def show(self, message_id: str, state: str, reason: str | None = None, detail: str = "") -> None:
        """Print ``state`` unless it, or a later state, was printed already."""
        elapsed = time.monotonic() - self._start
        rank = _RANK.get(state)
        with self._lock:
            if state == self._last or (rank is not None and rank <= self._rank):
                return
            if rank is not None:
                self._rank = rank
            self._last = state
            if self._json:
                line = _json(
                    {"message_id": message_id, "state": state, "reason": reason or None, "elapsed": round(elapsed, 3)}
                )
            else:
                line = f"{elapsed:7.3f}s  {state:<11}"
                if reason:
                    line += f" reason: {reason}"
                if detail:
                    line += f" {detail}"
                line = line.rstrip()
            _write(self._out, line)


def _not_delivered(message_id: str, state: str, reason: str | None) -> CommandError:
    return CommandError(f"message {message_id} {state}: {reason or 'no reason given'}")


# ---------------------------------------------------------------------- send


def _cmd_send(args: argparse.Namespace) -> int:
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


def _seconds(timeout: float | None) -> str:
    return "forever" if timeout is None else f"{timeout:g} s"


def _send_relay(args: argparse.Namespace, body: str | None, media: list[str]) -> int:
    # --timeout bounds the whole command: connecting, sending and waiting. A timer
    # disconnects the client at the deadline, which ends whichever step is running.
    timeout: float | None = args.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    # The message's state events reach only clients receiving its context.
    contexts = [args.context] if args.context else None
    client = _relay_client(args, contexts, timeout=timeout)
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
            progress = _Progress(sys.stdout, as_json=args.json, start=time.monotonic())
            message = client.send_message(
                args.to, args.from_, body, media=media or None, tags=args.tag, context=args.context
            )
            progress.show(message.message_id, "queued", detail=f"message {message.message_id} to {args.to}")
            if not args.wait:
                return EXIT_OK
            return _track(message, progress, timeout, deadline)
    except (ConnectionClosedError, WaitTimeout):
        if expired.is_set() and not connected:
            raise CommandError(
                f"connection failed: not connected within {_seconds(timeout)}", EXIT_CONNECTION
            ) from None
        if expired.is_set():
            raise CommandError(f"timed out after {_seconds(timeout)}", EXIT_TIMEOUT) from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()


def _track(message: Message, progress: _Progress, timeout: float | None, deadline: float | None = None) -> int:
    """Print the message's state changes until it is done; raise unless delivered.

    Waits until ``deadline`` (``time.monotonic()``), else for ``timeout`` seconds
    (``None``: no limit); ``timeout`` is also what the timeout message reports.
    """
    message.on(progress.on_event)
    # Catch up on states applied before on() was registered (dedup'd by rank).
    progress.show(message.message_id, message.state, message.reason)
    wait_for = timeout if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        try:
            event = message.wait(wait_for)
        except ConnectionClosedError:
            # The --timeout timer disconnects the client: the same deadline, reported alike.
            if deadline is None or time.monotonic() < deadline:
                raise
            raise WaitTimeout("deadline") from None
    except WaitTimeout:
        raise CommandError(
            f"timed out after {_seconds(timeout)} waiting for message {message.message_id} "
            f"(last state: {message.state})",
            EXIT_TIMEOUT,
        ) from None
    state = getattr(event, "message_state", message.state)
    reason = getattr(event, "reason", None) or message.reason
    progress.show(message.message_id, state, reason)
    if state != "delivered":
        raise _not_delivered(message.message_id, state, reason)
    return EXIT_OK


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
    with _rest_client(args, timeout=args.timeout) as rest:
        progress = _Progress(sys.stdout, as_json=args.json, start=time.monotonic())
        try:
            deadline.bound(rest)
            record = rest.messages.create(to=args.to, from_=args.from_, body=body, media_url=media or None)
        except RestTimeout as exc:
            if not deadline.expired():
                raise
            maybe = " (the message may have been sent: check 'swsync messages list')"
            raise CommandError(
                f"timed out after {_seconds(args.timeout)}" + (maybe if exc.may_have_been_sent else ""), EXIT_TIMEOUT
            ) from None
        status = str(record.status or "queued")
        progress.show(record.sid, status, record.error_message, detail=f"message {record.sid} to {args.to}")
        if status in ("undelivered", "failed"):
            raise _not_delivered(record.sid, status, record.error_message)
        if not args.wait:
            return EXIT_OK
        return _poll_rest(rest, record, progress, deadline)


def _poll_rest(rest: RestClient, record: MessageRecord, progress: _Progress, deadline: _Deadline) -> int:
    """Fetch the message until its status is final or the deadline passes."""
    status = str(record.status or "queued")
    pause = 0.1
    context = rest.messages(record.sid)

    def timed_out() -> CommandError:
        return CommandError(
            f"timed out after {_seconds(deadline.timeout)} waiting for message {record.sid} (last status: {status})",
            EXIT_TIMEOUT,
        )

    while status not in _TERMINAL:
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
        raise _not_delivered(record.sid, status, record.error_message)
    return EXIT_OK


# --------------------------------------------------------------------- listen


def message_json(message: Message) -> dict[str, Any]:
    """The JSON-ready dict ``swsync listen`` prints for an inbound RELAY message."""
    from .relay.message import message_fields

    return message_fields(message)


def _celery_forwarder(args: argparse.Namespace) -> InboundForwarder | None:
    if not args.celery_app and not args.task:
        return None
    if not (args.celery_app and args.task):
        raise ConfigurationError("--celery-app and --task go together")
    if os.getcwd() not in sys.path:  # find pkg.module from the current directory, as celery does
        sys.path.insert(0, os.getcwd())
    from .celery import InboundForwarder
    from .errors import RedisUnavailable

    forwarder = InboundForwarder(args.celery_app, args.task, redis_url=args.redis_url)
    try:
        forwarder.check()  # the task is registered and Redis answers, before connecting
    except RedisUnavailable as exc:
        raise CommandError(str(exc), EXIT_CONNECTION) from exc
    return forwarder


def _cmd_listen(args: argparse.Namespace) -> int:
    contexts = args.context or ["default"]
    forwarder = _celery_forwarder(args)
    if forwarder is None and sys.stdout is None:
        # Nothing may be received (and acknowledged) that cannot be printed.
        raise ConfigurationError("standard output is closed: listen has nowhere to print messages")
    client = _relay_client(args, contexts=contexts)
    # Guards stopper: the thread that disconnects once printing failed.
    stop_lock = threading.Lock()
    stopper: list[threading.Thread] = []

    def show(message: Message) -> None:
        line = _json(message_json(message))
        if _write(sys.stdout, line):
            return  # and only now is the message acknowledged (ack_after below)
        # Not printed: stop receiving, and raise so the message is not acknowledged
        # (the server may deliver it again). It also goes to stderr whole, as does
        # each one already queued behind it, so none is lost without a word. The
        # disconnect runs on its own thread: this dispatch thread cannot wait for
        # its own queue to drain.
        _err(f"swsync: not printed, not acknowledged ({_OUTPUT.problem}): {line}")
        with stop_lock:
            if not stopper:
                stopper.append(threading.Thread(target=client.disconnect, name="swsync-cli-stop", daemon=False))
                stopper[0].start()
        raise _Unprintable(message.message_id)

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
            client.on_message(show, ack_after=True)
        if not getattr(args, "debug", False):
            log_handler = _OneLineErrors()
            logging.getLogger("swsync").addHandler(log_handler)
        client.connect()
        _err(f"swsync: listening on context(s) {', '.join(contexts)}; Ctrl-C to stop")
        client.run()  # returns on Ctrl-C, SIGTERM or disconnect(), disconnected
    except KeyboardInterrupt:
        client.disconnect()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        with stop_lock:
            threads = list(stopper)
        for thread in threads:
            thread.join(timeout=30)  # disconnect() is bounded; this is a backstop
        if forwarder is not None:
            forwarder.join()
        if log_handler is not None:
            logging.getLogger("swsync").removeHandler(log_handler)
    if forwarder is not None and forwarder.failure is not None:
        raise CommandError(f"{forwarder.failure}; stopped listening", EXIT_CONNECTION)
    return _OUTPUT.exit_code()


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
        _err(f"swsync: error: {' '.join(text.split())}")


# ------------------------------------------------------------------- messages


def _fmt_date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _short(text: str | None, width: int = 40) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Align ``rows`` under ``header`` in columns two spaces apart; return the lines."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines = []
    for row in (header, *rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return lines


def _record_json(record: MessageRecord) -> str:
    return _json(dict(record.raw))


def _cmd_messages_list(args: argparse.Namespace) -> int:
    with _rest_client(args) as rest:
        records = rest.messages.list(
            to=args.to, from_=args.from_, status=args.status, date_sent=args.date_sent, limit=args.limit
        )
    if args.json:
        for record in records:
            _write(sys.stdout, _record_json(record))
        return _OUTPUT.exit_code()
    if not records:
        _err("swsync: no messages found")
        return EXIT_OK
    header = ("SID", "DATE (UTC)", "DIRECTION", "FROM", "TO", "STATUS", "BODY")
    rows = [
        (
            r.sid,
            _fmt_date(r.date_sent or r.date_created),
            r.direction or "-",
            r.from_ or "-",
            r.to or "-",
            str(r.status or "-"),
            _short(r.body),
        )
        for r in records
    ]
    for line in format_table(rows, header):
        _write(sys.stdout, line)
    return _OUTPUT.exit_code()


_DETAIL_FIELDS = (
    "sid",
    "status",
    "direction",
    "from_",
    "to",
    "body",
    "num_segments",
    "num_media",
    "price",
    "price_unit",
    "error_code",
    "error_message",
    "date_created",
    "date_sent",
    "date_updated",
    "messaging_service_sid",
)


def _show_record(record: MessageRecord, as_json: bool) -> None:
    if as_json:
        _write(sys.stdout, _record_json(record))
        return
    width = max(len(f.rstrip("_")) for f in _DETAIL_FIELDS)
    for name in _DETAIL_FIELDS:
        value = getattr(record, name)
        if hasattr(value, "strftime"):
            value = _fmt_date(value)
        _write(sys.stdout, f"{name.rstrip('_'):<{width}}  {'-' if value is None else value}")


def _cmd_messages_get(args: argparse.Namespace) -> int:
    with _rest_client(args) as rest:
        _show_record(rest.messages(args.sid).fetch(), args.json)
    return _OUTPUT.exit_code()


def _cmd_messages_redact(args: argparse.Namespace) -> int:
    with _rest_client(args) as rest:
        record = rest.messages(args.sid).update(body="")
    if args.json:
        _show_record(record, True)
    else:
        _write(sys.stdout, f"redacted {record.sid}")
    return EXIT_OK


def _cmd_messages_delete(args: argparse.Namespace) -> int:
    with _rest_client(args) as rest:
        rest.messages(args.sid).delete()
    _write(sys.stdout, _json({"sid": args.sid, "deleted": True}) if args.json else f"deleted {args.sid}")
    return EXIT_OK


# ------------------------------------------------------------------- emulator


def _import_emulator() -> Any:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise ConfigurationError("the emulator needs aiohttp: pip install 'swsync[emulator]'") from None
    from . import emulator

    return emulator


def _cmd_emulator(args: argparse.Namespace) -> int:
    _import_emulator()
    from . import _emulator_cli

    print(
        "swsync: emulator starting; paste these lines into another shell, Ctrl-C to stop", file=sys.stderr, flush=True
    )
    return _emulator_cli.serve(args, prefix="export ")


def _cmd_emulator_inject(args: argparse.Namespace) -> int:
    from . import _emulator_cli

    return _emulator_cli.inject(args)


# ----------------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace) -> int:
    emulator = _import_emulator()
    from .relay import RelayClient

    out = sys.stdout
    ours, theirs = "+15550001111", "+15557654321"

    def say(text: str = "") -> None:
        _write(out, text)

    with emulator.Emulator(state_delay=args.state_delay) as emu:
        say(f"Started a local SignalWire emulator at {emu.relay_url} (RELAY) and {emu.rest_url} (REST).")
        say("No account and no network needed: everything below runs on this machine.")
        say()
        client = RelayClient(emu.project, emu.token, emu.relay_url, contexts=[_DEMO_CONTEXT])
        with client:
            say(f"1. Sending 'Hello from swsync!' to {theirs} over RELAY and waiting for delivery:")
            start = time.monotonic()
            progress = _Progress(out, as_json=False, start=start)
            message = client.send_message(theirs, ours, "Hello from swsync!")
            progress.show(message.message_id, "queued", detail=f"message {message.message_id}")
            _track(message, progress, 30.0)
            say()

            say(f"2. {theirs} replies; the client receives it through on_message:")
            import queue

            inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
            client.on_message(inbox.put)
            emu.inject_inbound(to_number=ours, from_number=theirs, body="Got it, thanks!", context=_DEMO_CONTEXT)
            try:
                reply = inbox.get(timeout=10)
            except queue.Empty:
                raise CommandError("the demo's inbound message did not arrive within 10 s") from None
            say(f"   from {reply.from_number} to {reply.to_number} on context {reply.context!r}: {reply.body!r}")
            say()
        say("3. Listing the messages over the cXML REST API (RestClient):")
        from .rest import RestClient

        with RestClient(emu.project, emu.token, emu.rest_url) as rest:
            records = rest.messages.list(limit=10)
        rows = [
            (r.sid[:8] + "…", r.direction or "-", r.from_ or "-", r.to or "-", str(r.status or "-"), _short(r.body, 30))
            for r in records
        ]
        for line in format_table(rows, ("SID", "DIRECTION", "FROM", "TO", "STATUS", "BODY")):
            say("   " + line)
        say()
    say("Done. Next: 'swsync emulator' runs the emulator in the foreground; point the")
    say("SIGNALWIRE_* variables it prints at it and try 'swsync send' or examples/.")
    return _OUTPUT.exit_code()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
