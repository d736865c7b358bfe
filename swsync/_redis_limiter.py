"""A pacing limit shared through Redis: one limit for every process and machine.

``RateLimit(..., redis_url="redis://...")`` uses :class:`RedisBackend` (imported
only then, so nothing else in swsync imports ``redis``). Each ``acquire`` runs one
Lua script, atomically on the Redis server, that implements the generic cell rate
algorithm (GCRA, "virtual scheduling", ITU-T I.371): the key holds the sender's
*theoretical arrival time* (TAT); a request of ``cost`` units reserves the next
``cost / per_second`` seconds after it and is told how long to sleep until its
slot. Reservations are made in the order requests reach Redis, so waiting
processes are served first come, first served and none starves; there is no
read-modify-write race because the script runs as one command.

Time comes from the Redis server's ``TIME``, never from the callers' clocks, so
workers on machines whose clocks disagree still share one schedule. A refused
request (its slot is more than ``max_wait`` away) reserves nothing.

Fails closed: when Redis cannot be reached or answers with an error,
``acquire`` raises :class:`~swsync.errors.RedisUnavailable` (a ``RateLimited``:
nothing was sent, retrying later is safe). It never lets a send through unpaced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis  # the "celery" extra; this module is imported only when redis_url is given

from .errors import RateLimited, RedisUnavailable

logger = logging.getLogger("swsync.ratelimit")

__all__ = ["RedisBackend", "redact_url"]

# KEYS[1]: the sender's TAT key. ARGV: interval (microseconds per unit), burst (units),
# cost (units), max_wait (microseconds; negative: wait forever).
# Returns {admitted (1/0), wait in microseconds}. Numbers are formatted with %.0f:
# tostring() would print 1.7e+15 and lose the microseconds.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + cost * interval
local wait = new_tat - math.max(burst, cost) * interval - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then
  return {0, string.format('%.0f', wait)}
end
local ttl = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return {1, string.format('%.0f', wait)}
"""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable Redis URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisBackend:
    """The shared (cross-process) state of a :class:`~swsync.RateLimit`.

    Args:
        redis_url: ``redis://``, ``rediss://`` or ``unix://`` URL of the Redis server.
        per_second: units (segments or messages) admitted per second, per key.
        burst: units that may go at once after a quiet period (default: ``per_second``, at least 1).
        namespace: prefix of the Redis keys (``{namespace}:{key}``).
        socket_timeout: seconds to wait for Redis before failing closed.
        sleep: how to wait for an admitted slot (tests inject a fake).

    Thread-safe and fork-safe (redis-py reconnects in a child process); one
    instance may be shared by every thread of a process.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        per_second: float,
        burst: float | None = None,
        namespace: str = "swsync:rl",
        socket_timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(redis_url, str) or not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
        if not isinstance(per_second, (int, float)) or isinstance(per_second, bool) or per_second <= 0:
            raise ValueError("per_second must be a positive number")
        if burst is None:
            burst = max(1.0, float(per_second))
        if not isinstance(burst, (int, float)) or isinstance(burst, bool) or burst <= 0:
            raise ValueError("burst must be a positive number")
        self.url = redis_url
        self.per_second = float(per_second)
        self.burst = float(burst)
        self.namespace = namespace
        self._interval_us = 1e6 / self.per_second
        self._socket_timeout = socket_timeout
        self._sleep = sleep
        # Guards the lazy creation of _redis/_script; never held while talking to Redis.
        self._lock = threading.Lock()
        self._redis: Any = None
        self._script: Any = None

    def __repr__(self) -> str:
        return (
            f"<RedisBackend {redact_url(self.url)} per_second={self.per_second:g} "
            f"burst={self.burst:g} namespace={self.namespace!r}>"
        )

    def _client(self) -> Any:
        with self._lock:
            if self._script is None:
                self._redis = redis.Redis.from_url(
                    self.url,
                    socket_timeout=self._socket_timeout,
                    socket_connect_timeout=self._socket_timeout,
                    health_check_interval=30,
                )
                self._script = self._redis.register_script(_GCRA)
            return self._script

    def reserve(self, key: str, cost: float, max_wait: float | None) -> float:
        """Reserve the next slot for ``cost`` units of ``key``; return the seconds to wait for it.

        Raises:
            RateLimited: the slot is more than ``max_wait`` seconds away (nothing reserved).
            RedisUnavailable: Redis could not be reached or failed (fails closed).
        """
        if cost < 0:
            raise ValueError("cost must be >= 0")
        script = self._client()
        max_wait_us = -1 if max_wait is None else max(0.0, max_wait) * 1e6
        args = [repr(self._interval_us), repr(self.burst), repr(float(cost)), repr(max_wait_us)]
        try:
            admitted, wait_us = script(keys=[f"{self.namespace}:{key}"], args=args)
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(
                f"shared rate limit unavailable: Redis at {redact_url(self.url)} failed ({exc}); nothing was sent",
                url=redact_url(self.url),
                key=key,
            ) from exc
        wait = int(wait_us) / 1e6
        if not int(admitted):
            raise RateLimited(
                f"rate limit for {key!r}: next slot in {wait:.3f} s, more than max_wait={max_wait} s; nothing was sent",
                key=key,
                retry_after=wait,
            )
        return wait

    def acquire(self, key: str, cost: float, max_wait: float | None) -> None:
        """Block until ``cost`` units of ``key`` are admitted by the shared limit.

        Raises:
            RateLimited: admission is more than ``max_wait`` seconds away.
            RedisUnavailable: Redis could not be reached (nothing may be sent).
        """
        wait = self.reserve(key, cost, max_wait)
        if wait > 0:
            self._sleep(wait)

    def close(self) -> None:
        """Close the connections to Redis (a later ``acquire`` reconnects)."""
        with self._lock:
            client, self._redis, self._script = self._redis, None, None
        if client is not None:
            client.close()
