"""``swsync send-batch FILE.csv``: bulk sending from a CSV file, resumable.

The file is read twice: once
to validate every row (bad rows are reported with their line numbers and nothing
is sent), once, lazily, to send through ``RelayClient.send_many`` with a journal, so
running the same command again after Ctrl-C or a crash resumes without sending
any row twice.
"""

from __future__ import annotations

import argparse
import csv
import json
import string
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, TextIO

from .. import _validate
from ..bulk import Outbound, SendResult, Summary, derive_key
from ..errors import ConfigurationError, ConnectionClosedError
from ._shared import (
    EXIT_CONNECTION,
    EXIT_INTERRUPTED,
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    OUTPUT,
    Parser,
    add_from,
    add_wait,
    global_options,
    positive_float,
    positive_int,
    relay_client,
    write,
)

__all__ = ["EXIT_UNKNOWN", "add_parser", "run"]

# The codes of 'swsync send', plus one.
EXIT_UNKNOWN = 5  # some messages may have been sent, but their outcome is unknown

EXIT_HELP = """\
exit codes of 'swsync send-batch' (the most serious wins, in this order):
  5  some outcomes unknown: may have been sent, never confirmed (not re-sent
     on a rerun; check them before sending again)
  4  authentication or connection failure (some rows not sent, or their
     final state lost with the connection)
  1  some rows undelivered, failed, or refused (not sent)
  3  some rows accepted but no final state within --timeout
  0  every row delivered (with --no-wait: accepted)
  2  usage error or bad rows (nothing was sent)
  130  interrupted by Ctrl-C (answers in flight collected; run again to resume)
"""

MAX_SHOWN_ERRORS = 50


@dataclass(frozen=True)
class Row:
    """One valid CSV row, ready to send."""

    line: int
    outbound: Outbound


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> None:
    """Add ``send-batch`` to ``swsync``'s commands."""
    p = subparsers.add_parser(
        "send-batch",
        parents=[global_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send one message per row of a CSV file with columns 'to' and optionally "
        "'body', 'media' (space-separated URLs), 'key' and any fields the --body "
        "template uses. Every row is checked before anything is sent. A journal "
        "records each row, so running the same command again resumes.",
        epilog=EXIT_HELP + "\nexample:\n  swsync send-batch reminders.csv --from +15559876543 "
        "--body 'Hi {name}, see you at {time}' --rate 4\n",
    )
    p.add_argument("file", metavar="FILE.csv", help="the CSV file (UTF-8, a header row)")
    add_from(p)
    p.add_argument(
        "--body",
        metavar="TEMPLATE",
        help="message template, fields in braces ('Hi {name}'); default: the 'body' column",
    )
    p.add_argument(
        "--journal", metavar="PATH", help="sqlite3 send journal (default: FILE.csv.journal.db next to the file)"
    )
    _add_pacing(p)
    add_wait(p, "wait for each final state (default); --no-wait stops at accepted")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds to wait for a message's final state once accepted (default: 60)",
    )
    p.add_argument(
        "--retry-unknown", action="store_true", help="send again rows whose outcome an earlier run could not learn"
    )
    p.add_argument("--out", metavar="PATH", help="write one CSV result row per input row")
    p.add_argument("--json", action="store_true", help="print results as JSON lines")
    p.add_argument("--dry-run", action="store_true", help="check the file and print what it would cost; send nothing")


def _add_pacing(p: argparse.ArgumentParser) -> None:
    """``--rate``, ``--burst`` and ``--window``: how fast rows go out."""
    p.add_argument(
        "--rate",
        type=positive_float,
        metavar="N",
        help="pace to N segments per second for the sender (default: unpaced)",
    )
    p.add_argument(
        "--burst",
        type=positive_float,
        default=1.0,
        metavar="N",
        help="with --rate: segments that may go at once after a quiet spell "
        "(default: 1: sends evenly spaced, one segment every 1/N s)",
    )
    p.add_argument(
        "--window", type=positive_int, default=64, metavar="N", help="messages in flight at once (default: 64)"
    )


# ------------------------------------------------------------------ reading the file


def _open_csv(path: str) -> IO[str]:
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None


def _template_fields(template: str | None) -> list[str]:
    if template is None:
        return []
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigurationError(f"--body template: {exc}") from None


def _check_header(path: str, header: list[str] | None, template: str | None) -> None:
    if not header:
        raise ConfigurationError(f"{path}: empty file; the first line must name the columns")
    if "to" not in header:
        raise ConfigurationError(f"{path}: no 'to' column (columns: {', '.join(header)})")
    if template is None and "body" not in header and "media" not in header:
        raise ConfigurationError(f"{path}: no 'body' or 'media' column, and no --body template")
    for name in _template_fields(template):
        if not name or not name.isidentifier():
            raise ConfigurationError(f"--body template: use named fields such as {{name}}, got {{{name}}}")
        if name not in header:
            raise ConfigurationError(f"--body template uses {{{name}}}, which is not a column of {path}")


