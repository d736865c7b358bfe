"""Bulk sending: ``Outbound``, ``RelayClient.send_many`` and its results.

``send_many`` reads its outbounds lazily (a generator of a million rows holds only
the window in memory), keeps at most ``window`` messages in flight, is paced by the
client's ``rate_limit``, and yields one :class:`SendResult` per outbound as each
completes. With a journal (an sqlite3 file, see ``swsync._journal`` and
docs/bulk.md) a rerun after a crash never sends a key twice.

Threads and locks: docs/design.md, "Threads" and "Locks".

Outcomes (``SendResult.outcome``):

=============  ==========================================================  ==========
outcome        meaning                                                     on a rerun
=============  ==========================================================  ==========
delivered      the carrier delivered it                                    not sent
undelivered    the carrier could not deliver it (``reason``)               not sent
failed         SignalWire could not send it (``reason``)                   not sent
accepted       SignalWire accepted it (``message_id``); no final state     not sent
               was waited for or learned
unknown        it may have left, but was never confirmed accepted          reported;
               (timeout, lost connection, crash)                           sent again
                                                                           only with
                                                                           retry_unknown
not_sent       provably never left (bad arguments, refused, rate limited)  sent again
=============  ==========================================================  ==========
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._journal import Journal, JournalRow
from .errors import ConnectionClosedError, RelayError, SwsyncError, WaitTimeout
from .ratelimit import RateLimit

if TYPE_CHECKING:
    from .relay.message import Message

__all__ = ["OUTCOMES", "Batch", "Outbound", "SendResult", "Summary", "derive_key", "send_many"]

logger = logging.getLogger(__name__)

OUTCOMES = ("delivered", "undelivered", "failed", "accepted", "unknown", "not_sent")
FINISHED = frozenset({"delivered", "undelivered", "failed"})
MAX_SENDERS = 256  # sender threads at most (one per window slot)
_POLL = 0.2  # seconds between a waiting sender's checks for stop()
_DONE = object()  # a sender thread's end marker in the results queue


class _Client(Protocol):
    """What a batch uses of its client, a ``RelayClient`` (typed here, not imported:
    ``RelayClient.send_many`` imports this module)."""

    @property
    def rate_limit(self) -> RateLimit | None: ...

    @property
    def project(self) -> str: ...

    def send_message(
        self,
        to_number: str,
        from_number: str,
        body: str | None = None,
        *,
        media: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        context: str | None = None,
    ) -> Message: ...


@dataclass(frozen=True)
class Outbound:
    """One message for :meth:`~swsync.RelayClient.send_many` (the same arguments as
    ``send_message``, plus ``key``: what identifies it in the journal; derived from
    the content when omitted). Immutable and hashable."""

    to_number: str
    from_number: str
    body: str | None = None
    media: Sequence[str] | None = None
    tags: Sequence[str] | None = None
    context: str | None = None
    key: str | None = None


def derive_key(outbound: Outbound) -> str:
    """A key stable across runs, from the outbound's content (``"auto:"`` + 32 hex digits).

    Two outbounds with the same destination, sender, text, media, tags and context
    get the same key, so a batch sends such a message once: give explicit keys to
    send the same text twice.
    """
    content = [
        outbound.to_number,
        outbound.from_number,
        outbound.body,
        list(outbound.media or ()),
        list(outbound.tags or ()),
        outbound.context,
    ]
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return "auto:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class SendResult:
    """What happened to one outbound (see the module docstring for ``outcome``).

    ``replayed`` is True when the result comes from the journal of an earlier run
    and nothing was sent now. ``error`` is the exception that explains a
    ``not_sent``/``unknown`` outcome, or a missing receipt (``WaitTimeout``).
    """

    key: str
    outcome: str
    message_id: str | None = None
    state: str | None = None
    reason: str | None = None
    error: BaseException | None = None
    may_have_been_sent: bool = True
    replayed: bool = False
    outbound: Outbound | None = field(default=None, repr=False, compare=False)
    index: int = -1  # position of the outbound in the input, from 0


@dataclass(frozen=True)
class Summary:
    """Counts per outcome so far, elapsed seconds, and the achieved send rate."""

    counts: dict[str, int]
    elapsed: float
    sent: int  # messages SignalWire accepted during this run (replays excluded)
    replayed: int
    done: bool

    @property
    def total(self) -> int:
        """Results produced so far."""
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        """Messages accepted per second during this run."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {o}" for o, n in self.counts.items() if n)
        return f"{self.total} results ({parts or 'none'}) in {self.elapsed:.1f} s, {self.rate:.1f} sent/s"


