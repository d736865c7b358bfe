"""The emulator's cXML REST side, driven over real sockets with plain ``requests``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import websocket

from swsync.emulator import (
    FAILED_NUMBER,
    NO_DLR_NUMBER,
    REJECTED_NUMBER,
    UNDELIVERED_NUMBER,
    Emulator,
)

from ..helpers import FROM, TO, Api, Hook, assert_error, clean_environ, stop_process
from ..support.webhook_servers import sign_form

MESSAGE_KEYS = {
    "account_sid", "api_version", "sid", "from", "to", "body", "num_segments", "num_media",
    "status", "direction", "date_created", "date_updated", "date_sent", "error_code",
    "error_message", "price", "price_unit", "messaging_service_sid", "uri", "subresource_uris",
}  # fmt: skip
PAGE_KEYS = {"uri", "first_page_uri", "next_page_uri", "previous_page_uri", "page", "page_size"}


@pytest.fixture
def slow() -> Iterator[Api]:
    """An emulator whose messages stay ``queued`` for the whole test."""
    with Emulator(state_delay=30) as emu:
        a = Api(emu)
        yield a
        a.close()


# -- create, fetch ---------------------------------------------------------------------------


def test_create_returns_the_message_object(emu: Emulator, api: Api) -> None:
    r = api.post(
        "/Messages.json",
        [
            ("To", TO),
            ("From", FROM),
            ("Body", "x" * 161),
            ("MediaUrl", "https://example.com/a.png"),
            ("MediaUrl", "https://example.com/b"),
        ],
    )
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    m = r.json()
    assert set(m) == MESSAGE_KEYS
    sid = m["sid"]
    assert m["account_sid"] == emu.project and m["api_version"] == "2010-04-01"
    assert (m["from"], m["to"], m["body"]) == (FROM, TO, "x" * 161)
    assert m["num_segments"] == 2 and m["num_media"] == 2
    assert m["status"] == "queued" and m["direction"] == "outbound-api"
    assert m["date_sent"] is None and m["price"] is None and m["price_unit"] == "USD"
    assert m["error_code"] is None and m["error_message"] is None and m["messaging_service_sid"] is None
    created = parsedate_to_datetime(m["date_created"])
    assert created.utcoffset() == timedelta(0) and m["date_created"].endswith("+0000")
    # Both end in .json, as in SignalWire's published examples.
    assert m["uri"] == f"/api/laml/2010-04-01/Accounts/{emu.project}/Messages/{sid}.json"
    assert m["subresource_uris"] == {"media": f"/api/laml/2010-04-01/Accounts/{emu.project}/Messages/{sid}/Media.json"}
    assert requests.get(emu.rest_url + m["uri"], auth=(emu.project, emu.token), timeout=10).json()["sid"] == sid

    record = emu.wait_for_status(sid, "delivered", timeout=5)
    assert record["history"] == ["queued", "initiated", "sent", "delivered"]
    fetched = api.get(f"/Messages/{sid}.json").json()
    assert fetched["status"] == "delivered"
    assert parsedate_to_datetime(fetched["date_sent"]) >= created
    assert isinstance(fetched["price"], float) and fetched["price"] > 0
    assert emu.stats.rest_creates == 1


@pytest.mark.parametrize("prefix", ["/api/laml", ""])
@pytest.mark.parametrize("suffix", [".json", ""])
def test_both_prefixes_with_and_without_json(emu: Emulator, prefix: str, suffix: str) -> None:
    a = Api(emu, prefix)
    try:
        r = a.post(f"/Messages{suffix}", {"To": TO, "From": FROM, "Body": "hi"})
        assert r.status_code == 201
        sid = r.json()["sid"]
        assert a.get(f"/Messages/{sid}{suffix}").json()["sid"] == sid
        assert a.get(f"/Messages{suffix}").json()["messages"][0]["sid"] == sid
        assert a.get(f"/Messages/{sid}/Media{suffix}").json()["media_list"] == []
    finally:
        a.close()


def test_unknown_parameters_are_ignored(api: Api) -> None:
    m = api.create(
        ProvideFeedback="true",
        SmartEncoded="false",
        ValidityPeriod="600",
        MessagingServiceSid="abc",
    )
    assert m["status"] == "queued" and m["messaging_service_sid"] == "abc"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"From": FROM, "Body": "x"}, 400, 21604),
        ({"To": "5551230001", "From": FROM, "Body": "x"}, 400, 21211),
        ({"To": TO, "Body": "x"}, 400, 21212),
        ({"To": TO, "From": "not-a-number", "Body": "x"}, 400, 21212),
        ({"To": TO, "From": FROM}, 400, 21602),
        ({"To": TO, "From": FROM, "Body": ""}, 400, 21602),
        ({"To": TO, "From": FROM, "Body": "x" * 1601}, 400, 21617),
        (
            {"To": TO, "From": FROM, "MediaUrl": [f"https://e.com/{i}.png" for i in range(11)]},
            400,
            21623,
        ),
        ({"To": TO, "From": FROM, "MediaUrl": "ftp://e.com/a.png"}, 400, 21620),
        ({"To": REJECTED_NUMBER, "From": FROM, "Body": "x"}, 422, 21211),
    ],
)
def test_create_validation(emu: Emulator, api: Api, data: dict[str, Any], status: int, code: int) -> None:
    assert_error(api.post("/Messages.json", data), status, code)
    assert len(emu.store) == 0


def test_body_of_exactly_1600_and_ten_media_are_accepted(api: Api) -> None:
    m = api.create(Body="a" * 1600, MediaUrl=[f"https://e.com/{i}.gif" for i in range(10)])
    assert m["num_segments"] == 11 and m["num_media"] == 10


@pytest.mark.parametrize(
    ("number", "final", "code"),
    [(UNDELIVERED_NUMBER, "undelivered", "30004"), (FAILED_NUMBER, "failed", "30003")],
)
def test_failing_numbers_set_error_code(emu: Emulator, api: Api, number: str, final: str, code: str) -> None:
    sid = api.create(To=number)["sid"]
    emu.wait_for_status(sid, final, timeout=5)
    m = api.get(f"/Messages/{sid}").json()
    assert m["status"] == final and m["error_code"] == code and m["error_message"]
    if final == "failed":
        assert m["date_sent"] is None and m["price"] is None
    else:
        assert m["date_sent"] is not None


def test_no_dlr_number_stops_at_sent(emu: Emulator, api: Api) -> None:
    sid = api.create(To=NO_DLR_NUMBER)["sid"]
    emu.wait_for_status(sid, "sent", timeout=5)
    emu.wait_idle(timeout=5)  # its progression has finished
    record = emu.get_message(sid)
    assert record is not None
    assert record["history"] == ["queued", "initiated", "sent"] and record["status"] == "sent"


def test_fetch_unknown_and_unknown_path(api: Api) -> None:
    assert_error(api.get("/Messages/00000000-0000-0000-0000-000000000000.json"), 404, 20404)
    assert_error(api.get("/Calls.json"), 404, 20404)
    assert_error(api.delete("/Messages.json"), 405, 20004)


# -- auth and injected faults -------------------------------------------------------------------------------


def test_auth_required(emu: Emulator, api: Api) -> None:
    url = api.base + "/Messages.json"
    assert_error(requests.get(url, timeout=10), 401, 20003)
    assert_error(requests.get(url, auth=(emu.project, "wrong"), timeout=10), 401, 20003)
    assert_error(requests.post(url, data={"To": TO, "From": FROM, "Body": "x"}, timeout=10), 401, 20003)
    other = url.replace(emu.project, "00000000-0000-0000-0000-000000000000")
    assert_error(requests.get(other, auth=(emu.project, emu.token), timeout=10), 401, 20003)
    bad_header = {"Authorization": "Basic !!!"}
    assert_error(requests.get(url, headers=bad_header, timeout=10), 401, 20003)
    assert len(emu.store) == 0


def test_throttle_fault_comes_before_auth(emu: Emulator, api: Api) -> None:
    emu.faults.rest_throttle = 2
    emu.faults.retry_after = "3"
    r = requests.get(api.base + "/Messages.json", timeout=10)  # no credentials at all
    assert_error(r, 429, 20429)
    assert r.headers["Retry-After"] == "3"
    assert_error(api.get("/Messages.json"), 429, 20429)
    assert api.get("/Messages.json").status_code == 200
    assert emu.faults.rest_throttle == 0


def test_error_fault(emu: Emulator, api: Api) -> None:
    emu.faults.rest_error = 1
    assert_error(api.post("/Messages.json", {"To": TO, "From": FROM, "Body": "x"}), 500, 20504)
    assert len(emu.store) == 0
    assert api.post("/Messages.json", {"To": TO, "From": FROM, "Body": "x"}).status_code == 201


def test_request_log_and_stats(emu: Emulator, api: Api) -> None:
    api.get("/Messages.json", params={"To": TO, "PageSize": 5})
    api.create()
    assert emu.request_log == [
        (
            "GET",
            f"/api/laml/2010-04-01/Accounts/{emu.project}/Messages.json?To=%2B15551230001&PageSize=5",
        ),
        ("POST", f"/api/laml/2010-04-01/Accounts/{emu.project}/Messages.json"),
    ]
    stats = emu.stats
    assert stats.rest_requests == 2 and stats.rest_creates == 1
    emu.reset()
    assert emu.request_log == [] and emu.stats.rest_requests == 0 and len(emu.store) == 0


# -- list, filters, paging ------------------------------------------------------------------------------------


def test_paging_2500_records_in_pages_of_1000(emu: Emulator, api: Api) -> None:
    seeded = emu.add_messages(2500)
    assert len(set(seeded)) == 2500
    r = api.get("/Messages.json", params={"PageSize": 1000})
    pages = []
    while True:
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == PAGE_KEYS | {"messages"}
        pages.append(page)
        if page["next_page_uri"] is None:
            break
        r = api.follow(page["next_page_uri"])
    assert [len(p["messages"]) for p in pages] == [1000, 1000, 500]
    assert [p["page"] for p in pages] == [0, 1, 2]
    assert all(p["page_size"] == 1000 for p in pages)
    assert [m["sid"] for p in pages for m in p["messages"]] == seeded  # newest first
    first = pages[0]
    assert first["previous_page_uri"] is None
    assert first["uri"] == f"/api/laml/2010-04-01/Accounts/{emu.project}/Messages?Page=0&PageSize=1000"
    assert first["first_page_uri"] == first["uri"]
    query = parse_qs(urlsplit(first["next_page_uri"]).query)
    assert query["Page"] == ["1"] and query["PageToken"] == ["PA" + seeded[999]]
    # previous_page_uri of page 1 leads back to page 0.
    back = api.follow(pages[1]["previous_page_uri"]).json()
    assert [m["sid"] for m in back["messages"]] == seeded[:1000]
    dates = [parsedate_to_datetime(m["date_created"]) for m in pages[0]["messages"]]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == 1000


def test_add_messages_fields(emu: Emulator, api: Api) -> None:
    sids = emu.add_messages(3, to="+15550000100", body="n{i}", status="failed", error_code="30003")
    m = api.get(f"/Messages/{sids[2]}").json()
    assert (m["to"], m["body"], m["status"], m["error_code"]) == (
        "+15550000100",
        "n2",
        "failed",
        "30003",
    )
    assert m["date_sent"] is None and m["price"] is None
    with pytest.raises(TypeError):
        emu.add_messages(1, colour="blue")


def test_default_page_size_is_50(emu: Emulator, api: Api) -> None:
    emu.add_messages(60)
    page = api.get("/Messages.json").json()
    assert page["page_size"] == 50 and len(page["messages"]) == 50
    rest = api.follow(page["next_page_uri"]).json()
    assert len(rest["messages"]) == 10 and rest["next_page_uri"] is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"PageSize": 0}, 54454),
        ({"PageSize": 1001}, 54454),
        ({"PageSize": "ten"}, 54454),
        ({"Page": 1}, 54453),
        ({"PageToken": "XX123"}, 21481),
        ({"PageToken": "PAnot-a-sid"}, 21481),
        ({"DateSent": "yesterday"}, 10000),
    ],
)
def test_list_parameter_errors(api: Api, params: dict[str, Any], code: int) -> None:
    assert_error(api.get("/Messages.json", params=params), 400, code)


def test_list_filters(emu: Emulator, api: Api) -> None:
    emu.add_messages(30, to="+15550000100", from_="+15550000200")
    emu.add_messages(30, to="+15550000101", from_="+15550000200", status="undelivered", error_code="30004")
    emu.add_messages(30, to="+15550000101", from_="+15550000201", status="failed")
    everything = api.get("/Messages", params={"PageSize": 1000}).json()["messages"]
    assert len(everything) == 90

    def listed(**params: Any) -> list[str]:
        page = api.get("/Messages.json", params={"PageSize": 1000, **params}).json()
        return [m["sid"] for m in page["messages"]]

    def expect(pred: Any) -> list[str]:
        return [m["sid"] for m in everything if pred(m)]

    assert listed(To="+15550000101") == expect(lambda m: m["to"] == "+15550000101")
    assert len(listed(To="+15550000101")) == 60
    assert listed(From="+15550000201") == expect(lambda m: m["from"] == "+15550000201")
    assert listed(Status="undelivered") == expect(lambda m: m["status"] == "undelivered")
    assert len(listed(To="+15550000101", Status="failed", From="+15550000201")) == 30

    sent = [(m, parsedate_to_datetime(m["date_sent"]).date()) for m in everything if m["date_sent"]]
    days = sorted({d for _, d in sent})
    assert len(days) >= 2
    day = days[1].isoformat()
    on_day = [m["sid"] for m, d in sent if d == days[1]]
    assert on_day and listed(DateSent=day) == on_day
    assert listed(DateSent=f"{day}T00:00:00Z") == on_day
    assert listed(**{"DateSent<": day}) == [m["sid"] for m, d in sent if d <= days[1]]
    assert listed(**{"DateSent>": day}) == [m["sid"] for m, d in sent if d >= days[1]]
    assert listed(**{"DateSent>": day, "DateSent<": day}) == on_day
    assert listed(To="+15550000199") == []


def test_page_uris_carry_the_filters(emu: Emulator, api: Api) -> None:
    emu.add_messages(5, to="+15550000100")
    emu.add_messages(5, to="+15550000101")
    r = api.get("/Messages.json", params={"To": "+15550000101", "DateSent>": "2000-01-01", "PageSize": 2})
    page = r.json()
    pages = [page]
    while page["next_page_uri"]:
        query = parse_qs(urlsplit(page["next_page_uri"]).query)
        assert query["To"] == ["+15550000101"] and query["DateSent>"] == ["2000-01-01"]
        page = api.follow(page["next_page_uri"]).json()
        pages.append(page)
    assert [len(p["messages"]) for p in pages] == [2, 2, 1]
    assert {m["to"] for p in pages for m in p["messages"]} == {"+15550000101"}
    assert parse_qs(urlsplit(pages[0]["first_page_uri"]).query)["To"] == ["+15550000101"]


# -- redact, delete, media -----------------------------------------------------------------------------------------


def test_redact(emu: Emulator, api: Api) -> None:
    sid = api.create(Body="secret")["sid"]
    emu.wait_for_status(sid, "delivered", timeout=5)
    assert_error(api.post(f"/Messages/{sid}.json", {"Body": "new text"}), 400, 50509)
    assert_error(api.post(f"/Messages/{sid}.json", {}), 400, 50509)
    r = api.post(f"/Messages/{sid}.json", {"Body": ""})
    assert r.status_code == 200
    assert r.json()["body"] == "" and r.json()["sid"] == sid
    assert api.get(f"/Messages/{sid}.json").json()["body"] == ""


def test_redact_and_delete_refused_while_in_progress(slow: Api) -> None:
    m = slow.create(MediaUrl="https://e.com/a.png")
    sid = m["sid"]
    assert_error(slow.post(f"/Messages/{sid}.json", {"Body": ""}), 400, 10000)
    assert_error(slow.delete(f"/Messages/{sid}.json"), 400, 20009)
    media_sid = slow.get(f"/Messages/{sid}/Media.json").json()["media_list"][0]["sid"]
    assert_error(slow.delete(f"/Messages/{sid}/Media/{media_sid}.json"), 400, 20009)
    assert slow.get(f"/Messages/{sid}.json").json()["status"] == "queued"


def test_delete(emu: Emulator, api: Api) -> None:
    sid = api.create()["sid"]
    emu.wait_for_status(sid, "delivered", timeout=5)
    r = api.delete(f"/Messages/{sid}.json")
    assert r.status_code == 204 and r.content == b""
    assert_error(api.get(f"/Messages/{sid}.json"), 404, 20404)
    assert_error(api.delete(f"/Messages/{sid}.json"), 404, 20404)
    assert emu.get_message(sid) is None


def test_media(emu: Emulator, api: Api) -> None:
    m = api.create(Body="", MediaUrl=["https://e.com/pic.png", "https://e.com/clip.mp4", "https://e.com/noext"])
    sid = m["sid"]
    emu.wait_for_status(sid, "delivered", timeout=5)
    page = api.get(f"/Messages/{sid}/Media.json").json()
    assert set(page) == PAGE_KEYS | {"media_list"}
    media = page["media_list"]
    assert [x["content_type"] for x in media] == ["image/png", "video/mp4", "image/jpeg"]
    first = media[0]
    assert set(first) == {
        "sid",
        "account_sid",
        "parent_sid",
        "content_type",
        "date_created",
        "date_updated",
        "uri",
    }
    assert first["parent_sid"] == sid and first["account_sid"] == emu.project
    assert first["uri"] == f"/api/laml/2010-04-01/Accounts/{emu.project}/Messages/{sid}/Media/{first['sid']}.json"
    assert api.follow(first["uri"]).json() == first

    small = api.get(f"/Messages/{sid}/Media.json", params={"PageSize": 2}).json()
    assert [x["sid"] for x in small["media_list"]] == [x["sid"] for x in media[:2]]
    assert [x["sid"] for x in api.follow(small["next_page_uri"]).json()["media_list"]] == [media[2]["sid"]]

    r = api.delete(f"/Messages/{sid}/Media/{first['sid']}")
    assert r.status_code == 204 and r.content == b""
    assert_error(api.get(f"/Messages/{sid}/Media/{first['sid']}.json"), 404, 20404)
    assert len(api.get(f"/Messages/{sid}/Media").json()["media_list"]) == 2
    assert api.get(f"/Messages/{sid}").json()["num_media"] == 2
    assert_error(api.get(f"/Messages/{sid}/Media/nope.json"), 404, 20404)


# -- one store for RELAY and REST ----------------------------------------------------------------------------------


def test_relay_messages_and_inbound_are_visible_over_rest(emu: Emulator, api: Api) -> None:
    ws = websocket.create_connection(emu.relay_url, timeout=5)
    try:
        auth = {"project": emu.project, "token": emu.token}
        ws.send(json.dumps({"jsonrpc": "2.0", "id": "c", "method": "signalwire.connect",
                            "params": {"authentication": auth}}))  # fmt: skip
        assert "result" in json.loads(ws.recv())
        params = {
            "context": "office",
            "to_number": UNDELIVERED_NUMBER,
            "from_number": FROM,
            "body": "via relay",
        }
        ws.send(json.dumps({"jsonrpc": "2.0", "id": "s", "method": "messaging.send", "params": params}))
        while True:
            frame = json.loads(ws.recv())
            if frame.get("id") == "s":
                break
        sid = frame["result"]["message_id"]
    finally:
        ws.close()
    emu.wait_for_status(sid, "undelivered", timeout=5)
    m = api.get(f"/Messages/{sid}.json").json()
    assert m["direction"] == "outbound-api" and m["status"] == "undelivered"
    assert m["body"] == "via relay" and m["to"] == UNDELIVERED_NUMBER and m["error_code"] == "30004"

    inbound = emu.inject_inbound(FROM, "+15550001111", body="hello back", media=["https://e.com/x.gif"])
    m = api.get(f"/Messages/{inbound}.json").json()
    assert m["direction"] == "inbound" and m["status"] == "received" and m["num_media"] == 1
    listed = api.get("/Messages.json", params={"Status": "received"}).json()["messages"]
    assert [x["sid"] for x in listed] == [inbound]

    rest_sid = api.create()["sid"]
    assert emu.wait_for_status(rest_sid, "delivered", timeout=5)["origin"] == "rest"


# -- the standalone server --------------------------------------------------------------------------------------------


def test_command_line_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swsync.emulator",
            "--state-delay",
            "0",
            "--project",
            "proj-1",
            "--token",
            "tok-1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environ(PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        env = {}
        for _ in range(4):
            key, _, value = proc.stdout.readline().strip().partition("=")
            env[key] = value
        # Exactly what the clients and webhook validators read (nothing reads a RELAY URL variable).
        assert list(env) == [
            "SIGNALWIRE_PROJECT_ID",
            "SIGNALWIRE_API_TOKEN",
            "SIGNALWIRE_SPACE",
            "SIGNALWIRE_SIGNING_KEY",
        ]
        assert env["SIGNALWIRE_PROJECT_ID"] == "proj-1" and env["SIGNALWIRE_API_TOKEN"] == "tok-1"
        assert env["SIGNALWIRE_SPACE"].startswith("http://127.0.0.1:")
        r = requests.post(
            f"{env['SIGNALWIRE_SPACE']}/api/laml/2010-04-01/Accounts/proj-1/Messages.json",
            data={"To": TO, "From": FROM, "Body": "hi"},
            auth=("proj-1", "tok-1"),
            timeout=10,
        )
        assert r.status_code == 201
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        stop_process(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -- webhooks: status callbacks and inbound cXML -----------------------------------------------------------------------


STATUS_KEYS = {
    "MessageSid", "SmsSid", "AccountSid", "From", "To", "Body", "NumMedia", "NumSegments",
    "MessageStatus", "SmsStatus", "ApiVersion",
}  # fmt: skip


def test_status_callbacks_are_signed_and_in_order(emu: Emulator, api: Api, hook: Hook) -> None:
    url = f"{hook.url}/status?tenant=acme"
    sid = api.create(Body="Hello World!", StatusCallback=url)["sid"]
    seen = []
    for _ in range(4):
        path, headers, form = hook.next()
        assert path == "/status?tenant=acme"
        assert set(form) == STATUS_KEYS
        signature = sign_form(emu.signing_key, url, form)
        assert headers["X-SignalWire-Signature"] == signature
        assert headers["X-Twilio-Signature"] == signature
        assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        assert form["MessageSid"] == form["SmsSid"] == sid
        assert form["AccountSid"] == emu.project and form["ApiVersion"] == "2010-04-01"
        assert (form["From"], form["To"], form["Body"]) == (FROM, TO, "Hello World!")
        assert form["NumMedia"] == "0" and form["NumSegments"] == "1"
        assert form["SmsStatus"] == form["MessageStatus"]
        seen.append(form["MessageStatus"])
    assert seen == ["queued", "initiated", "sent", "delivered"]
    assert emu.stats.webhooks_sent == 4


def test_status_callback_of_a_failed_message_has_error_fields(emu: Emulator, api: Api, hook: Hook) -> None:
    api.create(To=FAILED_NUMBER, StatusCallback=f"{hook.url}/cb")
    forms = [hook.next()[2] for _ in range(2)]
    assert [f["MessageStatus"] for f in forms] == ["queued", "failed"]
    assert "ErrorCode" not in forms[0]
    assert forms[1]["ErrorCode"] == "30003" and forms[1]["ErrorMessage"]


def test_unreachable_status_callback_changes_nothing(emu: Emulator, api: Api, caplog: Any) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sid = api.create(StatusCallback=f"http://127.0.0.1:{port}/cb")["sid"]
    emu.wait_for_status(sid, "delivered", timeout=5)
    emu.wait_idle(timeout=10)
    assert emu.stats.webhooks_sent == 4
    assert api.get(f"/Messages/{sid}").json()["status"] == "delivered"
    assert any("webhook POST" in r.getMessage() for r in caplog.records)


def test_rest_status_callback_must_be_a_url(api: Api) -> None:
    assert_error(
        api.post("/Messages.json", {"To": TO, "From": FROM, "Body": "x", "StatusCallback": "nope"}),
        400,
        21402,
    )


CXML_REPLY = """<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Message>Thanks, got it!</Message>
  <Message to="+15550009999" from="+15550008888"><Body>Part one, </Body><Body>part two</Body><Media>https://e.com/r.png</Media></Message>
  <Redirect>https://e.com/next</Redirect>
