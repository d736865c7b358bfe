"""The ceiling: a bare websocket-client loop, one thread, a pipelined window, one frame per ``send()``."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from bench.workloads.harness import FROM, INBOUND_CONTEXT, TO, Meter, ready, result


def connect(emu: dict[str, str], contexts: list[str], ca: str | None = None, timeout: float | None = None) -> Any:
    """A websocket-client connection to ``emu``, past ``signalwire.connect`` (``skip_utf8_validation=True``)."""
    import websocket

    options: dict[str, Any] = {"sslopt": {"ca_certs": ca}} if ca else {}
    ws = websocket.create_connection(emu["relay_url"], skip_utf8_validation=True, timeout=timeout, **options)
    params: dict[str, Any] = {
        "version": {"major": 2, "minor": 0, "revision": 0},
        "agent": "bench",
        "event_acks": True,
        "authentication": {"project": emu["project"], "token": emu["token"]},
    }
    if contexts:
        params["contexts"] = contexts
    ws.send(json.dumps({"jsonrpc": "2.0", "id": "c", "method": "signalwire.connect", "params": params}))
    while json.loads(ws.recv()).get("id") != "c":
        pass
    return ws


def pipeline(ws: Any, n: int, window: int, *, fire: bool = False, lat: list[float] | None = None) -> None:
    """Send ``n`` messages keeping ``window`` in flight; return when all ``n`` are delivered.

    In flight = not yet delivered, or with ``fire`` not yet answered (the
    ``messaging.send`` result). Every event is ACKed. ``lat`` receives each send's
    round trip. Sends use context "default": its state events reach only sessions
    receiving it.
    """
    dumps, loads, send, recv = json.dumps, json.loads, ws.send, ws.recv
    sent_at: dict[str, float] = {}
    sent = delivered = in_flight = 0
    while delivered < n:
        while in_flight < window and sent < n:
            call_id = str(uuid.uuid4())
            sent_at[call_id] = time.perf_counter()
            send(
                dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": call_id,
                        "method": "messaging.send",
                        "params": {"context": "default", "to_number": TO, "from_number": FROM, "body": "benchmark"},
                    }
                )
            )
            sent += 1
            in_flight += 1
        frame = loads(recv())
        if frame.get("method") == "signalwire.event":
            send(dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
            if frame["params"].get("params", {}).get("message_state") == "delivered":
                delivered += 1
                if not fire:
                    in_flight -= 1
        elif "result" in frame:
            t0 = sent_at.pop(frame.get("id"), None)
            if t0 is not None:
                if lat is not None:
                    lat.append(time.perf_counter() - t0)
                if fire:
                    in_flight -= 1


def count_inbound(ws: Any, n: int) -> None:
    """ACK every event; return once ``n`` ``messaging.receive`` events have arrived."""
    dumps, loads, send, recv = json.dumps, json.loads, ws.send, ws.recv
    seen = 0
    while seen < n:
        frame = loads(recv())
        if frame.get("method") == "signalwire.event":
            send(dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
            if frame["params"].get("event_type") == "messaging.receive":
                seen += 1


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Client subprocess: send-wait or fire-forget (window = ``concurrency``), or inbound."""
    workload, n = spec["workload"], spec["n"]
    contexts = [INBOUND_CONTEXT] if workload == "inbound" else ["default"]
    ws = connect(spec["emu"], contexts, spec["ca"], spec["wait_timeout"])
    lat: list[float] = []
    ready()
    meter = Meter()
    if workload == "inbound":
        count_inbound(ws, n)
    else:
        pipeline(ws, n, spec["concurrency"], fire=workload == "fire-forget", lat=lat)
    usage = meter.stop()
    ws.close()
    return result(n, usage, lat or None)