class _Entry:
    """One outbound being sent (owned by the sender thread handling it)."""

    __slots__ = ("claimed", "index", "key", "message_id", "outbound", "sending")

    def __init__(self, index: int, key: str, outbound: Any) -> None:
        self.index = index
        self.key = key
        self.outbound = outbound
        self.claimed = False  # its journal row is this run's (claimed as "sending")
        self.sending = False  # send_message was called: the frame may have left
        self.message_id: str | None = None  # SignalWire accepted it


def _duplicate(key: str) -> ValueError:
    return ValueError(f"duplicate key {key!r}: an earlier outbound of this batch has it, and a key is sent once")


_RECORDED_ERRORS: dict[str, type[SwsyncError]] = {
    "WaitTimeout": WaitTimeout,
    "ConnectionClosedError": ConnectionClosedError,
    "OutcomeUnknownError": ConnectionClosedError,
}


def _recorded_error(text: str | None) -> SwsyncError | None:
    """The journal's ``error`` column as an exception of the same kind (by its class
    name prefix), so a replayed result explains itself as the original did."""
    if not text:
        return None
    name, _, _ = text.partition(":")
    return _RECORDED_ERRORS.get(name, SwsyncError)(text)


def _not_sent_error(exc: BaseException) -> bool:
    """True when ``exc`` from ``send_message`` proves the message never left."""
    if isinstance(exc, (ValueError, TypeError, RelayError)):
        return True  # bad arguments, or the server answered with a refusal
    return getattr(exc, "may_have_been_sent", True) is False


