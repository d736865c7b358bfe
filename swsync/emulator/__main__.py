"""``python -m swsync.emulator``: run the emulator until SIGINT or SIGTERM.

Same options as ``swsync emulator`` (one table, ``swsync.cli._emulator_server``), except
that the port defaults to 0 (a free one) and ``-v`` turns on DEBUG logging. Prints
the variables the clients read (``SIGNALWIRE_PROJECT_ID``, ``SIGNALWIRE_API_TOKEN``,
``SIGNALWIRE_SPACE``, ``SIGNALWIRE_SIGNING_KEY``), one ``NAME=value`` per line, so a
shell can ``eval`` them or a benchmark can parse them.
"""

from __future__ import annotations

import argparse
import sys

from ..cli import _emulator_server

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m swsync.emulator``."""
    p = argparse.ArgumentParser(
        prog="python -m swsync.emulator",
        description="Run a local SignalWire emulator (RELAY WebSocket + cXML REST on one port).",
    )
    _emulator_server.add_server_arguments(p, default_port=0, credentials=True)
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level to stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; return the exit code (0 on a clean stop)."""
    args = build_parser().parse_args(argv)
    _emulator_server.verbose_logging(args.verbose)
    return _emulator_server.serve(args, name="python -m swsync.emulator")


if __name__ == "__main__":
    sys.exit(main())
