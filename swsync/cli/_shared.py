"""What the ``swsync`` commands share: exit codes, option types, output, client factories.

Every name here is public within the package and private outside it. A command's
module (``send``, ``listen`` ...) imports from here and from no other command's
module. Imports of the clients are lazy: ``swsync send`` over RELAY never imports
``requests`` or the emulator.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .. import _config
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionClosedError,
    RelayError,
    RestError,
    WaitTimeout,
)

if TYPE_CHECKING:
    from ..relay import Message, RelayClient
    from ..relay.events import RelayEvent
    from ..rest import RestClient

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


class CommandError(Exception):
    """A failure the command line reports as one line with a specific exit code."""

    def __init__(self, message: str, code: int = EXIT_NOT_DELIVERED) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------- parsing


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors read ``swsync: error: ...`` and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"swsync: error: {message}\n")


@functools.cache
def global_options() -> Parser:
    """The parent parser of ``--project``, ``--token``, ``--space`` and ``--debug``.

    Every command and sub-command takes it as a parent, so the options may appear
    before or after the command's name. Built once: parents only lend their actions.
    """
    # SUPPRESS defaults keep a subcommand's (absent) value from overwriting the global one.
    common = Parser(add_help=False)
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


def add_from(parser: argparse.ArgumentParser) -> None:
    """Add the required ``--from NUMBER`` of the sending commands."""
    parser.add_argument(
        "--from", dest="from_", required=True, metavar="NUMBER", help="your sending number or short code"
    )


def add_wait(parser: argparse.ArgumentParser, helptext: str) -> None:
    """Add ``--wait``/``--no-wait`` (default: wait for the final state) of the sending commands."""
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help=helptext)


# ---------------------------------------------------------------- option types

NO_LIMIT = 1e9  # seconds (about 31 years): a --timeout this long or longer means no limit


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def finite_number(text: str, *, positive: bool) -> float:
    """A finite number > 0 (``positive``) or >= 0."""
    value = _float(text)
    ok = value > 0 if positive else value >= 0  # also refuses nan
    if not ok or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number {'>' if positive else '>='} 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (delays)."""
    return finite_number(text, positive=False)


def positive_number(text: str) -> float:
    """A finite number > 0 (intervals, rates)."""
    return finite_number(text, positive=True)


def positive_float(text: str) -> float:
    """A number > 0 and below 1e9 (``send-batch``'s rates and timeout)."""
    value = _float(text)
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def timeout(text: str) -> float | None:
    """A ``--timeout``: a positive number of seconds; ``inf`` or >= 1e9 s is ``None`` (no limit)."""
    value = _float(text)
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return None if value >= NO_LIMIT else value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


# ------------------------------------------------------------------ exit codes


def describe(exc: BaseException) -> tuple[int, str]:
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


def arg_or_env(args: argparse.Namespace, name: str, env: str) -> str | None:
    """The ``--name`` option, else the environment variable ``env``; empty is an error."""
    value = getattr(args, name, None)
    if value is None:
        value = os.environ.get(env) or None
    if value is not None and not value.strip():
        raise ConfigurationError(f"--{name} must not be empty")
    return value


def require(value: str | None, flag: str, env: str) -> str:
    """``value``, or a ConfigurationError naming ``flag`` and ``env``."""
    if value is None:
        raise ConfigurationError(f"missing {flag[2:]}: pass {flag} or set {env}")
    return value


def relay_client(
    args: argparse.Namespace,
    contexts: Sequence[str] | None = None,
    *,
    timeout: float | None = 10.0,
    **options: Any,
) -> RelayClient:
    """The RELAY client from --project/--token/--space or the environment; ``options``
    (e.g. ``rate_limit``, ``request_timeout``) go to ``RelayClient`` as given."""
    from ..relay import RelayClient

    project = arg_or_env(args, "project", _config.ENV_PROJECT)
    token = arg_or_env(args, "token", _config.ENV_TOKEN)
    # No space: RelayClient uses SignalWire's public RELAY host, as the official SDK does.
    space = arg_or_env(args, "space", _config.ENV_SPACE)
    if token is None and not os.environ.get(_config.ENV_JWT):
        raise ConfigurationError(f"missing token: pass --token or set {_config.ENV_TOKEN} (or {_config.ENV_JWT})")
    if token is not None:
        require(project, "--project", _config.ENV_PROJECT)
    # Connecting and each request; --timeout may shorten it.
    timeout = 10.0 if timeout is None else min(timeout, 10.0)
    settings: dict[str, Any] = {"contexts": contexts, "connect_timeout": timeout, "request_timeout": timeout, **options}
    return RelayClient(project, token, space, **settings)


def rest_client(args: argparse.Namespace, *, timeout: float | None = 10.0) -> RestClient:
    """The REST client from --project/--token/--space or the environment (the space is required)."""
    from ..rest import RestClient

    project = require(arg_or_env(args, "project", _config.ENV_PROJECT), "--project", _config.ENV_PROJECT)
    token = require(arg_or_env(args, "token", _config.ENV_TOKEN), "--token", _config.ENV_TOKEN)
    space = arg_or_env(args, "space", _config.ENV_SPACE)
    if space is None:
        raise ConfigurationError(
            "missing space: the REST API has no default host and needs your space "
            f"(--space example.signalwire.com, or set {_config.ENV_SPACE})"
        )
    # Each attempt's connect and read timeouts; --timeout also bounds each whole call.
    return RestClient(project, token, space, timeout=10.0 if timeout is None else min(timeout, 10.0))


