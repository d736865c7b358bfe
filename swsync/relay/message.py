"""``Message`` (a live, waitable outbound or inbound message) and its tracker.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .. import _validate
from ..errors import OutcomeUnknownError, SwsyncError, WaitTimeout
from ._claims import Claims
from .dispatcher import Dispatcher, report_callback_error
from .events import STATE_RANK, TERMINAL_STATES, MessageReceiveEvent, MessageStateEvent, RelayEvent
from .foreign import ForeignHandlers, ForeignStates

logger = logging.getLogger(__name__)

Handler = Callable[[MessageStateEvent], Any]

# The message_state of the event on_completed gets when an accepted message's outcome can
# no longer be learned (session lost, disconnect(), stopped tracking). Not a delivery state:
# the message may or may not have been delivered.
OUTCOME_UNKNOWN = "unknown"
OUTCOME_UNKNOWN_EVENT = "swsync.outcome_unknown"


def outcome_unknown_error(message_id: str, why: str) -> OutcomeUnknownError:
    """The error ``wait()`` raises for an accepted message whose outcome is unknowable."""
    return OutcomeUnknownError(
        f"message {message_id} was accepted by SignalWire but its outcome is unknown ({why}); "
        f"do not send it again: look it up over REST by id, rest.messages({message_id!r}).fetch()",
        message_id=message_id,
    )


_Early = tuple[dict[str, Any], Mapping[str, Any], "float | None"]

# The public fields a Message snapshot (copy, pickle) carries.
_SNAPSHOT_FIELDS = (
    "message_id",
    "context",
    "direction",
    "from_number",
    "to_number",
    "body",
    "media",
    "segments",
    "reason",
    "tags",
    "region",
)


class Message:
    """A message sent or received over RELAY, updated live as events arrive.

    Outbound messages start in ``queued`` and move forward through ``initiated``
    and ``sent`` to a terminal state (``delivered``, ``undelivered``, ``failed``);
    inbound messages arrive complete in state ``received``. Properties read the
    latest known values. Thread-safe: any thread may read, ``on()`` or ``wait()``.

    ``copy.copy``, ``copy.deepcopy`` and ``pickle`` give a detached snapshot (for
    example a ``multiprocessing`` worker's return value): the same fields, state
    and result, but it receives no more events. ``wait()`` on a snapshot taken
    before the message was done raises ``OutcomeUnknownError`` at once.
    """

    __slots__ = (
        "_tracker",
        "_cond",
        "_handlers",
        "_completed",
        "_result",
        "_error",
        "_done",
        "_state",
        "_seen_rank",
        "_tracked_at",
        *_SNAPSHOT_FIELDS,
    )

    def __init__(self, tracker: MessageTracker | _Detached, message_id: str, fields: dict[str, Any]) -> None:
        self._tracker = tracker
        self._cond: threading.Condition | None = None
        self._handlers: list[Handler] = []
        self._completed: Handler | None = None
        self._result: RelayEvent | None = None
        self._error: SwsyncError | None = None
        self._done = False
        self._tracked_at = 0.0
        self._seen_rank = -1  # rank of the latest state event applied
        self.message_id: str = message_id
        self._state: str = fields.get("message_state", "queued")
        self.context: str | None = fields.get("context")
        self.direction: str = fields.get("direction", "outbound")
        self.from_number: str | None = fields.get("from_number")
        self.to_number: str | None = fields.get("to_number")
        self.body: str | None = fields.get("body")
        self.media: list[str] = fields.get("media", [])
        self.segments: int = fields.get("segments", 0)
        self.reason: str = fields.get("reason") or ""  # "" until a failure reason arrives
        self.tags: list[str] = fields.get("tags", [])
        self.region: str | None = fields.get("region")

    @property
    def state(self) -> str:
        """The latest state: ``queued`` … ``delivered``/``undelivered``/``failed``, or ``received``."""
        return self._state

    @property
    def is_done(self) -> bool:
        """True once the message reached a terminal state (always true for inbound)."""
        return self._done

    @property
    def result(self) -> RelayEvent | None:
        """The terminal event (the receive event for inbound), or ``None`` until done."""
        return self._result

    def on(self, handler: Handler) -> Handler:
        """Call ``handler(event)`` for each later state event of this message.

        Handlers run on a dispatch thread, never on the socket reader, in event
        order for this message; an exception is logged and does not affect other
        handlers. Returns ``handler`` so it can be used as a decorator.
        """
        if not callable(handler):
            raise TypeError("handler must be callable")
        with self._tracker.lock:
            self._handlers.append(handler)
        return handler

    def wait(self, timeout: float | None = None) -> RelayEvent:
        """Block the calling thread until the message is done; return the terminal event.

        Returns at once when the message is already done. Any number of threads
        may wait on one message.

        Args:
            timeout: seconds to wait; ``None``, infinity or more than about three
                years wait until done or the connection is lost.

        Raises:
            ValueError: ``timeout`` is NaN, negative or not a number.
            WaitTimeout: not done within ``timeout`` (a ``TimeoutError``).
            OutcomeUnknownError: SignalWire accepted the message but its outcome can no
                longer be learned: the client disconnected, the session was replaced by
                a fresh one, or the connection was lost for good. A
                ``ConnectionClosedError`` with ``may_have_been_sent`` True and
                ``message_id``: never send it again; look it up over REST.
        """
        limit = _validate.timeout(timeout)
        with self._tracker.lock:
            if not self._done and self._error is None:
                if self._cond is None:
                    self._cond = threading.Condition(self._tracker.lock)
                self._cond.wait_for(lambda: self._done or self._error is not None, limit)
            if self._done:
                assert self._result is not None
                return self._result
            if self._error is not None:
                # A fresh copy per raise: one instance raised in many threads would
                # collect their tracebacks.
                raise copy.copy(self._error).with_traceback(None)
        raise WaitTimeout(f"message {self.message_id} still {self._state!r} after {timeout} s")

    def __reduce__(self) -> tuple[Any, ...]:
        # A detached snapshot: the tracker (locks, handlers) stays with the original.
        with self._tracker.lock:
            fields = {name: copy.copy(getattr(self, name)) for name in _SNAPSHOT_FIELDS}
            state = (self._state, self._done, self._result, self._error)
        return (_restore_message, (fields, *state))

    def __repr__(self) -> str:
        return (
            f"<Message {self.message_id} {self.direction} state={self._state!r} "
            f"to={self.to_number!r} from={self.from_number!r}>"
        )


def message_fields(message: Message) -> dict[str, Any]:
    """Return a message's fields as a JSON-ready dict.

    What ``swsync listen`` prints and what ``swsync.celery`` hands an inbound
    message's task: id, context, direction, numbers, body, media, tags, segments
    and state.
    """
    return {
        "message_id": message.message_id,
        "context": message.context,
        "direction": message.direction,
        "from_number": message.from_number,
        "to_number": message.to_number,
        "body": message.body,
        "media": list(message.media),
        "tags": list(message.tags),
        "segments": message.segments,
        "state": message.state,
    }


class _Detached:
    """The stand-in tracker of a Message snapshot: a lock, and no events ever."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()


def _restore_message(
    fields: dict[str, Any], state: str, done: bool, result: RelayEvent | None, error: SwsyncError | None
) -> Message:
    """Rebuild a detached ``Message`` snapshot (the other half of ``Message.__reduce__``)."""
    msg = Message(_Detached(), fields["message_id"], fields)
    msg._state, msg._done, msg._result = state, done, result
    if error is None and not done:
        error = OutcomeUnknownError(
            f"message {msg.message_id} is a copy (pickled or copied) taken in state {state!r}; "
            "a copy receives no events, so its outcome is unknown here: wait on the original "
            "Message, or look it up over REST by message_id",
            message_id=msg.message_id,
        )
    msg._error = error
    return msg


class MessageTracker:
    """Registry of outbound messages awaiting events, plus the early-event buffer.

    Events for an id nobody has registered yet (they can arrive before the
    ``messaging.send`` reply) wait in a bounded buffer and are replayed when the
    reply registers the message. A message leaves the registry as soon as it is
    done, so completed messages leave no state behind. Thread-safe.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_tracked: int = 100_000,
        message_ttl: float = 24 * 3600.0,
        max_early: int = 1000,
        early_ttl: float = 60.0,
        defer_notify: bool = False,
        foreign: ForeignHandlers | None = None,
    ) -> None:
        # Guards the state of every Message of this client, _tracked, _early and foreign.
        self.lock = threading.Lock()
        # Sends in flight and foreign messages' states (``foreign()`` gives the handlers
        # of state events for messages this client did not send).
        self.foreign = ForeignStates(foreign)
        # A message leaves _tracked once (done, evicted, expired or failed): whoever
        # claims it settles it. A claim also remembers the id (its late events are own).
        self._tracked: Claims[str, Message] = Claims(self.foreign.own_done)
        self._early: OrderedDict[str, tuple[float, list[_Early]]] = OrderedDict()
        self.dispatcher = dispatcher
        self.max_tracked = max_tracked
        self.message_ttl = message_ttl
        self.max_early = max_early
        self.early_ttl = early_ttl
        # With defer_notify, waiters are woken by notify_deferred() once the reader has
        # handled a whole read (fewer GIL handoffs mid-batch); guarded by self.lock.
        self._deferred: list[threading.Condition] | None = [] if defer_notify else None

    def __len__(self) -> int:
        return len(self._tracked)

    @property
    def early_count(self) -> int:
        """How many message ids have buffered early events."""
        return len(self._early)

    def register(
        self,
        message_id: str,
        fields: dict[str, Any],
        on_completed: Handler | None,
        seq: int | None = None,
    ) -> Message:
        """Create and track an outbound message; replay events that came early.

        Called on the reader thread while it handles the ``messaging.send`` reply,
        before it reads the next frame. ``seq`` is the number ``send_started()``
        gave this send: held events no other send can claim are then foreign.
        """
        msg = Message(self, message_id, fields)
        msg._completed = on_completed
        with self.lock:
            early = self._early.pop(message_id, None)
            msg._tracked_at = time.monotonic()
            self._tracked.add(message_id, msg)
            evicted = self._tracked.claim_beyond(self.max_tracked)
            released = []
            if seq is not None:
                self.foreign.send_finished(seq)
                released = self._released_locked()
        for old in evicted:
            self._give_up(old, f"the client tracks at most {self.max_tracked} messages")
        if early:
            for item in early[1]:
                self.apply_state(*item)
        self._submit_foreign(released)
        return msg

    def apply_state(self, fields: dict[str, Any], params: Mapping[str, Any], timestamp: float | None = None) -> None:
        """Apply a ``messaging.state`` event (reader thread); dispatch its handlers.

        ``fields`` are the event's type-checked message fields (with
        ``message_id`` and ``message_state``), ``params`` its raw payload. The
        event object is only built when someone will see it.
        """
        mid = fields["message_id"]
        new = fields["message_state"]
        rank = STATE_RANK.get(new)
        with self.lock:
            msg = self._tracked.get(mid)
            if msg is None:
                job = self._unknown_id_locked(fields, params, timestamp)
                if job is None:
                    return
                handlers, event = job
            else:
                if rank is None or rank <= msg._seen_rank:
                    # Unknown, backwards or repeated: never move a message backwards.
                    logger.debug("ignoring %s event for message %s in state %s", new, mid, msg._state)
                    return
                for key, value in fields.items():
                    # Partial payloads are normal: only non-empty fields update the message.
                    if key not in ("message_id", "message_state") and value not in (None, "", []):
                        setattr(msg, key, value)
                msg._state = new
                msg._seen_rank = rank
                handlers = msg._handlers
                terminal = new in TERMINAL_STATES
                if not handlers and not terminal:
                    if msg._cond is not None:
                        self._wake(msg._cond)
                    return
                event = MessageStateEvent("messaging.state", params, timestamp, mid, new, fields.get("reason", ""))
                handlers = list(handlers)
                if terminal:  # this event claims it from _tracked: settled here, once
                    self._tracked.claim(mid)
                    msg._result = event  # before _done: is_done read without the lock implies result
                    msg._done = True
                    if msg._completed is not None:
                        handlers.append(msg._completed)
                    msg._handlers = []
                    msg._completed = None
                if msg._cond is not None:
                    self._wake(msg._cond)
        if handlers:
            self.dispatcher.submit(mid, run_handlers, handlers, event)

    def _unknown_id_locked(
        self, fields: dict[str, Any], params: Mapping[str, Any], timestamp: float | None
    ) -> tuple[list[Handler], MessageStateEvent] | None:
        # Caller holds self.lock. An event for an id this client is not tracking: an
        # early event of its own send, a late one of its own message, or a foreign one.
        mid = fields["message_id"]
        verdict = self.foreign.classify(mid)
        if verdict == "hold":
            self._buffer_early(mid, (fields, params, timestamp))
            self.foreign.hold(mid)
            return None
        if verdict == "own":
            logger.debug("ignoring a late %s event for message %s", fields["message_state"], mid)
            return None
        return self._foreign_job_locked(fields, params, timestamp)

    def _foreign_job_locked(
        self, fields: dict[str, Any], params: Mapping[str, Any], timestamp: float | None
    ) -> tuple[list[Handler], MessageStateEvent] | None:
        # Caller holds self.lock.
        mid, state = fields["message_id"], fields["message_state"]
        handlers = list(self.foreign.handlers())
        if not handlers or not self.foreign.is_new(mid, state):
            return None
        return handlers, MessageStateEvent("messaging.state", params, timestamp, mid, state, fields.get("reason", ""))

    def send_started(self) -> int:
        """Note a ``messaging.send`` about to be written; return its number for ``register``."""
        with self.lock:
            return self.foreign.send_started()

    def send_finished(self, seq: int) -> None:
        """Note that send ``seq`` failed (no ``register``); release events it could have claimed."""
        with self.lock:
            self.foreign.send_finished(seq)
            jobs = self._released_locked()
        self._submit_foreign(jobs)

    def _released_locked(self) -> list[tuple[list[Handler], MessageStateEvent]]:
        # Caller holds self.lock. Held events no send in flight can claim any more are foreign.
        jobs = []
        for mid in self.foreign.released():
            entry = self._early.pop(mid, None)
            for item in entry[1] if entry is not None else ():
                job = self._foreign_job_locked(*item)
                if job is not None:
                    jobs.append(job)
        return jobs

    def _submit_foreign(self, jobs: list[tuple[list[Handler], MessageStateEvent]]) -> None:
        for handlers, event in jobs:
            self.dispatcher.submit(event.message_id, run_handlers, handlers, event)

    def _wake(self, cond: threading.Condition) -> None:
        # Caller holds self.lock.
        if self._deferred is None:
            cond.notify_all()
        else:
            self._deferred.append(cond)

    def notify_deferred(self) -> None:
        """Wake the waiters of every message updated since the last call (reader thread)."""
        if self._deferred:
            with self.lock:
                conds, self._deferred = self._deferred, []
                for cond in conds:
                    cond.notify_all()

    def _buffer_early(self, mid: str, item: _Early) -> None:
        # Caller holds self.lock.
        entry = self._early.get(mid)
        if entry is None:
            if len(self._early) >= self.max_early:
                dropped, _ = self._early.popitem(last=False)
                logger.warning("early-event buffer full; dropped events for message %s", dropped)
            entry = (time.monotonic(), [])
            self._early[mid] = entry
        if len(entry[1]) < 8:
            entry[1].append(item)

    def new_inbound(self, event: MessageReceiveEvent, fields: dict[str, Any]) -> Message:
        """Build the (already complete) ``Message`` for an inbound message."""
        fields = dict(fields)
        fields.setdefault("direction", "inbound")
        fields["message_state"] = "received"
        msg = Message(self, event.message_id, fields)
        msg._result = event
        msg._done = True
        return msg

    def expire(self, now: float | None = None) -> None:
        """Drop early events and tracked messages older than their time limits."""
        now = time.monotonic() if now is None else now
        with self.lock:
            while self._early:
                mid, (born, _) = next(iter(self._early.items()))
                if now - born < self.early_ttl:
                    break
                del self._early[mid]
                logger.debug("dropped early events for unknown message %s", mid)
            stale = self._tracked.claim_oldest_while(lambda msg: now - msg._tracked_at >= self.message_ttl)
        for msg in stale:
            self._give_up(msg, f"no terminal state within message_ttl={self.message_ttl} s")

    def _give_up(self, msg: Message, why: str) -> None:
        logger.warning("stopped tracking message %s (%s)", msg.message_id, why)
        self._fail(msg, WaitTimeout(f"stopped tracking message {msg.message_id}: {why}"), why)

    def _fail(self, msg: Message, error: SwsyncError, why: str) -> None:
        """Wake ``msg``'s waiters with ``error``; tell its ``on_completed`` the outcome is unknown.

        Every tracked message was accepted (it has a ``message_id``), so
        ``on_completed`` gets one event whose ``message_state`` is ``"unknown"``.
        """
        with self.lock:  # the caller claimed msg from _tracked: nobody else settles it
            msg._error = error
            completed, msg._completed = msg._completed, None
            msg._handlers = []
            if msg._cond is not None:
                msg._cond.notify_all()
        if completed is not None:
            mid = msg.message_id
            params = {"message_id": mid, "message_state": OUTCOME_UNKNOWN, "reason": why}
            event = MessageStateEvent(OUTCOME_UNKNOWN_EVENT, params, time.time(), mid, OUTCOME_UNKNOWN, why)
            self.dispatcher.submit(mid, run_handlers, [completed], event)

    def fail_all(self, why: str) -> None:
        """Forget every tracked message: waiters get ``OutcomeUnknownError``, on_completed an event.

        Every tracked message was accepted by the server (it has a ``message_id``),
        so it is never reported as not sent.
        """
        with self.lock:
            msgs = self._tracked.claim_all()
            self._early.clear()
        for msg in msgs:
            self._fail(msg, outcome_unknown_error(msg.message_id, why), why)

    def reset_after_fork(self) -> None:
        """In a forked child: fresh lock (the parent's may be held forever), fail waiters."""
        self.lock = threading.Lock()
        for msg in self._tracked.values():
            msg._cond = None  # bound to the old lock
            msg._completed = None  # the parent runs it; the dispatcher is the parent's too
        self.fail_all("the client was inherited by a forked process, which cannot see its events")

    def closed(self, reason: str) -> None:
        """The session is gone: every waiter gets ``OutcomeUnknownError`` (a ConnectionClosedError)."""
        self.fail_all(reason)


def run_handlers(handlers: list[Handler], event: MessageStateEvent) -> None:
    """Call each handler with ``event``; report and swallow whatever one raises."""
    for handler in handlers:
        try:
            handler(event)
        except BaseException:  # SystemExit too: the next handler still runs
            report_callback_error("callback", handler)
