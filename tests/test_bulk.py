"""send_many against the emulator: every outcome, pacing, the journal and reruns."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swsync import Outbound, RateLimit
from swsync.bulk import derive_key
from swsync.emulator import Emulator
from swsync.emulator.store import FAILED_NUMBER, NO_DLR_NUMBER, REJECTED_NUMBER, UNDELIVERED_NUMBER
from swsync.errors import ConnectionClosedError, RateLimited, RelayError, WaitTimeout

from .helpers import make_client, sent_to

FROM = "+15550001111"


def journal_rows(path: Path) -> dict[str, tuple[str, str | None]]:
    # A separate connection, as another process reading the journal would use.
    with sqlite3.connect(path) as db:
        return {k: (o, m) for k, o, m in db.execute("SELECT key, outcome, message_id FROM sends")}


def test_each_outcome(emu: Any) -> None:
    numbers = {
        "ok": "+15551230001",
        "undelivered": UNDELIVERED_NUMBER,
        "failed": FAILED_NUMBER,
        "no_receipt": NO_DLR_NUMBER,
        "refused": REJECTED_NUMBER,
        "bad": "12",
    }
    with make_client(emu) as client:
        batch = client.send_many((Outbound(n, FROM, "hi", key=k) for k, n in numbers.items()), timeout=0.5)
        results = {r.key: r for r in batch}
    assert results["ok"].outcome == "delivered" and results["ok"].state == "delivered"
    assert results["ok"].message_id and results["ok"].error is None
    assert results["undelivered"].outcome == "undelivered"
    assert results["undelivered"].reason == "carrier_blocked"
    assert results["failed"].outcome == "failed" and results["failed"].reason == "unreachable"
    no_receipt = results["no_receipt"]
    assert no_receipt.outcome == "accepted" and no_receipt.state == "sent"
    assert isinstance(no_receipt.error, WaitTimeout) and no_receipt.may_have_been_sent
    assert results["refused"].outcome == "not_sent"
    assert isinstance(results["refused"].error, RelayError)
    assert results["refused"].may_have_been_sent is False
    assert results["bad"].outcome == "not_sent" and isinstance(results["bad"].error, ValueError)
    summary = batch.summary
    assert summary.done and summary.total == 6 and summary.sent == 4
    assert summary.counts == {"delivered": 1, "undelivered": 1, "failed": 1, "accepted": 1, "unknown": 0, "not_sent": 2}
    assert summary.rate > 0 and "6 results" in str(summary)


def test_no_wait_stops_at_accepted(emu: Any) -> None:
    with make_client(emu) as client:
        results = list(client.send_many([Outbound(f"+1555123{i:04d}", FROM, "hi") for i in range(20)], wait=False))
    assert len(results) == 20
    assert {r.outcome for r in results} == {"accepted"}
    assert all(r.message_id for r in results)
    assert sorted(r.index for r in results) == list(range(20))


def test_lazy_and_windowed(emu: Any) -> None:
    # The generator is never more than 2 x `window` outbounds ahead of the results taken.
    window = 4
    produced = 0
    taken = 0
    lead: list[int] = []

    def rows() -> Iterator[Outbound]:
        nonlocal produced
        for i in range(60):
            lead.append(produced - taken)
            produced += 1
            yield Outbound(f"+1555200{i:04d}", FROM, "hi")

    with make_client(emu) as client:
        for _ in client.send_many(rows(), window=window):
            taken += 1
    assert taken == 60
    assert max(lead) <= 2 * window


def test_slow_consumer_stalls_nobody_else(emu: Any) -> None:
    with make_client(emu) as client:
        batch = client.send_many((Outbound(f"+1555300{i:04d}", FROM, "hi") for i in range(10)), window=2)
        first = next(batch)  # then the consumer pauses, holding the window full
        # Meanwhile other threads send on the same client, and events keep flowing.
        msg = client.send_message("+15553999999", FROM, "other")
        assert msg.wait(timeout=5).message_state == "delivered"
        rest = list(batch)
    assert first.outcome == "delivered" and len(rest) == 9


def test_connection_lost_mid_batch(emu: Any, tmp_path: Path) -> None:
    journal = tmp_path / "sends.db"

    def rows() -> Iterator[Outbound]:
        for i in range(5):
            yield Outbound(NO_DLR_NUMBER, FROM, f"pending {i}", key=f"p{i}")
        # Once the five are accepted (as the journal shows), the connection drops for good.
        emu.wait_until(lambda: sum(o == "accepted" for o, _ in journal_rows(journal).values()) == 5)
        emu.drop_connections()
        emu.wait_until(lambda: not client.connected)
        yield Outbound("+15554000001", FROM, "after", key="a1")
        yield Outbound("+15554000002", FROM, "after", key="a2")

    client = make_client(emu, reconnect=False)
    with client:
        results = {r.key: r for r in client.send_many(rows(), journal=str(journal), window=10)}
    for i in range(5):
        r = results[f"p{i}"]
        assert r.outcome == "accepted" and r.message_id and r.may_have_been_sent
        assert isinstance(r.error, ConnectionClosedError)
    for key in ("a1", "a2"):
        assert results[key].outcome == "not_sent" and results[key].may_have_been_sent is False
    rows_now = journal_rows(journal)
    assert {k: o for k, (o, _) in rows_now.items()} == {
        **{f"p{i}": "accepted" for i in range(5)},
        "a1": "not_sent",
        "a2": "not_sent",
    }


def test_rerun_never_sends_twice(emu: Any, tmp_path: Path) -> None:
    journal = str(tmp_path / "sends.db")
    ok, limited, unknown = "+15555000001", "+15555000002", "+15555000003"
    # Run 1: "ok" is delivered; "limited" is refused by the rate limit (provably not sent).
    strict = RateLimit(0.001, max_wait=0)
    with make_client(emu, rate_limit=strict) as client:
        first = {
            r.key: r
            for r in client.send_many(
                [Outbound(ok, FROM, "a", key="ok"), Outbound(limited, FROM, "b", key="limited")],
                journal=journal,
                window=1,
            )
        }
    assert first["ok"].outcome == "delivered"
    assert first["limited"].outcome == "not_sent" and isinstance(first["limited"].error, RateLimited)
    # Run 2: "unknown" gets no answer in time: it may have been sent.
    emu.faults.response_delay = 1.0
    with make_client(emu, request_timeout=0.2) as client:
        second = list(client.send_many([Outbound(unknown, FROM, "c", key="unknown")], journal=journal))
    emu.faults.response_delay = 0
    assert second[0].outcome == "unknown" and isinstance(second[0].error, WaitTimeout)
    assert sent_to(emu)[unknown] == 1  # it did reach the emulator

    everything = [
        Outbound(ok, FROM, "a", key="ok"),
        Outbound(limited, FROM, "b", key="limited"),
        Outbound(unknown, FROM, "c", key="unknown"),
        Outbound("+15555000004", FROM, "d", key="new"),
    ]
    with make_client(emu) as client:
        third = {r.key: r for r in client.send_many(everything, journal=journal)}
    assert third["ok"].outcome == "delivered" and third["ok"].replayed and third["ok"].error is None
    assert third["ok"].message_id == first["ok"].message_id
    assert third["limited"].outcome == "delivered" and not third["limited"].replayed
    assert third["unknown"].outcome == "unknown" and third["unknown"].replayed
    assert third["unknown"].error is not None and third["unknown"].may_have_been_sent
    assert third["new"].outcome == "delivered"
    counts = sent_to(emu)
    assert (counts[ok], counts[limited], counts[unknown]) == (1, 1, 1)

    with make_client(emu) as client:
        fourth = {r.key: r for r in client.send_many(everything, journal=journal, retry_unknown=True)}
    assert fourth["unknown"].outcome == "delivered" and not fourth["unknown"].replayed
    assert {fourth[k].replayed for k in ("ok", "limited", "new")} == {True}
    assert sent_to(emu)[unknown] == 2  # sent again, because the caller asked


def test_derived_keys_are_stable_and_duplicates_go_once(emu: Any, tmp_path: Path) -> None:
    a = Outbound("+15556000001", FROM, "same")
    assert derive_key(a) == derive_key(Outbound("+15556000001", FROM, "same"))
    assert derive_key(a) != derive_key(Outbound("+15556000001", FROM, "other"))
    assert derive_key(a).startswith("auto:")
    with make_client(emu) as client:
        results = list(client.send_many([a, a], journal=str(tmp_path / "j.db")))
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["delivered", "not_sent"]
    assert "duplicate key" in str(next(r for r in results if r.outcome == "not_sent").error)
    assert sent_to(emu)["+15556000001"] == 1


def test_paced_by_the_clients_rate_limit(emu: Any) -> None:
    calls: list[tuple[str, str | None, float]] = []
    lock = threading.Lock()

    class Recorder:
        def acquire(self, *, from_number: str, body: str | None, media: Any = (), account: str = "") -> None:
            with lock:
                calls.append((from_number, body, RateLimit(1).cost(body, media)))

    with make_client(emu, rate_limit=Recorder()) as client:
        list(client.send_many([Outbound("+15557000001", FROM, "x" * 200), Outbound("+15557000002", FROM, "short")]))
    assert sorted(calls) == [(FROM, "short", 1.0), (FROM, "x" * 200, 2.0)]


def test_bad_arguments(emu: Any) -> None:
    with make_client(emu) as client:
        with pytest.raises(ValueError):
            client.send_many([], window=0)
        with pytest.raises(ValueError):
            client.send_many([], timeout=-1)
        results = list(client.send_many(["not an outbound"]))  # type: ignore[list-item]
    assert results[0].outcome == "not_sent" and isinstance(results[0].error, TypeError)


def test_stop_collects_the_answers_in_flight(emu: Any, tmp_path: Path) -> None:
    journal = str(tmp_path / "j.db")
    with make_client(emu) as client:
        with client.send_many(
            (Outbound(f"+1555800{i:04d}", FROM, "hi") for i in range(10_000)), journal=journal, window=8
        ) as batch:
            first = next(batch)
            batch.stop()
            rest = list(batch)
    done = 1 + len(rest)
    assert first.outcome == "delivered" and done < 10_000
    rows = journal_rows(Path(journal))
    assert len(rows) == done  # nothing claimed that was not answered
    assert {o for o, _ in rows.values()} == {"delivered"}


KILLED_SENDER = r"""
import sys
from swsync import Outbound, RelayClient
project, token, url, journal = sys.argv[1:5]
rows = (Outbound("+1555900%04d" % i, "+15550001111", "hi", key="k%d" % i) for i in range(400))
with RelayClient(project, token, url) as client:
    for result in client.send_many(rows, journal=journal, window=16):
        print(result.key, flush=True)
