"""swsync.optouts: keyword classification and the stores (no network)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from swsync.errors import OptedOutError
from swsync.optouts import (
    Keyword,
    MemoryOptOutStore,
    OptOutStore,
    SQLiteOptOutStore,
    check_not_opted_out,
    keyword,
)


@pytest.mark.parametrize(
    "body, expected",
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        ("  Stop.  ", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("unsubscribe", Keyword.OPT_OUT),
        ("Cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit!", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("unstop", Keyword.OPT_IN),
        ("HELP", Keyword.HELP),
        ("info", Keyword.HELP),
        ("please stop texting me", None),
        ("STOP IT", None),
        ("YES", None),
        ("", None),
        (None, None),
        ("stopp", None),
    ],
)
def test_keywords(body: str | None, expected: Keyword | None) -> None:
    assert keyword(body) is expected


@pytest.mark.parametrize("factory", [MemoryOptOutStore, lambda: SQLiteOptOutStore(":memory:")])
def test_store_round_trip(factory: object) -> None:
    store = factory()  # type: ignore[operator]
    assert isinstance(store, OptOutStore)
    assert not store.is_opted_out("+15551230000")
    store.opt_out("+15551230000")
    store.opt_out("+15551230000")  # twice is fine
    store.opt_out("12345")  # short codes too
    assert store.is_opted_out("+15551230000") and store.is_opted_out("12345")
    assert not store.is_opted_out("+15551230001")
    with pytest.raises(OptedOutError) as info:
        check_not_opted_out(store, "+15551230000")
    assert info.value.number == "+15551230000" and not info.value.may_have_been_sent
    assert isinstance(info.value, ValueError)
    store.opt_in("+15551230000")
    store.opt_in("+15551230000")
    assert not store.is_opted_out("+15551230000")
    check_not_opted_out(store, "+15551230000")
    check_not_opted_out(None, "+15551230000")
    with pytest.raises(ValueError):
        store.opt_out("not a number")


def test_sqlite_store_persists_and_is_shared_between_connections(tmp_path: Path) -> None:
    path = str(tmp_path / "o.db")
    first = SQLiteOptOutStore(path)
    second = SQLiteOptOutStore(path)
    first.opt_out("+15551230000")
    assert second.is_opted_out("+15551230000")
    second.opt_in("+15551230000")
    assert not first.is_opted_out("+15551230000")
    first.opt_out("+15551239999")
    first.close()
    second.close()
    reopened = SQLiteOptOutStore(path)
    assert reopened.is_opted_out("+15551239999")
    assert repr(reopened) == f"SQLiteOptOutStore({path!r})"
    reopened.close()


def test_sqlite_store_is_thread_safe(tmp_path: Path) -> None:
    store = SQLiteOptOutStore(str(tmp_path / "t.db"))
    numbers = [f"+1555000{i:04d}" for i in range(200)]
    errors: list[BaseException] = []

    def work(chunk: list[str]) -> None:
        try:
            for n in chunk:
                store.opt_out(n)
                assert store.is_opted_out(n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(numbers[i::4],), name=f"test-optout-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and all(store.is_opted_out(n) for n in numbers)
    store.close()


def test_send_many_reports_opted_out_numbers_as_not_sent(emu: object) -> None:
    from swsync import Outbound, RelayClient

    store = MemoryOptOutStore()
    store.opt_out("+15557650002")
    client = RelayClient(emu.project, emu.token, host=emu.relay_url, opt_outs=store)  # type: ignore[attr-defined]
    with client:
        batch = client.send_many(
            [
                Outbound(to_number=to, from_number="+15551230001", body="hi", key=to)
                for to in ("+15557650001", "+15557650002")
            ],
            wait=True,
            timeout=10,
        )
        results = {r.key: r for r in batch}
    assert results["+15557650001"].outcome == "delivered"
    refused = results["+15557650002"]
    assert refused.outcome == "not_sent" and not refused.may_have_been_sent
    assert isinstance(refused.error, OptedOutError) and refused.error.number == "+15557650002"
    sent_to = {m.to for m in emu.store.select(None)}  # type: ignore[attr-defined]
    assert sent_to == {"+15557650001"}
