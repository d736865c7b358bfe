"""A local SignalWire emulator: RELAY WebSocket and cXML REST on one port.

::

    from swsync.emulator import Emulator

    with Emulator(state_delay=0) as emu:
        emu.relay_url      # "ws://127.0.0.1:PORT"  (RelayClient host=...)
        emu.rest_url       # "http://127.0.0.1:PORT" (RestClient space=...)
        emu.project, emu.token, emu.jwt_token, emu.signing_key

Every message goes through ``queued``, ``initiated``, ``sent``, ``delivered``
(``state_delay`` seconds apart; all at once when it is 0), except for these
destination numbers, which behave the same over RELAY and REST:

=========================  ==========================================================
``UNDELIVERED_NUMBER``     ``+15550000002``: queued, initiated, sent, ``undelivered``;
                           reason ``"carrier_blocked"``, REST ``error_code`` ``"30004"``
``FAILED_NUMBER``          ``+15550000003``: queued, then ``failed``; reason
                           ``"unreachable"``, REST ``error_code`` ``"30003"``
``NO_DLR_NUMBER``          ``+15550000004``: queued, initiated, ``sent`` and then
                           nothing (no delivery receipt, like MMS)
``REJECTED_NUMBER``        ``+15550000005``: refused at once: RELAY result
                           ``{"code": "422", ...}``; REST HTTP 422, code 21211
=========================  ==========================================================

Numbers are E.164 or short codes (3 to 8 digits) everywhere. ``messaging.state``
events go to every RELAY session receiving the message's context (a session always
receives its own protocol, the default context); each inbound message goes to
exactly one session receiving its context, round-robin. See docs/emulator.md.

Importing this package imports aiohttp (the ``swsync[emulator]`` extra);
``import swsync`` alone does not.
"""

from __future__ import annotations

from .faults import Faults, Stats
from .server import Emulator
from .store import (
    FAILED_NUMBER,
    NO_DLR_NUMBER,
    REJECTED_NUMBER,
    SERVICE_NUMBER,
    UNDELIVERED_NUMBER,
)

__all__ = [
    "FAILED_NUMBER",
    "NO_DLR_NUMBER",
    "REJECTED_NUMBER",
    "SERVICE_NUMBER",
    "UNDELIVERED_NUMBER",
    "Emulator",
    "Faults",
    "Stats",
]