class Batch:
    """The results of one :func:`send_many` call: iterate it for :class:`SendResult`\\ s
    in completion order; ``summary`` gives the counts so far.

    Sending starts when iteration starts. ``stop()`` (any thread; the CLI calls it
    on Ctrl-C) takes no further outbounds, while iteration goes on to collect the
    answers of those in flight. Leaving a ``with`` block stops the batch and
    collects them. A batch dropped mid-iteration without either is stopped and its
    threads joined when it is garbage-collected. Iterate from one thread.
    """

    def __init__(
        self,
        client: _Client,
        outbounds: Iterable[Outbound],
        *,
        journal: str | None,
        window: int,
        wait: bool,
        timeout: float | None,
        retry_unknown: bool,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < 1e9
        ):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self._client = client
        self._source = iter(outbounds)
        self._wait = bool(wait)
        self._timeout = None if timeout is None else float(timeout)
        self._journal = Journal(str(journal)) if journal is not None else None
        self._resend = frozenset({"not_sent", "unknown", "sending"} if retry_unknown else {"not_sent"})
        self._run_id = uuid.uuid4().hex
        # One thread per window slot: a message in flight occupies its sender thread,
        # so at most `window` are in flight.
        self._senders = min(window, MAX_SENDERS)
        # A sender takes a token before reading an outbound; the caller gives it back
        # when it takes the result: at most 2 x window outbounds are read ahead of
        # the results taken (a slow consumer slows only its own batch), and while the
        # consumer keeps up no sender ever waits for it.
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(2 * window):
            self._tokens.put(None)
        self._results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Guards _source and _exhausted. Held while calling next() on the caller's iterable,
        # on purpose (generators are not thread-safe): the one lock held across user code;
        # _lock may be taken inside it, never the other way round.
        self._source_lock = threading.Lock()
        # Guards _taken, _counts, _sent, _replayed, _failure and _seen; never held while
        # calling out. The consumer reads _taken and _failure unlocked once every sender
        # has put its end marker (the results queue orders those reads after the writes).
        self._lock = threading.Lock()
        self._taken = 0
        self._exhausted = False
        self._failure: BaseException | None = None
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._sent = 0
        self._replayed = 0
        # Consumer-side state (the iterating thread only).
        self._yielded = 0
        self._markers = 0
        self._started = False
        self._finished = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The senders hold the batch only while handling a row, so a batch dropped
        # mid-iteration (no `with`, no close()) is collected, and this stops and joins
        # its senders then (or at interpreter exit); _finish() runs it otherwise.
        self._shutdown = weakref.finalize(self, _shutdown, self._stop, self._threads, self._journal)
        # Without a journal, the keys seen in this batch (one string per outbound, kept
        # until the batch is dropped), so that a repeated key is sent once.
        self._seen: set[str] = set()
        self._t0 = self._t1 = 0.0

    # ------------------------------------------------------------ consumer side

    def __iter__(self) -> Iterator[SendResult]:
        return self

    def __next__(self) -> SendResult:
        if not self._started:
            self._start()
        while not (self._markers == self._senders and self._yielded == self._taken):
            item = self._results.get()
            if item is _DONE:
                self._markers += 1
                continue
            self._yielded += 1
            self._tokens.put(None)
            result: SendResult = item
            return result
        self._finish()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        raise StopIteration

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Take no further outbounds; those in flight still complete and are yielded."""
        self._stop.set()

    def close(self) -> None:
        """Stop, collect the answers in flight (journaling them), end the threads."""
        self.stop()
        if self._started:
            for _ in self:
                pass
        self._finish()

    @property
    def summary(self) -> Summary:
        """Counts per outcome so far, elapsed time and achieved rate."""
        with self._lock:
            counts = dict(self._counts)
            sent, replayed = self._sent, self._replayed
        end = self._t1 if self._finished else time.monotonic()
        return Summary(counts, max(0.0, end - self._t0) if self._started else 0.0, sent, replayed, self._finished)

    def _start(self) -> None:
        self._started = True
        self._t0 = time.monotonic()
        ref = weakref.ref(self)
        for n in range(self._senders):
            t = threading.Thread(
                target=_sender,
                args=(ref, self._tokens, self._stop, self._results),
                name=f"swsync-batch-{n}",
                daemon=True,
            )
            self._threads.append(t)
            t.start()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._t1 = time.monotonic()
        self._shutdown()  # stop, join the senders, close the journal (once)

    # ------------------------------------------------------------ sender threads

    def _step(self) -> bool:
        """Read and handle one outbound (a token is taken); False once there are no more."""
        got = self._next_outbound()
        if got is None:
            self._tokens.put(None)
            return False
        self._handle_guarded(*got)
        return True

    def _next_outbound(self) -> tuple[int, Any] | None:
        with self._source_lock:
            if self._stop.is_set() or self._exhausted:
                return None
            try:
                outbound = next(self._source)
            except StopIteration:
                self._exhausted = True
                return None
            except BaseException as exc:  # the caller's iterable failed: end the batch
                self._exhausted = True
                with self._lock:
                    self._failure = exc
                self._stop.set()
                return None
            with self._lock:
                index = self._taken
                self._taken += 1
        return index, outbound

    def _handle_guarded(self, index: int, outbound: Any) -> None:
        """Handle one outbound; whatever goes wrong, the consumer still gets its result."""
        entry = _Entry(index, f"#{index}", outbound)
        try:
            self._handle(entry)
        except BaseException as exc:  # a bug or a failing journal: never leave the consumer waiting
            self._crashed(entry, exc)

    def _crashed(self, entry: _Entry, exc: BaseException) -> None:
        """Report ``entry`` after an unexpected failure, and stop the batch (as a journal
        failure does): ``accepted`` once SignalWire accepted it, ``unknown`` once its
        frame may have left, else ``not_sent``."""
        logger.error("bulk sender failed on %r: %r; stopping the batch", entry.key, exc)
        with self._lock:
            self._failure = self._failure or exc
        self._stop.set()
        fields: dict[str, Any] = {"error": exc}
        if entry.message_id is not None:
            outcome = "accepted"
            fields["message_id"] = entry.message_id
        elif entry.sending:
            outcome = "unknown"
        else:
            outcome = "not_sent"
            fields["may_have_been_sent"] = False
        outbound = entry.outbound if isinstance(entry.outbound, Outbound) else None
        self._emit(SendResult(entry.key, outcome, index=entry.index, outbound=outbound, **fields), record=entry.claimed)

    def _handle(self, entry: _Entry) -> None:
        index, outbound = entry.index, entry.outbound
        try:
            if not isinstance(outbound, Outbound):
                raise TypeError(f"send_many takes Outbound objects, got {type(outbound).__name__}")
            key = derive_key(outbound) if outbound.key is None else outbound.key
            if not isinstance(key, str) or not key:
                raise ValueError(f"key must be a non-empty string, got {key!r}")
        except (TypeError, ValueError) as exc:
            self._emit(
                SendResult(f"#{index}", "not_sent", error=exc, may_have_been_sent=False, index=index), record=False
            )
            return
        entry.key = key
        if self._journal is None:
            if self._first_in_batch(entry):
                self._send_paced(entry)
            return
        try:
            row = self._journal.get(key)
        except Exception as exc:
            self._journal_failed(entry, exc)
            return
        if row is not None and (row.run_id == self._run_id or row.outcome not in self._resend):
            self._replay(entry, row)
            return
        self._send_paced(entry)

    def _first_in_batch(self, entry: _Entry) -> bool:
        """Without a journal: True the first time this batch sees ``entry.key``; a
        repeat is reported as a ``not_sent`` duplicate (the journal does this otherwise)."""
        with self._lock:
            repeat = entry.key in self._seen
            self._seen.add(entry.key)
        if repeat:
            self._emit(
                self._result(entry, "not_sent", error=_duplicate(entry.key), may_have_been_sent=False), record=False
            )
        return not repeat

    def _send_paced(self, entry: _Entry) -> None:
        """Wait for the turn under the client's rate limit, then claim and send.

        The turn comes first, the journal second: a kill while waiting leaves no
        "sending" row, so a rerun sends the key instead of reporting it unknown. A
        stop() while waiting ends the wait: the row is then ``not_sent`` (provably).
        """
        limit = self._client.rate_limit
        if limit is None or not hasattr(limit, "admitted"):
            self._claim_and_send(entry)
            return
        outbound: Outbound = entry.outbound
        options: dict[str, Any] = {"stop": self._stop} if isinstance(limit, RateLimit) else {}
        try:
            limit.acquire(
                from_number=outbound.from_number,
                body=outbound.body,
                media=outbound.media or (),
                account=self._client.project,
                **options,
            )
        except Exception as exc:  # RateLimited (past max_wait), or the limiter failed
            self._emit(self._result(entry, "not_sent", error=exc, may_have_been_sent=False), record=False)
            return
        if self._stop.is_set():  # stopped while waiting for the turn (the slot is wasted)
            error = SwsyncError("the batch was stopped before this row's turn; nothing was sent")
            self._emit(self._result(entry, "not_sent", error=error, may_have_been_sent=False), record=False)
            return
        with limit.admitted():
            self._claim_and_send(entry)

    def _claim_and_send(self, entry: _Entry) -> None:
        if self._journal is None:
            self._send(entry)
            return
        try:
            row = self._journal.claim(entry.key, vars(entry.outbound), self._run_id, self._resend)
        except Exception as exc:
            self._journal_failed(entry, exc)
            return
        if row is not None:
            self._replay(entry, row)
        else:
            entry.claimed = True
            self._send(entry)

    def _journal_failed(self, entry: _Entry, exc: Exception) -> None:
        logger.error("send journal failed: %s; stopping the batch", exc)
        with self._lock:
            self._failure = self._failure or exc
        self._stop.set()
        self._emit(self._result(entry, "not_sent", error=exc, may_have_been_sent=False), record=False)

    def _replay(self, entry: _Entry, row: JournalRow) -> None:
        if row.run_id == self._run_id:
            self._emit(
                self._result(entry, "not_sent", error=_duplicate(entry.key), may_have_been_sent=False), record=False
            )
            return
        if row.outcome in ("sending", "unknown"):
            cause = ConnectionClosedError(
                f"the outcome of {entry.key!r} from an earlier run is unknown (it may have been "
                "sent); not sent again (retry_unknown=True sends it again)",
                may_have_been_sent=True,
            )
            if row.outcome == "sending" and self._journal is not None:
                self._journal.finish(entry.key, "unknown", None, None, None, "interrupted before SignalWire's answer")
            self._emit(self._result(entry, "unknown", error=cause, replayed=True), record=False)
            return
        self._emit(
            self._result(
                entry,
                row.outcome,
                message_id=row.message_id,
                state=row.state,
                reason=row.reason,
                error=_recorded_error(row.error),
                replayed=True,
            ),
            record=False,
        )

    def _send(self, entry: _Entry) -> None:
        ob = entry.outbound
        entry.sending = True
        try:
            message = self._client.send_message(
                ob.to_number, ob.from_number, ob.body, media=ob.media, tags=ob.tags, context=ob.context
            )
        except Exception as exc:
            if _not_sent_error(exc):
                self._emit(self._result(entry, "not_sent", error=exc, may_have_been_sent=False))
            else:
                self._emit(self._result(entry, "unknown", error=exc))
            return
        entry.message_id = message.message_id
        with self._lock:
            self._sent += 1
        if self._journal is not None:
            # A failure here reaches _crashed: reported accepted (it was), the batch stops.
            self._journal.accepted(entry.key, message.message_id)
        if self._wait:
            self._emit(self._outcome(entry, message))
        else:
            self._emit(self._result(entry, "accepted", message_id=message.message_id, state=message.state))

    def _outcome(self, entry: _Entry, message: Message) -> SendResult:
        """Wait (on this sender thread) for an accepted message's final state."""
        try:
            event = message.wait(self._timeout)
        except WaitTimeout:
            error: SwsyncError = WaitTimeout(
                f"no final state for message {message.message_id} within {self._timeout} s of its acceptance"
            )
            return self._result(entry, "accepted", message_id=message.message_id, state=message.state, error=error)
        except SwsyncError as exc:  # the connection was lost for good: accepted, outcome unknown
            return self._result(entry, "accepted", message_id=message.message_id, state=message.state, error=exc)
        state = getattr(event, "message_state", message.state)
        return self._result(
            entry,
            state if state in FINISHED else "accepted",
            message_id=message.message_id,
            state=state,
            reason=getattr(event, "reason", None) or message.reason or None,
        )

    # ------------------------------------------------------------ results

    def _result(self, entry: _Entry, outcome: str, **fields: Any) -> SendResult:
        return SendResult(entry.key, outcome, index=entry.index, outbound=entry.outbound, **fields)

    def _emit(self, result: SendResult, *, record: bool = True) -> None:
        if record and self._journal is not None:
            error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
            try:
                self._journal.finish(result.key, result.outcome, result.message_id, result.state, result.reason, error)
            except Exception:
                logger.exception("could not record the outcome of %r in the send journal", result.key)
        with self._lock:
            self._counts[result.outcome] += 1
            if result.replayed:
                self._replayed += 1
        self._results.put(result)


