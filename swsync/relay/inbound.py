"""Inbound messages and the ``on_message`` handlers they are handed to.

The reader thread hands each ``messaging.receive`` event to :meth:`Inbound.receive`.
A message arriving before any handler is registered, or while no dispatcher can
take it, is buffered (bounded) and handed over later. A resumed session redelivers
events whose ACK was lost, so ids seen recently are handled once. With an
``ack_after`` handler the event's ACK waits until the handlers succeeded; a copy
redelivered meanwhile waits for that outcome too (docs/design.md, "Scaling out (Celery)",
"Inbound hand-off").
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._claims import Claims
from .dispatcher import Dispatcher, report_callback_error
from .events import MessageReceiveEvent, parse_message_fields
from .message import Message, MessageTracker

logger = logging.getLogger("swsync.relay")

InboundHandler = Callable[[Message], Any]
Ack = Callable[[], None]

MAX_BUFFERED_INBOUND = 1000
# Inbound message ids remembered to drop redeliveries (a resumed session resends events
# whose ACK was lost): bounded, oldest forgotten first.
MAX_SEEN_INBOUND = 10_000


class Inbound:
    """A client's inbound handlers and the state of inbound messages. Thread-safe.

    Handlers are kept for the client's life (a forked child keeps them, see
    :meth:`forked`); buffered messages, remembered ids and held ACKs belong to one
    process.
    """

    def __init__(
        self,
        *,
        max_seen: int = MAX_SEEN_INBOUND,
        max_buffered: int = MAX_BUFFERED_INBOUND,
        handlers: Sequence[InboundHandler] = (),
        ack_after: Sequence[InboundHandler] = (),
    ) -> None:
        self._max_seen = max_seen
        self._max_buffered = max_buffered
        # Guards every field below; never held while a handler runs or an ACK is queued.
        self._lock = threading.Lock()
        self._handlers = list(handlers)
        # The ack_after handlers: each inbound event's ACK waits for them. Replaced whole,
        # so holds_ack() reads it without the lock on the reader thread.
        self._ack_after: tuple[InboundHandler, ...] = tuple(ack_after)
        self._buffer: deque[Message] = deque()  # no handler (or dispatcher) took these yet
        self._seen: OrderedDict[str, None] = OrderedDict()
        # message id -> ACKs of redelivered copies, while an ack_after hand-off of it runs;
        # whoever claims an entry sends (or drops) its ACKs.
        self._held_acks: Claims[str, list[Ack]] = Claims()

    def forked(self) -> Inbound:
        """A fresh instance for a forked child: the same handlers, no messages or locks of the parent."""
        return Inbound(
            max_seen=self._max_seen, max_buffered=self._max_buffered, handlers=self._handlers, ack_after=self._ack_after
        )

    def add_handler(self, handler: InboundHandler, *, ack_after: bool) -> None:
        """Register ``handler`` for every inbound message (``ack_after``: the ACK waits for it)."""
        with self._lock:
            self._handlers.append(handler)
            if ack_after:
                self._ack_after = (*self._ack_after, handler)

    def waiting(self) -> int:
        """How many inbound messages wait in the buffer."""
        with self._lock:
            return len(self._buffer)

    def hand_over(self, dispatcher: Dispatcher) -> None:
        """Give buffered messages to the handlers through ``dispatcher`` (if it still runs)."""
        with self._lock:
            # Under the lock, so that buffered messages keep their order against receive().
            # A dispatcher that connect() retires meanwhile still runs what it accepted.
            if not self._handlers or not self._buffer:
                return
            handlers = list(self._handlers)
            while self._buffer:
                msg = self._buffer[0]
                if not dispatcher.submit(msg.message_id, run_inbound, handlers, msg):
                    break  # stopped: kept for the next connect()
                self._buffer.popleft()

    def holds_ack(self, envelope: Mapping[str, Any]) -> bool:
        """Reader thread: True when this event's ACK must wait for the ``ack_after`` handlers."""
        return bool(self._ack_after) and envelope.get("event_type") == "messaging.receive"

    def receive(
        self,
        tracker: MessageTracker,
        dispatcher: Dispatcher,
        params: Mapping[str, Any],
        timestamp: float | None,
        ack: Ack | None,
    ) -> None:
        """Reader thread: hand a ``messaging.receive`` event's message to the handlers, once.

        ``ack`` is the event's held ACK (with ``ack_after`` handlers), else ``None``.
        """
        fields = parse_message_fields(params)
        mid = fields.get("message_id")
        if not mid:
            logger.warning("dropped a messaging.receive event without message_id")
            if ack is not None:
                ack()
            return
        msg = tracker.new_inbound(MessageReceiveEvent("messaging.receive", params, timestamp, mid), fields)
        finish = None if ack is None else functools.partial(self._finish, mid, ack)
        with self._lock:
            if mid in self._seen:  # a resumed session redelivers events whose ACK was lost
                held = self._held_acks.get(mid)  # its hand-off still runs: this ACK waits for it
                if held is not None and ack is not None:
                    held.append(ack)
                    ack = None
                logger.debug("ignoring a repeated messaging.receive for message %s", mid)
            elif self._hand_off_locked(dispatcher, msg, finish):
                return
        if ack is not None:
            ack()

    def _hand_off_locked(self, dispatcher: Dispatcher, msg: Message, finish: Callable[[bool], None] | None) -> bool:
        # Caller holds self._lock. True when the handlers got msg (its ACK then waits for finish).
        mid = msg.message_id
        self._seen[mid] = None
        if len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)
        if finish is not None:
            self._held_acks.add(mid, [])
        if self._handlers and dispatcher.submit(mid, run_inbound, list(self._handlers), msg, finish, self._ack_after):
            return True
        self._held_acks.claim(mid)  # not handed off: the event's own ACK goes now
        # No handler yet, or this connection's dispatcher was stopped: keep it.
        if len(self._buffer) >= self._max_buffered:
            dropped = self._buffer.popleft()
            logger.warning(
                "%d inbound messages waiting for a handler; dropped message %s", self._max_buffered, dropped.message_id
            )
        self._buffer.append(msg)
        return False

    def _finish(self, mid: str, ack: Ack, ok: bool) -> None:
        # Dispatch thread, after the handlers of an event whose ACK was held.
        with self._lock:
            copies = self._held_acks.claim(mid) or []  # claimed: the copies' ACKs are ours to send
            if not ok:
                self._seen.pop(mid, None)  # the server may deliver it again: handle it then
        if ok:
            for each in (ack, *copies):
                each()


def run_inbound(
    handlers: list[InboundHandler],
    msg: Message,
    finish: Callable[[bool], None] | None = None,
    must_succeed: Sequence[InboundHandler] = (),
) -> None:
    """Dispatch thread: run each handler on ``msg``; then ``finish(ok)``, ok unless an ``ack_after`` one raised."""
    failed = False
    for handler in handlers:
        try:
            handler(msg)
        except BaseException as exc:  # SystemExit too: the next handler still runs
            failed = failed or handler in must_succeed
            if not getattr(exc, "reported", False):  # the handler logged it already
                report_callback_error("on_message handler", handler)
    if finish is not None:
        if failed:
            logger.warning("inbound message %s not acknowledged: an ack_after handler raised", msg.message_id)
        finish(not failed)