"""


def kill_after(script: str, emu: Emulator, journal: Path, results: int) -> None:
    """Run a sender ``script`` against ``emu`` with ``journal``; SIGKILL it after it printed ``results`` keys."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, emu.project, emu.token, emu.relay_url, str(journal)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for _ in range(results):
        assert proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()


@pytest.mark.timeout(120)
def test_journal_resumes_after_sigkill(tmp_path: Path) -> None:
    journal = tmp_path / "sends.db"
    with Emulator(state_delay=0.002) as emu:
        kill_after(KILLED_SENDER, emu, journal, 50)  # well into the batch
        before = journal_rows(journal)
        assert 50 <= len(before) < 400
        with make_client(emu) as client:
            results = {
                r.key: r
                for r in client.send_many(
                    (Outbound(f"+1555900{i:04d}", FROM, "hi", key=f"k{i}") for i in range(400)),
                    journal=str(journal),
                    window=16,
                )
            }
        counts = sent_to(emu)
    assert len(results) == 400
    assert max(counts.values()) == 1  # never twice
    for i in range(400):
        r = results[f"k{i}"]
        assert r.outcome in ("delivered", "accepted", "unknown"), r
        if r.outcome == "unknown":  # cut off between the journal and the answer
            assert before[f"k{i}"][0] == "sending"
        else:
            assert counts[f"+1555900{i:04d}"] == 1
    replayed = sum(r.replayed for r in results.values())
    assert replayed == sum(o != "not_sent" for o, _ in before.values())


