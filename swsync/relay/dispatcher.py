"""The ``swsync-dispatch`` thread(s) that run user callbacks.

Jobs with the same key (a message id) always go to the same worker's FIFO queue,
so callbacks for one message run in event order even with several workers. A
callback that raises anything, ``SystemExit`` and ``KeyboardInterrupt`` included,
is reported (see :func:`report_callback_error`) and the worker carries on: in a
worker thread neither means "stop the program" (Python itself only ever delivers
them to the main thread), and a dead worker would silently lose every later
callback while the reader keeps acknowledging events.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def _reaches_a_handler(log: logging.Logger) -> bool:
    """True when records of ``log`` reach a handler other than a ``NullHandler``.

    The same walk ``logging`` does before falling back to ``logging.lastResort``;
    swsync's own ``NullHandler`` does not count as the program configuring logging.
    """
    node: logging.Logger | None = log
    while node is not None:
        if any(not isinstance(h, logging.NullHandler) for h in node.handlers):
            return True
        node = node.parent if node.propagate else None
    return False


def report_callback_error(what: str, fn: object) -> None:
    """Report the exception being handled, raised by the user callback ``fn``.

    When the program configured logging (a handler is reachable from swsync's
    logger), the error is logged at ERROR level with its traceback. Otherwise it is
    printed to ``sys.stderr`` the way ``threading.excepthook`` prints an uncaught
    exception in a thread, so a failing callback is never invisible; swsync never
    configures logging itself. Call it only from an ``except`` block.
    """
    if _reaches_a_handler(logger):
        logger.error("swsync %s %r raised", what, fn, exc_info=True)
        return
    stderr = sys.stderr
    if stderr is None:  # pythonw, or a daemon that closed it: nowhere to write
        return
    try:
        stderr.write(f"Exception in swsync {what} {fn!r} (thread {threading.current_thread().name}):\n")
        traceback.print_exc(file=stderr)
        stderr.flush()
    except (OSError, ValueError):  # a closed or full stderr must not kill the worker
        pass


_STOP = object()


class Dispatcher:
    """Runs callbacks off the socket reader thread, FIFO per key. Thread-safe."""

    def __init__(self, workers: int = 1, name: str = "swsync-dispatch") -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError("handler_workers must be a positive integer")
        self._queues: list[queue.SimpleQueue[Any]] = [queue.SimpleQueue() for _ in range(workers)]
        self._threads: list[threading.Thread] = []
        self._name = name
        # Guards _threads, _running and _stopped; never held while a callback runs.
        self._lock = threading.Lock()
        self._running = False
        self._stopped = False

    def start(self) -> None:
        """Start the worker threads (idempotent; never after ``stop()``).

        ``submit()`` calls it on first use, so a client whose program registers no
        callbacks (a one-shot send and wait) never starts a dispatch thread.
        """
        with self._lock:
            if self._running or self._stopped:
                return
            self._running = True
            for i, q in enumerate(self._queues):
                name = self._name if len(self._queues) == 1 else f"{self._name}-{i}"
                t = threading.Thread(target=self._work, args=(q,), name=name, daemon=True)
                self._threads.append(t)
                t.start()

    def submit(self, key: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` behind earlier jobs with the same ``key``.

        Returns False, and logs a warning naming ``key``, when the dispatcher was
        stopped: nothing is dropped silently, and the caller may hand the job on.
        """
        if not self._running:
            self.start()
        qs = self._queues
        q = qs[0] if len(qs) == 1 else qs[hash(key) % len(qs)]
        with self._lock:
            # Under the lock: stop() cannot slip its _STOP in ahead of this job.
            if self._stopped:
                logger.warning("callback %r for %s not run: the client's dispatcher was stopped", fn, key)
                return False
            q.put((fn, args))
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until every queued callback has run, new ones included; at most ``timeout`` s.

        Returns ``True`` when the queues are empty and no callback is running,
        ``False`` when time ran out (or when called from a worker, which cannot
        wait for itself). The workers keep running; see ``stop()``.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._running:  # never started, or stop() took over meanwhile
                    return True
                if threading.current_thread() in self._threads:
                    return False
                # A marker job per queue: once each has run, everything queued before it
                # has. Under the lock, so that no marker can land behind stop()'s _STOP.
                markers = [threading.Event() for _ in self._queues]
                for q, marker in zip(self._queues, markers, strict=True):
                    q.put((marker.set, ()))
            for marker in markers:
                if not marker.wait(max(0.0, deadline - time.monotonic())):
                    return False
            if all(q.empty() for q in self._queues):
                return True

    def stop(self, timeout: float | None = 10.0) -> None:
        """Let queued callbacks finish, then stop and join the workers.

        Safe from a callback (the calling worker is not joined). Callbacks still
        running after ``timeout`` are abandoned with a warning (daemon threads).
        """
        with self._lock:
            self._stopped = True
            if not self._running:
                return
            self._running = False
            threads, self._threads = self._threads, []
            for q in self._queues:
                q.put(_STOP)
        me = threading.current_thread()
        # One deadline for the whole stop, however many workers there are.
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in threads:
            if t is not me:
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    logger.warning("callback thread %s did not finish within %s s", t.name, timeout)

    @property
    def threads(self) -> list[threading.Thread]:
        """The running worker threads."""
        return list(self._threads)

    @staticmethod
    def _work(q: queue.SimpleQueue[Any]) -> None:
        while True:
            item = q.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:  # SystemExit too: see the module docstring
                report_callback_error("callback", fn)
