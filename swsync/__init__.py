"""swsync: a synchronous, thread-based Python SDK for SignalWire messaging.

The front door. Only the exceptions are imported eagerly; ``RelayClient`` and the
event classes (websocket-client, ssl), ``RestClient`` (requests) and ``Emulator``
(aiohttp) are imported on first use, so a RELAY-only cron job never imports
``requests`` and loading the pytest plugin costs nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionClosedError,
    OptedOutError,
    OutcomeUnknownError,
    RateLimited,
    RedisUnavailable,
    RelayError,
    RestConnectionError,
    RestError,
    RestTimeout,
    SwsyncError,
    WaitTimeout,
)

if TYPE_CHECKING:
    from .bulk import Outbound
    from .emulator import Emulator as Emulator  # re-exported for type checkers, not in __all__ (below)
    from .ratelimit import RateLimit
    from .relay import Message, MessageReceiveEvent, MessageStateEvent, RelayClient, RelayEvent
    from .rest import RestClient

# Emulator stays out of __all__: it needs the ``emulator`` extra (aiohttp), and
# ``from swsync import *`` must work with the runtime dependencies alone.
# ``swsync.Emulator`` itself works whenever the extra is installed.
__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionClosedError",
    "Message",
    "MessageReceiveEvent",
    "MessageStateEvent",
    "OptedOutError",
    "OutcomeUnknownError",
    "Outbound",
    "RateLimit",
    "RateLimited",
    "RedisUnavailable",
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

_LAZY = {
    "Emulator": "swsync.emulator",
    "Message": "swsync.relay",
    "MessageReceiveEvent": "swsync.relay",
    "MessageStateEvent": "swsync.relay",
    "Outbound": "swsync.bulk",
    "RateLimit": "swsync.ratelimit",
    "RelayClient": "swsync.relay",
    "RelayEvent": "swsync.relay",
    "RestClient": "swsync.rest",
}


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
