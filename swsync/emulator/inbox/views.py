"""What the inbox shows of a message, and the filters of its JSON API (pure functions).

A *summary* is the compact dict the page keeps for every message (the list rows
and the search); a *detail* adds the state timeline with times, the webhooks
posted for it and the encoding. Filters turn query parameters into a predicate
on :class:`~swsync.emulator.store.MessageRecord`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ...segments import count_segments
from ..store import TERMINAL, MessageRecord

__all__ = ["FILTERS", "Match", "detail", "parse_filter", "parse_since", "summary"]

Match = Callable[[MessageRecord], bool]

#: Query parameters the list and wait endpoints understand.
FILTERS = ("to", "from", "number", "direction", "state", "contains", "q", "context", "since")

_DIRECTIONS = {"inbound": ("inbound",), "outbound": ("outbound-api", "outbound-reply")}


def _ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def summary(record: MessageRecord) -> dict[str, Any]:
    """The compact form of ``record`` the page lists and searches (read on the loop thread)."""
    return {
        "sid": record.sid,
        "seq": record.seq,
        "from": record.from_,
        "to": record.to,
        "body": record.body,
        "status": record.status,
        "direction": record.direction,
        "date": _ms(record.date_created),
        "segments": record.num_segments,
        "media": [m.url for m in record.media],
        "context": record.context,
        "tags": list(record.tags),
        "reason": record.reason,
        "error_code": record.error_code,
        "origin": record.origin,
    }


def detail(
    snapshot: dict[str, Any],
    times: Sequence[tuple[str, float]],
    webhooks: Sequence[Mapping[str, Any]],
    media_types: Sequence[str],
) -> dict[str, Any]:
    """``snapshot`` (``Store.snapshot``) plus encoding, timeline and webhooks.

    ``timeline`` lists every state with its time (ISO 8601 UTC and epoch
    seconds) and, for ``undelivered``/``failed``, the reason and error code.
    ``webhooks`` lists each POST: ``kind``, ``url``, ``state``, ``at``,
    ``duration_ms``, ``status`` (HTTP, ``None`` if it never answered), ``error``.
    """
    out = dict(snapshot)
    body = snapshot.get("body") or ""
    seg = count_segments(body) if body else None
    out["encoding"] = seg.encoding if seg else None
    out["units"] = seg.units if seg else 0
    out["media_items"] = [
        {"url": url, "content_type": ct} for url, ct in zip(snapshot["media"], media_types, strict=False)
    ]
    timeline = []
    for state, at in times:
        entry: dict[str, Any] = {"state": state, "at": _iso(at), "t": at}
        if state in ("undelivered", "failed"):
            entry["reason"] = snapshot.get("reason")
            entry["error_code"] = snapshot.get("error_code")
            entry["error_message"] = snapshot.get("error_message")
        timeline.append(entry)
    out["timeline"] = timeline
    out["webhooks"] = [{**hook, "at": _iso(hook["at"])} for hook in webhooks]
    out["final"] = snapshot.get("status") in TERMINAL
    return out


def parse_since(text: str) -> datetime:
    """Parse ``since``: epoch seconds or ISO 8601 (a naive time is UTC).

    Raises:
        ValueError: neither.
    """
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"since: not epoch seconds or ISO 8601: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def parse_filter(query: Mapping[str, str]) -> Match | None:
    """A predicate for the filters in ``query`` (all must hold), or ``None`` for none.

    ``to``, ``from``: exact numbers; ``number``: either side; ``direction``:
    ``inbound``, ``outbound`` or an exact direction; ``state``: one status or a
    comma-separated list; ``contains``: case-insensitive body substring; ``q``:
    body substring or number substring; ``context``: exact; ``since``: created at
    or after (epoch seconds or ISO 8601).

    Raises:
        ValueError: a malformed ``since``.
    """
    tests: list[Match] = []
    get = query.get
    to, from_, number, context = get("to"), get("from"), get("number"), get("context")
    if to:
        tests.append(lambda r: r.to == to)
    if from_:
        tests.append(lambda r: r.from_ == from_)
    if number:
        tests.append(lambda r: number in (r.to, r.from_))
    if get("direction"):
        direction = get("direction") or ""
        wanted = _DIRECTIONS.get(direction, (direction,))
        tests.append(lambda r: r.direction in wanted)
    if get("state"):
        states = frozenset((get("state") or "").split(","))
        tests.append(lambda r: r.status in states)
    if context:
        tests.append(lambda r: r.context == context)
    if get("contains"):
        needle = (get("contains") or "").casefold()
        tests.append(lambda r: needle in (r.body or "").casefold())
    if get("q"):
        tests.append(_text_match((get("q") or "").casefold()))
    if get("since"):
        since = parse_since(get("since") or "")
        tests.append(lambda r: r.date_created >= since)
    if not tests:
        return None
    return lambda r: all(t(r) for t in tests)


def _text_match(needle: str) -> Match:
    def match(r: MessageRecord) -> bool:
        return needle in r.to or needle in r.from_ or needle in (r.body or "").casefold()

    return match