PACED_SENDER = r"""
import sys
from swsync import Outbound, RateLimit, RelayClient
project, token, url, journal = sys.argv[1:5]
rows = (Outbound("+1555910%04d" % i, "+15550001111", "hi", key="k%d" % i) for i in range(200))
limit = RateLimit(20, burst=1, max_wait=None)
with RelayClient(project, token, url, rate_limit=limit) as client:
    for result in client.send_many(rows, journal=journal, window=16):
        print(result.key, flush=True)
"""


@pytest.mark.timeout(120)
def test_waiting_for_a_turn_is_not_journaled(tmp_path: Path) -> None:
    # 16 senders queue on a 20/s limit; killed mid-batch, only a send that was
    # between its turn and SignalWire's answer may be left unknown, never the
    # ones still waiting for their turn.
    journal = tmp_path / "sends.db"
    with Emulator(state_delay=0.0) as emu:
        kill_after(PACED_SENDER, emu, journal, 10)
        rows = journal_rows(journal)
        sending = [k for k, (o, _) in rows.items() if o == "sending"]
        assert len(sending) <= 3, sending
        with make_client(emu) as client:
            results = list(
                client.send_many(
                    (Outbound(f"+1555910{i:04d}", FROM, "hi", key=f"k{i}") for i in range(200)), journal=str(journal)
                )
            )
        counts = sent_to(emu)
    assert max(counts.values()) == 1 and len(results) == 200
    assert sum(r.outcome == "unknown" for r in results) == len(sending)


