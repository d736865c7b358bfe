"""Run a retried webhook once: stores that remember which webhooks were handled.

A provider retries a webhook it believes failed (a timeout, a dropped connection,
a 5xx), so the same inbound message or status callback can arrive twice. The
webhook helpers claim a key per webhook (``MessageSid``, plus ``MessageStatus`` for a
status callback) before calling the view: the first claim wins, later ones are
answered without calling the view. If the view raises, the claim is released so
the provider's retry can run it.

A provider retries because it did not get the first answer, so the retry is
answered with the first answer's cXML when the store kept it (``save_reply`` /
``reply``, which every store here has; a store without them answers an empty
``<Response/>``): a reply the view produced is sent once, not lost.

Stores are bounded: :class:`MemoryRunOnceStore` keeps the most recent keys (LRU);
:class:`CacheRunOnceStore` and :class:`RedisRunOnceStore` let keys expire after
``ttl`` seconds and are shared by every process that uses the same cache/Redis.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

__all__ = ["CacheRunOnceStore", "MemoryRunOnceStore", "RedisRunOnceStore", "RunOnceStore"]

DEFAULT_TTL = 24 * 3600  # providers stop retrying long before a day has passed


@runtime_checkable
class RunOnceStore(Protocol):
    """What the webhook helpers need of a run-once store. Thread-safe."""

    def claim(self, key: str) -> bool:
        """Atomically mark ``key`` as handled; ``True`` only for the first claim."""

    def release(self, key: str) -> None:
        """Forget ``key`` (its handling failed; a retry may run it)."""


class MemoryRunOnceStore:
    """An in-process LRU of handled keys: the default (one process, bounded memory).

    Args:
        maxsize: how many keys to remember; the least recently claimed is dropped.

    Thread-safe.
    """

    def __init__(self, maxsize: int = 10_000) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, got {maxsize!r}")
        self.maxsize = maxsize
        # Guards _keys.
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, str | None] = OrderedDict()  # key -> saved reply

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def claim(self, key: str) -> bool:
        """Mark ``key`` as handled; ``True`` if it was not already."""
        with self._lock:
            if key in self._keys:
                self._keys.move_to_end(key)
                return False
            self._keys[key] = None
            if len(self._keys) > self.maxsize:
                self._keys.popitem(last=False)
            return True

    def release(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            self._keys.pop(key, None)

    def save_reply(self, key: str, reply: str) -> None:
        """Keep the answer given for claimed ``key``, for its retries."""
        with self._lock:
            if key in self._keys:
                self._keys[key] = reply

    def reply(self, key: str) -> str | None:
        """The answer saved for ``key``, if any."""
        with self._lock:
            return self._keys.get(key)


class CacheRunOnceStore:
    """Keys in a framework cache with an atomic ``add``: Django's ``cache``, Flask-Caching.

    Args:
        cache: an object with ``add(key, value, timeout) -> bool`` and
            ``delete(key)`` (``django.core.cache.cache``, ``flask_caching.Cache``).
        ttl: seconds a key is remembered.
        prefix: prepended to every key.

    Thread-safe as far as the cache is (both named above are).
    """

    def __init__(self, cache: Any, *, ttl: int = DEFAULT_TTL, prefix: str = "swsync:webhook:") -> None:
        self._cache = cache
        self._ttl = ttl
        self._prefix = prefix

    def claim(self, key: str) -> bool:
        """Add ``key`` to the cache; ``True`` if it was not there."""
        return bool(self._cache.add(self._prefix + key, 1, self._ttl))

    def release(self, key: str) -> None:
        """Delete ``key`` from the cache."""
        self._cache.delete(self._prefix + key)

    def save_reply(self, key: str, reply: str) -> None:
        """Keep the answer given for ``key``, for its retries."""
        self._cache.set(self._prefix + key, reply, self._ttl)

    def reply(self, key: str) -> str | None:
        """The answer saved for ``key``, if any."""
        value = self._cache.get(self._prefix + key)
        return value if isinstance(value, str) else None


class RedisRunOnceStore:
    """Keys in Redis (``SET key 1 NX EX ttl``), shared by every process and host.

    Needs the ``redis`` package (``pip install redis``).

    Args:
        url: a Redis URL (``redis://127.0.0.1:6379/0``); or pass ``client``.
        client: an existing ``redis.Redis`` client.
        ttl: seconds a key is remembered.
        prefix: prepended to every key.

    Thread-safe (redis-py's client pools its connections).
    """

    def __init__(
        self, url: str | None = None, *, client: Any = None, ttl: int = DEFAULT_TTL, prefix: str = "swsync:webhook:"
    ) -> None:
        if (url is None) == (client is None):
            raise ValueError("pass exactly one of url or client")
        if client is None:
            assert url is not None
            import redis  # optional dependency, imported only when used

            client = redis.Redis.from_url(url)
        self._redis = client
        self._ttl = ttl
        self._prefix = prefix

    def __repr__(self) -> str:
        return "RedisRunOnceStore(<redis>)"  # the URL may hold a password

    def claim(self, key: str) -> bool:
        """Set ``key`` if absent; ``True`` if this call set it."""
        return bool(self._redis.set(self._prefix + key, b"", nx=True, ex=self._ttl))

    def release(self, key: str) -> None:
        """Delete ``key``."""
        self._redis.delete(self._prefix + key)

    def save_reply(self, key: str, reply: str) -> None:
        """Keep the answer given for claimed ``key`` (its expiry unchanged), for its retries."""
        self._redis.set(self._prefix + key, reply.encode("utf-8"), xx=True, keepttl=True)

    def reply(self, key: str) -> str | None:
        """The answer saved for ``key``, if any."""
        value = self._redis.get(self._prefix + key)
        return value.decode("utf-8") if value else None
