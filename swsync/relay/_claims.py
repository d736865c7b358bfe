"""``Claims``: entries settled by exactly one party, the one that removed them.

Several threads may race to settle one entry: a reply against its caller's
timeout, a terminal state event against eviction, expiry or ``disconnect()``, an
ACK hand-off against a redelivered copy. Each party removes the entry first; the
one that got it settles it, and a party that got nothing must leave it alone:
someone else removed it and is settling it (a caller that needs the outcome waits
for that). Every "pop, then resolve" in swsync.relay goes through this table.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from itertools import islice
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Claims(Generic[K, V]):
    """An insertion-ordered key → entry table whose removals are claims.

    Not thread-safe on purpose: its owner calls every method under the one lock
    that also guards the entries' state, so a claim and the state it settles are
    consistent (see the class using it for which lock).
    """

    __slots__ = ("_entries", "_on_claim")

    def __init__(self, on_claim: Callable[[K], None] | None = None) -> None:
        self._entries: dict[K, V] = {}
        # Called with each claimed key, under the owner's lock (e.g. to remember it).
        self._on_claim = on_claim

    def add(self, key: K, entry: V) -> None:
        """Register ``entry`` under ``key`` (replacing any entry there)."""
        self._entries[key] = entry

    def get(self, key: K) -> V | None:
        """The entry under ``key`` while nobody has claimed it, else ``None``."""
        return self._entries.get(key)

    def claim(self, key: K) -> V | None:
        """Remove and return the entry under ``key``: the caller alone settles it.

        ``None`` means another party claimed it first and is settling it.
        """
        entry = self._entries.pop(key, None)
        if entry is not None and self._on_claim is not None:
            self._on_claim(key)
        return entry

    def claim_where(self, predicate: Callable[[V], bool]) -> list[V]:
        """Claim every entry for which ``predicate`` is true."""
        keys = [k for k, v in self._entries.items() if predicate(v)]
        return self._take(keys)

    def claim_all(self) -> list[V]:
        """Claim every entry."""
        return self._take(list(self._entries))

    def claim_oldest_while(self, predicate: Callable[[V], bool]) -> list[V]:
        """Claim entries oldest first while ``predicate`` holds for the oldest."""
        keys: list[K] = []
        for key, entry in self._entries.items():
            if not predicate(entry):
                break
            keys.append(key)
        return self._take(keys)

    def claim_beyond(self, limit: int) -> list[V]:
        """Claim the oldest entries until at most ``limit`` remain."""
        excess = len(self._entries) - limit
        return self._take(list(islice(self._entries, excess))) if excess > 0 else []

    def _take(self, keys: list[K]) -> list[V]:
        taken = [self._entries.pop(k) for k in keys]
        if self._on_claim is not None:
            for k in keys:
                self._on_claim(k)
        return taken

    def values(self) -> list[V]:
        """The entries not yet claimed, oldest first (a copy)."""
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
