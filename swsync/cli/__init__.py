"""The ``swsync`` command line: ``send``, ``listen``, ``messages``, ``emulator``, ``demo``.

``main(argv)`` parses arguments with argparse and returns the process exit code;
``python -m swsync`` and the ``swsync`` console script both call it. Errors are one
line on stderr (``swsync: error: ...``); ``--debug`` adds DEBUG logging and full
tracebacks. Imports are lazy: ``swsync send`` over RELAY never imports ``requests``
or the emulator, which keeps a cron job's cold start short.

Each command lives in a module of this package (``send``, ``send_batch``,
``listen``, ``messages``, ``emulator``, ``demo``) with ``add_parser(subparsers)``
and ``run(args)``; what they share is in ``_shared``. ``main`` lists every command
with its one-line help but imports only the module of the command it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from .._version import __version__

# Names the former single-module swsync.cli had (it imported them): still importable from here.
from ..errors import AuthenticationError as AuthenticationError
from ..errors import ConfigurationError as ConfigurationError
from ..errors import ConnectionClosedError as ConnectionClosedError
from ..errors import RelayError as RelayError
from ..errors import RestError as RestError
from ..errors import RestTimeout as RestTimeout
from ..errors import WaitTimeout as WaitTimeout
from ._shared import (
    CREDENTIALS_HELP,
    EXIT_CODES_HELP,
    EXIT_CONNECTION,
    EXIT_INTERRUPTED,
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    OUTPUT,
    Parser,
    describe,
    discard,
    err,
    global_options,
)

# Names of the former single-module swsync.cli that live in _shared now.
from ._shared import NO_LIMIT as NO_LIMIT
from ._shared import CommandError as CommandError
from ._shared import format_table as format_table

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_NOT_DELIVERED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "main",
]

# Each command: the module of this package that implements it, and its one-line help.
_COMMANDS: dict[str, tuple[str, str]] = {
    "send": ("send", "send an SMS/MMS and (by default) wait until it is delivered"),
    "send-batch": ("send_batch", "send one message per CSV row, paced and resumable (never twice)"),
    "listen": ("listen", "print inbound messages as JSON lines until Ctrl-C or SIGTERM"),
    "messages": ("messages", "list, get, redact or delete messages over REST"),
    "emulator": (
        "emulator",
        "run the local emulator (RELAY + REST) in the foreground; 'emulator inject' sends it inbound",
    ),
    "demo": ("demo", "no account needed: send, track, receive and list messages against a local emulator"),
}
COMMANDS = tuple(_COMMANDS)


def _command(name: str) -> ModuleType:
    """The module of command ``name`` (imported now if it was not yet)."""
    return importlib.import_module(f"{__name__}.{_COMMANDS[name][0]}")


def __getattr__(name: str) -> Any:
    # message_json lives with 'listen': imported only when asked for (PEP 562).
    if name == "message_json":
        return _command("listen").message_json
    if name in ("MessageStateEvent", "RelayEvent"):  # the relay package is not loaded for --help
        from ..relay import events

        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------- parsing

if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[Parser]
else:
    _SubParsers = argparse._SubParsersAction


class _Commands(_SubParsers):
    """``swsync``'s commands: each listed and accepted up front, its parser built on first use.

    ``swsync --help`` shows the one-line helps of ``_COMMANDS`` without importing any
    command's module; parsing reaches a command, and only then builds its parser
    (importing its module). Building every parser would cost a one-shot ``swsync
    send`` more than it spends on the network: argparse formats and translates each
    option as it is added.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, (_, helptext) in _COMMANDS.items():
            self._choices_actions.append(self._ChoicesPseudoAction(name, (), helptext))
        self.choices = _Parsers(self)  # type: ignore[assignment]  # a Mapping, not a dict

    def build(self, name: str) -> Parser:
        """The parser of command ``name``, built now if it was not yet."""
        if name not in self._name_parser_map:
            module = _command(name)
            module.add_parser(self)
            self._name_parser_map[name].set_defaults(func=module.run)  # args.func(args), as in 0.1
        return self._name_parser_map[name]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list) and values  # nargs=PARSER: the command, then its arguments
        self.build(values[0])
        super().__call__(parser, namespace, values, option_string)


class _Parsers(Mapping[str, Parser]):
    """Every command's parser by name, as argparse's ``choices``; looking one up builds it."""

    def __init__(self, commands: _Commands) -> None:
        self._commands = commands

    def __getitem__(self, name: str) -> Parser:
        if name not in _COMMANDS:
            raise KeyError(name)
        return self._commands.build(name)

    def __contains__(self, name: object) -> bool:
        return name in _COMMANDS

    def __iter__(self) -> Iterator[str]:
        return iter(_COMMANDS)

    def __len__(self) -> int:
        return len(_COMMANDS)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the ``swsync`` argument parser (exposed for documentation and tests).

    Every command's parser is built up front, or with ``only``, that command's
    alone: the others are built, their modules imported, when parsing reaches them.
    """
    return _parser(COMMANDS if only is None else [name for name in (only,) if name in _COMMANDS])


def _parser(built: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The ``swsync`` parser with the parsers of ``built`` built up front."""
    parser = Parser(
        prog="swsync",
        description="Send and receive SignalWire messages from the command line.",
        epilog=CREDENTIALS_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[global_options()],
    )
    parser.add_argument("--version", action="version", version=f"swsync {__version__}")
    commands = parser.add_subparsers(action=_Commands, dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name in built:
        cast(_Commands, commands).build(name)
    return parser


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
    OUTPUT.reset()
    args = _parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    if debug:
        logging.basicConfig(
            level=logging.DEBUG,
            stream=sys.stderr,
            format="%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s",
        )
    try:
        code: int = _command(args.command).run(args)
        return code
    except KeyboardInterrupt:
        _flush_quietly()
        err("swsync: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, grep -m) went away: stop quietly, as Unix tools do.
        discard(sys.stdout)
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the CLI's one error boundary
        code, text = describe(exc)
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        _flush_quietly()
        err(f"swsync: error: {text}")
        return code


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        if sys.stdout is not None:
            discard(sys.stdout)


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
