"""RateLimit: accuracy, fairness and refusal with an injected clock (no sleeping)."""

from __future__ import annotations

import os
import threading
from itertools import pairwise

import pytest

import swsync
from swsync import RateLimit, RateLimited
from swsync.errors import ConfigurationError
from swsync.ratelimit import _LocalBackend


class FakeClock:
    """A clock that moves only when a (fake) sleep says so; thread-safe."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)


def backend(per_second: float, burst: float = 1.0, clock: FakeClock | None = None) -> _LocalBackend:
    clock = clock or FakeClock()
    return _LocalBackend(per_second, burst, clock, clock.sleep)


def test_evenly_spaced_at_the_rate() -> None:
    clock = FakeClock()
    b = backend(4, clock=clock)
    delays = [b.reserve("+15550001111", 1, None) for _ in range(9)]
    assert delays == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])


def test_accuracy_over_a_long_run() -> None:
    # Admission times of 10,000 single-segment sends at 100/s: the achieved rate is
    # exactly the limit (the nth send is admitted at (n-1)/rate).
    clock = FakeClock()
    b = backend(100, clock=clock)
    admitted = []
    for _ in range(10_000):
        admitted.append(clock.now + b.reserve("k", 1, None))
        clock.now += 0.001  # callers arrive far faster than the limit
    span = admitted[-1] - admitted[0]
    assert 9_999 / span == pytest.approx(100, rel=1e-9)
    gaps = [b2 - a for a, b2 in pairwise(admitted)]
    assert min(gaps) == pytest.approx(0.01) and max(gaps) == pytest.approx(0.01)


def test_idle_time_is_not_banked_beyond_burst() -> None:
    clock = FakeClock()
    b = backend(2, burst=3, clock=clock)
    assert [b.reserve("k", 1, None) for _ in range(3)] == [0, 0, 0]  # the burst
    assert b.reserve("k", 1, None) == pytest.approx(0.5)
    clock.now += 3600  # a long quiet hour refills the bucket to 3, not more
    assert [b.reserve("k", 1, None) for _ in range(4)] == pytest.approx([0, 0, 0, 0.5])


def test_segments_weigh_and_big_cost_goes_alone() -> None:
    clock = FakeClock()
    b = backend(1, burst=2, clock=clock)
    assert b.reserve("k", 5, None) == 0  # cost above burst: admitted alone when full
    assert b.reserve("k", 1, None) == pytest.approx(4)  # then the bucket pays it back
    assert b.reserve("k", 1, None) == pytest.approx(5)


def test_keys_are_independent() -> None:
    b = backend(1)
    assert b.reserve("+15550000001", 1, None) == 0
    assert b.reserve("+15550000002", 1, None) == 0
    assert b.reserve("+15550000001", 1, None) == pytest.approx(1)


def test_max_wait_refuses_at_once_and_reserves_nothing() -> None:
    clock = FakeClock()
    b = backend(1, clock=clock)
    for _ in range(3):
        b.reserve("k", 1, 2.0)  # slots at 0, 1, 2
    with pytest.raises(RateLimited) as info:
        b.reserve("k", 1, 2.0)
    assert info.value.key == "k"
    assert info.value.retry_after == pytest.approx(3.0)
    assert info.value.may_have_been_sent is False
    assert isinstance(info.value, swsync.SwsyncError)
    clock.now += 1.0  # the refused send took no slot: the next one gets slot 3
    assert b.reserve("k", 1, 2.0) == pytest.approx(2.0)


def test_threads_admitted_in_arrival_order() -> None:
    # Threads queue on the limiter one after another; each must be admitted no
    # earlier than every thread that called acquire() before it.
    clock = FakeClock()
    limit = RateLimit(10, burst=1, clock=clock, sleep=clock.sleep)
    order: list[int] = []
    lock = threading.Lock()
    go = [threading.Event() for _ in range(20)]

    def worker(i: int) -> None:
        go[i].wait(5)
        limit.acquire(from_number="+15550001111", body="hi")
        with lock:
            order.append(i)
        if i + 1 < len(go):
            go[i + 1].set()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    go[0].set()
    for t in threads:
        t.join(5)
    assert order == list(range(20))
    # Each waited exactly until its own slot: 0.1 s apart, none skipped, none starved.
    assert clock.sleeps == pytest.approx([0.1 * i for i in range(1, 20)])


def test_fairness_under_contention() -> None:
    # 8 threads x 50 sends racing for one sender's limit: the slots handed out are
    # exactly 0, T, 2T, ... with no gap and no double booking.
    clock = FakeClock()
    limit = RateLimit(50, burst=1, clock=clock, sleep=clock.sleep)

    def worker() -> None:
        for _ in range(50):
            limit.acquire(from_number="+15550001111", body="x")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    slots = sorted([0.0] + clock.sleeps)
    assert len(slots) == 400
    assert slots == pytest.approx([i / 50 for i in range(400)])


def test_weights_and_keys_on_the_public_object() -> None:
    limit = RateLimit(3)
    assert limit.cost("hello") == 1
    assert limit.cost("x" * 161) == 2  # two GSM-7 segments
    assert limit.cost("\u00e9\u4e2d" * 40) == 2  # UCS-2: 80 units
    assert limit.cost("x" * 500, media=["https://example.com/a.png"]) == 1  # an MMS
    assert limit.cost(None, media=["https://example.com/a.png"]) == 1
    assert RateLimit(3, weight="messages").cost("x" * 500) == 1
    assert limit.key_for("+15550001111", "proj") == "+15550001111"
    assert RateLimit(3, key="account").key_for("+15550001111", "proj") == "account:proj"


def test_presets_cite_the_documented_rates_and_can_be_overridden() -> None:
    assert RateLimit.toll_free().per_second == 3
    assert RateLimit.ten_dlc().per_second == 4
    assert RateLimit.canadian_long_code().per_second == 1
    assert RateLimit.short_code().per_second == 10
    assert RateLimit.toll_free().burst == 3 and RateLimit(0.5).burst == 1  # one second's worth
    tuned = RateLimit.toll_free(per_second=25, burst=5, max_wait=1.0)
    assert (tuned.per_second, tuned.burst, tuned.max_wait) == (25, 5, 1.0)
    assert "redis" not in repr(RateLimit(1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_second": 0},
        {"per_second": -1},
        {"per_second": True},
        {"per_second": 1, "burst": 0},
        {"per_second": 1, "key": "to_number"},
        {"per_second": 1, "weight": "bytes"},
        {"per_second": 1, "max_wait": -1},
        {"per_second": 1, "redis_url": ""},
    ],
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimit(**kwargs)  # type: ignore[arg-type]


def test_redis_url_without_the_backend_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "swsync._redis_limiter", None)  # import fails
    limit = RateLimit(1, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="swsync\\[celery\\]"):
        limit.acquire(from_number="+15550001111", body="hi")


def test_clients_validate_rate_limit() -> None:
    with pytest.raises(ConfigurationError):
        swsync.RelayClient("p", "t", "ws://127.0.0.1:1", rate_limit=4)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        swsync.RestClient("p", "t", "http://127.0.0.1:1", rate_limit="fast")  # type: ignore[arg-type]


def test_usable_in_a_forked_child_while_the_parent_holds_the_lock() -> None:
    limit = RateLimit(1000, max_wait=None)
    limit.acquire(from_number="+15550001111", body="hi")
    backend = limit._get_backend()
    assert isinstance(backend, _LocalBackend)
    with backend._lock:  # a parent thread holds the lock at fork time
        pid = os.fork()
        if pid == 0:  # child: the inherited lock must not deadlock it
            try:
                limit.acquire(from_number="+15550001111", body="hi")
                os._exit(0)
            except BaseException:
                os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


class Recorder:
    """A limiter that records what it was asked (any object with acquire() will do)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def acquire(self, **kwargs: object) -> None:
        self.calls.append(kwargs)


