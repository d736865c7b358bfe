"""How the emulator's parts hear what happens: one :class:`Listener` interface, one registry.

A part that acts on messages or on the emulator's connection faults subclasses
:class:`Listener` and overrides the hooks it needs; the engine
(``Engine.subscribe``) adds it to the emulator's :class:`Listeners`. The RELAY
side, the webhook sender and the web inbox's journal are listeners, and so is
every callback given to ``Store.add_listener`` (docs/emulator.md). The store
reports its changes through the same registry, so there is one observer
mechanism; this module sits below both the store and the engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Listener", "Listeners"]

#: A ``swsync.emulator.store.MessageRecord``. Spelled ``Any`` because this module sits
#: below the store (which reports through it); listeners annotate the real type.
MessageRecord = Any


class Listener:
    """A part that acts on what the emulator does; every hook does nothing unless overridden.

    Only overridden hooks are called (a listener costs nothing on the events it
    ignores). Hooks run in subscription order and must not block. All run on the
    loop thread except :meth:`message_changed`, which runs on the thread that
    changed the store.
    """

    def message_changed(self, event: str, record: MessageRecord | None, info: dict[str, Any] | None) -> None:
        """The store changed: ``event`` is ``created``, ``state``, ``updated``, ``deleted``, ``webhook`` or ``reset``.

        Called right after the change, outside the store's lock, on the thread
        that made it (the loop thread, except for seeded messages and changes a
        test makes to the store directly). ``state``: ``record.status`` is a new
        state; ``webhook``: ``info`` describes the POST; ``reset``: no record.
        """

    def message_state(self, record: MessageRecord, state: str) -> None:
        """``record`` has just reached ``state`` (it is stored already)."""

    def message_received(self, record: MessageRecord) -> int:
        """An inbound message was stored; return how many RELAY sessions it went to."""
        return 0

    def reset(self) -> None:
        """Forget everything in flight (``Emulator.reset()``)."""

    def drop_connections(self) -> int:
        """Abort every client socket this part holds; return how many."""
        return 0

    def server_disconnect(self, restart: bool) -> int:
        """Send ``signalwire.disconnect`` to every client this part holds; return how many."""
        return 0

    @property
    def busy(self) -> bool:
        """Whether work this part started is still pending (``Emulator.wait_idle()``)."""
        return False


class Listeners:
    """The subscribed listeners, and their overridden hooks bound once per subscription.

    The tuples are replaced whole (copy-on-write), so any thread reads them without
    a lock; ``_lock`` only serializes subscriptions.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.all: tuple[Listener, ...] = ()
        self.on_change: tuple[Callable[[str, MessageRecord | None, dict[str, Any] | None], None], ...] = ()
        self.on_state: tuple[Callable[[MessageRecord, str], None], ...] = ()
        self.on_received: tuple[Callable[[MessageRecord], int], ...] = ()

    def add(self, listener: Listener) -> None:
        """Call ``listener``'s hooks from now on, after those of the listeners added before it."""
        with self._lock:
            self._set((*self.all, listener))

    def remove(self, match: Callable[[Listener], bool]) -> None:
        """Stop calling the listeners ``match`` accepts."""
        with self._lock:
            self._set(tuple(x for x in self.all if not match(x)))

    def _set(self, listeners: tuple[Listener, ...]) -> None:
        self.all = listeners
        self.on_change = tuple(x.message_changed for x in listeners if _overrides(x, "message_changed"))
        self.on_state = tuple(x.message_state for x in listeners if _overrides(x, "message_state"))
        self.on_received = tuple(x.message_received for x in listeners if _overrides(x, "message_received"))


def _overrides(listener: Listener, hook: str) -> bool:
    return getattr(type(listener), hook) is not getattr(Listener, hook)
