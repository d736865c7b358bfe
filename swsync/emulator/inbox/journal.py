"""The inbox's view of the store: state times, webhooks posted, and batched live updates.

:class:`Journal` is an engine listener that hears every store change
(``Listener.message_changed``). For every message it
keeps when each state was reached and every webhook posted for it. While somebody
watches (an open page's event stream, or a long-polling ``wait``), it also
collects which messages changed and, at most every :data:`BATCH_INTERVAL`
seconds, hands one batch to every watcher: the page never gets one update per
state change, so a burst of traffic costs the emulator one small JSON document
per interval, not one per event.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections import deque
from typing import Any

from ..engine import Listener
from ..store import MessageRecord

__all__ = ["BATCH_INTERVAL", "FIELDS", "Journal", "Watcher", "encode"]

#: Seconds between two live-update batches (at most ten a second)...
BATCH_INTERVAL = 0.1
#: ...or, right after a batch of more than BUSY_BATCH messages, this long.
BUSY_INTERVAL = 0.5
BUSY_BATCH = 200
#: Batches a slow page may fall behind before its stream is closed (it reconnects
#: and gets a fresh snapshot).
MAX_BEHIND = 100


def sse(event: str, data: Any) -> bytes:
    """One server-sent event (``text/event-stream``) carrying ``data`` as JSON."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {text}\n\n".encode()


class Watcher:
    """One open event stream or long poll: batches queue here until it takes them."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.chunks: deque[bytes] = deque()
        self.overflow = False

    def push(self, chunk: bytes | None) -> None:
        """Queue ``chunk`` (``None``: just wake up) for this watcher."""
        if chunk is not None:
            if len(self.chunks) >= MAX_BEHIND:
                self.overflow = True
            else:
                self.chunks.append(chunk)
        self.ready.set()

    def take(self) -> bytes:
        """Everything queued so far, as one write."""
        self.ready.clear()
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


class Journal(Listener):
    """State times, webhooks and live batches for the inbox. See the module docstring."""

    def __init__(self) -> None:
        # sid -> [(state, epoch seconds)], sid -> [webhook info]: appended by the
        # listener (atomic list/dict operations), read on the loop thread.
        self.times: dict[str, list[tuple[str, float]]] = {}
        self.webhooks: dict[str, list[dict[str, Any]]] = {}
        self.watchers: set[Watcher] = set()
        self.streams = 0  # open event streams (they want the batches' JSON)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Loop thread only (other threads hand their changes over with
        # call_soon_threadsafe), so no lock: changed messages (None: deleted), a
        # reset flag, whether a flush is due, the next interval, and each
        # message's unchanging JSON (see encode()).
        self._dirty: dict[str, MessageRecord | None] = {}
        self._reset = False
        self._scheduled = False
        self._interval = BATCH_INTERVAL
        self._static: dict[str, str] = {}

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flush batches on ``loop`` (the emulator's; call on its thread) from now on."""
        self._loop = loop
        self._loop_thread = threading.get_ident()

    # -- the listener (any thread) ---------------------------------------------------

    def message_changed(self, event: str, record: MessageRecord | None, info: dict[str, Any] | None) -> None:
        """The store changed: record times and webhooks, mark the message changed."""
        if event == "state" and record is not None:
            self.times.setdefault(record.sid, []).append((record.status, time.time()))
        elif event == "created" and record is not None:
            at = time.time() if record.origin != "seed" else record.date_created.timestamp()
            self.times[record.sid] = [(record.status, at)]
        elif event == "webhook" and info is not None:
            self.webhooks.setdefault(info["sid"], []).append(info)
        elif event == "deleted" and record is not None:
            self.times.pop(record.sid, None)
            self.webhooks.pop(record.sid, None)
        elif event == "reset":
            self.times.clear()
            self.webhooks.clear()
        if not self.watchers or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._mark(event, record)
        else:
            try:
                self._loop.call_soon_threadsafe(self._mark, event, record)
            except RuntimeError:  # the loop is closed: nobody is watching any more
                pass

    def _mark(self, event: str, record: MessageRecord | None) -> None:
        if event == "reset":
            self._dirty.clear()
            self._static.clear()
            self._reset = True
        elif record is not None:
            if event != "state":
                self._static.pop(record.sid, None)  # body, media or the record itself changed
            self._dirty[record.sid] = None if event == "deleted" else record
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_later(self._interval, self.flush)

    # -- batches (loop thread) ----------------------------------------------------------

    def flush(self) -> None:
        """Send the changes collected so far to every watcher, as one batch."""
        dirty, self._dirty = self._dirty, {}
        reset, self._reset = self._reset, False
        self._scheduled = False
        # Under a flood, wait longer between batches: fewer, larger batches, each
        # message encoded about once however many states it went through.
        self._interval = BUSY_INTERVAL if len(dirty) > BUSY_BATCH else BATCH_INTERVAL
        if not (dirty or reset):
            return
        chunk = self._encode(dirty, reset) if self.streams else None
        for watcher in list(self.watchers):
            watcher.push(chunk)

    def _encode(self, dirty: dict[str, MessageRecord | None], reset: bool) -> bytes:
        static = self._static
        changed = [encode(r, static) for r in dirty.values() if r is not None]
        deleted = [sid for sid, r in dirty.items() if r is None]
        for sid in deleted:
            static.pop(sid, None)
        text = (
            f'{{"reset":{"true" if reset else "false"},"fields":{FIELDS_JSON},"rows":[{",".join(changed)}],'
            f'"deleted":{json.dumps(deleted)}}}'
        )
        return f"event: update\ndata: {text}\n\n".encode()

    def close(self) -> None:
        """Wake every watcher so it ends (the emulator is closing)."""
        for watcher in list(self.watchers):
            watcher.overflow = True
            watcher.push(None)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


