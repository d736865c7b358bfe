"""swsync: a synchronous, thread-based Python SDK for SignalWire messaging.

The front door. ``RelayClient`` (WebSocket RELAY) is imported eagerly; ``RestClient``
and ``Emulator`` are imported on first use so that a RELAY-only cron job does not
pay for importing ``requests`` or the emulator's server library.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionClosedError,
    RelayError,
    RestConnectionError,
    RestError,
    RestTimeout,
    SwsyncError,
    WaitTimeout,
)
from .relay import Message, MessageReceiveEvent, MessageStateEvent, RelayClient, RelayEvent

if TYPE_CHECKING:
    from .emulator import Emulator
    from .rest import RestClient

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionClosedError",
    "Emulator",
    "Message",
    "MessageReceiveEvent",
    "MessageStateEvent",
    "RelayClient",
    "RelayError",
    "RelayEvent",
    "RestClient",
    "RestConnectionError",
    "RestError",
    "RestTimeout",
    "SwsyncError",
    "WaitTimeout",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {"RestClient": "swsync.rest", "Emulator": "swsync.emulator"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'swsync' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
