"""The ``swsync`` command line (placeholder until the CLI lands)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    raise SystemExit("swsync: the command line is not built yet")
