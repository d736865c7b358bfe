"""RELAY events as immutable, typed objects, and the message state vocabulary.

Events are built on the reader thread from frames that were already type-checked
(see :func:`parse_message_fields`), so constructing them never raises.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MessageReceiveEvent",
    "MessageState",
    "MessageStateEvent",
    "RelayEvent",
    "TERMINAL_STATES",
]


class MessageState(str, enum.Enum):
    """A message's state as RELAY reports it; compares equal to the wire string."""

    QUEUED = "queued"
    INITIATED = "initiated"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    RECEIVED = "received"

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES = frozenset({"delivered", "undelivered", "failed"})

# States only move forward; anything after a terminal state is ignored.
STATE_RANK = {"queued": 0, "initiated": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}


@dataclass(frozen=True)
class RelayEvent:
    """A ``signalwire.event`` as received: its type, inner params and timestamp.

    ``params`` is the event-specific payload (the inner ``params`` object of the
    frame). Thread-safe: immutable.
    """

    event_type: str
    params: Mapping[str, Any] = field(repr=False)
    timestamp: float | None = None


@dataclass(frozen=True)
class MessageStateEvent(RelayEvent):
    """A ``messaging.state`` event: one step of an outbound message's progress."""

    message_id: str = ""
    message_state: str = ""
    reason: str | None = None

    @property
    def is_terminal(self) -> bool:
        """True for ``delivered``, ``undelivered`` and ``failed``."""
        return self.message_state in TERMINAL_STATES


@dataclass(frozen=True)
class MessageReceiveEvent(RelayEvent):
    """A ``messaging.receive`` event: an inbound message arrived."""

    message_id: str = ""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse_message_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the well-typed message fields of an event payload, dropping the rest.

    Unknown keys and values of the wrong type are left out, so a hostile or
    partial payload can only fail to update a field, never raise later.
    """
    out: dict[str, Any] = {}
    for key in ("message_id", "message_state", "reason", "context", "direction",
                "from_number", "to_number", "body", "region"):
        v = _str(params.get(key))
        if v is not None:
            out[key] = v
    for key in ("media", "tags"):
        v = _str_list(params.get(key))
        if v is not None:
            out[key] = list(v)
    seg = params.get("segments")
    if isinstance(seg, int) and not isinstance(seg, bool) and seg >= 0:
        out["segments"] = seg
    return out
