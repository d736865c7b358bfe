"""Round trips of swsync.rest against the real emulator over loopback sockets."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from swsync.emulator import FAILED_NUMBER, REJECTED_NUMBER, Emulator
from swsync.errors import RestError
from swsync.rest import MessageRecord, MessageStatus, Page, RestClient

TO = "+15557654321"
FROM = "+15551234567"
OTHER = "+15557000001"


# Retry delays are recorded (the ``sleeps`` fixture), never slept.
pytestmark = pytest.mark.usefixtures("sleeps")


@pytest.fixture
def rest(emu: Emulator) -> Iterator[RestClient]:
    with RestClient(emu.project, emu.token, emu.rest_url) as client:
        yield client


def log_since(emu: Emulator, start: int) -> list[tuple[str, str]]:
    return emu.request_log[start:]


def test_create_fetch_redact_delete(emu: Emulator, rest: RestClient) -> None:
    created = rest.messages.create(to=TO, from_=FROM, body="Hello World!")
    assert created.status is MessageStatus.QUEUED
    assert (created.to, created.from_, created.body, created.num_segments) == (TO, FROM, "Hello World!", 1)
    assert created.direction == "outbound-api" and created.account_sid == emu.project
    assert created.date_created is not None and created.date_created.tzinfo is not None
    assert created.date_sent is None and created.price is None

    emu.wait_for_status(created.sid, "delivered", timeout=5)
    fetched = rest.messages(created.sid).fetch()
    assert fetched.sid == created.sid and fetched.status is MessageStatus.DELIVERED
    assert fetched.status.is_final
    assert isinstance(fetched.price, Decimal) and fetched.price > 0
    assert fetched.date_sent is not None and fetched.date_sent.utcoffset() == dt.timedelta(0)

    redacted = rest.messages(created.sid).update(body="")
    assert redacted.body in ("", None)
    assert rest.messages(created.sid).fetch().body in ("", None)

    rest.messages(created.sid).delete()  # returns None on 204
    with pytest.raises(RestError) as info:
        rest.messages(created.sid).fetch()
    assert (info.value.status, info.value.code, info.value.method) == (404, 20404, "GET")


def test_list_with_each_filter(emu: Emulator, rest: RestClient) -> None:
    emu.add_messages(60, to=OTHER, from_=FROM, body="seeded {i}")  # hourly, over ~3 days
    delivered = rest.messages.create(to=TO, from_=FROM, body="to TO")
    failed = rest.messages.create(to=FAILED_NUMBER, from_=OTHER, body="will fail")
    emu.wait_for_status(delivered.sid, "delivered", timeout=5)
    emu.wait_for_status(failed.sid, "failed", timeout=5)

    everything = rest.messages.list(page_size=1000)
    assert len(everything) == 62
    assert [r.sid for r in rest.messages.list(to=TO)] == [delivered.sid]
    assert {r.sid for r in rest.messages.list(from_=OTHER)} == {failed.sid}
    failures = rest.messages.list(status=MessageStatus.FAILED)
    assert [r.sid for r in failures] == [failed.sid]
    assert failures[0].error_code == 30003 and failures[0].error_message

    sent = [r for r in everything if r.date_sent is not None]
    days = sorted({r.date_sent.date() for r in sent if r.date_sent is not None})
    assert len(days) >= 3
    middle = days[len(days) // 2]

    def sids(records: list[MessageRecord]) -> set[str]:
        return {r.sid for r in records}

    on = {r.sid for r in sent if r.date_sent and r.date_sent.date() == middle}
    before = {r.sid for r in sent if r.date_sent and r.date_sent.date() <= middle}
    after = {r.sid for r in sent if r.date_sent and r.date_sent.date() >= middle}
    assert on and before != sids(everything) and after != sids(everything)
    assert sids(rest.messages.list(date_sent=middle, page_size=1000)) == on
    assert sids(rest.messages.list(date_sent_before=middle.isoformat(), page_size=1000)) == before
    # A datetime is reduced to its UTC date.
    noon = dt.datetime.combine(middle, dt.time(12), tzinfo=dt.timezone.utc)
    assert sids(rest.messages.list(date_sent_after=noon, page_size=1000)) == after

    start = len(emu.request_log)
    rest.messages.list(to=TO, status="delivered", date_sent_before=middle)
    ((method, path),) = log_since(emu, start)
    assert method == "GET" and "DateSent%3C=" in path and "To=%2B15557654321" in path


def test_stream_2500_in_three_requests(emu: Emulator, rest: RestClient) -> None:
    seeded = emu.add_messages(2500, to=TO, from_=FROM, body="bulk {i}")
    start = len(emu.request_log)
    stream = rest.messages.stream(page_size=1000)
    assert log_since(emu, start) == []  # lazy until iterated
    sids = [r.sid for r in stream]
    assert sids == seeded  # newest first, every one exactly once
    log = log_since(emu, start)
    assert len(log) == 3 and all(method == "GET" for method, _ in log)
    queries = [parse_qs(urlsplit(path).query) for _, path in log]
    assert queries[0] == {"PageSize": ["1000"]}
    assert all("PageToken" in q for q in queries[1:])


def test_limit_and_pages(emu: Emulator, rest: RestClient) -> None:
    seeded = emu.add_messages(25, to=TO, from_=FROM, body="x {i}")
    start = len(emu.request_log)
    assert [r.sid for r in rest.messages.list(limit=7)] == seeded[:7]
    assert len(log_since(emu, start)) == 1
    assert [r.sid for r in rest.messages.list(limit=12, page_size=5)] == seeded[:12]
    assert len(log_since(emu, start)) == 1 + 3

    page: Page[MessageRecord] | None = rest.messages.page(page_size=10)
    collected: list[str] = []
    uris: list[str | None] = []
    while page is not None:
        collected.extend(r.sid for r in page.records)
        uris.append(page.next_page_uri)
        page = page.next_page()
    assert collected == seeded and len(uris) == 3 and uris[-1] is None


def test_media_list_fetch_delete(emu: Emulator, rest: RestClient) -> None:
    urls = ["https://example.com/a.jpg", "https://example.com/b.png"]
    created = rest.messages.create(to=TO, from_=FROM, media_url=urls)
    assert created.num_media == 2 and created.body in ("", None)
    emu.wait_for_status(created.sid, "delivered", timeout=5)

    media = rest.messages(created.sid).media.list()
    assert sorted(m.content_type or "" for m in media) == ["image/jpeg", "image/png"]
    assert all(m.parent_sid == created.sid and m.date_created is not None for m in media)
    one = rest.messages(created.sid).media(media[0].sid).fetch()
    assert one == media[0]
    assert [m.sid for m in rest.messages(created.sid).media.stream(page_size=1)] == [m.sid for m in media]

    rest.messages(created.sid).media(media[0].sid).delete()  # returns None on 204
    assert [m.sid for m in rest.messages(created.sid).media.list()] == [media[1].sid]
    with pytest.raises(RestError) as info:
        rest.messages(created.sid).media(media[0].sid).fetch()
    assert info.value.status == 404


def test_wrong_token_is_401_and_not_retried(emu: Emulator, sleeps: list[float]) -> None:
    start = len(emu.request_log)
    with RestClient(emu.project, "not-the-token", emu.rest_url) as bad:
        with pytest.raises(RestError) as info:
            bad.messages.list()
    err = info.value
    assert (err.status, err.code, err.method) == (401, 20003, "GET")
    assert err.url.startswith(emu.rest_url) and "not-the-token" not in str(err)
    assert len(log_since(emu, start)) == 1 and sleeps == []


def test_unknown_sid_is_404(emu: Emulator, rest: RestClient) -> None:
    sid = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(RestError) as info:
        rest.messages(sid).fetch()
    err = info.value
    assert (err.status, err.code) == (404, 20404)
    assert err.url == f"{rest.base_url}Messages/{sid}.json" and err.message and err.more_info


def test_rejected_number_is_422(rest: RestClient) -> None:
    with pytest.raises(RestError) as info:
        rest.messages.create(to=REJECTED_NUMBER, from_=FROM, body="no")
    assert (info.value.status, info.value.code, info.value.method) == (422, 21211, "POST")


def test_429_with_retry_after_is_retried(emu: Emulator, rest: RestClient, sleeps: list[float]) -> None:
    emu.faults.retry_after = "2"
    emu.faults.rest_throttle = 2
    creates = emu.stats.rest_creates
    start = len(emu.request_log)
    record = rest.messages.create(to=TO, from_=FROM, body="after throttling")
    assert record.status is MessageStatus.QUEUED
    assert sleeps == [2.0, 2.0]  # the server's Retry-After, not the backoff
    assert [m for m, _ in log_since(emu, start)] == ["POST", "POST", "POST"]
    assert emu.stats.rest_creates == creates + 1


def test_429_until_retries_run_out(emu: Emulator, rest: RestClient, sleeps: list[float]) -> None:
    emu.faults.retry_after = "0"
    emu.faults.rest_throttle = 10
    with pytest.raises(RestError) as info:
        rest.messages.list()
    assert (info.value.status, info.value.code) == (429, 20429)
    assert sleeps == [0.0, 0.0, 0.0]


def test_500_retried_for_get_never_for_post(emu: Emulator, rest: RestClient, sleeps: list[float]) -> None:
    creates = emu.stats.rest_creates
    emu.faults.rest_error = 1
    with pytest.raises(RestError) as info:
        rest.messages.create(to=TO, from_=FROM, body="maybe")
    assert (info.value.status, info.value.code) == (500, 20504)
    assert emu.stats.rest_creates == creates and sleeps == []

    emu.faults.rest_error = 2
    start = len(emu.request_log)
    assert rest.messages.list() == []
    assert len(log_since(emu, start)) == 3 and sleeps == [0.5, 1.0]


def test_in_progress_message_cannot_be_redacted_or_deleted() -> None:
    with Emulator(state_delay=30.0) as slow:  # the message stays queued for the whole test
        with RestClient(slow.project, slow.token, slow.rest_url) as rest:
            record = rest.messages.create(to=TO, from_=FROM, body="still queued")
            with pytest.raises(RestError) as redact:
                rest.messages(record.sid).update(body="")
            with pytest.raises(RestError) as delete:
                rest.messages(record.sid).delete()
    assert redact.value.code == 10000 and redact.value.method == "POST"
    assert delete.value.code == 20009 and delete.value.method == "DELETE"


def test_one_client_shared_by_threads(emu: Emulator, rest: RestClient) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()  # guards results and errors

    def worker(n: int) -> None:
        try:
            for i in range(20):
                sid = rest.messages.create(to=TO, from_=FROM, body=f"t{n} m{i}").sid
                with lock:
                    results.append(sid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,), name=f"test-rest-{n}") for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and len(set(results)) == 80
    assert {r.sid for r in rest.messages.list(page_size=1000)} == set(results)


def test_raw_keeps_every_field(rest: RestClient) -> None:
    record = rest.messages.create(to=TO, from_=FROM, body="raw")
    raw: Any = record.raw
    assert raw["sid"] == record.sid and raw["from"] == FROM
    assert set(raw) >= {"account_sid", "api_version", "uri", "subresource_uris", "price_unit"}
    assert record.subresource_uris["media"] == record.uri.removesuffix(".json") + "/Media.json"