def import_emulator() -> Any:
    """The ``swsync.emulator`` package, or a ConfigurationError when aiohttp is missing."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise ConfigurationError("the emulator needs aiohttp: pip install 'swsync[emulator]'") from None
    from .. import emulator

    return emulator


# ------------------------------------------------------------------------ output


READER_GONE = "the reader went away"  # EPIPE: `swsync ... | head` finished reading


class OutputState:
    """Whether standard output still works, for this run of ``main``.

    The first failed write is reported as one line on stderr; every later write is
    skipped. Commands decide what a failure means for their exit code: ``send``'s
    still tells the message's outcome, ``messages list`` and ``get`` fail with 1.
    """

    def __init__(self) -> None:
        # Guards problem; held while one line is written, so lines never interleave.
        self.lock = threading.Lock()
        self.problem: str | None = None

    def reset(self) -> None:
        """Forget an earlier run's failure."""
        with self.lock:
            self.problem = None

    def exit_code(self, code: int = EXIT_OK) -> int:
        """``code``, or 1 when output was lost to anything but a reader that went away."""
        problem = self.problem
        return code if problem in (None, READER_GONE) else EXIT_NOT_DELIVERED


OUTPUT = OutputState()


def err(line: str) -> None:
    """Write one line to stderr, ignoring a closed or broken stderr (nowhere left to report)."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass


def discard(out: TextIO) -> None:
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
        discard(out)
        return READER_GONE
    except (OSError, ValueError) as exc:
        discard(out)
        return " ".join(str(exc).split()) or type(exc).__name__


def write(out: TextIO | None, line: str) -> bool:
    """Write one line to standard output; return False once it no longer works.

    A reader that went away (a closed pipe: ``swsync ... | head``) ends the output
    quietly, as Unix tools do; any other failure (stdout closed with ``>&-``, a full
    disk, ``>/dev/full``) is reported once on stderr. Either way the command carries
    on: ``send``'s exit code must still tell what happened to the message.
    """
    with OUTPUT.lock:
        if OUTPUT.problem is not None:
            return False
        problem = _try_write(out, line)
        if problem is None:
            return True
        OUTPUT.problem = problem
    if problem != READER_GONE:
        err(f"swsync: error: cannot write to standard output: {problem}")
    return False


def to_json(obj: Any) -> str:
    """``obj`` as one line of JSON (non-ASCII kept, anything else as ``str``)."""
    import json

    return json.dumps(obj, ensure_ascii=False, default=str)


def short(text: str | None, width: int = 40) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Align ``rows`` under ``header`` in columns two spaces apart; return the lines."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
    lines = []
    for row in (header, *rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())
    return lines


# ------------------------------------------------------------- message progress


@functools.cache
def state_rank() -> dict[str, float]:
    """The order of states for printing each one once, forward only.

    RELAY's order (``swsync.relay.events``), with REST's "sending" between
    "initiated" and "sent", and "received" final. Built on first use: only the
    commands that track a message import the RELAY package.
    """
    from ..relay.events import STATE_RANK

    return {
        **STATE_RANK,
        "sending": (STATE_RANK["initiated"] + STATE_RANK["sent"]) / 2,
        "received": STATE_RANK["delivered"],
    }


class Progress:
    """Prints one message's state changes, each at most once and never backwards.

    Called from the main thread and from the client's dispatch thread.
    """

    def __init__(self, out: TextIO, *, as_json: bool, start: float) -> None:
        self._out = out
        self._json = as_json
        self._start = start
        # Guards _rank/_last and the write of one line; held only while printing it.
        self._lock = threading.Lock()
        self._rank: float = -1
        self._last: str | None = None

    @property
    def last(self) -> str | None:
        """The last state printed."""
        return self._last

    def on_event(self, event: RelayEvent) -> None:
        """``Message.on`` handler: print a ``messaging.state`` event."""
        from ..relay.events import MessageStateEvent

        if isinstance(event, MessageStateEvent):
            self.show(event.message_id, event.message_state, event.reason)

    def show(self, message_id: str, state: str, reason: str | None = None, detail: str = "") -> None:
        """Print ``state`` unless it, or a later state, was printed already."""
        elapsed = time.monotonic() - self._start
        rank = state_rank().get(state)
        with self._lock:
            if state == self._last or (rank is not None and rank <= self._rank):
                return
            if rank is not None:
                self._rank = rank
            self._last = state
            if self._json:
                line = to_json(
                    {"message_id": message_id, "state": state, "reason": reason or None, "elapsed": round(elapsed, 3)}
                )
            else:
                line = f"{elapsed:7.3f}s  {state:<11}"
                if reason:
                    line += f" reason: {reason}"
                if detail:
                    line += f" {detail}"
                line = line.rstrip()
            write(self._out, line)


def not_delivered(message_id: str, state: str, reason: str | None) -> CommandError:
    """The error (exit 1) for a message that ended in ``state`` other than delivered."""
    return CommandError(f"message {message_id} {state}: {reason or 'no reason given'}")


def seconds(timeout: float | None) -> str:
    """A timeout for a message: ``30 s``, or ``forever``."""
    return "forever" if timeout is None else f"{timeout:g} s"


def track(message: Message, progress: Progress, timeout: float | None, deadline: float | None = None) -> int:
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
            f"timed out after {seconds(timeout)} waiting for message {message.message_id} "
            f"(last state: {message.state})",
            EXIT_TIMEOUT,
        ) from None
    state = getattr(event, "message_state", message.state)
    reason = getattr(event, "reason", None) or message.reason
    progress.show(message.message_id, state, reason)
    if state != "delivered":
        raise not_delivered(message.message_id, state, reason)
    return EXIT_OK