def _build(record: dict[str, str | None], sender: str, template: str | None) -> Outbound:
    """The outbound for one CSV record (``ValueError`` says what is wrong with it)."""
    if None in record or any(v is None for v in record.values()):
        raise ValueError("wrong number of fields for the header")
    to = (record.get("to") or "").strip()
    _validate.phone_number(to, "to")
    if template is not None:
        body: str | None = template.format_map({k: v for k, v in record.items() if k})
    else:
        body = record.get("body") or None
    media = (record.get("media") or "").split()
    body, urls = _validate.content(body, media)
    key = (record.get("key") or "").strip() or None
    return Outbound(to, sender, body, media=tuple(urls) or None, key=key)


def read_rows(path: str, sender: str, template: str | None) -> Iterator[Row | tuple[int, str]]:
    """Yield each record of ``path`` as a :class:`Row`, or ``(line, error)`` when bad."""
    with _open_csv(path) as f:
        reader = csv.DictReader(f)
        try:
            _check_header(path, list(reader.fieldnames or ()), template)
            for record in reader:
                line = reader.line_num
                try:
                    yield Row(line, _build(record, sender, template))
                except ValueError as exc:
                    yield line, str(exc)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path} line {reader.line_num}: not valid CSV: {exc}") from None


@dataclass
class Totals:
    """What a file costs: messages, and SMS segments per encoding (MMS counted apart)."""

    messages: int = 0
    mms: int = 0
    by_encoding: dict[str, list[int]] | None = None  # encoding -> [messages, segments]

    def add(self, outbound: Outbound) -> None:
        from ..segments import count_segments

        self.messages += 1
        if outbound.media:
            self.mms += 1
            return
        seg = count_segments(outbound.body or "")
        counts = (self.by_encoding or {}).get(seg.encoding, [0, 0])
        counts[0] += 1
        counts[1] += seg.segments
        self.by_encoding = {**(self.by_encoding or {}), seg.encoding: counts}

    @property
    def segments(self) -> int:
        """SMS segments in all (each MMS counts one)."""
        return self.mms + sum(s for _, s in (self.by_encoding or {}).values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "segments": self.segments,
            "mms": self.mms,
            "by_encoding": {
                e: {"messages": m, "segments": s} for e, (m, s) in sorted((self.by_encoding or {}).items())
            },
        }

    def lines(self) -> list[str]:
        out = [f"{self.messages} messages, {self.segments} segments billed as SMS/MMS messages"]
        for enc, (m, s) in sorted((self.by_encoding or {}).items()):
            out.append(f"  {enc}: {m} messages, {s} segments")
        if self.mms:
            out.append(f"  MMS: {self.mms} messages")
        return out


def validate(path: str, sender: str, template: str | None) -> tuple[Totals, list[str]]:
    """Check every row; return what the valid rows cost and one line per bad row.

    Duplicate keys (given or derived from the content) are errors: each key is sent
    once, so a second identical row would silently not go.
    """
    totals = Totals()
    errors: list[str] = []
    seen: dict[str, int] = {}
    for item in read_rows(path, sender, template):
        if not isinstance(item, Row):
            errors.append(f"{path} line {item[0]}: {item[1]}")
            continue
        key = item.outbound.key or derive_key(item.outbound)
        first = seen.setdefault(key, item.line)
        if first != item.line:
            what = "key" if item.outbound.key else "message (same to, from and text)"
            errors.append(
                f"{path} line {item.line}: same {what} as line {first}; give each row its own 'key' to send it twice"
            )
            continue
        totals.add(item.outbound)
    return totals, errors


# ------------------------------------------------------------------ output


