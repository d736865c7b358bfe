"""Carrier pacing in the emulator: ``Emulator(mps=..., backlog=...)``.

Off by default. With ``mps`` set, the emulator behaves like SignalWire's queue and
backlog system (https://signalwire.com/docs/platform/rate-limits, "Queue and
backlog system"):

- **Per-sender pacing.** Each sender number's messages leave (reach ``sent``) in
  the order they were accepted, no faster than ``mps`` segments per second: a
  message of *n* segments holds its sender's carrier for *n* / ``mps`` seconds.
  ``queued`` (and ``initiated``) happen at once; ``sent`` and what follows wait for
  the message's turn. ``date_sent`` is the moment the emulated carrier sent it (its
  turn in the schedule, even when a busy event loop emits ``sent`` a little later),
  so a test can measure pacing at the server. A message that fails before ``sent``
  (``FAILED_NUMBER``) takes no turn.
- **Backlog.** At most ``backlog`` messages (default 10,000, SignalWire's default)
  may be waiting for their turn, across all senders (the backlog is per account).
  A send past it is refused and nothing is stored: over RELAY ``messaging.send``
  answers ``{"code": "400", "message": "Queue overflow (21611): ..."}`` (the client
  raises ``RelayError`` with ``code`` 400); over REST ``POST .../Messages.json``
  answers HTTP 400 with code 21611.
- **API request rate.** REST ``POST`` requests are limited to SignalWire's
  documented 13,800 per 10 seconds (``rest_limit``), counted over a sliding
  10-second window; one past it gets HTTP 429, code 20429, with ``Retry-After`` in
  whole seconds. ``GET`` and ``DELETE`` are not limited ("effectively unlimited").

Times are ``time.monotonic()``. Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from ..segments import count_segments
from .store import outcome_for

__all__ = [
    "BACKLOG_CODE",
    "DEFAULT_BACKLOG",
    "REST_LIMIT",
    "REST_RATE_CODE",
    "Pacer",
    "backlog_message",
]

#: SignalWire's default messaging backlog (queued messages per account).
DEFAULT_BACKLOG = 10_000
#: SignalWire's documented API limit for POST/PUT/PATCH: 13,800 requests per 10 s.
REST_LIMIT = (13_800, 10.0)
#: cXML error code of a send refused because the backlog is full ("queue overflow").
BACKLOG_CODE = 21611
#: cXML error code of a REST request over the request rate (HTTP 429).
REST_RATE_CODE = 20429


def backlog_message(backlog: int) -> str:
    """The text of a backlog refusal (RELAY and REST alike)."""
    return (
        f"Queue overflow ({BACKLOG_CODE}): the messaging backlog of {backlog} queued "
        "messages is full; nothing was sent, try again once it drains"
    )


def segments_for(body: str | None, media: object) -> int:
    """What a message costs in carrier turns: its SMS segments, or 1 for an MMS."""
    if media or not body:
        return 1
    return max(1, count_segments(body).segments)


class Pacer:
    """The emulated carrier queues of one emulator (loop thread only).

    Args:
        mps: segments per second per sender; ``None`` turns pacing off.
        backlog: most messages waiting for their turn at once (all senders).
        clock: monotonic seconds (tests may inject one).
    """

    def __init__(
        self, mps: float | None, backlog: int = DEFAULT_BACKLOG, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if mps is not None and (isinstance(mps, bool) or not isinstance(mps, (int, float)) or not 0 < mps < 1e9):
            raise ValueError(f"mps must be a positive number or None, got {mps!r}")
        if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 0:
            raise ValueError(f"backlog must be an integer >= 0, got {backlog!r}")
        self.mps = None if mps is None else float(mps)
        self.backlog = backlog
        self.clock = clock
        #: (requests, seconds): the REST POST limit; tests may lower it.
        self.rest_limit = REST_LIMIT
        self._next_free: dict[str, float] = {}  # sender -> when its carrier is free again
        self._waiting: list[float] = []  # heap of departure times still in the future
        self._departures: dict[str, float] = {}  # message sid -> its departure time
        self._posts: deque[float] = deque()  # times of recent REST POSTs
        self.refused = 0  # sends refused because the backlog was full

    @property
    def enabled(self) -> bool:
        """Whether pacing is on (``mps`` was given)."""
        return self.mps is not None

    def queued(self, now: float | None = None) -> int:
        """Messages accepted and still waiting for their turn."""
        now = self.clock() if now is None else now
        while self._waiting and self._waiting[0] <= now:
            heapq.heappop(self._waiting)
        return len(self._waiting)

    def reserve(self, from_number: str, segments: int) -> float | None:
        """Book the next turn of ``from_number``'s carrier; ``None`` when the backlog is full.

        Returns the departure time (``clock()`` seconds) of the message, to hand to
        :meth:`assign` once it is stored. Nothing is booked when refused.
        """
        if self.mps is None:
            return None
        now = self.clock()
        start = max(now, self._next_free.get(from_number, now))
        if start > now and self.queued(now) >= self.backlog:
            self.refused += 1
            return None
        self._next_free[from_number] = start + segments / self.mps
        if start > now:
            heapq.heappush(self._waiting, start)
        return start

    def book(self, to_number: str, from_number: str, body: str | None, media: object) -> tuple[bool, float | None]:
        """Admission of one outbound send: ``(admitted, departure)``.

        A message that fails before ``sent`` takes no turn. ``(True, None)`` when
        pacing is off.
        """
        if self.mps is None or "sent" not in outcome_for(to_number).states:
            return True, None
        departure = self.reserve(from_number, segments_for(body, media))
        return departure is not None, departure

    def assign(self, sid: str, departure: float | None) -> None:
        """Remember when message ``sid`` leaves (from :meth:`reserve`)."""
        if departure is not None:
            self._departures[sid] = departure

    async def wait_turn(self, sid: str) -> datetime | None:
        """Sleep until message ``sid``'s turn to be sent; return that turn as a UTC time.

        ``None`` (at once) when the message has no turn. The time returned is the
        carrier's schedule, which is ``date_sent`` even when a busy event loop emits
        the ``sent`` state a little after it.
        """
        departure = self._departures.pop(sid, None)
        if departure is None:
            return None
        delay = departure - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        return datetime.now(timezone.utc) - timedelta(seconds=self.clock() - departure)

    def has_turn(self, sid: str) -> bool:
        """Whether message ``sid`` waits for a turn (its states must not run inline)."""
        return sid in self._departures

    def rest_request(self, method: str) -> int | None:
        """Count a REST request; return ``Retry-After`` seconds when it is over the limit."""
        if self.mps is None or method not in ("POST", "PUT", "PATCH"):
            return None
        limit, period = self.rest_limit
        now = self.clock()
        posts = self._posts
        while posts and posts[0] <= now - period:
            posts.popleft()
        if len(posts) >= limit:
            return max(1, math.ceil(posts[0] + period - now))
        posts.append(now)
        return None
