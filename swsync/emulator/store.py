"""The emulator's message store, shared by its RELAY and REST sides.

One :class:`Store` holds every message (outbound over RELAY or REST, inbound,
cXML replies, seeded) and its media. The special destination numbers and the
state sequence each one goes through live here too.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import functools
import itertools
import logging
import mimetypes
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from ..segments import count_segments
from .listeners import Listener as _Observer
from .listeners import Listeners

__all__ = [
    "FAILED_NUMBER",
    "ChangeCallback",
    "Listener",
    "NO_DLR_NUMBER",
    "REJECTED_NUMBER",
    "SERVICE_NUMBER",
    "UNDELIVERED_NUMBER",
    "MediaRecord",
    "MessageRecord",
    "Outcome",
    "Store",
    "make_record",
    "outcome_for",
]

#: Ends ``undelivered`` (queued, initiated, sent, undelivered); reason
#: ``"carrier_blocked"``, REST ``error_code`` ``"30004"``.
UNDELIVERED_NUMBER = "+15550000002"
#: Ends ``failed`` right after ``queued``; reason ``"unreachable"``, REST
#: ``error_code`` ``"30003"``.
FAILED_NUMBER = "+15550000003"
#: Stops at ``sent`` and never gets a delivery receipt (like MMS).
NO_DLR_NUMBER = "+15550000004"
#: Refused at send time: RELAY result ``{"code": "422", ...}``, REST HTTP 422
#: with code 21211.
REJECTED_NUMBER = "+15550000005"
#: The ``From`` of a REST message created with a ``MessagingServiceSid`` and no
#: ``From``: the emulator's stand-in for a number from the service's pool.
SERVICE_NUMBER = "+15550000100"

logger = logging.getLogger(__name__)

#: A change callback for :meth:`Store.add_listener`: ``callback(event, record, info)``,
#: called as :meth:`Listener.message_changed <swsync.emulator.listeners.Listener.message_changed>`
#: is (same events, same thread, right after the change).
ChangeCallback = Callable[[str, "MessageRecord | None", "dict[str, Any] | None"], None]
#: 0.1's name for :data:`ChangeCallback` (a function type; the observer interface is
#: :class:`swsync.emulator.listeners.Listener`).
Listener = ChangeCallback

API_VERSION = "2010-04-01"
TERMINAL = frozenset(("delivered", "undelivered", "failed"))
IN_PROGRESS = frozenset(("queued", "initiated", "sending"))


@dataclass(frozen=True)
class Outcome:
    """The states a message goes through and why it ends where it does."""

    states: tuple[str, ...]
    reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None


_DELIVERED = Outcome(("queued", "initiated", "sent", "delivered"))
_OUTCOMES = {
    UNDELIVERED_NUMBER: Outcome(
        ("queued", "initiated", "sent", "undelivered"),
        "carrier_blocked",
        "30004",
        "Message blocked by the destination carrier",
    ),
    FAILED_NUMBER: Outcome(("queued", "failed"), "unreachable", "30003", "Unreachable destination handset"),
    NO_DLR_NUMBER: Outcome(("queued", "initiated", "sent")),
}


def outcome_for(to_number: str) -> Outcome:
    """Return the state sequence a message to ``to_number`` goes through."""
    return _OUTCOMES.get(to_number, _DELIVERED)


def now_utc() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


@functools.lru_cache(maxsize=16384)
def rfc2822(dt: datetime | None) -> str | None:
    """Format ``dt`` as the cXML API does (``Mon, 13 Aug 2018 21:38:46 +0000``)."""
    return None if dt is None else format_datetime(dt)


def segments_of(body: str | None) -> int:
    """The segment count the emulator reports for ``body`` (1 for no body)."""
    return count_segments(body).segments if body else 1


def content_type_of(url: str) -> str:
    """Guess a media URL's MIME type from its path; ``image/jpeg`` when unknown."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return "image/jpeg"
    return mimetypes.guess_type(path)[0] or "image/jpeg"


@dataclass(eq=False)
class MediaRecord:
    """One media item of a message (REST ``Media`` resource)."""

    sid: str
    parent_sid: str
    url: str
    content_type: str
    date_created: datetime
    date_updated: datetime


