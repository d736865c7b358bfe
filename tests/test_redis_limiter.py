"""The Redis-backed shared pacing limit (GCRA in one Lua script, Redis server time)."""

from __future__ import annotations

import threading
import time
import uuid
from itertools import pairwise
from typing import Any

import pytest
import redis

from swsync import RateLimited, RedisUnavailable, SwsyncError
from swsync._redis_limiter import RedisBackend, redact_url

from .support.ports import free_port
from .support.redisd import RedisServer

SLACK = 0.005  # Redis TIME vs this process's monotonic clock, rounding to microseconds


def backend(server: Any, **kw: Any) -> RedisBackend:
    kw.setdefault("per_second", 1.0)
    kw.setdefault("burst", 1.0)
    return RedisBackend(server.url, namespace=f"t:{uuid.uuid4().hex}", **kw)


def timed_reserve(
    b: RedisBackend, key: str, cost: float = 1.0, max_wait: float | None = None
) -> tuple[float, float, float]:
    before = time.monotonic()
    wait = b.reserve(key, cost, max_wait)
    return before, wait, time.monotonic()


def assert_slot(calls: list[tuple[float, float, float]], i: int, slot: float) -> None:
    """Call ``i`` must have been told to wait until ``slot`` seconds after call 0 reached Redis."""
    before0, _, after0 = calls[0]
    before, wait, after = calls[i]
    low = slot - (after - before0) - SLACK
    high = slot - (before - after0) + SLACK
    assert max(0.0, low) <= wait <= max(0.0, high), (i, wait, low, high)


def test_reservations_are_spaced_one_interval_apart(redis_server: Any) -> None:
    b = backend(redis_server, per_second=2.0, burst=1.0)
    calls = [timed_reserve(b, "+15550000001") for _ in range(5)]
    assert calls[0][1] == 0.0
    for i in range(1, 5):
        assert_slot(calls, i, i * 0.5)
    b.close()


def test_burst_goes_at_once_then_the_rate_applies(redis_server: Any) -> None:
    b = backend(redis_server, per_second=1.0, burst=3.0)
    calls = [timed_reserve(b, "k") for _ in range(5)]
    assert [c[1] for c in calls[:3]] == [0.0, 0.0, 0.0]
    assert_slot(calls, 3, 1.0)
    assert_slot(calls, 4, 2.0)


def test_keys_are_independent(redis_server: Any) -> None:
    b = backend(redis_server, per_second=1.0, burst=1.0)
    assert b.reserve("a", 1, None) == 0.0
    assert b.reserve("b", 1, None) == 0.0
    assert b.reserve("a", 1, None) > 0.9


def test_cost_is_weighted(redis_server: Any) -> None:
    b = backend(redis_server, per_second=1.0, burst=3.0)
    calls = [timed_reserve(b, "k", cost=3.0), timed_reserve(b, "k", cost=1.0)]
    assert calls[0][1] == 0.0
    assert_slot(calls, 1, 1.0)  # three units spent at once: one more unit after 1 s


def test_cost_larger_than_burst_is_admitted_alone(redis_server: Any) -> None:
    b = backend(redis_server, per_second=1.0, burst=2.0)
    calls = [timed_reserve(b, "k", cost=5.0), timed_reserve(b, "k", cost=1.0)]
    assert calls[0][1] == 0.0  # a full bucket admits it at once
    assert_slot(calls, 1, 4.0)  # the debt (5 - 2 + 1 units at 1/s) is paid by the next one


def test_refusal_past_max_wait_reserves_nothing(redis_server: Any) -> None:
    b = backend(redis_server, per_second=1.0, burst=1.0)
    key = "+15550000002"
    b.reserve(key, 1, 0.0)
    with pytest.raises(RateLimited) as info:
        b.reserve(key, 1, 0.2)
    assert info.value.key == key
    assert info.value.may_have_been_sent is False
    assert info.value.retry_after is not None and 0.5 < info.value.retry_after <= 1.0
    assert not isinstance(info.value, RedisUnavailable)
    # Nothing was reserved by the refusal: the next slot is still about 1 s after the first.
    calls = [timed_reserve(b, key, max_wait=5.0)]
    assert 0.0 < calls[0][1] <= 1.0 + SLACK


