"""Exact wire requests of swsync.rest (mocked at the HTTP boundary with ``responses``),
record parsing, the retry policy, and a few real-socket checks (refused port, dropped
connection, TLS with a private CA)."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import http.server
import inspect
import json
import pickle
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
import urllib3.exceptions

import swsync
from swsync.errors import ConfigurationError, RestError, SwsyncError
from swsync.rest import (
    MediaContext,
    MediaList,
    MediaRecord,
    MessageContext,
    MessageList,
    MessageRecord,
    MessageStatus,
    Page,
    RestClient,
    RestConnectionError,
    RestTimeout,
)
from swsync.rest import client as client_module
from swsync.rest.page import iterate

from ..helpers import PROJECT, SID, TOKEN, message_json, page_json  # PROJECT, TOKEN: the ``rest`` fixture's
from ..support.ports import free_port

ORIGIN = "https://example.signalwire.com"
BASE = f"{ORIGIN}/api/laml/2010-04-01/Accounts/{PROJECT}"
MEDIA_SID = "b3877c40-da60-4998-90ad-b792e98472e1"
# Computed independently of the client: base64("project:token").
AUTH = "Basic " + base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()


# Retry delays are recorded (the ``sleeps`` fixture), never slept.
pytestmark = pytest.mark.usefixtures("sleeps")


def form(call: Any) -> list[tuple[str, str]]:
    return parse_qsl(call.request.body, keep_blank_values=True)


def query(call: Any) -> str:
    return str(urlsplit(call.request.url).query)


# --- wire format ---------------------------------------------------------------------------


def test_create_sends_exact_form_headers_and_path(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", json=message_json(), status=201)
    record = rest.messages.create(
        to="+15557654321",
        from_="+15551234567",
        body="Hello World!",
        media_url=["https://example.com/a.jpg", "https://example.com/b.png"],
        status_callback="https://hooks.example.com/sms/status",
    )
    assert len(rsps.calls) == 1
    request = rsps.calls[0].request
    assert request.method == "POST"
    assert request.url == f"{BASE}/Messages.json"
    assert request.body == (
        "To=%2B15557654321&From=%2B15551234567&Body=Hello+World%21"
        "&MediaUrl=https%3A%2F%2Fexample.com%2Fa.jpg&MediaUrl=https%3A%2F%2Fexample.com%2Fb.png"
        "&StatusCallback=https%3A%2F%2Fhooks.example.com%2Fsms%2Fstatus"
    )
    assert request.headers["Authorization"] == AUTH
    assert request.headers["User-Agent"] == f"swsync/{swsync.__version__} python-requests/{requests.__version__}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert record.sid == SID and record.status is MessageStatus.QUEUED


def test_create_optional_fields(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", json=message_json(), status=201)
    rest.messages.create(
        to="+15557654321",
        from_="+15551234567",
        media_url=["https://example.com/a.jpg"],
        application_sid="app-1",
        max_price=Decimal("0.0075"),
        validity_period=600,
        messaging_service_sid="group-1",
    )
    assert form(rsps.calls[0]) == [
        ("To", "+15557654321"),
        ("From", "+15551234567"),
        ("MediaUrl", "https://example.com/a.jpg"),
        ("ApplicationSid", "app-1"),
        ("MessagingServiceSid", "group-1"),
        ("MaxPrice", "0.0075"),
        ("ValidityPeriod", "600"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to": "5557654321", "body": "x"},
        {"to": "+15557654321", "from_": "15551234567", "body": "x"},
        {"to": "+15557654321"},
        {"to": "+15557654321", "body": ""},
        {"to": "+15557654321", "body": "x" * 1601},
        {"to": "+15557654321", "media_url": [f"https://e.com/{i}.png" for i in range(11)]},
        {"to": "+15557654321", "media_url": "https://e.com/a.png"},
        {"to": "+15557654321", "body": "x", "validity_period": 0},
        {"to": "+15557654321", "body": "x", "max_price": "cheap"},
        {"to": "+15557654321", "body": "x", "status_callback": ""},
    ],
)
def test_create_bad_arguments_raise_before_sending(
    rsps: responses.RequestsMock, rest: RestClient, kwargs: dict[str, Any]
) -> None:
    kwargs.setdefault("from_", "+15551234567")
    with pytest.raises(ValueError):
        rest.messages.create(**kwargs)
    assert len(rsps.calls) == 0


def test_list_filters_on_the_wire(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.GET, f"{BASE}/Messages.json", json=page_json([message_json()], None))
    records = rest.messages.list(
        to="+15557654321",
        from_="+15551234567",
        status=MessageStatus.DELIVERED,
        date_sent=dt.date(2024, 1, 2),
        # 01:30 at +05:00 is still the previous day in UTC.
        date_sent_before=dt.datetime(2024, 3, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        date_sent_after="2023-12-31T23:00:00Z",
        page_size=20,
    )
    assert [r.sid for r in records] == [SID]
    assert rsps.calls[0].request.method == "GET"
    assert urlsplit(rsps.calls[0].request.url).path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages.json"
    assert query(rsps.calls[0]) == (
        "PageSize=20&To=%2B15557654321&From=%2B15551234567&Status=delivered"
        "&DateSent=2024-01-02&DateSent%3C=2024-02-29&DateSent%3E=2023-12-31"
    )


@pytest.mark.parametrize(
    "kwargs", [{"page_size": 0}, {"page_size": 1001}, {"limit": 0}, {"date_sent": "yesterday"}, {"to": ""}]
)
def test_list_bad_arguments_raise_before_sending(
    rsps: responses.RequestsMock, rest: RestClient, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        rest.messages.stream(**kwargs)
    with pytest.raises(ValueError):
        rest.messages.list(**kwargs)
    assert len(rsps.calls) == 0


def test_stream_follows_next_page_uri_exactly(rsps: responses.RequestsMock, rest: RestClient) -> None:
    next_uri = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages?Page=1&PageSize=2&PageToken=PAxyz"
    rsps.add(responses.GET, f"{BASE}/Messages.json", json=page_json([message_json("a"), message_json("b")], next_uri))
    rsps.add(responses.GET, f"{BASE}/Messages", json=page_json([message_json("c")], None))
    stream = rest.messages.stream(page_size=2)
    assert len(rsps.calls) == 0  # lazy: nothing fetched before iteration
    assert [r.sid for r in stream] == ["a", "b", "c"]
    assert len(rsps.calls) == 2
    assert rsps.calls[1].request.url == ORIGIN + next_uri


def test_limit_stops_without_fetching_more_pages(rsps: responses.RequestsMock, rest: RestClient) -> None:
    next_uri = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages?Page=1&PageSize=3&PageToken=PAc"
    rsps.add(responses.GET, f"{BASE}/Messages.json", json=page_json([message_json(s) for s in "abc"], next_uri))
    assert [r.sid for r in rest.messages.list(limit=3)] == ["a", "b", "c"]
    assert len(rsps.calls) == 1
    assert query(rsps.calls[0]) == "PageSize=3"
    rsps.add(responses.GET, f"{BASE}/Messages", json=page_json([message_json("d")], None))
    assert [r.sid for r in rest.messages.list(limit=5000)] == ["a", "b", "c", "d"]
    assert query(rsps.calls[1]) == "PageSize=1000"
    assert len(rsps.calls) == 3


def test_page_and_next_page(rsps: responses.RequestsMock, rest: RestClient) -> None:
    next_uri = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages?Page=1&PageSize=1&PageToken=PAa"
    rsps.add(responses.GET, f"{BASE}/Messages.json", json=page_json([message_json("a")], next_uri))
    rsps.add(responses.GET, f"{BASE}/Messages", json=page_json([message_json("b")], None))
    page = rest.messages.page(page_size=1, page_token="PAstart")
    assert isinstance(page, Page) and query(rsps.calls[0]) == "PageSize=1&PageToken=PAstart"
    assert [r.sid for r in page.records] == ["a"] and page.next_page_uri == next_uri
    second = page.next_page()
    assert second is not None and [r.sid for r in second] == ["b"] and len(second) == 1
    assert second.next_page_uri is None and second.next_page() is None
    assert len(rsps.calls) == 2


def test_next_page_uri_on_another_host_is_refused(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(
        responses.GET,
        f"{BASE}/Messages.json",
        json=page_json([message_json()], "https://evil.example.net/steal?Page=1"),
    )
    with pytest.raises(RestError, match="malformed list response"):
        rest.messages.list()
    assert len(rsps.calls) == 1


def test_context_fetch_redact_delete(rsps: responses.RequestsMock, rest: RestClient) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, json=message_json(status="delivered"))
    rsps.add(responses.POST, url, json=message_json(status="delivered", body=""))
    rsps.add(responses.DELETE, url, status=204)
    assert rest.messages(SID).fetch().status == "delivered"
    assert rest.messages(SID).update(body="").body == ""
    rest.messages(SID).delete()  # returns None on 204
    assert [(c.request.method, c.request.url) for c in rsps.calls] == [("GET", url), ("POST", url), ("DELETE", url)]
    assert rsps.calls[1].request.body == "Body="
    with pytest.raises(ValueError):
        rest.messages(SID).update(body="new text")
    with pytest.raises(ValueError):
        rest.messages("")
    assert len(rsps.calls) == 3


def test_sid_is_quoted_into_one_path_segment(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.GET, f"{BASE}/Messages/..%2Fx.json", json=message_json())
    rest.messages("../x").fetch()
    assert str(urlsplit(rsps.calls[0].request.url).path).endswith("/Messages/..%2Fx.json")


def test_media_list_fetch_delete(rsps: responses.RequestsMock, rest: RestClient) -> None:
    media = {
        "sid": MEDIA_SID,
        "account_sid": PROJECT,
        "parent_sid": SID,
        "content_type": "image/png",
        "date_created": "Wed, 19 Dec 2018 16:23:50 +0000",
        "date_updated": "Wed, 19 Dec 2018 16:23:50 +0000",
        "uri": f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages/{SID}/Media/{MEDIA_SID}.json",
    }
    rsps.add(responses.GET, f"{BASE}/Messages/{SID}/Media.json", json=page_json([media], None, "media_list"))
    rsps.add(responses.GET, f"{BASE}/Messages/{SID}/Media/{MEDIA_SID}.json", json=media)
    rsps.add(responses.DELETE, f"{BASE}/Messages/{SID}/Media/{MEDIA_SID}.json", status=204)
    listed = rest.messages(SID).media.list(date_created_after=dt.date(2018, 1, 1))
    assert query(rsps.calls[0]) == "DateCreated%3E=2018-01-01"
    assert listed == [MediaRecord.from_payload(media)]
    fetched = rest.messages(SID).media(MEDIA_SID).fetch()
    assert fetched.content_type == "image/png" and fetched.parent_sid == SID
    assert fetched.date_created == dt.datetime(2018, 12, 19, 16, 23, 50, tzinfo=dt.timezone.utc)
    rest.messages(SID).media(MEDIA_SID).delete()  # returns None on 204
    assert [c.request.method for c in rsps.calls] == ["GET", "GET", "DELETE"]


# --- the resource classes built by hand, as 0.1 code did -------------------------------------


def test_resource_classes_take_a_rest_client_positionally_or_as_client(
    rsps: responses.RequestsMock, rest: RestClient
) -> None:
    media = {"sid": MEDIA_SID, "parent_sid": SID, "content_type": "image/png"}
    message_url = f"{BASE}/Messages/{SID}.json"
    media_url = f"{BASE}/Messages/{SID}/Media/{MEDIA_SID}.json"
    rsps.add(responses.GET, f"{BASE}/Messages.json", json=page_json([message_json()], None))
    rsps.add(responses.GET, message_url, json=message_json(status="delivered"))
    rsps.add(responses.GET, f"{BASE}/Messages/{SID}/Media.json", json=page_json([media], None, "media_list"))
    rsps.add(responses.GET, media_url, json=media)
    rsps.add(responses.DELETE, media_url, status=204)

    for messages in (MessageList(rest), MessageList(client=rest)):
        assert [r.sid for r in messages.list()] == [SID]
        assert messages(SID).fetch().status == "delivered"
    for message in (MessageContext(rest, SID), MessageContext(client=rest, sid=SID)):
        assert message.sid == SID and message.fetch().status == "delivered"
        assert [m.sid for m in message.media.list()] == [MEDIA_SID]
    for media_list in (MediaList(rest, SID), MediaList(client=rest, message_sid=SID)):
        assert [m.sid for m in media_list.page()] == [MEDIA_SID]
        assert media_list(MEDIA_SID).fetch().content_type == "image/png"
    for item in (MediaContext(rest, SID, MEDIA_SID), MediaContext(client=rest, message_sid=SID, sid=MEDIA_SID)):
        assert item.fetch().parent_sid == SID
        item.delete()  # returns None on 204
    parse = MessageRecord.from_payload
    for page in (
        Page.fetch(rest, "Messages.json", None, "messages", parse),
        Page.fetch(client=rest, path="Messages.json", params=None, key="messages", parse=parse),
        Page(rest, page_json([message_json()], None), "messages", parse),
        Page(client=rest, payload=page_json([message_json()], None), key="messages", parse=parse),
    ):
        assert [r.sid for r in page] == [SID] and page.next_page() is None
    assert [r.sid for r in iterate(rest, "Messages.json", None, "messages", parse, None)] == [SID]
    streamed = iterate(client=rest, path="Messages.json", params=None, key="messages", parse=parse, limit=1)
    assert [r.sid for r in streamed] == [SID]
    # Every request went through the client: its base URL and its credentials.
    assert len(rsps.calls) == 20
    assert all(c.request.headers["Authorization"] == AUTH for c in rsps.calls)


def test_resource_classes_refuse_what_is_not_a_client() -> None:
    with pytest.raises(TypeError, match="RestClient"):
        MessageList(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RestClient"):
        MessageContext(client=None, sid=SID)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("function", "names"),
    [
        (MessageList, ["client"]),
        (MessageContext, ["client", "sid"]),
        (MediaList, ["client", "message_sid"]),
        (MediaContext, ["client", "message_sid", "sid"]),
        (Page, ["client", "payload", "key", "parse"]),
        (Page.fetch, ["client", "path", "params", "key", "parse"]),
        (iterate, ["client", "path", "params", "key", "parse", "limit"]),
    ],
)
def test_resource_signatures_are_the_documented_ones(function: Any, names: list[str]) -> None:
    # As in 0.1: every parameter positional-or-keyword, none with a default.
    parameters = list(inspect.signature(function).parameters.values())
    assert [(p.name, p.kind, p.default) for p in parameters] == [
        (name, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty) for name in names
    ]


def test_client_module_still_exports_its_constants() -> None:
    assert client_module.API_PATH == "/api/laml/2010-04-01/Accounts/"
    assert (client_module.BACKOFF_BASE, client_module.BACKOFF_CAP, client_module.RETRY_AFTER_CAP) == (0.5, 8.0, 30.0)
    assert client_module.RestError is RestError
    assert client_module.logger.name == "swsync.rest.client"


# --- retries --------------------------------------------------------------------------------


def refused() -> requests.exceptions.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, BASE, reason))  # type: ignore[arg-type]


def test_post_is_not_retried_after_500(rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", status=500, json={"code": 20504, "message": "Internal error"})
    rsps.add(responses.POST, f"{BASE}/Messages.json", status=201, json=message_json())
    with pytest.raises(RestError) as info:
        rest.messages.create(to="+15557654321", from_="+15551234567", body="once")
    assert info.value.status == 500 and info.value.code == 20504
    assert len(rsps.calls) == 1 and sleeps == []


def test_post_is_not_retried_after_read_timeout(
    rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]
) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(RestTimeout) as info:
        rest.messages.create(to="+15557654321", from_="+15551234567", body="once")
    assert info.value.may_have_been_sent is True
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, RestConnectionError)
    assert isinstance(info.value.__cause__, requests.exceptions.ReadTimeout)
    assert len(rsps.calls) == 1 and sleeps == []


def test_post_is_retried_after_429(rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", status=429, json={"code": 20429, "message": "Too many requests"})
    rsps.add(responses.POST, f"{BASE}/Messages.json", status=201, json=message_json())
    assert rest.messages.create(to="+15557654321", from_="+15551234567", body="hi").sid == SID
    assert len(rsps.calls) == 2 and sleeps == [0.5]
    assert rsps.calls[0].request.body == rsps.calls[1].request.body


def test_post_is_retried_when_connection_refused(
    rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]
) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", body=refused())
    rsps.add(responses.POST, f"{BASE}/Messages.json", status=201, json=message_json())
    assert rest.messages.create(to="+15557654321", from_="+15551234567", body="hi").sid == SID
    assert len(rsps.calls) == 2 and sleeps == [0.5]


def test_post_is_not_retried_after_connection_reset(
    rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]
) -> None:
    reset = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    rsps.add(responses.POST, f"{BASE}/Messages.json", body=reset)
    with pytest.raises(RestConnectionError) as info:
        rest.messages.create(to="+15557654321", from_="+15551234567", body="hi")
    assert info.value.may_have_been_sent is True and not isinstance(info.value, RestTimeout)
    assert len(rsps.calls) == 1 and sleeps == []


def test_get_retried_on_503_then_succeeds(rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, status=503, body="busy")
    rsps.add(responses.GET, url, status=503, body="busy")
    rsps.add(responses.GET, url, json=message_json())
    assert rest.messages(SID).fetch().sid == SID
    assert len(rsps.calls) == 3
    assert sleeps == [0.5, 1.0]  # full-jitter upper bounds: base * 2**attempt


def test_get_and_delete_retried_on_connection_errors(
    rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]
) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, body=requests.exceptions.ReadTimeout("slow"))
    rsps.add(responses.GET, url, json=message_json())
    rsps.add(responses.DELETE, url, status=502)
    rsps.add(responses.DELETE, url, status=204)
    rest.messages(SID).fetch()
    rest.messages(SID).delete()
    assert [c.request.method for c in rsps.calls] == ["GET", "GET", "DELETE", "DELETE"]
    assert len(sleeps) == 2


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0", 0.0), ("3600", 30.0), ("-5", 0.0)])
def test_retry_after_is_honoured_and_capped(
    rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float], header: str, expected: float
) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, status=429, headers={"Retry-After": header}, json={"code": 20429})
    rsps.add(responses.GET, url, json=message_json())
    rest.messages(SID).fetch()
    assert sleeps == [expected]


def test_retry_after_http_date(rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]) -> None:
    import email.utils

    when = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=20))
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, status=503, headers={"Retry-After": when})
    rsps.add(responses.GET, url, json=message_json())
    rest.messages(SID).fetch()
    assert len(sleeps) == 1 and 15.0 <= sleeps[0] <= 20.0


def test_retries_exhausted_raise_rest_error_with_every_attribute(
    rsps: responses.RequestsMock, rest: RestClient, sleeps: list[float]
) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(
        responses.GET,
        url,
        status=503,
        json={"code": "20504", "message": "Internal error", "more_info": "https://signalwire.com", "status": 500},
    )
    with pytest.raises(RestError) as info:
        rest.messages(SID).fetch()
    err = info.value
    assert (err.status, err.code, err.message, err.more_info, err.method, err.url) == (
        503,
        20504,
        "Internal error",
        "https://signalwire.com",
        "GET",
        url,
    )
    assert len(rsps.calls) == 1 + rest.max_retries
    assert sleeps == [0.5, 1.0, 2.0]
    assert TOKEN not in str(err) and AUTH not in str(err)


def test_backoff_is_capped(monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    url = f"{BASE}/Messages/{SID}.json"
    rsps.add(responses.GET, url, status=500)
    with RestClient(PROJECT, TOKEN, ORIGIN, max_retries=6) as rest, pytest.raises(RestError):
        rest.messages(SID).fetch()
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_max_retries_zero_disables_retries(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    rsps.add(responses.GET, f"{BASE}/Messages/{SID}.json", status=429)
    with RestClient(PROJECT, TOKEN, ORIGIN, max_retries=0) as rest, pytest.raises(RestError) as info:
        rest.messages(SID).fetch()
    assert info.value.status == 429 and len(rsps.calls) == 1 and sleeps == []


# --- error bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            422,
            json.dumps(
                {
                    "code": "21210",
                    "message": "From must be a number in your project.",
                    "more_info": "https://signalwire.com",
                    "status": 400,
                }
            ),
            (422, 21210, "From must be a number in your project.", "https://signalwire.com"),
        ),
        (
            400,
            json.dumps({"errors": [{"code": 21602, "message": "Body or media required", "more_info": "https://docs"}]}),
            (400, 21602, "Body or media required", "https://docs"),
        ),
        (400, json.dumps({"errors": ["To is invalid"]}), (400, None, "To is invalid", None)),
        (
            502,
            "<html><body>Bad gateway " + "x" * 500 + "</body></html>",
            (502, None, ("<html><body>Bad gateway " + "x" * 500)[:200] + "...", None),
        ),
        (401, "", (401, None, "Unauthorized", None)),
        (404, json.dumps([1, 2]), (404, None, "Not Found", None)),
    ],
)
def test_error_body_shapes(rsps: responses.RequestsMock, status: int, body: str, expected: tuple[Any, ...]) -> None:
    url = f"{BASE}/Messages.json"
    rsps.add(responses.POST, url, status=status, body=body)
    with RestClient(PROJECT, TOKEN, ORIGIN, max_retries=0) as rest, pytest.raises(RestError) as info:
        rest.messages.create(to="+15557654321", from_="+15551234567", body="hi")
    err = info.value
    assert (err.status, err.code, err.message, err.more_info) == expected
    assert (err.method, err.url) == ("POST", url)
    assert isinstance(err, SwsyncError)


def test_success_with_non_json_body_is_a_rest_error(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.GET, f"{BASE}/Messages/{SID}.json", body="<xml/>")
    with pytest.raises(RestError, match="not valid JSON") as info:
        rest.messages(SID).fetch()
    assert info.value.status == 200


def test_success_with_malformed_record_is_a_rest_error(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.GET, f"{BASE}/Messages/{SID}.json", json={"status": "queued"})
    with pytest.raises(RestError, match="malformed response"):
        rest.messages(SID).fetch()


# --- records --------------------------------------------------------------------------------


def test_message_record_parsing() -> None:
    payload = message_json(
        price="-0.00750",
        num_segments="3",
        num_media="0",
        error_code="30003",
        date_sent="Tue, 14 Aug 2018 01:02:03 -0500",
        status="delivered",
        brand_new_field={"x": 1},
    )
    record = MessageRecord.from_payload(payload)
    assert record.price == Decimal("-0.00750")
    assert (record.num_segments, record.num_media, record.error_code) == (3, 0, 30003)
    assert record.from_ == "+15551234567" and record.to == "+15557654321"
    assert record.date_created == dt.datetime(2018, 8, 13, 21, 38, 46, tzinfo=dt.timezone.utc)
    assert record.date_sent == dt.datetime(2018, 8, 14, 6, 2, 3, tzinfo=dt.timezone.utc)
    assert record.date_sent.utcoffset() == dt.timedelta(hours=-5)
    assert record.date_created.tzinfo is not None and record.date_updated is not None
    assert record.status is MessageStatus.DELIVERED
    assert record.status == "delivered"  # type: ignore[comparison-overlap]
    assert record.status.is_final and not MessageStatus.SENT.is_final
    assert record.raw["brand_new_field"] == {"x": 1}
    assert record.subresource_uris["media"].endswith("/Media")
    with pytest.raises(TypeError):
        record.raw["sid"] = "other"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "failed"  # type: ignore[assignment]
    assert record == MessageRecord.from_payload(payload)


def test_message_record_lenient_values() -> None:
    record = MessageRecord.from_payload(
        message_json(
            price=0.005,
            status="partially_delivered",
            date_created="not a date",
            date_updated=None,
            num_segments="many",
            error_code=21601,
        )
    )
    assert record.price == Decimal("0.005")
    assert record.status == "partially_delivered" and not isinstance(record.status, MessageStatus)
    assert record.date_created is None and record.date_updated is None
    assert record.num_segments is None and record.error_code == 21601
    minimal = MessageRecord.from_payload({"sid": "x"})
    assert minimal.price is None and minimal.date_sent is None and minimal.status is None
    with pytest.raises(ValueError):
        MessageRecord.from_payload({"status": "queued"})
    with pytest.raises(ValueError):
        MessageRecord.from_payload(["sid"])  # type: ignore[arg-type]


def test_record_fields_are_converted_once_and_cached() -> None:
    record = MessageRecord.from_payload(message_json(price="0.0075", status="sent"))
    assert "price" not in vars(record)  # nothing converted until read
    price = record.price
    assert price == Decimal("0.0075") and record.price is price and vars(record)["price"] is price
    assert record.date_created is record.date_created
    assert MessageRecord.price.__doc__  # each attribute documents itself (help(), IDEs)


def test_record_is_immutable_and_a_snapshot() -> None:
    payload = message_json(status="queued", body="before")
    record = MessageRecord.from_payload(payload)
    payload["status"], payload["body"] = "failed", "after"  # the caller's dict, changed later
    assert record.status is MessageStatus.QUEUED and record.body == "before"
    assert record.raw["status"] == "queued"
    for name in ("sid", "price", "raw", "anything_new"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, None)
    with pytest.raises(AttributeError):
        del record.status
    assert record.status is MessageStatus.QUEUED  # the cached value survived the attempts


def test_record_equality_hash_pickle_copy() -> None:
    payload = message_json(price=0.005, status="delivered")
    record = MessageRecord.from_payload(payload)
    _ = record.date_created  # fills a cached field, which takes no part in equality or pickling
    twin = MessageRecord.from_payload(dict(payload))
    assert record == twin and hash(record) == hash(twin) and len({record, twin}) == 1
    assert record != MessageRecord.from_payload(message_json(price=0.005, status="failed"))
    assert record != MediaRecord.from_payload(payload)  # same JSON, other resource
    for clone in (pickle.loads(pickle.dumps(record)), copy.copy(record), copy.deepcopy(record)):
        assert type(clone) is MessageRecord and clone == record
        assert clone.price == Decimal("0.005") and clone.status is MessageStatus.DELIVERED


def test_record_to_dict_has_every_typed_attribute() -> None:
    record = MessageRecord.from_payload(message_json(price="-0.0075", brand_new_field=1))
    data = record.to_dict()
    assert list(data)[:3] == ["sid", "account_sid", "api_version"] and "raw" not in data
    assert data["from_"] == "+15551234567" and data["price"] == Decimal("-0.0075")
    assert data["date_created"] == dt.datetime(2018, 8, 13, 21, 38, 46, tzinfo=dt.timezone.utc)
    assert "brand_new_field" not in data and len(data) == 20
    media = MediaRecord.from_payload({"sid": MEDIA_SID, "content_type": "image/png"})
    assert media.to_dict() == {
        "sid": MEDIA_SID,
        "account_sid": None,
        "parent_sid": None,
        "content_type": "image/png",
        "date_created": None,
        "date_updated": None,
        "uri": None,
    }


def test_record_first_reads_from_many_threads_agree() -> None:
    record = MessageRecord.from_payload(message_json(price="0.0075"))
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def read() -> None:
        barrier.wait(timeout=5)
        seen.append((record.price, record.date_updated, record.status))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in threads)
    assert len(seen) == 8 and len(set(seen)) == 1
    assert seen[0] == (record.price, record.date_updated, record.status)


def test_stream_reports_a_malformed_record_when_it_reaches_it(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(
        responses.GET,
        f"{BASE}/Messages.json",
        json=page_json([message_json("a"), {"status": "queued"}, message_json("c")], None),
    )
    stream = rest.messages.stream()
    assert next(stream).sid == "a"
    with pytest.raises(RestError, match="malformed list response: a message has no 'sid'") as info:
        next(stream)
    assert info.value.status == 200 and info.value.url == f"{BASE}/Messages.json"
    with pytest.raises(RestError, match="malformed list response"):
        rest.messages.page()  # a Page builds every record at once


def test_record_repr_is_short_and_has_no_body() -> None:
    record = MessageRecord.from_payload(message_json(body="B" * 1600, status="sent"))
    text = repr(record)
    assert text == f"MessageRecord(sid='{SID}', status='sent', to='+15557654321', from_='+15551234567')"


def test_status_enum_is_a_str() -> None:
    assert str(MessageStatus.FAILED) == "failed" and f"{MessageStatus.FAILED}" == "failed"
    assert {s.value for s in MessageStatus} == {
        "queued",
        "initiated",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "receiving",
        "received",
    }


# --- configuration and security ---------------------------------------------------------------


def test_repr_never_shows_the_token() -> None:
    rest = RestClient(PROJECT, TOKEN, "example.signalwire.com")
    assert TOKEN not in repr(rest) and TOKEN not in repr(rest.__dict__)
    assert AUTH.split()[1] not in repr(rest.__dict__)
    rest.close()


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock) -> None:
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", PROJECT)
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", TOKEN)
    monkeypatch.setenv("SIGNALWIRE_SPACE", "example.signalwire.com")
    rsps.add(responses.GET, f"{BASE}/Messages/{SID}.json", json=message_json())
    with RestClient() as rest:
        assert rest.base_url == f"{BASE}/"
        rest.messages(SID).fetch()
    assert rsps.calls[0].request.headers["Authorization"] == AUTH


@pytest.mark.parametrize(
    ("missing", "arg"),
    [("SIGNALWIRE_PROJECT_ID", "project"), ("SIGNALWIRE_API_TOKEN", "token"), ("SIGNALWIRE_SPACE", "space")],
)
def test_missing_credential_names_arg_and_variable(monkeypatch: pytest.MonkeyPatch, missing: str, arg: str) -> None:
    for name, value in (
        ("SIGNALWIRE_PROJECT_ID", PROJECT),
        ("SIGNALWIRE_API_TOKEN", TOKEN),
        ("SIGNALWIRE_SPACE", "example.signalwire.com"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigurationError) as info:
        RestClient()
    assert arg in str(info.value) and missing in str(info.value)


@pytest.mark.parametrize(
    ("space", "origin"),
    [
        ("example.signalwire.com", "https://example.signalwire.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("https://example.signalwire.com/", "https://example.signalwire.com"),
    ],
)
def test_space_forms(space: str, origin: str) -> None:
    with RestClient(PROJECT, TOKEN, space) as rest:
        assert rest.base_url == f"{origin}/api/laml/2010-04-01/Accounts/{PROJECT}/"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"space": "user:pw@example.com"},
        {"space": "ftp://example.com"},
        {"space": "https://h/path"},
        {"timeout": 0},
        {"timeout": "10"},
        {"max_retries": -1},
        {"ca_file": "/no/such/file.pem"},
    ],
)
def test_bad_configuration(kwargs: dict[str, Any]) -> None:
    args = {"project": PROJECT, "token": TOKEN, "space": "example.signalwire.com", **kwargs}
    with pytest.raises(ConfigurationError):
        RestClient(**args)


def test_own_session_closed_and_given_session_left_open(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    given = requests.Session()
    monkeypatch.setattr(given, "close", lambda: closed.append("given"))
    with RestClient(PROJECT, TOKEN, ORIGIN, session=given):
        pass
    assert closed == []
    own = RestClient(PROJECT, TOKEN, ORIGIN)
    monkeypatch.setattr(own._transport.session, "close", lambda: closed.append("own"))
    own.close()
    assert closed == ["own"]


def test_import_swsync_does_not_import_requests() -> None:
    code = (
        "import sys, swsync\n"
        "assert 'requests' not in sys.modules, 'requests imported'\n"
        "assert 'swsync.rest' not in sys.modules, 'swsync.rest imported'\n"
        "cls = swsync.RestClient\n"
        "assert cls.__module__ == 'swsync.rest.client' and 'requests' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --- real sockets ---------------------------------------------------------------------------


def test_real_connection_refused_post_is_retried_then_reported(sleeps: list[float]) -> None:
    port = free_port()  # nothing listens there any more: connect() is refused
    with RestClient(PROJECT, TOKEN, f"http://127.0.0.1:{port}", max_retries=2) as rest:
        with pytest.raises(RestConnectionError) as info:
            rest.messages.create(to="+15557654321", from_="+15551234567", body="hi")
    assert sleeps == [0.5, 1.0]  # two retries, then the error
    assert info.value.may_have_been_sent is False
    assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)
    assert info.value.method == "POST" and info.value.url.endswith("/Messages.json")


class _Server:
    """A loopback TCP server running ``handler(conn)`` for each connection, counting them."""

    def __init__(self, handler: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name="test-rest-server", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                self._handler(conn)

    def close(self) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


def test_real_dropped_connection_post_is_not_retried(sleeps: list[float]) -> None:
    server = _Server(lambda conn: None)  # read the request, then close without answering
    try:
        with RestClient(PROJECT, TOKEN, f"http://127.0.0.1:{server.port}") as rest:
            with pytest.raises(RestConnectionError) as info:
                rest.messages.create(to="+15557654321", from_="+15551234567", body="hi")
        assert info.value.may_have_been_sent is True
        assert server.connections == 1 and sleeps == []
        assert server.requests[0].startswith(b"POST /api/laml/2010-04-01/Accounts/")
    finally:
        server.close()


def test_real_dropped_connection_get_is_retried(sleeps: list[float]) -> None:
    server = _Server(lambda conn: None)
    try:
        with RestClient(PROJECT, TOKEN, f"http://127.0.0.1:{server.port}", max_retries=2) as rest:
            with pytest.raises(RestConnectionError):
                rest.messages(SID).fetch()
        assert server.connections == 3 and len(sleeps) == 2
    finally:
        server.close()


def test_real_read_timeout_post_is_a_rest_timeout(sleeps: list[float]) -> None:
    answered = threading.Event()
    server = _Server(lambda conn: answered.wait(5))  # hold the connection without replying
    try:
        with RestClient(PROJECT, TOKEN, f"http://127.0.0.1:{server.port}", timeout=0.2) as rest:
            with pytest.raises(RestTimeout) as info:
                rest.messages.create(to="+15557654321", from_="+15551234567", body="hi")
        assert isinstance(info.value, TimeoutError) and info.value.may_have_been_sent is True
        # No retry (no backoff sleep); the server thread may not have accept()ed yet.
        assert server.connections <= 1 and sleeps == []
    finally:
        answered.set()
        server.close()


@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[str, str]]:
    """An HTTPS server on loopback with a certificate from a private CA (trustme)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_path = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_path)

    body = json.dumps(message_json()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, name="test-tls-server", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", ca_path
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_tls_verified_with_ca_file(
    tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    url, ca_path = tls_server
    with RestClient(PROJECT, TOKEN, url, ca_file=ca_path) as rest:
        assert rest.messages(SID).fetch().sid == SID
    monkeypatch.setenv("SIGNALWIRE_REST_CA_FILE", ca_path)
    with RestClient(PROJECT, TOKEN, url) as rest:
        assert rest.messages(SID).fetch().sid == SID
    monkeypatch.delenv("SIGNALWIRE_REST_CA_FILE")
    insecure = requests.Session()
    insecure.verify = False  # swsync must verify anyway
    with RestClient(PROJECT, TOKEN, url, session=insecure) as rest:
        with pytest.raises(RestConnectionError) as info:
            rest.messages(SID).fetch()
    assert isinstance(info.value.__cause__, requests.exceptions.SSLError)
    assert sleeps == []  # a certificate failure is not retried
    insecure.close()


def test_proxy_from_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps(message_json()).encode()
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    proxy = _Server(lambda conn: conn.sendall(reply))
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        with RestClient(PROJECT, TOKEN, "http://api.example.test") as rest:
            assert rest.messages(SID).fetch().sid == SID
        assert proxy.requests[0].startswith(
            f"GET http://api.example.test/api/laml/2010-04-01/Accounts/{PROJECT}/Messages/{SID}.json ".encode()
        )
    finally:
        proxy.close()


# --- review regressions ----------------------------------------------------------------------


def test_may_have_been_sent_remembers_earlier_attempts(rsps: responses.RequestsMock, rest: RestClient) -> None:
    # A 503 reached the server; the final attempt never connected: the DELETE may have happened.
    rsps.add(responses.DELETE, f"{BASE}/Messages/{SID}.json", status=503, json={"code": 20504, "message": "x"})
    refused = requests.exceptions.ConnectionError(urllib3.exceptions.NewConnectionError(None, "refused"))
    for _ in range(3):
        rsps.add(responses.DELETE, f"{BASE}/Messages/{SID}.json", body=refused)
    with pytest.raises(swsync.RestConnectionError) as info:
        rest.messages(SID).delete()
    assert info.value.may_have_been_sent is True


def test_messaging_service_sid_alone_picks_the_sender(rsps: responses.RequestsMock, rest: RestClient) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", json=message_json(), status=201)
    rest.messages.create(to="+15557654321", body="hi", messaging_service_sid="MG-group")
    assert form(rsps.calls[0]) == [("To", "+15557654321"), ("Body", "hi"), ("MessagingServiceSid", "MG-group")]
    with pytest.raises(ValueError, match="from_ is required"):
        rest.messages.create(to="+15557654321", body="hi")


@pytest.mark.parametrize(("price", "wire"), [(Decimal("1E+2"), "100"), ("0.0079", "0.0079"), (0.5, "0.5")])
def test_max_price_is_sent_in_the_api_pattern(
    rsps: responses.RequestsMock, rest: RestClient, price: Any, wire: str
) -> None:
    rsps.add(responses.POST, f"{BASE}/Messages.json", json=message_json(), status=201)
    rest.messages.create(to="+15557654321", from_="+15551234567", body="x", max_price=price)
    assert ("MaxPrice", wire) in form(rsps.calls[0])


@pytest.mark.parametrize("price", [Decimal("1E-7"), "-0", "0.123456", "-1", "NaN", "Infinity"])
def test_max_price_outside_the_pattern_is_refused(rsps: responses.RequestsMock, rest: RestClient, price: Any) -> None:
    with pytest.raises(ValueError, match="max_price"):
        rest.messages.create(to="+15557654321", from_="+15551234567", body="x", max_price=price)
    assert not rsps.calls


@pytest.mark.parametrize("bad", [".", ".."])
def test_dot_sids_are_refused(rest: RestClient, bad: str) -> None:
    with pytest.raises(ValueError):
        rest.messages(bad)
    with pytest.raises(ValueError):
        rest.messages(SID).media(bad)
    with pytest.raises(ValueError):
        _ = rest.messages(bad).media


def test_infinite_timeout_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RestClient(PROJECT, TOKEN, "example.signalwire.com", timeout=float("inf"))


def test_a_next_page_that_does_not_advance_is_an_error(rsps: responses.RequestsMock, rest: RestClient) -> None:
    same = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages.json?Page=1&PageSize=50&PageToken=PAx"
    rsps.add(responses.GET, f"{BASE}/Messages.json", json=page_json([], same))
    with pytest.raises(RestError, match="does not advance"):
        list(rest.messages.stream())
    assert len(rsps.calls) == 1


def test_relative_path_with_a_url_in_its_query_is_not_foreign(rest: RestClient) -> None:
    assert rest.url("Messages.json?StatusCallback=https://x") == f"{BASE}/Messages.json?StatusCallback=https://x"
    with pytest.raises(ValueError):
        rest.url("https://evil.example.com/api")


def test_client_and_its_credentials_refuse_pickling(rest: RestClient) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(rest)
