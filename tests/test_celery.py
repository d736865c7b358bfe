"""swsync.celery with real Celery workers (prefork, 2 processes), a real Redis and the emulator."""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Iterator
from typing import Any

import kombu.exceptions
import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from swsync import RedisUnavailable
from swsync.emulator import Emulator

from .helpers import wait_for
from .support.celeryd import WorkerPool, worker_env
from .support.ports import free_port
from .support.redisd import RedisServer

pytestmark = pytest.mark.timeout(120)

FROM = "+15557770000"
_dbs = itertools.cycle(range(1, 16))


class Setup:
    """A Redis database for the broker/results/records, an emulator, worker pools."""

    def __init__(self, redis_server: Any, emu: Emulator) -> None:
        self.emu = emu
        self.broker = redis_server.db_url(next(_dbs))
        redis.Redis.from_url(self.broker).flushdb()
        self.app = Celery("producer", broker=self.broker, backend=self.broker)
        self.app.conf.update(broker_transport_options={"visibility_timeout": 2})
        self.pools: list[WorkerPool] = []

    def pool(self, name: str, pool: str = "prefork", concurrency: int = 2, **extra: str) -> WorkerPool:
        worker = WorkerPool(
            name, worker_env(broker=self.broker, emu=self.emu, **extra), pool=pool, concurrency=concurrency
        )
        self.pools.append(worker)
        return worker

    def send(self, key: str | None = None, to: str = "+15551230000", **kw: Any) -> AsyncResult:
        kwargs = dict(kw, key=key) if key is not None else kw
        return self.app.send_task("swsync.send_message", args=[to, FROM, f"body {key}"], kwargs=kwargs)

    def results(self, results: list[AsyncResult], timeout: float) -> list[Any]:
        deadline = time.monotonic() + timeout
        out = []
        for r in results:
            try:
                out.append(r.get(timeout=max(0.1, deadline - time.monotonic()), propagate=False))
            except Exception as exc:  # a timeout: show what the workers said
                logs = "\n".join(p.output() for p in self.pools)
                raise AssertionError(f"no result for {r.id}: {exc!r}\n{logs}") from exc
        return out

    def sent_bodies(self) -> collections.Counter[str]:
        return collections.Counter(r.body or "" for r in self.emu.store.select(lambda r: r.direction != "inbound"))

    def close(self) -> None:
        for p in self.pools:
            p.stop()
        self.app.close()


@pytest.fixture
def setup(redis_server: Any) -> Iterator[Setup]:
    with Emulator(state_delay=0.0) as emu:
        s = Setup(redis_server, emu)
        try:
            yield s
        finally:
            s.close()


def test_n_tasks_send_exactly_n_messages(setup: Setup) -> None:
    setup.pool("a")
    results = [setup.send(f"k{i}") for i in range(40)]
    out = setup.results(results, 60)
    assert [r["outcome"] for r in out] == ["accepted"] * 40, out
    assert [r["key"] for r in out] == [f"k{i}" for i in range(40)]
    assert all(r["state"] in ("queued", "initiated", "sent", "delivered") and r["message_id"] for r in out)
    assert len({r["message_id"] for r in out}) == 40
    bodies = setup.sent_bodies()
    assert bodies == collections.Counter(f"body k{i}" for i in range(40))
    for r in out:
        assert setup.emu.get_message(r["message_id"])["body"] == f"body {r['key']}"  # type: ignore[index]


@pytest.mark.parametrize("kind,concurrency", [("solo", 1), ("threads", 4)])
def test_solo_and_threads_pools_send_through_one_client_per_process(setup: Setup, kind: str, concurrency: int) -> None:
    setup.pool("a", pool=kind, concurrency=concurrency)
    out = setup.results([setup.send(f"{kind}{i}", wait=True, timeout=20) for i in range(12)], 60)
    assert [r["outcome"] for r in out] == ["delivered"] * 12, out
    assert setup.sent_bodies() == collections.Counter(f"body {kind}{i}" for i in range(12))
    assert setup.emu.clients == 1  # one worker process: one RELAY connection, shared by its threads


def test_wait_reports_the_final_state_and_key_defaults_to_task_id(setup: Setup) -> None:
    setup.pool("a")
    delivered = setup.send(wait=True, timeout=20)
    failed = setup.send("f", to="+15550000003", wait=True, timeout=20)
    d, f = setup.results([delivered, failed], 60)
    assert d["outcome"] == "delivered" and d["state"] == "delivered" and d["key"] == delivered.id
    assert f["outcome"] == "failed" and f["state"] == "failed" and f["reason"] == "unreachable"


