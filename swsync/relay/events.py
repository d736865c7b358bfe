"""RELAY events as immutable, typed objects, and the message state vocabulary.

Events are built on the reader thread from frames that were already type-checked
(see :func:`parse_message_fields`), so constructing them never raises.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
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


class RelayEvent:
    """A ``signalwire.event`` as received: its type, inner params and timestamp.

    ``params`` is the event-specific payload (the inner ``params`` object of the
    frame). Immutable, hence thread-safe; survives ``pickle``, ``copy`` and
    ``deepcopy`` (a ``multiprocessing`` worker may return one). (Plain slotted classes rather than
    dataclasses: they are built on the reader's hot path and imported by every
    one-shot ``swsync send``.)
    """

    __slots__ = ("event_type", "params", "timestamp")
    _fields: tuple[str, ...] = ("event_type", "timestamp")

    event_type: str
    params: Mapping[str, Any]
    timestamp: float | None

    def __init__(self, event_type: str, params: Mapping[str, Any], timestamp: float | None = None) -> None:
        _set = object.__setattr__
        _set(self, "event_type", event_type)
        _set(self, "params", params)
        _set(self, "timestamp", timestamp)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    __delattr__ = __setattr__  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        # The default protocol restores slots with setattr, which this immutable class
        # refuses: rebuild through object.__setattr__ instead (pickle, copy, deepcopy).
        state = {name: getattr(self, name) for name in _slot_names(type(self))}
        return (_rebuild_event, (type(self), state))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in ("params", *self._fields))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({fields})"


def _slot_names(cls: type) -> list[str]:
    return [name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())]


def _rebuild_event(cls: type[RelayEvent], state: Mapping[str, Any]) -> RelayEvent:
    """Recreate an event from its slot values (the other half of ``__reduce__``)."""
    event = cls.__new__(cls)
    for name, value in state.items():
        object.__setattr__(event, name, value)
    return event


class MessageStateEvent(RelayEvent):
    """A ``messaging.state`` event: one step of an outbound message's progress.

    ``reason`` is the failure reason, ``""`` when there is none.
    """

    __slots__ = ("message_id", "message_state", "reason")
    _fields = ("event_type", "message_id", "message_state", "reason", "timestamp")

    message_id: str
    message_state: str
    reason: str

    def __init__(
        self,
        event_type: str,
        params: Mapping[str, Any],
        timestamp: float | None = None,
        message_id: str = "",
        message_state: str = "",
        reason: str | None = "",
    ) -> None:
        super().__init__(event_type, params, timestamp)
        _set = object.__setattr__
        _set(self, "message_id", message_id)
        _set(self, "message_state", message_state)
        _set(self, "reason", reason or "")

    @property
    def is_terminal(self) -> bool:
        """True for ``delivered``, ``undelivered`` and ``failed``."""
        return self.message_state in TERMINAL_STATES


class MessageReceiveEvent(RelayEvent):
    """A ``messaging.receive`` event: an inbound message arrived."""

    __slots__ = ("message_id",)
    _fields = ("event_type", "message_id", "timestamp")

    message_id: str

    def __init__(
        self,
        event_type: str,
        params: Mapping[str, Any],
        timestamp: float | None = None,
        message_id: str = "",
    ) -> None:
        super().__init__(event_type, params, timestamp)
        object.__setattr__(self, "message_id", message_id)


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
    for key in (
        "message_id",
        "message_state",
        "reason",
        "context",
        "direction",
        "from_number",
        "to_number",
        "body",
        "region",
    ):
        v = _str(params.get(key))
        if v is not None:
            out[key] = v
    for key in ("media", "tags"):
        items = _str_list(params.get(key))
        if items is not None:
            out[key] = list(items)
    seg = params.get("segments")
    if isinstance(seg, int) and not isinstance(seg, bool) and seg >= 0:
        out["segments"] = seg
    return out