@dataclass(eq=False)
class MessageRecord:
    """One stored message. Mutated only on the loop thread under ``Store._lock``."""

    sid: str
    account_sid: str
    from_: str
    to: str
    body: str | None
    direction: str  # "outbound-api" | "outbound-reply" | "inbound"
    status: str
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None = None
    media: list[MediaRecord] = field(default_factory=list)
    num_segments: int = 1
    error_code: str | None = None
    error_message: str | None = None
    price: float | None = None
    messaging_service_sid: str | None = None
    context: str | None = None
    tags: list[str] = field(default_factory=list)
    reason: str | None = None
    origin: str = "rest"  # "relay" | "rest" | "inbound" | "cxml" | "seed"
    status_callback: str | None = None
    send_as_mms: bool = False
    history: list[str] = field(default_factory=list)
    seq: int = 0

    def snapshot(self) -> dict[str, Any]:
        """A plain dict copy: the REST field names plus emulator-only extras."""
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "from": self.from_,
            "to": self.to,
            "body": self.body,
            "status": self.status,
            "direction": self.direction,
            "num_segments": self.num_segments,
            "num_media": len(self.media),
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "date_sent": rfc2822(self.date_sent),
            "error_code": self.error_code,
            "error_message": self.error_message,
            "price": self.price,
            "messaging_service_sid": self.messaging_service_sid,
            "media": [m.url for m in self.media],
            "context": self.context,
            "tags": list(self.tags),
            "reason": self.reason,
            "origin": self.origin,
            "send_as_mms": self.send_as_mms,
            "history": list(self.history),
        }


def price_for(record: MessageRecord) -> float:
    """What the emulator charges once a message is sent (USD, positive)."""
    if record.media or record.send_as_mms:
        return 0.02
    return round(0.0079 * record.num_segments, 5)


#: The fields ``Store.seed`` (``Emulator.add_messages``) accepts.
_SEED_FIELDS = frozenset(
    ("to", "from", "from_", "body", "status", "direction", "media", "error_code", "error_message", "context", "tags")
)


def make_record(
    *,
    account_sid: str,
    from_: str,
    to: str,
    body: str | None,
    media: Iterable[str],
    direction: str,
    status: str,
    origin: str,
    created: datetime,
    date_sent: datetime | None,
    context: str | None,
    tags: list[str],
    error_code: str | None = None,
    error_message: str | None = None,
    status_callback: str | None = None,
    messaging_service_sid: str | None = None,
    send_as_mms: bool = False,
) -> MessageRecord:
    """Build a new message record (not stored yet) with a fresh sid and its media records.

    The one place a record is put together, for sent, received and seeded messages
    alike. With ``send_as_mms`` it is an MMS even without media: one segment.
    """
    sid = str(uuid.uuid4())
    # Positional, in field order: this runs once per message sent (a measurable
    # share of the emulator's per-message CPU with keywords); a test checks each value lands in its field.
    record = MessageRecord(
        sid,
        account_sid,
        from_,
        to,
        body,
        direction,
        status,
        created,  # date_created
        created,  # date_updated
        date_sent,
        [],  # media, below
        1 if send_as_mms else segments_of(body),  # num_segments
        error_code,
        error_message,
        None,  # price
        messaging_service_sid,
        context,
        tags,
        None,  # reason
        origin,
        status_callback,
        send_as_mms,
        [status],  # history
    )
    if media:
        record.media = [
            MediaRecord(str(uuid.uuid4()), sid, url, content_type_of(url), created, created) for url in media
        ]
    return record


