"""Telling state events of messages this client sent from those it did not.

SignalWire sends a message's ``messaging.state`` events to every session that
receives the message's context, so a client also sees the progress of messages
other processes sent on its contexts (``RelayClient.on_message_state``). An event
for an id the client is not tracking is not necessarily foreign, though: events of
our own message can arrive before the ``messaging.send`` reply that names its id.
Such an event is held until every send that was in flight when it arrived has been
answered; if none of them claimed the id, the event is foreign.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

from .events import STATE_RANK

MAX_REMEMBERED = 10_000  # ids remembered to recognise late or repeated events

ForeignHandlers = Callable[[], Sequence[Callable[[Any], Any]]]


class ForeignStates:
    """Bookkeeping of sends in flight and of foreign message states; not thread-safe.

    The owner (``MessageTracker``) calls every method with its lock held.
    """

    def __init__(self, handlers: ForeignHandlers | None = None) -> None:
        self.handlers: ForeignHandlers = handlers or tuple
        self._seq = 0  # sequence number of the latest send started
        self._inflight: OrderedDict[int, None] = OrderedDict()  # sends not yet answered
        self._held: deque[tuple[int, str]] = deque()  # (latest send at arrival, message id)
        self._own_done: OrderedDict[str, None] = OrderedDict()  # own messages no longer tracked
        self._seen: OrderedDict[str, int] = OrderedDict()  # foreign id -> highest rank handed out

    def send_started(self) -> int:
        """Note a ``messaging.send`` about to be written; return its sequence number."""
        self._seq += 1
        self._inflight[self._seq] = None
        return self._seq

    def send_finished(self, seq: int) -> None:
        """Note that send ``seq`` was answered (or failed); idempotent."""
        self._inflight.pop(seq, None)

    def own_done(self, message_id: str) -> None:
        """Remember an own message that left the tracker (done, failed or evicted)."""
        self._own_done[message_id] = None
        if len(self._own_done) > MAX_REMEMBERED:
            self._own_done.popitem(last=False)

    def classify(self, message_id: str) -> str:
        """For an event of an untracked id: ``"own"`` (ignore), ``"hold"`` or ``"foreign"``.

        ``"hold"`` means: buffer it as an early event and call :meth:`hold`.
        """
        if message_id in self._own_done:
            return "own"  # a late or repeated event of a message this client sent
        if not self.handlers():
            return "hold"  # nobody wants foreign events: keep the early-event behaviour
        return "hold" if self._inflight else "foreign"

    def hold(self, message_id: str) -> None:
        """Remember that ``message_id``'s buffered events may be foreign."""
        if self.handlers():
            self._held.append((self._seq, message_id))

    def released(self) -> list[str]:
        """Ids held earlier that no send in flight at their arrival has claimed."""
        oldest = next(iter(self._inflight), None)
        out: list[str] = []
        while self._held and (oldest is None or self._held[0][0] < oldest):
            out.append(self._held.popleft()[1])
        return out

    def is_new(self, message_id: str, state: str) -> bool:
        """True the first time a foreign message reaches ``state``'s rank (states only move forward)."""
        rank = STATE_RANK.get(state, -1)
        if rank <= self._seen.get(message_id, -1):
            return False
        self._seen[message_id] = rank
        self._seen.move_to_end(message_id)
        if len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)
        return True
