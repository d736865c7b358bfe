"""JSON-RPC 2.0 framing and the table of calls waiting for a reply.

A call is registered *before* its frame can reach the socket, so a reply can never
arrive for an id nobody is waiting on. Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import RelayError
from ._claims import Claims

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Replies echo ids the server chose; ASCII escapes keep even a lone surrogate encodable.
_encode_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
logger = logging.getLogger("swsync.relay")

NOT_JSON = object()  # what decode_frame() returns for a payload it dropped (and logged)


def decode_frame(payload: bytes) -> Any:
    """Parse a text frame's UTF-8 JSON; log and return ``NOT_JSON`` when it is not valid."""
    try:
        return json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        logger.warning("dropped a frame that is not valid JSON (%d bytes)", len(payload))
        return NOT_JSON


def encode_request(call_id: str, method: str, params: Mapping[str, Any]) -> str:
    """Return the compact JSON text of a JSON-RPC request."""
    return _encode({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})


def encode_result(call_id: Any, result: Mapping[str, Any]) -> str:
    """Return the JSON text of a success response echoing ``call_id`` exactly."""
    return _encode_ascii({"jsonrpc": "2.0", "id": call_id, "result": result})


def encode_ack(call_id: str | int) -> str:
    """Return the JSON text of an empty success result (an event ACK): the hot path."""
    return '{"jsonrpc":"2.0","id":' + _encode_ascii(call_id) + ',"result":{}}'


def encode_error(call_id: Any, code: int, message: str) -> str:
    """Return the JSON text of an error response echoing ``call_id`` exactly."""
    return _encode_ascii({"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}})


def result_error(method: str, frame: Mapping[str, Any]) -> RelayError | None:
    """Return the error a response frame carries, or ``None`` for a success.

    A JSON-RPC ``error`` always fails; for methods other than
    ``signalwire.connect`` a result whose ``code`` is not 2xx fails too.
    """
    if "error" in frame:
        err = frame["error"]
        if not isinstance(err, Mapping):
            return RelayError(-1, str(err))
        code = err.get("code")
        message = err.get("message")
        return RelayError(
            code if isinstance(code, int) and not isinstance(code, bool) else -1,
            message if isinstance(message, str) else "request failed",
        )
    result = frame.get("result")
    if method != "signalwire.connect" and isinstance(result, Mapping) and "code" in result:
        code = str(result["code"])
        if not (len(code) == 3 and code.startswith("2") and code.isdigit()):
            message = result.get("message")
            return RelayError(
                int(code) if code.lstrip("-").isdigit() else -1,
                message if isinstance(message, str) else "request failed",
            )
    return None


class PendingCall:
    """One request on its way: its frame, its outcome and whether it was written.

    Exactly one party resolves a call: whoever removed it from the
    :class:`PendingCalls` table (the reader on a reply, the connection on a
    drop). The requester blocks on a plain lock, the cheapest wait CPython has.
    ``written``, ``written_at``, ``abandoned``, ``held``, ``retarget``, ``payload``
    (once queued) and ``progress`` are guarded by the connection's lock; the outcome
    is written before the latch is released and read after it is acquired
    (docs/design.md, "Locks").
    """

    __slots__ = (
        "call_id",
        "method",
        "payload",
        "on_result",
        "written",
        "written_at",
        "abandoned",
        "held",
        "retarget",
        "progress",
        "_latch",
        "_value",
        "_error",
    )

    def __init__(
        self,
        call_id: str,
        method: str,
        payload: bytes,
        on_result: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.call_id = call_id
        self.method = method
        self.payload = payload  # the UTF-8 JSON text of the request
        # Runs on the reader thread before the next frame is read (see client.send_message).
        self.on_result = on_result
        # Set by the I/O thread, under the connection's lock, as the frame goes out.
        self.written = False
        self.written_at = 0.0
        # Set by the requester, under the same lock, when it gives up; the frame is then skipped.
        self.abandoned = False
        # Set by the I/O thread when the server discarded the session before executing it
        # and the call was queued again for the next session (at most once).
        self.held = False
        # With held: the discarded session's protocol, the default context this request
        # may name; rewritten to the next session's protocol when that differs.
        self.retarget: str | None = None
        # Created only by a requester that must wait for the write; set on write or resolution.
        self.progress: threading.Event | None = None
        self._latch = threading.Lock()
        self._latch.acquire()
        self._value: Any = None
        self._error: BaseException | None = None

    def resolve(self, value: Any) -> None:
        """Complete the call with ``value`` (once)."""
        self._value = value
        self._latch.release()
        if self.progress is not None:
            self.progress.set()

    def fail(self, error: BaseException) -> None:
        """Complete the call with ``error`` (once)."""
        self._error = error
        self._latch.release()
        if self.progress is not None:
            self.progress.set()

    def wait(self, timeout: float | None) -> bool:
        """Block until resolved; return False on timeout."""
        if timeout is None:
            return self._latch.acquire()
        return self._latch.acquire(timeout=max(timeout, 0.0))

    def outcome(self) -> Any:
        """The value, or raise the error, of a resolved call."""
        if self._error is not None:
            raise self._error
        return self._value


class PendingCalls:
    """The id → call table shared by callers and the reader thread. Thread-safe.

    A :class:`Claims` table: whoever removes a call (``pop``, ``take``) is the one
    party that completes it; a party that removes nothing must leave it alone.
    """

    def __init__(self) -> None:
        # Guards _calls; never held while sending or completing a call.
        self._lock = threading.Lock()
        self._calls: Claims[str, PendingCall] = Claims()

    def add(self, call: PendingCall) -> None:
        """Register ``call`` so its reply can be matched."""
        with self._lock:
            self._calls.add(call.call_id, call)

    def pop(self, call_id: Any) -> PendingCall | None:
        """Claim the call with ``call_id``, if it is still waiting: the caller completes it."""
        if not isinstance(call_id, str):
            return None
        with self._lock:
            return self._calls.claim(call_id)

    def take(self, predicate: Callable[[PendingCall], bool]) -> list[PendingCall]:
        """Claim every call for which ``predicate`` is true: the caller completes them."""
        with self._lock:
            return self._calls.claim_where(predicate)

    def __len__(self) -> int:
        return len(self._calls)
