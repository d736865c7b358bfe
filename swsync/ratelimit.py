"""``RateLimit``: pace outbound messages per sender (or per account), FIFO among threads.

SignalWire paces outbound messaging by number type and counts every SMS segment as
one message; traffic above the rate is queued in order up to a backlog (10,000 by
default) and refused past it. Its published defaults
(https://signalwire.com/docs/platform/rate-limits, "Messaging"): toll-free 3 MPS,
US long code (10DLC) 4 MPS, Canadian long code 1 MPS, short code 10 MPS. SignalWire
changes these per account, so the presets are only defaults: pass your own rate.

The limiter is reservation-based (the generic cell rate algorithm, GCRA, also called
virtual scheduling; ITU-T I.371): each ``acquire`` atomically reserves the next free
slot of its key (the *theoretical arrival time*), then sleeps until that slot. Slots
are handed out in call order, so threads are admitted first come, first served and
none starves; a send whose slot is more than ``max_wait`` away is refused at once
with :class:`~swsync.errors.RateLimited` (and reserves nothing). A cost larger than
the burst is still admitted, alone, once the bucket is full.

With ``redis_url`` the reservations live in Redis (``swsync._redis_limiter``, needs
the ``celery`` extra's ``redis`` package) so one limit is shared by every process.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol

from .errors import ConfigurationError, RateLimited

__all__ = ["RateLimit", "checked_rate_limit"]

Clock = Callable[[], float]
Sleep = Callable[[float], Any]

#: SignalWire's documented default messaging rates, in segments per second
#: (https://signalwire.com/docs/platform/rate-limits).
TOLL_FREE_MPS = 3.0
TEN_DLC_MPS = 4.0
CANADIAN_LONG_CODE_MPS = 1.0
SHORT_CODE_MPS = 10.0

_KEYS = ("from_number", "account")
_WEIGHTS = ("segments", "messages")


class _Backend(Protocol):
    """Where reservations live: this process (``_LocalBackend``) or Redis."""

    def acquire(self, key: str, cost: float, max_wait: float | None) -> None:
        """Block until ``cost`` is admitted for ``key``; raise ``RateLimited`` past ``max_wait``."""


_STOP_SLICE = 0.1  # seconds: longest injected sleep between checks of a stop event


class _LocalBackend:
    """In-process GCRA state: one theoretical arrival time per key.

    Thread-safe; fork-safe (a forked child gets a fresh lock and keeps the
    reservations it inherited, which are in the past or still binding).
    """

    def __init__(self, per_second: float, burst: float, clock: Clock, sleep: Sleep) -> None:
        self.interval = 1.0 / per_second
        self.burst = burst
        self.clock = clock
        self.sleep = sleep
        # Guards _tat; held only to compute a reservation, never while sleeping.
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        _backends.add(self)

    def reserve(self, key: str, cost: float, max_wait: float | None) -> float:
        """Reserve ``cost`` for ``key`` and return the seconds to wait before sending.

        Raises:
            RateLimited: the slot is more than ``max_wait`` seconds away (nothing reserved).
        """
        with self._lock:
            now = self.clock()
            start = max(self._tat.get(key, now), now)
            # Admitted once the bucket has room for min(cost, burst): a cost above
            # the burst goes alone, when the bucket is full (start).
            admit = max(now, start + (min(cost, self.burst) - self.burst) * self.interval)
            delay = admit - now
            if max_wait is not None and delay > max_wait:
                raise RateLimited(
                    f"rate limit for {key!r}: next slot in {delay:.3f} s, more than "
                    f"max_wait={max_wait} s; nothing was sent",
                    key=key,
                    retry_after=delay,
                )
            self._tat[key] = start + cost * self.interval
            if len(self._tat) > 4096:
                self._forget_idle(now)
            return delay

    def acquire(self, key: str, cost: float, max_wait: float | None, stop: threading.Event | None = None) -> None:
        """Reserve a slot, then sleep until it (see :meth:`reserve`); return early once
        ``stop`` is set (the reservation is then wasted, which only slows later sends)."""
        delay = self.reserve(key, cost, max_wait)
        if delay <= 0:
            return
        if stop is None:
            self.sleep(delay)
        elif self.sleep is time.sleep:
            stop.wait(delay)
        else:  # an injected sleep: wait in slices, checking stop between them
            admit = self.clock() + delay
            while not stop.is_set():
                remaining = admit - self.clock()
                if remaining <= 0:
                    return
                self.sleep(min(remaining, _STOP_SLICE))

    def _forget_idle(self, now: float) -> None:
        # Caller holds _lock. A key whose reservations are all in the past is a full bucket.
        for k in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[k]

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


_backends: weakref.WeakSet[_LocalBackend] = weakref.WeakSet()
_admitted = threading.local()  # .limit: the RateLimit whose next acquire() is pre-paid
_limits: weakref.WeakSet[RateLimit] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's threads do not exist in the child: a lock one of them held would
    # stay held forever. Reservations are kept (still binding, or in the past).
    for backend in list(_backends):
        backend._after_fork()
    for limit in list(_limits):
        limit._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _positive(value: object, name: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return float(value)


class RateLimit:
    """A pacing limit for outbound messages, shared by every client given it.

    ``RelayClient(rate_limit=...)`` and ``RestClient(rate_limit=...)`` call
    :meth:`acquire` before each send: the calling thread blocks until admitted, first
    come first served, or gets :class:`~swsync.errors.RateLimited` when its turn is
    more than ``max_wait`` seconds away. Thread-safe and fork-safe; one instance may
    be shared by several clients in a process (with ``redis_url``, across processes).

    Args:
        per_second: sustained rate, in units of ``weight`` per second.
        burst: how many units may go at once after a quiet period (default: one
            second's worth, ``max(1, per_second)``, so a sender that stalled catches
            up; ``burst=1`` spaces every send evenly).
        key: ``"from_number"`` (one limit per sender number, as SignalWire paces) or
            ``"account"`` (one limit for everything the client sends).
        weight: ``"segments"`` (each SMS segment counts, as SignalWire counts; an MMS
            counts one) or ``"messages"``.
        max_wait: longest a send may wait for its turn, seconds (``None``: forever).
        redis_url: keep the reservations in Redis, shared by every process using it.
        clock: monotonic clock in seconds (tests inject a fake one).
        sleep: how to wait (tests inject a fake one); default ``time.sleep``.

    Raises:
        ConfigurationError: an option is out of range.
    """

    def __init__(
        self,
        per_second: float,
        burst: float | None = None,
        key: Literal["from_number", "account"] = "from_number",
        weight: Literal["segments", "messages"] = "segments",
        max_wait: float | None = 60.0,
        redis_url: str | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        rate = _positive(per_second, "per_second")
        assert rate is not None
        size = _positive(burst, "burst", allow_none=True)
        if key not in _KEYS:
            raise ConfigurationError(f"key must be one of {_KEYS}, got {key!r}")
        if weight not in _WEIGHTS:
            raise ConfigurationError(f"weight must be one of {_WEIGHTS}, got {weight!r}")
        if max_wait is not None and (
            isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or max_wait < 0
        ):
            raise ConfigurationError(f"max_wait must be a number >= 0 or None, got {max_wait!r}")
        if redis_url is not None and (not isinstance(redis_url, str) or not redis_url):
            raise ConfigurationError("redis_url must be a non-empty string or None")
        self.per_second: float = rate
        # One second's worth by default (at least one message): a sender that stalled
        # (a slow network, a busy machine) can catch up, and SignalWire's queue takes
        # the short burst in order.
        self.burst: float = max(1.0, rate) if size is None else size
        self.key: str = key
        self.weight: str = weight
        self.max_wait: float | None = None if max_wait is None else float(max_wait)
        self.redis_url = redis_url
        self._clock: Clock = clock or time.monotonic
        self._sleep: Sleep = sleep or time.sleep
        # Guards the lazy creation of _backend.
        self._lock = threading.Lock()
        self._backend: _Backend | None = None
        _limits.add(self)

    # ------------------------------------------------------------ presets

    @classmethod
    def toll_free(cls, **options: Any) -> RateLimit:
        """SignalWire's default for a toll-free sender: 3 segments per second."""
        return cls(options.pop("per_second", TOLL_FREE_MPS), **options)

    @classmethod
    def ten_dlc(cls, **options: Any) -> RateLimit:
        """SignalWire's default for a US long code (10DLC): 4 segments per second."""
        return cls(options.pop("per_second", TEN_DLC_MPS), **options)

    @classmethod
    def canadian_long_code(cls, **options: Any) -> RateLimit:
        """SignalWire's default for a Canadian long code: 1 segment per second."""
        return cls(options.pop("per_second", CANADIAN_LONG_CODE_MPS), **options)

    @classmethod
    def short_code(cls, **options: Any) -> RateLimit:
        """SignalWire's default for a short code: 10 segments per second."""
        return cls(options.pop("per_second", SHORT_CODE_MPS), **options)

    # ------------------------------------------------------------ use

    def cost(self, body: str | None, media: Sequence[str] = ()) -> float:
        """What one message costs under this limit's ``weight`` (at least 1)."""
        if self.weight == "messages" or media or not body:
            return 1.0
        from .segments import count_segments

        return float(max(1, count_segments(body).segments))

    def key_for(self, from_number: str, account: str = "") -> str:
        """The bucket a send from ``from_number`` on ``account`` is counted in."""
        return f"account:{account}" if self.key == "account" else from_number

    def acquire(
        self,
        *,
        from_number: str,
        body: str | None,
        media: Sequence[str] = (),
        account: str = "",
        stop: threading.Event | None = None,
    ) -> None:
        """Block the calling thread until this send is admitted (FIFO among threads).

        With ``stop``, the wait ends early once ``stop`` is set (in-process limits;
        a Redis-backed wait runs to its slot): the caller must check ``stop`` before
        sending. ``send_many`` uses it so that ``Batch.stop()`` ends every wait.

        Raises:
            RateLimited: the send's turn is more than ``max_wait`` seconds away;
                nothing was reserved or sent (``may_have_been_sent`` is ``False``).
        """
        if getattr(_admitted, "limit", None) is self:
            _admitted.limit = None  # the caller acquired for this send already (see admitted())
            return
        backend = self._get_backend()
        key, cost = self.key_for(from_number, account), self.cost(body, media)
        if stop is not None and isinstance(backend, _LocalBackend):
            backend.acquire(key, cost, self.max_wait, stop)
        else:
            backend.acquire(key, cost, self.max_wait)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Within the block, this thread's next :meth:`acquire` returns at once.

        For a caller that already acquired for a send it is about to make through a
        client using this limit: ``send_many`` waits for its turn *before* recording
        the send in its journal (a send waiting for its turn has not left), then sends.
        """
        _admitted.limit = self
        try:
            yield
        finally:
            _admitted.limit = None

    def _get_backend(self) -> _Backend:
        backend = self._backend
        if backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = self._make_backend()
                backend = self._backend
        return backend

    def _make_backend(self) -> _Backend:
        if self.redis_url is None:
            return _LocalBackend(self.per_second, self.burst, self._clock, self._sleep)
        try:
            from ._redis_limiter import RedisBackend  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                "RateLimit(redis_url=...) needs the Redis limiter (swsync._redis_limiter) and the "
                "'redis' package: pip install 'swsync[celery]'"
            ) from exc
        backend: _Backend = RedisBackend(
            self.redis_url, per_second=self.per_second, burst=self.burst, namespace="swsync:rl"
        )
        return backend

    def __repr__(self) -> str:
        where = ", redis" if self.redis_url else ""
        return (
            f"RateLimit(per_second={self.per_second:g}, burst={self.burst:g}, key={self.key!r}, "
            f"weight={self.weight!r}, max_wait={self.max_wait!r}{where})"
        )


def checked_rate_limit(value: object) -> RateLimit | None:
    """Validate a client's ``rate_limit`` option (a ``RateLimit``, or anything with its
    ``acquire(*, from_number, body, media, account)``; ``None`` for no pacing).

    Raises:
        ConfigurationError: ``value`` cannot pace sends.
    """
    if value is not None and not callable(getattr(value, "acquire", None)):
        raise ConfigurationError("rate_limit must be a swsync.RateLimit or None")
    limit: RateLimit | None = value  # type: ignore[assignment]
    return limit
