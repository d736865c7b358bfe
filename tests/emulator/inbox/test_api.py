"""The emulator's inbox: store listeners, the JSON API under /_emulator/api, the event stream."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import pytest
import requests

from swsync import RestClient
from swsync.emulator import UNDELIVERED_NUMBER, Emulator

from ...helpers import Hook, make_client

APP = "+15559870000"
PHONE = "+15551230000"


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook("/hook")
    yield h
    h.close()


def api(emu: Emulator, path: str) -> str:
    return f"{emu.ui_url}api/{path}"


# -- store listeners ------------------------------------------------------------------------------


def test_store_listeners_hear_create_state_webhook_delete_and_reset(emu: Emulator, hook: Hook) -> None:
    heard: queue.Queue[tuple[str, str | None, dict[str, Any] | None]] = queue.Queue()

    def listener(event: str, record: Any, info: dict[str, Any] | None) -> None:
        heard.put((event, None if record is None else record.status, info))

    emu.store.add_listener(listener)
    with RestClient(project=emu.project, token=emu.token, space=emu.rest_url) as rest:
        sid = rest.messages.create(to=PHONE, from_=APP, body="hi", status_callback=hook.url).sid
    emu.wait_idle()
    events = [heard.get(timeout=5) for _ in range(1 + 3 + 4)]  # queued is the created state
    assert [e[:2] for e in events if e[0] != "webhook"] == [
        ("created", "queued"),
        ("state", "initiated"),
        ("state", "sent"),
        ("state", "delivered"),
    ]
    hooks = [e[2] for e in events if e[0] == "webhook"]
    assert [h["state"] for h in hooks if h] == ["queued", "initiated", "sent", "delivered"]
    assert all(h and h["status"] == 200 and h["sid"] == sid and h["url"] == hook.url for h in hooks)
    emu.store.delete(sid)
    assert heard.get(timeout=5)[0] == "deleted"
    emu.reset()
    assert heard.get(timeout=5)[0] == "reset"
    emu.store.remove_listener(listener)
    emu.add_messages(1)
    assert heard.empty()


def test_a_failing_listener_is_logged_and_the_store_goes_on(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: str, record: Any, info: Any) -> None:
        raise RuntimeError("boom")

    emu.store.add_listener(broken)
    assert len(emu.add_messages(2)) == 2
    assert "emulator store listener failed" in caplog.text


# -- messages: list, search, get, wait, delete ------------------------------------------------------


def test_list_and_search_by_every_filter(emu: Emulator) -> None:
    emu.add_messages(3, to=PHONE, from_=APP, body="order {i} shipped")
    emu.add_messages(2, to="+15551110000", from_=APP, body="Your code is 12{i}", status="failed")
    sid_in = emu.inject_inbound(APP, PHONE, "Where is ORDER 7?")

    def sids(**query: str) -> list[str]:
        r = requests.get(api(emu, "messages"), params=query, timeout=10)
        assert r.status_code == 200, r.text
        return [m["sid"] for m in r.json()["messages"]]

    assert len(sids()) == 6 and sids()[0] == sid_in  # newest first
    assert len(sids(to=PHONE)) == 3
    assert sids(**{"from": PHONE}) == [sid_in]
    assert len(sids(number=PHONE)) == 4
    assert sids(direction="inbound") == [sid_in]
    assert len(sids(direction="outbound")) == 5
    assert len(sids(state="failed")) == 2
    assert len(sids(state="failed,received")) == 3
    assert len(sids(contains="order")) == 4  # case-insensitive
    assert len(sids(q="1110")) == 2 and len(sids(q="code is")) == 2
    hour_ago = datetime.now(timezone.utc) - timedelta(minutes=90)
    assert len(sids(since=hour_ago.isoformat())) == 3  # seeded i=0 (1 h ago) for both, and the inbound
    assert len(sids(since=str(hour_ago.timestamp()), to=PHONE)) == 1
    assert len(sids(limit="2")) == 2
    r = requests.get(api(emu, "messages"), params={"since": "yesterday"}, timeout=10)
    assert r.status_code == 400 and "since" in r.json()["message"]


def test_get_one_has_timeline_with_times_reason_and_webhooks(hook: Hook) -> None:
    with Emulator(state_delay=0.0) as emu:
        with RestClient(project=emu.project, token=emu.token, space=emu.rest_url) as rest:
            sid = rest.messages.create(to=UNDELIVERED_NUMBER, from_=APP, body="ok ✓", status_callback=hook.url).sid
        emu.wait_idle()
        d = requests.get(api(emu, f"messages/{sid}"), timeout=10).json()
    assert [e["state"] for e in d["timeline"]] == ["queued", "initiated", "sent", "undelivered"]
    assert all(a["t"] <= b["t"] for a, b in pairwise(d["timeline"]))
    last = d["timeline"][-1]
    assert last["reason"] == "carrier_blocked" and last["error_code"] == "30004"
    assert datetime.fromisoformat(last["at"]).tzinfo is not None
    assert [w["state"] for w in d["webhooks"]] == ["queued", "initiated", "sent", "undelivered"]
    assert {(w["kind"], w["status"], w["url"]) for w in d["webhooks"]} == {("status_callback", 200, hook.url)}
    assert all(w["duration_ms"] >= 0 and w["at"] for w in d["webhooks"])
    assert d["encoding"] == "UCS-2" and d["num_segments"] == 1 and d["status"] == "undelivered"


def test_get_unknown_message_is_404(emu: Emulator) -> None:
    r = requests.get(api(emu, "messages/nope"), timeout=10)
    assert r.status_code == 404 and r.json() == {"status": 404, "message": "no such message"}


def test_wait_returns_at_once_when_a_message_matches(emu: Emulator) -> None:
    sid = emu.inject_inbound(APP, PHONE, "ready")
    r = requests.get(api(emu, "wait"), params={"from": PHONE, "timeout": "5"}, timeout=10)
    assert r.status_code == 200 and r.json()["messages"][0]["sid"] == sid


def test_wait_long_polls_until_a_message_matches(emu: Emulator) -> None:
    result: queue.Queue[requests.Response] = queue.Queue()

    def poll() -> None:
        result.put(
            requests.get(api(emu, "wait"), params={"contains": "code", "count": "2", "timeout": "20"}, timeout=30)
        )

    waiter = threading.Thread(target=poll, name="test-wait")
    waiter.start()
    emu.wait_until(lambda: bool(emu.inbox.journal.watchers))  # the poll is parked
    emu.inject_inbound(APP, PHONE, "no match")
    emu.inject_inbound(APP, PHONE, "your code: 1")
    emu.inject_inbound(APP, PHONE, "your code: 2")
    r = result.get(timeout=25)
    waiter.join(timeout=10)
    assert r.status_code == 200
    assert [m["body"] for m in r.json()["messages"]] == ["your code: 2", "your code: 1"]
    assert not emu.inbox.journal.watchers


def test_wait_times_out_with_408(emu: Emulator) -> None:
    emu.inject_inbound(APP, PHONE, "one")
    r = requests.get(api(emu, "wait"), params={"count": "2", "timeout": "0.2"}, timeout=10)
    assert r.status_code == 408 and "1 matching message(s)" in r.json()["message"]


def test_delete_one_all_and_reset(emu: Emulator) -> None:
    a, b = emu.add_messages(2)
    assert requests.delete(api(emu, f"messages/{a}"), timeout=10).status_code == 204
    assert emu.get_message(a) is None and emu.get_message(b) is not None
    assert requests.delete(api(emu, f"messages/{a}"), timeout=10).status_code == 404
    assert requests.delete(api(emu, "messages"), timeout=10).status_code == 204
    assert len(emu.store) == 0
    client = make_client(emu, contexts=["default"]).connect()
    try:
        emu.faults.silent = True
        emu.add_messages(1)
        assert requests.post(api(emu, "reset"), timeout=10).status_code == 204
        assert len(emu.store) == 0 and emu.faults.silent is False and emu.stats.connections == 0
    finally:
        client.disconnect()


# -- inbound and faults ------------------------------------------------------------------------------


def test_inbound_reaches_relay_client_and_webhook(hook: Hook) -> None:
    with Emulator(state_delay=0.0, inbound_webhook_url=hook.url) as emu:
        got: queue.Queue[Any] = queue.Queue()
        client = make_client(emu, contexts=["office"]).connect()
        try:
            client.on_message(got.put)
            r = requests.post(
                api(emu, "inbound"),
                timeout=10,
                json={
                    "from": PHONE,
                    "to": APP,
                    "body": "hello from the phone",
                    "context": "office",
                    "media": ["https://example.com/cat.png"],
                },
            )
            assert r.status_code == 201
            message = got.get(timeout=10)
            assert (message.from_number, message.to_number, message.body) == (PHONE, APP, "hello from the phone")
            form = hook.next_form()
            assert form["Body"] == "hello from the phone" and form["MediaUrl0"] == "https://example.com/cat.png"
            assert form["MessageSid"] == r.json()["sid"]
        finally:
            client.disconnect()


@pytest.mark.parametrize(
    "body, error",
    [
        ({"from": "nope", "to": APP, "body": "x"}, "from must be an E.164 number"),
        ({"from": PHONE, "to": APP}, "needs a body or at least one media URL"),
        ({"from": PHONE, "to": APP, "body": "x", "context": 5}, "context must be a non-empty string"),
    ],
)
def test_inbound_refuses_bad_input(emu: Emulator, body: dict[str, Any], error: str) -> None:
    r = requests.post(api(emu, "inbound"), json=body, timeout=10)
    assert r.status_code == 400 and error in r.json()["message"]
    assert len(emu.store) == 0


def test_faults_read_set_and_actions(emu: Emulator) -> None:
    faults = requests.get(api(emu, "faults"), timeout=10).json()
    assert faults["silent"] is False and faults["drop_every"] is None
    r = requests.post(api(emu, "faults"), json={"silent": True, "drop_every": 3, "response_delay": 0.5}, timeout=10)
    assert r.status_code == 200 and r.json()["silent"] is True
    assert (emu.faults.silent, emu.faults.drop_every, emu.faults.response_delay) == (True, 3, 0.5)
    r = requests.post(api(emu, "faults"), json={"silenced": True}, timeout=10)
    assert r.status_code == 400 and "unknown fault knob" in r.json()["message"]
    r = requests.post(api(emu, "faults"), json={"drop_every": "many"}, timeout=10)
    assert r.status_code == 400
    assert faults["mps"] is None  # pacing is off unless Emulator(mps=...)
    assert requests.post(api(emu, "faults"), json={"mps": 2.5}, timeout=10).json()["mps"] == 2.5
    assert emu.pacing.mps == 2.5
    assert requests.post(api(emu, "faults"), json={"mps": None}, timeout=10).json()["mps"] is None
    assert emu.pacing.mps is None
    assert requests.post(api(emu, "faults"), json={"mps": -1}, timeout=10).status_code == 400
    emu.faults.reset()
    client = make_client(emu, contexts=["default"]).connect()
    try:
        assert requests.post(api(emu, "drop-connections"), timeout=10).json() == {"dropped": 1}
        emu.wait_until(lambda: emu.stats.connections >= 2, timeout=10)  # the client resumed
        r = requests.post(api(emu, "server-disconnect"), json={"restart": False}, timeout=10)
        assert r.json() == {"disconnected": 1}
        emu.wait_until(lambda: emu.stats.connections >= 3, timeout=10)
    finally:
        client.disconnect()


# -- live updates --------------------------------------------------------------------------------------


def read_events(resp: requests.Response) -> Iterator[tuple[str, Any]]:
    event = None
    for line in resp.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event or "message", json.loads(line[6:])


def test_event_stream_sends_a_snapshot_then_batched_updates(emu: Emulator) -> None:
    first = emu.inject_inbound(APP, PHONE, "before")
    with requests.get(api(emu, "events"), stream=True, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        events = read_events(resp)
        kind, data = next(events)
        assert kind == "snapshot" and [m["sid"] for m in data["messages"]] == [first]
        assert data["faults"]["silent"] is False
        seeded = set(emu.add_messages(200))
        seen: set[str] = set()
        batches = 0
        while seen != seeded:
            kind, data = next(events)
            assert kind == "update"
            batches += 1
            seen |= {row[data["fields"].index("sid")] for row in data["rows"]}
        assert batches < 20  # 200 changes, a handful of batches: never one event per change
        emu.reset()
        kind, data = next(events)
        assert kind == "update" and data["reset"] is True and data["rows"] == []


def test_event_stream_ends_when_the_emulator_closes() -> None:
    emu = Emulator(state_delay=0.0).start()
    try:
        resp = requests.get(api(emu, "events"), stream=True, timeout=10)
        events = read_events(resp)
        assert next(events)[0] == "snapshot"
    finally:
        emu.close()
    assert list(events) == []
    resp.close()


# -- the page and its safety --------------------------------------------------------------------------


def test_page_and_static_files_are_served_from_the_package(emu: Emulator) -> None:
    assert emu.ui_url == f"{emu.rest_url}/_emulator/"
    page = requests.get(emu.ui_url, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "static/inbox.js" in page.text and "http" not in page.text.split("<body>")[0].replace("http-equiv", "")
    for name, ctype in (("inbox.js", "text/javascript"), ("inbox.css", "text/css")):
        r = requests.get(f"{emu.ui_url}static/{name}", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(ctype)
    assert requests.get(f"{emu.ui_url}static/..%2Fapi.py", timeout=10).status_code == 404
    r = requests.get(f"{emu.rest_url}/_emulator", timeout=10)
    assert r.url == emu.ui_url


def test_cross_site_posts_and_foreign_host_names_are_refused(emu: Emulator) -> None:
    r = requests.post(api(emu, "reset"), headers={"Origin": "http://evil.example"}, timeout=10)
    assert r.status_code == 403
    r = requests.post(
        api(emu, "inbound"), data="from=x", timeout=10, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415
    r = requests.get(api(emu, "messages"), headers={"Host": f"rebound.example:{emu.port}"}, timeout=10)
    assert r.status_code == 403
    same = requests.post(api(emu, "reset"), headers={"Origin": emu.rest_url}, timeout=10)
    assert same.status_code == 204


def test_bound_beyond_loopback_the_inbox_needs_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    from swsync.cli._emulator_server import announce_inbox

    with Emulator(host="0.0.0.0", state_delay=0.0) as emu:
        base = f"http://127.0.0.1:{emu.port}/_emulator/"
        for path in ("", "api/messages", "api/events"):
            r = requests.get(base + path, timeout=10)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
        assert requests.get(base + "api/messages", auth=(emu.project, "wrong"), timeout=10).status_code == 401
        assert requests.get(base + "api/messages", auth=(emu.project, emu.token), timeout=10).status_code == 200
        announce_inbox(emu, False)
    err = capsys.readouterr().err
    assert f"swsync emulator: inbox at http://0.0.0.0:{emu.port}/_emulator/" in err
    assert "ask for the project ID and API token" in err


def test_emulator_command_prints_the_inbox_url_and_opens_it(tmp_path: Any) -> None:
    browser = tmp_path / "browser"
    browser.write_text('#!/bin/sh\necho "opened:$1" >&2\n')
    browser.chmod(0o755)
    env = dict(os.environ, PYTHONUNBUFFERED="1", BROWSER=str(browser))
    proc = subprocess.Popen(
        [sys.executable, "-m", "swsync", "emulator", "--port", "0", "--open"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = opened = None
        while opened is None:
            line = proc.stderr.readline()
            assert line, "the emulator exited early"
            if "inbox at " in line:
                url = line.split("inbox at ", 1)[1].strip()
            elif line.startswith("opened:"):
                opened = line[len("opened:") :].strip()
        assert url is not None and url.startswith("http://127.0.0.1:") and url.endswith("/_emulator/")
        assert opened == url
        assert "swsync emulator inbox" in requests.get(url, timeout=10).text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stderr is not None:
            proc.stderr.close()


def test_live_updates_encode_exactly_what_the_list_endpoint_returns(emu: Emulator) -> None:
    from swsync.emulator.inbox.journal import FIELDS, encode
    from swsync.emulator.inbox.views import summary

    emu.add_messages(
        1,
        body='quote " backslash \\ ü ✓ \u2028',
        tags=["a", "ß"],
        media=["https://e.com/p.png"],
        status="failed",
        error_code="30003",
        context="office",
    )
    emu.add_messages(1, body=None, to='a "seeded" number', status='odd "status"')
    emu.inject_inbound(APP, PHONE, "plain")
    static: dict[str, str] = {}
    for record in emu.store.select(None):
        assert dict(zip(FIELDS, json.loads(encode(record, static)), strict=True)) == summary(record)
        assert dict(zip(FIELDS, json.loads(encode(record, static)), strict=True)) == summary(record)  # from the cache
    assert set(FIELDS) == set(summary(record))
    assert len(static) == 3