class ProgressBar:
    """One status line on a terminal (stderr), redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self._stream = stream
        self._total = total
        self._last = 0.0
        self._width = 0

    def update(self, summary: Summary, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        c = summary.counts
        done = summary.total
        failed = c["undelivered"] + c["failed"] + c["not_sent"]
        rate = done / summary.elapsed if summary.elapsed > 0 else 0.0
        eta = f"{_clock((self._total - done) / rate)}" if rate > 0 and done < self._total else "--:--"
        filled = int(20 * done / self._total) if self._total else 20
        line = (
            f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{self._total} sent  "
            f"{c['delivered']} delivered  {failed} failed  {rate:.1f}/s  ETA {eta}"
        )
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self._stream.write(f"\r{line}{pad}")
        self._stream.flush()

    def close(self, summary: Summary) -> None:
        self.update(summary, force=True)
        self._stream.write("\n")
        self._stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


OUT_COLUMNS = ("line", "to", "key", "outcome", "message_id", "state", "reason", "error", "replayed")


def _result_fields(result: SendResult, line: int) -> dict[str, Any]:
    ob = result.outbound
    return {
        "line": line,
        "to": ob.to_number if ob else None,
        "key": result.key,
        "outcome": result.outcome,
        "message_id": result.message_id,
        "state": result.state,
        "reason": result.reason,
        "error": None if result.error is None else " ".join(str(result.error).split()),
        "replayed": result.replayed,
    }


def _human(fields: dict[str, Any]) -> str:
    extra = fields["reason"] or fields["error"] or ""
    again = " (recorded earlier)" if fields["replayed"] else ""
    return (
        f"line {fields['line']}\t{fields['to']}\t{fields['outcome']}{again}\t{fields['message_id'] or '-'}\t{extra}"
    ).rstrip()


class Severity:
    """The exit code the results so far call for (see EXIT_HELP)."""

    ORDER = (EXIT_UNKNOWN, EXIT_CONNECTION, EXIT_NOT_DELIVERED, EXIT_TIMEOUT, EXIT_OK)

    def __init__(self, wait: bool = True) -> None:
        self.code = EXIT_OK
        self.wait = wait

    def add(self, result: SendResult) -> None:
        """Count one result: the same state gives the same code, whether it was
        learned now or replayed from the journal (a rerun)."""
        code = EXIT_OK
        if result.outcome == "unknown":
            code = EXIT_UNKNOWN
        elif isinstance(result.error, ConnectionClosedError):
            code = EXIT_CONNECTION
        elif result.outcome in ("undelivered", "failed", "not_sent"):
            code = EXIT_NOT_DELIVERED
        elif result.outcome == "accepted" and (self.wait or result.error is not None):
            code = EXIT_TIMEOUT  # no final state known (waited for in vain, or in an earlier run)
        self.escalate(code)

    def escalate(self, code: int) -> None:
        """Raise the exit code to ``code`` if that is more serious."""
        if self.ORDER.index(code) < self.ORDER.index(self.code):
            self.code = code


# ------------------------------------------------------------------ the command


def run(args: argparse.Namespace) -> int:
    """Run ``swsync send-batch``; return its exit code (see ``EXIT_HELP``)."""
    sender = _validate.phone_number(args.from_, "--from")
    totals, errors = validate(args.file, sender, args.body)
    if errors:
        for line in errors[:MAX_SHOWN_ERRORS]:
            print(f"swsync: error: {line}", file=sys.stderr)
        more = len(errors) - MAX_SHOWN_ERRORS
        if more > 0:
            print(f"swsync: error: ... and {more} more bad rows", file=sys.stderr)
        print(f"swsync: {len(errors)} bad row(s) in {args.file}; nothing was sent", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        if args.json:
            print(json.dumps({"dry_run": True, **totals.as_dict()}))
        else:
            print("\n".join(["dry run, nothing sent:"] + totals.lines()))
        return EXIT_OK
    if totals.messages == 0:
        print(f"swsync: {args.file} has no rows; nothing to send", file=sys.stderr)
        return EXIT_OK
    return _send(args, sender, totals.messages)


def _client(args: argparse.Namespace) -> Any:
    """The RELAY client, built (and its missing credentials reported) as ``swsync send`` does."""
    from ..ratelimit import RateLimit

    limit = None if args.rate is None else RateLimit(args.rate, burst=args.burst, max_wait=None)
    return relay_client(args, rate_limit=limit, request_timeout=min(args.timeout, 10.0))


def _open_out(path: str | None) -> IO[str] | None:
    if path is None:
        return None
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"--out {path}: cannot write: {exc.strerror or exc}") from None


def _check_journal(path: str) -> None:
    """Open (creating) the journal once before connecting, so a bad path is a usage error."""
    import sqlite3

    from .._journal import Journal

    try:
        Journal(path).close()
    except (sqlite3.Error, OSError, ValueError) as exc:
        raise ConfigurationError(f"--journal {path}: cannot use it as a send journal: {exc}") from None


class _Output:
    """Where results go: stdout (through ``swsync``'s shared writer: a broken or full
    stdout is reported once and never stops the batch) and the ``--out`` file."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.as_json = bool(args.json)
        self.out_file = _open_out(args.out)
        self.writer = csv.DictWriter(self.out_file, OUT_COLUMNS) if self.out_file else None
        self.out_problem: str | None = None
        self._out_write(self._header)

    def _header(self) -> None:
        assert self.writer is not None
        self.writer.writeheader()

    def _out_write(self, write: Any) -> None:
        if self.writer is None or self.out_problem is not None:
            return
        try:
            write()
        except OSError as exc:
            self.out_problem = exc.strerror or str(exc)
            print(
                f"swsync: error: cannot write to {self.out_file.name if self.out_file else '--out'}: "
                f"{self.out_problem}; sending goes on (the journal has every outcome)",
                file=sys.stderr,
            )

    def result(self, fields: dict[str, Any]) -> None:
        write(sys.stdout, json.dumps(fields, ensure_ascii=False) if self.as_json else _human(fields))
        self._out_write(lambda: self.writer.writerow(fields) if self.writer else None)

    def line(self, text: str) -> None:
        write(sys.stdout, text)

    def close(self) -> None:
        if self.out_file is not None:
            self._out_write(self.out_file.close)
            if self.out_problem is not None:
                self.out_file = None  # closing failed; nothing more to do with it

    def problem(self) -> str | None:
        """Why some results were not written (stdout or --out), or ``None``."""
        return OUTPUT.problem or self.out_problem


