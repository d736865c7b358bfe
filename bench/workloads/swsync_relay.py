"""swsync's ``RelayClient`` workloads: threads calling ``send_message`` / ``wait``; inbound messages."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.workloads.harness import FROM, INBOUND_CONTEXT, TO, Meter, ready, result, run_threads, start_threads


class Senders:
    """``threads`` threads, each sending ``per`` messages through ``client``, started by :meth:`run`.

    Send + wait (``fire=False``): each thread waits for each message to be
    delivered before sending the next; a wait that times out counts as lost.
    Fire-and-forget (``fire=True``): the threads do not wait; :meth:`run` returns
    once the completion callbacks have counted every message (or the timeout
    passed). Every message has the text ``body``. ``lat`` holds each ``send_message`` call's duration, ``callers_cpu``
    each thread's CPU time.
    """

    def __init__(
        self, client: Any, per: int, threads: int, wait_timeout: float, *, fire: bool = False, body: str = "benchmark"
    ) -> None:
        self.client, self.per, self.wait_timeout, self.fire, self.body = client, per, wait_timeout, fire, body
        self.total = per * threads
        self.lat: list[float] = []
        self.callers_cpu: list[float] = []
        self.lost = self.completed = 0
        self._lock = threading.Lock()
        self._all_done = threading.Event()
        self._start, self._threads = start_threads(threads, self._fire if fire else self._send_wait, self.callers_cpu)

    def _send_wait(self, _: int) -> None:
        send, lat, timeout, body = self.client.send_message, self.lat, self.wait_timeout, self.body
        for _ in range(self.per):
            t0 = time.perf_counter()
            msg = send(TO, FROM, body)
            lat.append(time.perf_counter() - t0)
            try:
                msg.wait(timeout)
            except TimeoutError:
                with self._lock:
                    self.lost += 1

    def _on_completed(self, _event: Any) -> None:
        with self._lock:
            self.completed += 1
            if self.completed == self.total:
                self._all_done.set()

    def _fire(self, _: int) -> None:
        send, lat, on_completed, body = self.client.send_message, self.lat, self._on_completed, self.body
        for _ in range(self.per):
            t0 = time.perf_counter()
            send(TO, FROM, body, on_completed=on_completed)
            lat.append(time.perf_counter() - t0)

    def run(self) -> None:
        """Release the threads; return when they are done (fire-and-forget: when all completed)."""
        run_threads(self._start, self._threads)
        if self.fire:
            self._all_done.wait(self.wait_timeout)
            self.lost = self.total - self.completed


def connect(emu: dict[str, str], ca: str | None = None, contexts: list[str] | None = None) -> Any:
    """A swsync ``RelayClient`` for the emulator ``emu`` (not yet connected: use it as a context manager)."""
    from swsync import RelayClient

    return RelayClient(project=emu["project"], token=emu["token"], host=emu["relay_url"], contexts=contexts, ca_file=ca)


def _inbound(client: Any, n: int, wait_timeout: float) -> dict[str, Any]:
    count = 0
    done = threading.Event()

    @client.on_message
    def _count(_message: Any) -> None:
        nonlocal count
        count += 1  # one dispatch thread: no lock needed
        if count == n:
            done.set()

    ready()
    meter = Meter("swsync-")
    done.wait(wait_timeout)
    return result(n, meter.stop(), None, lost=n - count)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Client subprocess: send-wait, fire-forget or inbound, as ``spec`` says (see ``bench.workloads``)."""
    workload, n, conc = spec["workload"], spec["n"], spec["concurrency"]
    contexts = [INBOUND_CONTEXT] if workload == "inbound" else None
    with connect(spec["emu"], spec["ca"], contexts) as client:
        if workload == "inbound":
            return _inbound(client, n, spec["wait_timeout"])
        client.send_message(TO, FROM, "warm-up").wait(10)
        senders = Senders(client, n // conc, conc, spec["wait_timeout"], fire=workload != "send-wait")
        ready()
        meter = Meter("swsync-")
        senders.run()
        usage = meter.stop()
        usage["threads"]["callers"] = sum(senders.callers_cpu)
    return result(senders.total, usage, senders.lat, lost=senders.lost)