</Response>"""


def test_inbound_webhook_and_cxml_reply(hook: Hook) -> None:
    hook.reply = (200, "text/xml", CXML_REPLY)
    url = f"{hook.url}/sms"
    with Emulator(state_delay=0, inbound_webhook_url=url) as emu:
        sid = emu.inject_inbound(FROM, "+15550001111", body="Hi there", media=["https://e.com/in.gif"])
        path, headers, form = hook.next()
        assert path == "/sms"
        assert headers["X-SignalWire-Signature"] == sign_form(emu.signing_key, url, form)
        assert headers["X-Twilio-Signature"] == headers["X-SignalWire-Signature"]
        assert form["MessageSid"] == form["SmsSid"] == sid
        assert (form["From"], form["To"], form["Body"]) == ("+15550001111", FROM, "Hi there")
        assert form["AccountSid"] == emu.project and form["SmsStatus"] == "received"
        assert form["NumMedia"] == "1" and form["NumSegments"] == "1"
        assert form["MediaUrl0"] == "https://e.com/in.gif" and form["MediaContentType0"] == "image/gif"

        emu.wait_until(lambda: len(emu.store) == 3, timeout=10)
        a = Api(emu)
        try:
            replies = a.get("/Messages.json", params={"From": FROM}).json()["messages"]
            other = a.get("/Messages.json", params={"To": "+15550009999"}).json()["messages"]
        finally:
            a.close()
        assert [(m["to"], m["body"], m["direction"]) for m in replies] == [
            ("+15550001111", "Thanks, got it!", "outbound-reply")
        ]
        assert len(other) == 1
        assert (other[0]["from"], other[0]["body"], other[0]["num_media"]) == (
            "+15550008888", "Part one, part two", 1,
        )  # fmt: skip
        emu.wait_for_status(other[0]["sid"], "delivered", timeout=5)


@pytest.mark.parametrize(
    "reply",
    [
        (500, "text/xml", CXML_REPLY),
        (200, "text/plain", "not xml"),
        (200, "text/xml", "<Other/>"),
        (200, "text/xml", ""),
    ],
)
def test_inbound_webhook_bad_reply_sends_nothing(hook: Hook, reply: tuple[int, str, str]) -> None:
    hook.reply = reply
    with Emulator(state_delay=0, inbound_webhook_url=f"{hook.url}/sms") as emu:
        emu.inject_inbound(FROM, "+15550001111", body="Hi")
        hook.next()
        emu.wait_idle(timeout=10)
        assert len(emu.store) == 1
