"""``swsync messages list|get|redact|delete``: stored messages through the cXML REST API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._shared import (
    EXIT_OK,
    OUTPUT,
    Parser,
    err,
    format_table,
    global_options,
    positive_int,
    rest_client,
    short,
    to_json,
    write,
)

if TYPE_CHECKING:
    from ..rest import MessageRecord

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> None:
    """Add ``messages`` and its actions to ``swsync``'s commands."""
    common = global_options()
    p = subparsers.add_parser(
        "messages", parents=[common], description="Work with stored messages through the cXML REST API."
    )
    msub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    msub.required = True
    q = msub.add_parser("list", parents=[common], help="list messages, newest first")
    q.add_argument("--to", metavar="NUMBER", help="only messages to this number")
    q.add_argument("--from", dest="from_", metavar="NUMBER", help="only messages from this number")
    q.add_argument("--status", help="only messages with this status (delivered, failed, ...)")
    q.add_argument("--date-sent", metavar="YYYY-MM-DD", help="only messages sent on this day (UTC)")
    q.add_argument("--limit", type=positive_int, default=50, help="at most this many (default: 50)")
    q.add_argument("--json", action="store_true", help="one JSON object per message")
    for action, (helptext, _) in _ACTIONS.items():
        q = msub.add_parser(action, parents=[common], help=helptext)
        q.add_argument("sid", help="the message SID")
        q.add_argument("--json", action="store_true", help="print the message as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``swsync messages ACTION``; return its exit code."""
    if args.action == "list":
        return _list(args)
    return _ACTIONS[args.action][1](args)


def _fmt_date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _record_json(record: MessageRecord) -> str:
    return to_json(dict(record.raw))


def _list(args: argparse.Namespace) -> int:
    with rest_client(args) as rest:
        records = rest.messages.list(
            to=args.to, from_=args.from_, status=args.status, date_sent=args.date_sent, limit=args.limit
        )
    if args.json:
        for record in records:
            write(sys.stdout, _record_json(record))
        return OUTPUT.exit_code()
    if not records:
        err("swsync: no messages found")
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
            short(r.body),
        )
        for r in records
    ]
    for line in format_table(rows, header):
        write(sys.stdout, line)
    return OUTPUT.exit_code()


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
        write(sys.stdout, _record_json(record))
        return
    width = max(len(f.rstrip("_")) for f in _DETAIL_FIELDS)
    for name in _DETAIL_FIELDS:
        value = getattr(record, name)
        if hasattr(value, "strftime"):
            value = _fmt_date(value)
        write(sys.stdout, f"{name.rstrip('_'):<{width}}  {'-' if value is None else value}")


def _get(args: argparse.Namespace) -> int:
    with rest_client(args) as rest:
        _show_record(rest.messages(args.sid).fetch(), args.json)
    return OUTPUT.exit_code()


def _redact(args: argparse.Namespace) -> int:
    with rest_client(args) as rest:
        record = rest.messages(args.sid).update(body="")
    if args.json:
        _show_record(record, True)
    else:
        write(sys.stdout, f"redacted {record.sid}")
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    with rest_client(args) as rest:
        rest.messages(args.sid).delete()
    write(sys.stdout, to_json({"sid": args.sid, "deleted": True}) if args.json else f"deleted {args.sid}")
    return EXIT_OK


# The actions on one message: their one-line help and what runs them.
_ACTIONS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "get": ("show one message", _get),
    "redact": ("blank a message's body", _redact),
    "delete": ("delete a message", _delete),
}