def test_a_key_is_never_sent_twice(setup: Setup) -> None:
    setup.pool("a")
    first = setup.results([setup.send("same")], 60)[0]
    again = setup.results([setup.send("same"), setup.send("same", wait=True)], 60)
    assert first["outcome"] == "accepted"
    assert again == [first, first]  # the recorded result, nothing sent
    assert setup.sent_bodies() == {"body same": 1}


def test_a_refused_send_fails_the_task_and_frees_its_key(setup: Setup) -> None:
    import swsync.celery  # imported where the result is read: the JSON result rebuilds as SendRefused

    setup.pool("a")
    refused = setup.send("r", to="+15550000005")
    setup.results([refused], 60)
    assert refused.state == "FAILURE"
    assert "swsync.errors.RelayError" in (refused.traceback or "")
    assert isinstance(refused.result, swsync.celery.SendRefused), repr(refused.result)
    assert refused.result.error == "RelayError" and "code" in refused.result.text, repr(refused.result)
    assert str(refused.result).startswith("RelayError: ")
    # Nothing was sent, so the key was released: a corrected send under it goes out.
    ok = setup.results([setup.send("r")], 60)[0]
    assert ok["outcome"] == "accepted"
    assert setup.sent_bodies() == {"body r": 1}


def test_not_sent_is_retried_until_it_goes_out(setup: Setup) -> None:
    # Send records on a Redis that is down at first: each attempt provably sends
    # nothing (RedisUnavailable) and is retried; once Redis is back it goes out once.
    records = RedisServer()
    try:
        setup.pool("a", SWSYNC_TEST_RECORDS=records.url, SWSYNC_TEST_RETRIES="200")
        result = setup.send("late")
        wait_for(lambda: result.state == "RETRY", 60, "a retry")
        assert setup.sent_bodies() == {}
        records.start()
        out = setup.results([result], 60)[0]
        assert out["outcome"] == "accepted"
        assert setup.sent_bodies() == {"body late": 1}
    finally:
        records.close()


def test_redis_stopped_mid_run_fails_closed_and_sends_nothing_twice(setup: Setup) -> None:
    setup.emu.state_delay = 0.02  # each task takes a moment, so Redis stops mid-batch
    records = RedisServer().start()
    try:
        setup.pool("a", SWSYNC_TEST_RECORDS=records.url, SWSYNC_TEST_RETRIES="2")
        keys = [f"k{i}" for i in range(40)]
        results = [setup.send(k, wait=True, timeout=20) for k in keys]
        wait_for(lambda: sum(setup.sent_bodies().values()) >= 6, 60, "the first sends")
        records.stop()
        out = setup.results(results, 90)
    finally:
        records.close()
    bodies = setup.sent_bodies()
    assert max(bodies.values()) == 1, bodies
    failed = [k for k, r in zip(keys, results, strict=True) if r.state == "FAILURE"]
    assert failed, "every task finished before Redis stopped"
    for key, r, value in zip(keys, results, out, strict=True):
        if r.state == "FAILURE":
            assert "swsync.errors.RedisUnavailable" in (r.traceback or ""), r.traceback
            assert f"body {key}" not in bodies  # failed closed: never sent
        else:
            assert f"body {key}" in bodies and value["outcome"] == "delivered", value
    print(
        f"\nRedis stopped mid-run: {len(bodies)} sent once each, {len(failed)} failed "
        "with RedisUnavailable, 0 sent twice"
    )


def test_sigkill_mid_batch_loses_no_key_and_sends_none_twice(setup: Setup) -> None:
    setup.emu.state_delay = 0.02
    victim = setup.pool("a")
    setup.pool("b")
    keys = [f"k{i}" for i in range(100)]
    results = [setup.send(k, wait=True, timeout=20) for k in keys]
    wait_for(lambda: sum(setup.sent_bodies().values()) >= 20, 60, "the first sends")
    victim.kill()  # SIGKILL: the pool's main process and both children
    out = setup.results(results, 90)  # A's unacknowledged tasks come back to B
    bodies = setup.sent_bodies()
    assert max(bodies.values()) == 1, [b for b, n in bodies.items() if n > 1]
    outcomes = collections.Counter()
    for key, r, value in zip(keys, results, out, strict=True):
        assert r.state == "SUCCESS", (key, r.state, value)
        outcomes[value["outcome"]] += 1
        if f"body {key}" in bodies:
            assert value["outcome"] in ("delivered", "accepted", "unknown"), value
        else:  # never reached the emulator: it must not claim to have been sent
            assert value["outcome"] == "unknown", value
    lost = [k for k, v in zip(keys, out, strict=True) if f"body {k}" not in bodies and v["outcome"] != "unknown"]
    assert not lost
    print(f"\nSIGKILL mid-batch: {len(bodies)} of 100 sent, 0 twice, 0 lost; outcomes {dict(outcomes)}")


