"""Fault-injection knobs and traffic counters of the emulator.

Every knob lives on one :class:`Faults` object (``Emulator.faults``) as a plain
attribute that tests set at any time; the emulator reads them at the moment they
matter. :class:`Stats` is an immutable snapshot of the counters.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

__all__ = ["Faults", "Stats"]


class Faults:
    """All fault-injection switches of one emulator, in one place.

    Attributes:
        state_before_response: ``messaging.send`` emits its first state event (all
            of them when ``state_delay`` is 0) *before* the send response.
        response_delay: seconds every RELAY RPC response is held back; events are
            not delayed, so they may overtake the response.
        silent: half-open sockets: keep them open, read and discard every frame,
            send nothing at all (no replies, pings or events).
        drop_every: abruptly drop a connection (TCP close, no WebSocket close
            frame) after every N frames received from it; ``None`` disables.
        reject_resume: answer every resume (a connect carrying ``protocol``) with
            JSON-RPC error ``-32003``.
        duplicate_events: send every ``messaging.state`` event twice (two frames
            with distinct event ids).
        rest_throttle: the next N REST requests get HTTP 429 (code 20429) with a
            ``Retry-After: <retry_after>`` header.
        retry_after: the ``Retry-After`` header value used by ``rest_throttle``.
        rest_error: the next N REST requests get HTTP 500 (code 20504).

    Thread-safe: attributes may be set from any thread at any time; the two REST
    countdowns are consumed atomically. Unknown attribute names raise
    ``AttributeError`` so a typo cannot silently disable a test.
    """

    __slots__ = (
        "_lock",
        "_rest_error",
        "_rest_throttle",
        "drop_every",
        "duplicate_events",
        "reject_resume",
        "response_delay",
        "retry_after",
        "silent",
        "state_before_response",
    )

    def __init__(self) -> None:
        # Guards _rest_throttle and _rest_error (set by test threads, consumed by
        # the loop thread); never held while doing anything else.
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Switch every fault off."""
        self.state_before_response = False
        self.response_delay = 0.0
        self.silent = False
        self.drop_every: int | None = None
        self.reject_resume = False
        self.duplicate_events = False
        self.retry_after = "0"
        with self._lock:
            self._rest_throttle = 0
            self._rest_error = 0

    @property
    def rest_throttle(self) -> int:
        """How many upcoming REST requests will be answered with HTTP 429."""
        return self._rest_throttle

    @rest_throttle.setter
    def rest_throttle(self, value: int) -> None:
        with self._lock:
            self._rest_throttle = max(0, int(value))

    @property
    def rest_error(self) -> int:
        """How many upcoming REST requests will be answered with HTTP 500."""
        return self._rest_error

    @rest_error.setter
    def rest_error(self, value: int) -> None:
        with self._lock:
            self._rest_error = max(0, int(value))

    def take_rest_fault(self) -> str | None:
        """Consume one pending REST fault: ``"throttle"``, ``"error"`` or ``None``."""
        if not (self._rest_throttle or self._rest_error):  # fast path, no lock
            return None
        with self._lock:
            if self._rest_throttle > 0:
                self._rest_throttle -= 1
                return "throttle"
            if self._rest_error > 0:
                self._rest_error -= 1
                return "error"
        return None

    def __repr__(self) -> str:
        names = [n for n in self.__slots__ if not n.startswith("_")]
        names += ["rest_throttle", "rest_error"]
        return "Faults(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"


@dataclass(frozen=True)
class Stats:
    """A snapshot of the emulator's traffic counters.

    Attributes:
        connections: successful ``signalwire.connect`` calls (fresh and resumed).
        resumes: connects that resumed an existing session.
        send_requests: ``messaging.send`` requests received over RELAY, valid or not.
        accepted_sends: ``messaging.send`` requests accepted over RELAY.
        events_sent: ``signalwire.event`` frames written (redeliveries included).
        acks_received: event ACKs received (responses matching an un-ACKed event).
        pings_sent: server ``signalwire.ping`` requests written.
        pongs_received: replies to those pings.
        rest_requests: REST requests received (faulted ones included).
        rest_creates: messages created over REST (HTTP 201).
        webhooks_sent: webhook POSTs attempted (status callbacks and inbound).

    Immutable.
    """

    connections: int = 0
    resumes: int = 0
    send_requests: int = 0
    accepted_sends: int = 0
    events_sent: int = 0
    acks_received: int = 0
    pings_sent: int = 0
    pongs_received: int = 0
    rest_requests: int = 0
    rest_creates: int = 0
    webhooks_sent: int = 0


_STAT_NAMES = tuple(f.name for f in fields(Stats))


class Counters:
    """The live, mutable counters behind :class:`Stats`.

    Only the emulator's loop thread increments them (plain ``+= 1``, no lock);
    other threads read them through :meth:`snapshot`.
    """

    __slots__ = _STAT_NAMES

    connections: int
    resumes: int
    send_requests: int
    accepted_sends: int
    events_sent: int
    acks_received: int
    pings_sent: int
    pongs_received: int
    rest_requests: int
    rest_creates: int
    webhooks_sent: int

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Set every counter to 0."""
        for name in _STAT_NAMES:
            setattr(self, name, 0)

    def snapshot(self) -> Stats:
        """Return the current values as an immutable :class:`Stats`."""
        return Stats(**{name: getattr(self, name) for name in _STAT_NAMES})