class Store:
    """Every message the emulator knows, and the request log, under one lock.

    Thread-safe: all methods may be called from any thread.
    """

    def __init__(self, *, log_size: int = 10000, tombstones: int = 100_000, listeners: Listeners | None = None) -> None:
        # Guards _messages, _deleted, _seq, _log and every field of every stored
        # record; _changed (built on it) wakes threads waiting for a status.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._messages: dict[str, MessageRecord] = {}
        # sid -> sort key of recently deleted messages, oldest first (bounded), so a
        # page token anchored on a message deleted since still finds its place.
        self._deleted: OrderedDict[str, tuple[datetime, int]] = OrderedDict()
        self._max_deleted = tombstones
        self._seq = itertools.count(1)
        self._log: deque[tuple[str, str]] = deque(maxlen=log_size)
        # Who hears of every change (their message_changed hook): the engine's
        # listeners when the engine built this store, so one registry for all.
        self.listeners = listeners if listeners is not None else Listeners()

    # -- listeners ----------------------------------------------------------------

    def add_listener(self, listener: ChangeCallback) -> None:
        """Call ``listener(event, record, info)`` after every change (see :data:`ChangeCallback`).

        A thin path into the engine's listeners: ``listener`` becomes the
        ``message_changed`` hook of one more :class:`~swsync.emulator.listeners.Listener`.
        """
        self.listeners.add(_Callback(listener))

    def remove_listener(self, listener: ChangeCallback) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        self.listeners.remove(lambda x: isinstance(x, _Callback) and x.callback is listener)

    def notify(self, event: str, record: MessageRecord | None = None, info: dict[str, Any] | None = None) -> None:
        """Tell every listener about ``event``; a failing listener is logged, never raised."""
        for hook in self.listeners.on_change:
            try:
                hook(event, record, info)
            except Exception:
                logger.exception("emulator store listener failed on %r", event)

    # -- creation -------------------------------------------------------------

    def new_message(
        self,
        *,
        account_sid: str,
        from_: str,
        to: str,
        body: str | None,
        media: Iterable[str] = (),
        direction: str = "outbound-api",
        status: str = "queued",
        origin: str = "rest",
        context: str | None = None,
        tags: list[str] | None = None,
        status_callback: str | None = None,
        messaging_service_sid: str | None = None,
        send_as_mms: bool = False,
    ) -> MessageRecord:
        """Create and store a new message; return its record.

        With ``send_as_mms`` it is an MMS even without media: one segment, MMS price.
        """
        now = now_utc()
        record = make_record(
            account_sid=account_sid,
            from_=from_,
            to=to,
            body=body,
            media=media,
            direction=direction,
            status=status,
            origin=origin,
            created=now,
            date_sent=now if status == "received" else None,
            context=context,
            tags=tags if tags is not None else [],
            status_callback=status_callback,
            messaging_service_sid=messaging_service_sid,
            send_as_mms=send_as_mms,
        )
        with self._lock:
            record.seq = next(self._seq)
            self._messages[record.sid] = record
            self._changed.notify_all()
        self.notify("created", record)
        return record

    def seed(self, count: int, account_sid: str, fields: dict[str, Any]) -> list[str]:
        """Bulk-insert ``count`` finished messages with distinct dates over many days.

        Record ``i`` (0-based) is created ``i + 1`` hours before now, so the
        newest-first order is the insertion order and every day holds 24 records.
        ``fields`` may set ``to``, ``from`` (or ``from_``), ``body``, ``status``,
        ``direction``, ``media`` (list of URLs), ``error_code``,
        ``error_message``, ``context`` and ``tags``; ``body`` may contain ``{i}``.
        """
        unknown = set(fields) - _SEED_FIELDS
        if unknown:
            raise TypeError(f"add_messages() got unknown fields: {sorted(unknown)}")
        if count < 0:
            raise ValueError("count must be >= 0")
        to = fields.get("to", "+15551230000")
        from_ = fields.get("from", fields.get("from_", "+15559870000"))
        body_tpl = fields.get("body", "seeded message {i}")
        status = fields.get("status", "delivered")
        direction = fields.get("direction", "outbound-api")
        media = list(fields.get("media") or ())
        unsent = status in IN_PROGRESS or status == "failed"
        base = now_utc().replace(microsecond=0).timestamp()
        records = []
        for i in range(count):
            created = datetime.fromtimestamp(base - 3600 * (i + 1), timezone.utc)
            record = make_record(
                account_sid=account_sid,
                from_=from_,
                to=to,
                body=body_tpl.replace("{i}", str(i)) if isinstance(body_tpl, str) else None,
                media=media,
                direction=direction,
                status=status,
                origin="seed",
                created=created,
                date_sent=None if unsent else created,
                context=fields.get("context"),
                tags=list(fields.get("tags") or ()),
                error_code=fields.get("error_code"),
                error_message=fields.get("error_message"),
            )
            if not unsent and direction != "inbound":
                record.price = price_for(record)
            records.append(record)
        with self._lock:
            # Seeded records are older than everything so far; seq only breaks ties.
            for record in records:
                record.seq = next(self._seq)
                self._messages[record.sid] = record
            self._changed.notify_all()
        for record in records:
            self.notify("created", record)
        return [r.sid for r in records]

    # -- changes (loop thread) --------------------------------------------------

    def advance(self, record: MessageRecord, state: str, outcome: Outcome) -> None:
        """Move ``record`` to ``state``: dates, price and error fields follow."""
        with self._lock:
            if record.status != state:
                now = now_utc()
                record.status = state
                record.date_updated = now
                if state == "sent":
                    record.date_sent = now
                    record.price = price_for(record)
                elif state in ("undelivered", "failed"):
                    record.reason = outcome.reason
                    record.error_code = outcome.error_code
                    record.error_message = outcome.error_message
            moved = record.history[-1] != state
            if moved:
                record.history.append(state)
            self._changed.notify_all()
        if moved:
            self.notify("state", record)

    def set_date_sent(self, record: MessageRecord, when: datetime) -> None:
        """Set when the emulated carrier sent ``record`` (its turn, with ``Emulator(mps=...)``)."""
        with self._lock:
            record.date_sent = when

    def redact(self, record: MessageRecord) -> None:
        """Blank the body of ``record`` (REST update with ``Body=""``)."""
        with self._lock:
            record.body = ""
            record.date_updated = now_utc()
        self.notify("updated", record)

    def delete(self, sid: str) -> MessageRecord | None:
        """Remove a message (and its media); return it, or ``None`` if unknown."""
        with self._lock:
            record = self._messages.pop(sid, None)
            if record is not None:
                self._deleted[sid] = sort_key(record)
                if len(self._deleted) > self._max_deleted:
                    self._deleted.popitem(last=False)
        if record is not None:
            self.notify("deleted", record)
        return record

    def delete_media(self, record: MessageRecord, media: MediaRecord) -> None:
        """Remove one media item from ``record``."""
        with self._lock:
            record.media = [m for m in record.media if m is not media]
            record.date_updated = now_utc()
        self.notify("updated", record)

    def clear(self) -> None:
        """Forget every message and the request log."""
        with self._lock:
            self._messages.clear()
            self._deleted.clear()
            self._log.clear()
            self._changed.notify_all()
        self.notify("reset")

    # -- queries ----------------------------------------------------------------

    def get(self, sid: str) -> MessageRecord | None:
        """Return the live record for ``sid`` (loop thread only), or ``None``."""
        return self._messages.get(sid)

    def position(self, sid: str) -> tuple[datetime, int] | None:
        """The sort key of message ``sid``, also for a recently deleted one; else ``None``."""
        with self._lock:
            record = self._messages.get(sid)
            return sort_key(record) if record is not None else self._deleted.get(sid)

    def snapshot(self, sid: str) -> dict[str, Any] | None:
        """Return a dict copy of message ``sid`` (see ``MessageRecord.snapshot``)."""
        with self._lock:
            record = self._messages.get(sid)
            return None if record is None else record.snapshot()

    def select(self, match: Callable[[MessageRecord], bool] | None) -> list[MessageRecord]:
        """Return the records ``match`` accepts, newest first."""
        with self._lock:
            if match is None:
                found = list(self._messages.values())
            else:
                found = [r for r in self._messages.values() if match(r)]
        found.sort(key=sort_key, reverse=True)
        return found

    def wait_for(self, sid: str, status: str, timeout: float | None) -> dict[str, Any]:
        """Block until message ``sid`` has reached ``status`` (now or earlier).

        Raises:
            TimeoutError: not reached within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                record = self._messages.get(sid)
                if record is not None and status in record.history:
                    return record.snapshot()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    current = record.status if record is not None else "unknown"
                    raise TimeoutError(f"message {sid} did not reach {status!r} within {timeout} s (status: {current})")
                self._changed.wait(remaining)

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    # -- request log ------------------------------------------------------------

    def log_request(self, method: str, path: str) -> None:
        """Record one REST request (bounded; the oldest entries fall off)."""
        with self._lock:
            self._log.append((method, path))

    def request_log(self) -> list[tuple[str, str]]:
        """Return a copy of the REST request log, oldest first."""
        with self._lock:
            return list(self._log)


class _Callback(_Observer):
    """A :meth:`Store.add_listener` callback as a listener."""

    def __init__(self, callback: ChangeCallback) -> None:
        self.callback = callback

    def message_changed(self, event: str, record: MessageRecord | None, info: dict[str, Any] | None) -> None:
        self.callback(event, record, info)


def sort_key(record: MessageRecord) -> tuple[datetime, int]:
    """Messages list newest first by this key (creation date, then creation order)."""
    return (record.date_created, record.seq)