def test_two_worker_pools_share_one_rate_limit(setup: Setup) -> None:
    rate, n = 20.0, 60
    for name in ("a", "b"):  # 2 pools x 2 processes, one RateLimit(20/s, redis_url=...)
        setup.pool(name, SWSYNC_TEST_RATE=str(rate), SWSYNC_TEST_LIMIT_REDIS=setup.broker)
    results = [setup.send(f"k{i}") for i in range(n)]
    out = setup.results(results, 90)
    assert all(r["outcome"] == "accepted" for r in out), out
    times = sorted(r.date_created.timestamp() for r in setup.emu.store.select(lambda r: r.direction != "inbound"))
    assert len(times) == n
    measured = (n - 1) / (times[-1] - times[0])
    # Two unshared limits would allow 2x; the 10% margin absorbs scheduling jitter
    # of the first and last send on a loaded machine (bench/ measures accuracy).
    assert rate * 0.5 <= measured <= rate * 1.10, measured
    print(f"\nshared limit {rate:g}/s, 2 pools x 2 processes: {measured:.2f} msgs/s at the emulator")


def test_two_listeners_split_inbound_and_handle_each_once(setup: Setup) -> None:
    from .support.celeryd import Listener

    env = worker_env(broker=setup.broker, emu=setup.emu)
    setup.pool("a")
    listeners = [Listener(env, "--task", "tests.handle_inbound", "--context", "inbound") for _ in range(2)]
    try:
        setup.emu.wait_for_clients(4, timeout=60)  # 2 worker processes + 2 listeners
        ids = {
            setup.emu.inject_inbound(
                to_number="+15551110000", from_number="+15552220000", body=f"in {i}", context="inbound"
            )
            for i in range(1000)
        }
        r = redis.Redis.from_url(setup.broker)
        wait_for(lambda: r.llen("test:handled") >= 1000, 90, "1000 handled messages")
        setup.emu.wait_until(lambda: setup.emu.unacked_events == 0, timeout=30)  # all ACKed
        handled = [line.decode().split(" ", 1) for line in r.lrange("test:handled", 0, -1)]
    finally:
        codes = [listener.stop() for listener in listeners]
    assert codes == [0, 0]
    counts = collections.Counter(mid for mid, _ in handled)
    assert set(counts) == ids and max(counts.values()) == 1  # all of them, each exactly once
    by_listener = collections.Counter(origin for _, origin in handled)
    assert len(by_listener) == 2 and min(by_listener.values()) > 0, by_listener
    print(f"\ntwo listeners, 1000 inbound: handled once each, split {sorted(by_listener.values())}")


def inbound_copy(mid: str) -> Any:
    """What a redelivered ``messaging.receive`` becomes: a message with the same id."""

    class Copy:
        message_id, context, direction, from_number, to_number = mid, "office", "inbound", "+1", "+2"
        body, media, tags, segments, state = "x", [], [], 1, "received"

    return Copy()


def test_a_redelivered_inbound_message_is_enqueued_once(setup: Setup) -> None:
    import swsync.celery
    from swsync import RelayClient

    forwarder = swsync.celery.InboundForwarder(setup.app, "tests.handle_inbound")
    calls: list[str] = []

    def counting(message: Any) -> None:
        calls.append(message.message_id)
        forwarder(message)

    client = RelayClient(setup.emu.project, setup.emu.token, setup.emu.relay_url, contexts=["office"])
    client.on_message(counting, ack_after=True)
    with client:
        mid = setup.emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="x", context="office")
        setup.emu.wait_until(lambda: setup.emu.unacked_events == 0)  # enqueued, then ACKed
    forwarder(inbound_copy(mid))  # the same message delivered again (another session, a resume)
    assert calls == [mid]
    r = redis.Redis.from_url(setup.broker)
    queued = r.lrange("celery", 0, -1)
    assert len(queued) == 1 and mid.encode() in queued[0]
    claim = r.get(f"swsync:inbound:{mid}")
    assert claim is not None and b'"enqueued"' in claim and r.ttl(f"swsync:inbound:{mid}") > 3600