def test_concurrent_reservations_never_lose_an_update(redis_server: Any) -> None:
    # 8 threads x 25 reservations of 1 unit at 10/s: the TAT must advance by exactly
    # 200 intervals (20 s) past the start; a read-modify-write race would lose some.
    b = backend(redis_server, per_second=10.0, burst=1.0)
    r = redis.Redis.from_url(redis_server.url)
    start_s, start_us = r.time()
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [b.reserve("k", 1, None) for _ in range(25)]
        with lock:
            waits.extend(mine)

    threads = [threading.Thread(target=worker, name=f"test-reserve-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    end_s, end_us = r.time()
    tat = int(r.get(f"{b.namespace}:k"))
    start, end = start_s * 1_000_000 + start_us, end_s * 1_000_000 + end_us
    assert start + 200 * 100_000 <= tat <= end + 200 * 100_000
    # Every reservation got its own slot: the waits are 200 distinct slots 0.1 s apart
    # (minus the time that passed), so sorted they step by about 0.1 s.
    ordered = sorted(waits)
    assert len(ordered) == 200
    elapsed = (end - start) / 1e6
    for a, c in pairwise(ordered):
        assert 0.1 - elapsed - SLACK <= c - a <= 0.1 + elapsed + SLACK
    assert r.pttl(f"{b.namespace}:k") > 19_000  # expires once the schedule has passed
    r.close()


def test_acquire_sleeps_until_the_slot() -> None:
    slept: list[float] = []
    with RedisServer() as server:
        b = RedisBackend(server.url, per_second=4.0, burst=1.0, namespace="s", sleep=slept.append)
        b.acquire("k", 1, None)
        b.acquire("k", 1, None)
        assert len(slept) == 1 and 0.2 <= slept[0] <= 0.25 + SLACK


def test_fails_closed_when_redis_is_unreachable() -> None:
    port = free_port()
    b = RedisBackend(f"redis://:s3cret@127.0.0.1:{port}/0", per_second=1.0, socket_timeout=1.0)
    with pytest.raises(RedisUnavailable) as info:
        b.acquire("+15550000003", 1, 1.0)
    err = info.value
    assert isinstance(err, RateLimited) and isinstance(err, SwsyncError)
    assert err.may_have_been_sent is False
    assert f"127.0.0.1:{port}" in str(err) and "Redis" in str(err)
    assert "s3cret" not in str(err) and "s3cret" not in err.url and "s3cret" not in repr(b)
    assert isinstance(err.__cause__, redis.exceptions.ConnectionError)


def test_redis_stopped_mid_run_fails_closed_then_recovers() -> None:
    server = RedisServer().start()
    try:
        b = RedisBackend(server.url, per_second=100.0, namespace="m", socket_timeout=1.0)
        b.acquire("k", 1, 1.0)
        server.stop()
        for _ in range(3):  # every attempt while it is down, never an unpaced pass
            with pytest.raises(RedisUnavailable):
                b.acquire("k", 1, 1.0)
        server.start()
        b.acquire("k", 1, 1.0)
        b.close()
    finally:
        server.close()


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError):
        RedisBackend("http://x", per_second=1)
    with pytest.raises(ValueError):
        RedisBackend("redis://x", per_second=0)
    with pytest.raises(ValueError):
        RedisBackend("redis://x", per_second=1, burst=0)
    assert RedisBackend("redis://x", per_second=0.5).burst == 1.0
    assert RedisBackend("redis://x", per_second=7).burst == 7.0


def test_redact_url() -> None:
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://:pw@h/0") == "redis://:***@h/0"
    assert redact_url("redis://h:6379/2") == "redis://h:6379/2"


def test_rate_limits_with_one_redis_url_share_one_limit(redis_server: Any) -> None:
    from swsync import RateLimit

    sender = f"+1555{uuid.uuid4().int % 10**7:07d}"
    a = RateLimit(per_second=1, burst=1, redis_url=redis_server.url, max_wait=0.2)
    b = RateLimit(per_second=1, burst=1, redis_url=redis_server.url, max_wait=0.2)
    a.acquire(from_number=sender, body="hi")
    with pytest.raises(RateLimited) as info:  # b sees a's reservation: one limit, not two
        b.acquire(from_number=sender, body="hi")
    assert not isinstance(info.value, RedisUnavailable)
    # Segment-weighted: a 2-segment body needs 2 units, more than the burst of 1 allows now.
    other = sender[:-1] + str((int(sender[-1]) + 1) % 10)
    b.acquire(from_number=other, body="x" * 200)
    with pytest.raises(RateLimited):
        a.acquire(from_number=other, body="hi")


def test_rate_limit_fails_closed_without_redis() -> None:
    from swsync import RateLimit

    limit = RateLimit(per_second=100, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RedisUnavailable):
        limit.acquire(from_number="+15550001111", body="hi")
