"""RELAY (WebSocket, JSON-RPC 2.0) messaging: ``RelayClient`` and ``Message``."""

from .client import RelayClient
from .events import (
    TERMINAL_STATES,
    MessageReceiveEvent,
    MessageState,
    MessageStateEvent,
    RelayEvent,
)
from .message import Message

__all__ = [
    "TERMINAL_STATES",
    "Message",
    "MessageReceiveEvent",
    "MessageState",
    "MessageStateEvent",
    "RelayClient",
    "RelayEvent",
]