#: The order of a row's values in an ``update`` event: a summary's keys. Rows
#: (lists) rather than objects: the page's event-stream parser is the browser's
#: main cost under a flood, and rows are a third shorter.
FIELDS = (
    "sid",
    "seq",
    "from",
    "to",
    "body",
    "direction",
    "date",
    "segments",
    "media",
    "context",
    "tags",
    "origin",
    "status",
    "reason",
    "error_code",
)
FIELDS_JSON = json.dumps(FIELDS, separators=(",", ":"))


def _static_json(r: MessageRecord) -> str:
    """The unchanging first values of ``r``'s row as JSON, without the closing bracket.

    Written out by hand, about four times faster than building a list and
    encoding it (sids are UUIDs; every other string is escaped, since seeded
    messages may carry anything).
    """
    date = int(r.date_created.timestamp() * 1000)
    media = _dumps([m.url for m in r.media]) if r.media else "[]"
    tags = _dumps(r.tags) if r.tags else "[]"
    context = "null" if r.context is None else _dumps(r.context)
    body = "null" if r.body is None else _dumps(r.body)
    return (
        f'["{r.sid}",{r.seq},{_dumps(r.from_)},{_dumps(r.to)},{body},{_word(r.direction)},{date},'
        f"{r.num_segments},{media},{context},{tags},{_word(r.origin)}"
    )


@functools.lru_cache(maxsize=256)
def _word(text: str) -> str:
    """A status, direction or origin as JSON (a handful of distinct values)."""
    return _dumps(text)


def encode(record: MessageRecord, static: dict[str, str]) -> str:
    """``record``'s row (``summary(record)``'s values in :data:`FIELDS` order) as JSON.

    Its unchanging part is encoded once and kept in ``static``.
    """
    head = static.get(record.sid)
    if head is None:
        head = static[record.sid] = _static_json(record)
    reason, code = record.reason, record.error_code
    return (
        f"{head},{_word(record.status)},{'null' if reason is None else _dumps(reason)},"
        f"{'null' if code is None else _dumps(code)}]"
    )