def test_stop_ends_the_waits_for_a_turn_and_nothing_more_is_sent(emu: Any, tmp_path: Path) -> None:
    # A paced batch: the injected clock never moves, so every sender but the first
    # waits for its turn (in injected sleeps) until stop(); none of them may send.
    released = threading.Event()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        released.wait(10)  # bounded; the test releases it right after stop()

    limit = RateLimit(1, burst=1, max_wait=None, clock=lambda: 0.0, sleep=sleep)
    journal = str(tmp_path / "j.db")
    rows = [Outbound(f"+1555810{i:04d}", FROM, "hi", key=f"k{i}") for i in range(8)]
    with make_client(emu, rate_limit=limit) as client:
        with client.send_many(rows, journal=journal, window=4) as batch:
            first = next(batch)
            batch.stop()
            released.set()
            rest = list(batch)
    assert first.outcome == "delivered" and sleeps
    assert 3 <= len(rest) <= 4  # the senders that were waiting for their turn
    assert {r.outcome for r in rest} == {"not_sent"}
    assert all(r.may_have_been_sent is False for r in rest)
    assert sum(sent_to(emu).values()) == 1
    assert {k: o for k, (o, _) in journal_rows(Path(journal)).items()} == {first.key: "delivered"}
    with make_client(emu) as client:  # a rerun sends the rest, once each
        again = {r.key: r for r in client.send_many(rows, journal=journal)}
    assert again[first.key].replayed
    assert sorted(r.outcome for r in again.values()) == ["delivered"] * 8
    assert set(sent_to(emu).values()) == {1} and len(sent_to(emu)) == 8


@pytest.mark.timeout(30)
def test_a_journal_failure_after_acceptance_still_yields_the_result(emu: Any, tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    with sqlite3.connect(journal) as db:  # a journal whose "accepted" update fails, for real
        db.executescript("""
            CREATE TABLE sends (key TEXT PRIMARY KEY, to_number TEXT NOT NULL,
              from_number TEXT NOT NULL, body TEXT, media TEXT, outcome TEXT NOT NULL,
              message_id TEXT, state TEXT, reason TEXT, error TEXT,
              attempts INTEGER NOT NULL DEFAULT 1, run_id TEXT NOT NULL,
              created_at REAL NOT NULL, updated_at REAL NOT NULL);
            CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TRIGGER no_accept BEFORE UPDATE OF outcome ON sends
              WHEN NEW.outcome = 'accepted' BEGIN SELECT RAISE(ABORT, 'disk says no'); END;
        """)
    rows = [Outbound(f"+1555820{i:04d}", FROM, "hi", key=f"k{i}") for i in range(5)]
    results = []
    with make_client(emu) as client:
        batch = client.send_many(rows, journal=str(journal), window=1)
        with pytest.raises(sqlite3.Error, match="disk says no"):
            for r in batch:
                results.append(r)
    assert len(results) == 1  # the batch stopped after the failure
    assert results[0].outcome == "accepted" and results[0].message_id
    assert isinstance(results[0].error, sqlite3.Error) and results[0].may_have_been_sent
    assert sum(sent_to(emu).values()) == 1


def test_duplicate_keys_go_once_without_a_journal(emu: Any) -> None:
    a = Outbound("+15556100001", FROM, "same")
    k1, k2 = Outbound("+15556100002", FROM, "one", key="K"), Outbound("+15556100003", FROM, "two", key="K")
    with make_client(emu) as client:
        results = list(client.send_many([a, a, k1, k2], window=1))
    assert sorted(r.outcome for r in results) == ["delivered", "delivered", "not_sent", "not_sent"]
    dups = [r for r in results if r.outcome == "not_sent"]
    assert all("duplicate key" in str(r.error) and r.may_have_been_sent is False for r in dups)
    counts = sent_to(emu)
    assert counts["+15556100001"] == 1 and counts["+15556100002"] + counts["+15556100003"] == 1


def batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("swsync-batch-")]


def test_an_abandoned_batch_stops_and_its_threads_end(emu: Any, tmp_path: Path) -> None:
    import gc

    assert not batch_threads()
    journal = tmp_path / "j.db"
    with make_client(emu) as client:
        batch = client.send_many(
            (Outbound(f"+1555830{i:04d}", FROM, "hi") for i in range(1000)), journal=str(journal), window=2
        )
        first = next(batch)
        threads = batch_threads()
        assert len(threads) == 2
        del batch  # dropped mid-iteration: no `with`, no close()
        gc.collect()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        sent = sum(sent_to(emu).values())
        assert first.outcome == "delivered" and sent <= 1 + 2 * 2  # the read-ahead at most
        assert sent_to(emu).total() == sent  # nothing more goes out afterwards
    rows = journal_rows(journal)
    assert "sending" not in {o for o, _ in rows.values()} and len(rows) == sent