def _sender(
    ref: weakref.ref[Batch], tokens: queue.SimpleQueue[None], stop: threading.Event, results: queue.SimpleQueue[Any]
) -> None:
    """A sender thread's body: it holds its batch only while handling one outbound, so
    an abandoned batch can be collected (which stops the senders, see ``_shutdown``)."""
    try:
        while not stop.is_set():
            try:
                tokens.get(timeout=_POLL)
            except queue.Empty:
                continue
            batch = ref()
            if batch is None or not batch._step():
                break
            del batch
    finally:
        results.put(_DONE)


def _shutdown(stop: threading.Event, threads: list[threading.Thread], journal: Journal | None) -> None:
    """Stop a batch's senders, join them (bounded) and close its journal: on close(),
    at the end of iteration, or when a batch dropped mid-iteration is collected (then
    possibly on one of its own senders, which ends on its own right after)."""
    stop.set()
    me = threading.current_thread()
    for t in threads:
        if t is not me:
            t.join(10.0)
    if journal is not None:
        journal.close()


def send_many(
    client: _Client,
    outbounds: Iterable[Outbound],
    *,
    journal: str | None = None,
    window: int = 64,
    wait: bool = True,
    timeout: float | None = 60.0,
    retry_unknown: bool = False,
) -> Batch:
    """Send ``outbounds`` through ``client``; return the :class:`Batch` of results.

    Args:
        client: a connected ``RelayClient`` (its ``rate_limit`` paces the sends).
        outbounds: any iterable of :class:`Outbound`, read lazily.
        journal: path of an sqlite3 journal; a rerun with the same journal never sends
            a key again that was accepted or finished, sends again the keys that
            provably never left, and reports the keys whose outcome is unknown.
        window: most messages in flight (sent and not yet answered) at once.
        wait: wait for each message's final state (else stop at ``accepted``).
        timeout: seconds after acceptance to wait for the final state (``None``: forever).
        retry_unknown: on a rerun, send again keys whose outcome is unknown.

    Returns:
        The batch: iterate it for one :class:`SendResult` per outbound, in completion order.

    Raises:
        ValueError: a bad ``window`` or ``timeout``.
        sqlite3.Error: the journal cannot be opened.
    """
    return Batch(
        client, outbounds, journal=journal, window=window, wait=wait, timeout=timeout, retry_unknown=retry_unknown
    )
