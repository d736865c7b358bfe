"""The ``swsync-dispatch`` thread(s) that run user callbacks.

Jobs with the same key (a message id) always go to the same worker's FIFO queue,
so callbacks for one message run in event order even with several workers. A
callback that raises is logged and the worker carries on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

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

    def submit(self, key: str, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` behind earlier jobs with the same ``key``."""
        if not self._running:
            self.start()
        qs = self._queues
        q = qs[0] if len(qs) == 1 else qs[hash(key) % len(qs)]
        q.put((fn, args))

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
        for t in threads:
            if t is not me:
                t.join(timeout)
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
            except Exception:
                logger.exception("swsync callback %r raised", fn)