def test_relay_client_paces_send_message(emu: object) -> None:
    rec = Recorder()
    e: swsync.Emulator = emu  # type: ignore[assignment]
    with swsync.RelayClient(e.project, e.token, e.relay_url, rate_limit=rec) as client:
        client.send_message("+15551230001", "+15550001111", "hello").wait(timeout=5)
    assert rec.calls == [{"from_number": "+15550001111", "body": "hello", "media": [], "account": e.project}]


def test_rest_client_paces_create_and_refuses_past_max_wait(emu: object) -> None:
    e: swsync.Emulator = emu  # type: ignore[assignment]
    clock = FakeClock()
    limit = RateLimit(1, burst=1, max_wait=0.5, clock=clock, sleep=clock.sleep)
    with swsync.RestClient(e.project, e.token, e.rest_url, rate_limit=limit) as rest:
        rest.messages.create(to="+15551230001", from_="+15550001111", body="one")
        with pytest.raises(RateLimited) as info:
            rest.messages.create(to="+15551230002", from_="+15550001111", body="two")
        assert info.value.may_have_been_sent is False
        assert [m.to for m in rest.messages.list()] == ["+15551230001"]  # nothing else sent
        clock.now += 1.0
        rest.messages.create(to="+15551230003", from_="+15550001111", body="three")
        assert len(rest.messages.list()) == 2


def test_one_limit_shared_by_two_clients(emu: object) -> None:
    e: swsync.Emulator = emu  # type: ignore[assignment]
    clock = FakeClock()
    limit = RateLimit(2, burst=1, max_wait=None, clock=clock, sleep=clock.sleep)
    with (
        swsync.RelayClient(e.project, e.token, e.relay_url, rate_limit=limit) as relay,
        swsync.RestClient(e.project, e.token, e.rest_url, rate_limit=limit) as rest,
    ):
        relay.send_message("+15551230001", "+15550001111", "a")
        rest.messages.create(to="+15551230002", from_="+15550001111", body="b")
        relay.send_message("+15551230003", "+15550001111", "c")
    assert clock.sleeps == pytest.approx([0.5, 1.0])  # one bucket for the sender