def test_inbound_hand_off_failure_releases_the_claim_and_raises(setup: Setup) -> None:
    import swsync.celery

    dead = Celery("dead", broker=f"redis://127.0.0.1:{free_port()}/0")
    dead.conf.update(broker_connection_timeout=1.0)
    forwarder = swsync.celery.InboundForwarder(
        dead, "tests.handle_inbound", redis_url=setup.broker, task_options={"retry": False}
    )
    with pytest.raises(kombu.exceptions.OperationalError):  # the broker is down: not enqueued, so not acknowledged
        forwarder(inbound_copy("m-1"))
    assert redis.Redis.from_url(setup.broker).get("swsync:inbound:m-1") is None  # free to retry
    dead.close()


def test_listen_celery_options_are_checked_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    from swsync.cli import main

    creds = ["--project", "p", "--token", "t", "--space", "ws://127.0.0.1:9"]
    assert main(["listen", "--task", "x", *creds]) == 2
    assert "--celery-app and --task go together" in capsys.readouterr().err
    assert main(["listen", "--celery-app", "no_such_module:app", "--task", "x", *creds]) == 2
    assert "cannot import the Celery app module 'no_such_module'" in capsys.readouterr().err


def test_the_core_never_imports_celery_or_redis() -> None:
    import subprocess
    import sys

    code = (
        "import sys, swsync, swsync.relay, swsync.rest, swsync.ratelimit, swsync.bulk, swsync.cli\n"
        "from swsync import RateLimit\n"
        "RateLimit(4).acquire(from_number='+15551230000', body='hi')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'redis', 'kombu')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_sigkill_while_sends_wait_for_the_limit_leaves_almost_no_key_in_doubt(setup: Setup) -> None:
    # 8 threads in the victim wait for a shared 20/s limit when it dies. The key is
    # claimed after the pacing wait, so only a send caught between its claim and
    # SignalWire's answer can end "unknown"; the waiting ones are simply sent by B.
    limit = {"SWSYNC_TEST_RATE": "20", "SWSYNC_TEST_LIMIT_REDIS": setup.broker}
    victim = setup.pool("a", pool="threads", concurrency=8, **limit)
    setup.pool("b", **limit)
    keys = [f"k{i}" for i in range(60)]
    results = [setup.send(k) for k in keys]
    wait_for(lambda: sum(setup.sent_bodies().values()) >= 10, 60, "the first sends")
    victim.kill()
    out = setup.results(results, 90)
    bodies = setup.sent_bodies()
    assert max(bodies.values()) == 1
    outcomes = collections.Counter(v["outcome"] for v in out)
    for key, value in zip(keys, out, strict=True):
        assert f"body {key}" in bodies or value["outcome"] == "unknown", value
    assert outcomes["unknown"] <= 2, outcomes
    print(
        f"\nSIGKILL with 8 sends waiting for the limit: {len(bodies)} of 60 sent, 0 twice, "
        f"0 lost; outcomes {dict(outcomes)}"
    )


def test_listen_api_hands_inbound_to_celery_until_sigterm(setup: Setup) -> None:
    import signal
    import subprocess
    import sys

    from .support.celeryd import ROOT

    code = (
        "import swsync.celery\n"
        "swsync.celery.listen('tests.support.celery_app:app', 'tests.handle_inbound', contexts=['desk'])\n"
        "print('stopped cleanly')"
    )
    env = worker_env(broker=setup.broker, emu=setup.emu)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        setup.emu.wait_for_clients(1, timeout=30)
        mid = setup.emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="x", context="desk")
        r = redis.Redis.from_url(setup.broker)
        wait_for(lambda: r.llen("celery") == 1, 30, "the task in the broker")
        setup.emu.wait_until(lambda: setup.emu.unacked_events == 0)
        assert mid.encode() in r.lindex("celery", 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped cleanly" in out, out


def test_listen_refuses_a_task_the_app_does_not_know_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    # A mistyped --task used to be enqueued, ACKed and then dropped by the worker
    # ("Received unregistered task"): every inbound message lost.
    import swsync.celery
    from swsync import ConfigurationError
    from swsync.cli import main

    creds = ["--project", "p", "--token", "t", "--space", "ws://127.0.0.1:9"]
    assert (
        main(["listen", "--celery-app", "tests.support.celery_app:app", "--task", "tests.handle_inbond", *creds]) == 2
    )
    err = capsys.readouterr().err
    assert "task 'tests.handle_inbond' is not registered" in err and "tests.handle_inbound" in err, err
    with pytest.raises(ConfigurationError, match="'tests.handle_inbond' is not registered"):
        swsync.celery.listen(
            "tests.support.celery_app:app",
            "tests.handle_inbond",
            project="p",
            token="t",
            space="ws://127.0.0.1:9",
            contexts=["x"],
        )
    # A producer app that does not import the task's module: the dotted name is imported.
    producer = Celery("producer", broker=f"redis://127.0.0.1:{free_port()}/0")
    swsync.celery.check_task(producer, "tests.support.celery_tasks.handled")
    with pytest.raises(ConfigurationError, match="is not registered"):
        swsync.celery.check_task(producer, "tests.support.celery_tasks.nope")
    producer.close()


def test_listen_exits_4_before_connecting_when_redis_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    from swsync.cli import main

    dead = f"redis://127.0.0.1:{free_port()}/0"
    creds = ["--project", "p", "--token", "t", "--space", "ws://127.0.0.1:9"]
    assert (
        main(
            [
                "listen",
                "--celery-app",
                "tests.support.celery_app:app",
                "--task",
                "tests.handle_inbound",
                "--redis-url",
                dead,
                *creds,
            ]
        )
        == 4
    )
    err = capsys.readouterr().err
    assert "inbound claims unavailable" in err and "not listening" in err, err
    assert "nothing was sent" not in err and "ws://127.0.0.1:9" not in err, err
    import swsync.celery

    with pytest.raises(RedisUnavailable, match="inbound claims unavailable.*not listening"):
        swsync.celery.listen(
            "tests.support.celery_app:app",
            "tests.handle_inbound",
            redis_url=dead,
            project="p",
            token="t",
            space="ws://127.0.0.1:9",
            contexts=["x"],
        )


def test_a_forwarder_whose_redis_fails_raises_quietly_and_asks_to_stop_once(redis_server: Any) -> None:
    import swsync.celery

    stops: list[str] = []
    with RedisServer() as claims:
        forwarder = swsync.celery.InboundForwarder(
            Celery("p", broker=redis_server.url),
            "tests.support.celery_tasks.handled",
            redis_url=claims.url,
            on_failure=lambda: stops.append("x"),
        )
        forwarder.check()
        claims.stop()
        for mid in ("m-1", "m-2"):
            with pytest.raises(swsync.celery.InboundNotAcknowledged, match="will be redelivered") as info:
                forwarder(inbound_copy(mid))
            assert info.value.reported  # logged as one line: the RELAY client prints no traceback
    forwarder.join()
    assert stops == ["x"] and isinstance(forwarder.failure, RedisUnavailable)


def test_listen_stops_when_redis_fails_and_leaves_the_message_unacknowledged(setup: Setup) -> None:
    from .support.celeryd import Listener

    claims = RedisServer().start()
    env = worker_env(broker=setup.broker, emu=setup.emu)
    listener = Listener(env, "--task", "tests.handle_inbound", "--context", "in", "--redis-url", claims.url)
    try:
        setup.emu.wait_for_clients(1, timeout=30)
        first = setup.emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="a", context="in")
        setup.emu.wait_until(lambda: setup.emu.unacked_events == 0, timeout=30)  # handed on, ACKed
        claims.stop()
        second = setup.emu.inject_inbound(to_number="+15551110000", from_number="+15552220000", body="b", context="in")
        code = listener.proc.wait(timeout=30)  # it stops by itself: no share of traffic it cannot hand on
        out = listener.output()
        assert setup.emu.unacked_events == 1  # the second message: not acknowledged
    finally:
        listener.stop()
        claims.close()
    assert code == 4, out
    queued = redis.Redis.from_url(setup.broker).lrange("celery", 0, -1)
    assert len(queued) == 1 and first.encode() in queued[0] and second.encode() not in queued[0]
    assert f"inbound {second}: inbound claims unavailable" in out, out
    assert "the message was not acknowledged and will be redelivered" in out, out
    assert "Traceback" not in out and "nothing was sent" not in out, out