def _send(args: argparse.Namespace, sender: str, total: int) -> int:
    import signal

    journal = args.journal or f"{args.file}.journal.db"
    lines: dict[int, int] = {}  # input index -> CSV line, for the rows in flight

    def outbounds() -> Iterator[Outbound]:
        for index, row in enumerate(r for r in read_rows(args.file, sender, args.body) if isinstance(r, Row)):
            lines[index] = row.line
            yield row.outbound

    _check_journal(journal)
    output = _Output(args)
    bar = ProgressBar(sys.stderr, total) if sys.stderr.isatty() else None
    severity = Severity(wait=args.wait)
    try:
        with _client(args) as client:
            batch = client.send_many(
                outbounds(),
                journal=journal,
                window=args.window,
                wait=args.wait,
                timeout=args.timeout,
                retry_unknown=args.retry_unknown,
            )
            stopping = _on_ctrl_c(batch, signal)
            try:
                for result in batch:
                    fields = _result_fields(result, lines.pop(result.index, 0))
                    severity.add(result)
                    output.result(fields)
                    if bar is not None:
                        bar.update(batch.summary)
            finally:
                if stopping.installed:
                    signal.signal(signal.SIGINT, stopping.previous)
    finally:
        output.close()
    summary = batch.summary
    if bar is not None:
        bar.close(summary)
    _print_summary(args, output, summary, journal, stopping.fired)
    return EXIT_INTERRUPTED if stopping.fired else _output_checked(output, severity, journal)


def _output_checked(output: _Output, severity: Severity, journal: str) -> int:
    """The exit code, at least 1 when some results could not be written: the batch
    went on regardless (output never decides a message's fate), but they went unseen."""
    problem = output.problem()
    if problem is None:
        return severity.code
    print(
        f"swsync: error: some results were not written ({problem}); every row was still "
        f"sent and its outcome is in the journal ({journal})",
        file=sys.stderr,
    )
    severity.escalate(EXIT_NOT_DELIVERED)
    return severity.code


class _CtrlC:
    """SIGINT handler: the first Ctrl-C stops the batch cleanly, a second one aborts."""

    def __init__(self, batch: Any, signal: Any) -> None:
        self.batch = batch
        self.signal = signal
        self.fired = False
        self.previous: Any = signal.getsignal(signal.SIGINT) or signal.SIG_DFL
        self.installed = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.fired:
            raise KeyboardInterrupt
        self.fired = True
        self.batch.stop()
        sys.stderr.write("\nswsync: stopping: collecting the answers in flight (Ctrl-C again to quit at once)\n")


def _on_ctrl_c(batch: Any, signal: Any) -> _CtrlC:
    import threading

    handler = _CtrlC(batch, signal)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        handler.installed = True
    return handler


def _print_summary(args: argparse.Namespace, output: _Output, summary: Summary, journal: str, stopped: bool) -> None:
    if args.json:
        output.line(
            json.dumps(
                {
                    "summary": {
                        **summary.counts,
                        "total": summary.total,
                        "sent": summary.sent,
                        "replayed": summary.replayed,
                        "elapsed": round(summary.elapsed, 3),
                        "rate": round(summary.rate, 2),
                        "interrupted": stopped,
                        "journal": journal,
                    }
                }
            )
        )
    text = str(summary) + (f"; {summary.replayed} recorded earlier, not sent again" if summary.replayed else "")
    print(f"swsync: {text}", file=sys.stderr)
    if stopped:
        print(f"swsync: interrupted; run the same command again to resume (journal: {journal})", file=sys.stderr)
    elif summary.counts["unknown"]:
        print(
            f"swsync: {summary.counts['unknown']} outcome(s) unknown: they may have been sent; "
            f"not sent again unless --retry-unknown (journal: {journal})",
            file=sys.stderr,
        )
