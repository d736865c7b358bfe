"""examples/flask_app.py: signature checks, status log and cXML replies.

The main tests serve the app with werkzeug on 127.0.0.1 (a real socket, one
named thread) and point the emulator's signed webhooks at it. Edge cases of the
example's own logic use Flask's test client.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import flask  # the dev extra installs it: the example's tests never skip
import pytest
import requests

from swsync import Emulator, RestClient
from swsync.cxml import CONTENT_TYPE
from swsync.errors import ConfigurationError

from ..support.webhook_servers import OURS, THEIRS, TIMEOUT, LocalServer, sign_body, sign_form

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app.py"
KEY = "PSK_flaskExampleTestKey0123456789abcdef"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("swsync_example_flask_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


def test_independent_signer_matches_the_reference_vector() -> None:
    # Keeps `sign_form` honest, so the checks below that rely on it can fail.
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert sign_form("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


# ---------------------------------------------------------------------------
# Helpers: a real local server and a recorder of finished requests


# LocalServer (tests/support/webhook_servers.py) serves the app from one named, joined thread.
@dataclass(frozen=True)
class Hit:
    """One request the app finished, as it saw it."""

    method: str
    path: str
    status: int
    content_type: str
    signature: str | None  # X-SignalWire-Signature
    twilio_signature: str | None  # X-Twilio-Signature
    form: dict[str, str]
    url: str
    body: str


class Requests:
    """Records every request the app finishes (a Flask ``request_finished`` receiver).

    ``done`` is set once ``until(hits)`` is true. The signal fires after the view
    has run, so by then the app has recorded the callback and built its reply.
    """

    def __init__(self, until: Callable[[list[Hit]], bool]) -> None:
        # Guards hits; held only to append and evaluate `until` on a copy.
        self._lock = threading.Lock()
        self.hits: list[Hit] = []
        self.done = threading.Event()
        self._until = until

    def __call__(self, sender: Any, response: Any, **extra: Any) -> None:
        req = flask.request
        hit = Hit(
            method=req.method,
            path=req.path,
            status=response.status_code,
            content_type=response.headers.get("Content-Type", ""),
            signature=req.headers.get("X-SignalWire-Signature"),
            twilio_signature=req.headers.get("X-Twilio-Signature"),
            form=req.form.to_dict(),
            url=req.host_url.rstrip("/") + req.environ["RAW_URI"],
            body=response.get_data(as_text=True),
        )
        with self._lock:
            self.hits.append(hit)
            done = self._until(list(self.hits))
        if done:
            self.done.set()

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)


class Statuses:
    """The app's ``on_status`` hook: collects callbacks, sets ``terminal`` on the last."""

    def __init__(self) -> None:
        # Guards seen.
        self._lock = threading.Lock()
        self.seen: list[Any] = []
        self.terminal = threading.Event()

    def __call__(self, callback: Any) -> None:
        with self._lock:
            self.seen.append(callback)
        if callback.message_status in ("delivered", "undelivered", "failed"):
            self.terminal.set()

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.seen)


@pytest.fixture
def http() -> Iterator[Any]:
    with requests.Session() as session:
        yield session


# ---------------------------------------------------------------------------
# The example against the emulator's real webhooks


def test_emulator_callbacks_and_inbound_reply_through_the_app(http: Any) -> None:
    statuses = Statuses()
    app = example.create_app(KEY, on_status=statuses, expose_status_log=True)

    def finished(hits: list[Hit]) -> bool:
        return any(h.path == "/status" and h.form.get("MessageStatus") == "delivered" for h in hits)

    seen = Requests(finished)
    with flask.request_finished.connected_to(seen, app), LocalServer(app) as server:
        with (
            Emulator(signing_key=KEY, state_delay=0.0, inbound_webhook_url=server.url + "/sms") as emu,
            RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
        ):
            callback_url = server.url + "/status?tenant=acme"
            sent = rest.messages.create(to=THEIRS, from_=OURS, body="Your code is 1234", status_callback=callback_url)
            assert statuses.terminal.wait(TIMEOUT), "no terminal status callback arrived"
            assert seen.done.wait(TIMEOUT)
            history = emu.get_message(sent.sid)["history"]
            assert history[-1] == "delivered"

            # One callback per status change, in order, typed by the app.
            got = statuses.snapshot()
            assert [cb.message_status for cb in got] == history
            for cb in got:
                assert (cb.message_sid, cb.account_sid) == (sent.sid, emu.project)
                assert (cb.from_, cb.to, cb.body) == (OURS, THEIRS, "Your code is 1234")

            # Each arrived signed over the URL as configured (query included) and
            # was accepted; checked here without swsync's validator.
            posts = [h for h in seen.snapshot() if h.path == "/status"]
            assert [h.form["MessageStatus"] for h in posts] == history
            for h in posts:
                assert h.method == "POST" and h.status == 200
                assert h.url == callback_url
                expected = sign_form(KEY, callback_url, h.form)
                assert h.signature == h.twilio_signature == expected

            # The demo endpoint shows the same log.
            log = http.get(server.url + "/status-log", timeout=TIMEOUT)
            assert log.status_code == 200
            assert [e["message_status"] for e in log.json()] == history
            assert {e["message_sid"] for e in log.json()} == {sent.sid}

            # An inbound message: the app answers with cXML, the emulator sends it.
            seen_sms = Requests(lambda hits: any(h.path == "/sms" for h in hits))
            with flask.request_finished.connected_to(seen_sms, app):
                inbound_sid = emu.inject_inbound(to_number=OURS, from_number=THEIRS, body="Is <this> & that open?")
                assert seen_sms.done.wait(TIMEOUT), "the inbound webhook never reached the app"
            (hit,) = [h for h in seen_sms.snapshot() if h.path == "/sms"]
            assert hit.status == 200 and hit.content_type == CONTENT_TYPE
            assert hit.form["MessageSid"] == inbound_sid and hit.url == server.url + "/sms"
            assert hit.signature == sign_form(KEY, server.url + "/sms", hit.form)
            assert _reply_bodies(hit.body) == ["Thanks, we got: Is <this> & that open?"]

            # The emulator turns the <Message> into an outbound reply to the sender.
            def reply_delivered() -> bool:
                return any(r.direction == "outbound-reply" and r.status == "delivered" for r in emu.store.select(None))

            emu.wait_until(reply_delivered, timeout=TIMEOUT)
            replies = [m for m in rest.messages.list(to=THEIRS) if m.direction == "outbound-reply"]
            assert len(replies) == 1
            assert (replies[0].from_, replies[0].to) == (OURS, THEIRS)
            assert replies[0].body == "Thanks, we got: Is <this> & that open?"
            assert emu.stats.webhooks_sent == len(history) + 1


def _reply_bodies(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    assert [verb.tag for verb in root] == ["Message"] * len(root)
    bodies = []
    for verb in root:
        (body,) = verb.findall("Body")
        bodies.append(body.text or "")
    return bodies


def test_emulator_callbacks_signed_with_another_key_are_refused() -> None:
    statuses = Statuses()
    app = example.create_app(KEY, on_status=statuses, expose_status_log=True)
    with LocalServer(app) as server:
        with (
            Emulator(signing_key="PSK_someOtherProjectsKey", state_delay=0.0) as emu,
            RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
        ):
            history = ["queued", "initiated", "sent", "delivered"]  # the emulator's default path
            seen = Requests(lambda hits: sum(h.path == "/status" for h in hits) >= len(history))
            with flask.request_finished.connected_to(seen, app):
                sent = rest.messages.create(to=THEIRS, from_=OURS, body="hi", status_callback=server.url + "/status")
                assert seen.done.wait(TIMEOUT), "the emulator's callbacks never reached the app"
            assert emu.get_message(sent.sid)["history"] == history
    assert [h.status for h in seen.snapshot()] == [403] * len(history)
    assert all(h.signature for h in seen.snapshot())  # signed, just not with our key
    assert statuses.snapshot() == []
    assert app.extensions["status_log"].entries() == []


def test_emulator_signs_a_percent_encoded_callback_url_as_it_sends_it() -> None:
    app = example.create_app(KEY)
    history = ["queued", "initiated", "sent", "delivered"]  # the emulator's default path
    seen = Requests(lambda hits: sum(h.path == "/status" for h in hits) >= len(history))
    with flask.request_finished.connected_to(seen, app), LocalServer(app) as server:
        with (
            Emulator(signing_key=KEY, state_delay=0.0) as emu,
            RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
        ):
            callback_url = server.url + "/status?next=%2Fhome&q=caf%C3%A9"
            rest.messages.create(to=THEIRS, from_=OURS, body="hi", status_callback=callback_url)
            assert seen.done.wait(TIMEOUT), "the emulator's callbacks never reached the app"
    assert [(h.url, h.status) for h in seen.snapshot()] == [(callback_url, 200)] * len(history)


# ---------------------------------------------------------------------------
# The example on a real socket, driven by hand


STATUS_FORM = {
    "MessageSid": "0a059168-ead0-41af-9d1f-343dae832527",
    "AccountSid": "ea108133-d6b3-407c-9536-9fad8a929a6a",
    "From": OURS,
    "To": THEIRS,
    "Body": "Hello World!",
    "MessageStatus": "undelivered",
    "ErrorCode": "30003",
}
INBOUND_FORM = {
    "MessageSid": "5d8a1b2c-0000-4000-8000-000000000001",
    "AccountSid": "ea108133-d6b3-407c-9536-9fad8a929a6a",
    "From": THEIRS,
    "To": OURS,
    "Body": "Hi </Body> & 'you' ✓",
    "NumMedia": "0",
}


@pytest.fixture
def served() -> Iterator[tuple[Any, LocalServer, Statuses]]:
    statuses = Statuses()
    app = example.create_app(KEY, on_status=statuses, expose_status_log=True)
    with LocalServer(app) as server:
        yield app, server, statuses


def test_signed_inbound_message_gets_a_cxml_reply(served: Any, http: Any) -> None:
    _, server, _ = served
    url = server.url + "/sms"
    reply = http.post(
        url,
        data=INBOUND_FORM,
        headers={"X-SignalWire-Signature": sign_form(KEY, url, INBOUND_FORM)},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == CONTENT_TYPE == "text/xml; charset=utf-8"
    assert reply.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(reply.content)
    assert root.tag == "Response"
    (message,) = root
    assert message.tag == "Message" and message.attrib == {}  # a reply: to/from default
    (body,) = message
    assert body.tag == "Body"
    assert body.text == "Thanks, we got: Hi </Body> & 'you' ✓"


def test_twilio_signature_header_is_accepted(served: Any, http: Any) -> None:
    _, server, statuses = served
    # The query is signed as sent, still percent-encoded (werkzeug's request.url
    # would decode %2F and %C3%A9 and so break the check).
    url = server.url + "/status?next=%2Fhome&q=caf%C3%A9"
    reply = http.post(
        url,
        data=STATUS_FORM,
        headers={"X-Twilio-Signature": sign_form(KEY, url, STATUS_FORM)},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200
    (cb,) = statuses.snapshot()
    assert (cb.message_status, cb.error_code) == ("undelivered", 30003)
    log = http.get(server.url + "/status-log", timeout=TIMEOUT).json()
    assert log == [
        {
            "message_sid": STATUS_FORM["MessageSid"],
            "message_status": "undelivered",
            "account_sid": STATUS_FORM["AccountSid"],
            "from_": OURS,
            "to": THEIRS,
            "body": "Hello World!",
            "num_media": None,
            "num_segments": None,
            "error_code": 30003,
            "error_message": None,
            "api_version": None,
        }
    ]


def _tampered(form: dict[str, str]) -> dict[str, str]:
    return {**form, "Body": form["Body"] + "!"}


@pytest.mark.parametrize("path, form", [("/status", STATUS_FORM), ("/sms", INBOUND_FORM)])
@pytest.mark.parametrize(
    "case",
    ["missing", "empty", "garbage", "other key", "other url", "tampered form", "signed"],
)
def test_every_webhook_needs_a_valid_signature(
    served: Any, http: Any, path: str, form: dict[str, str], case: str
) -> None:
    app, server, statuses = served
    url = server.url + path
    signatures = {
        "missing": None,
        "empty": "",
        "garbage": "not a signature",
        "other key": sign_form("PSK_notOurKey", url, form),
        "other url": sign_form(KEY, "https://elsewhere.example.com" + path, form),
        "tampered form": sign_form(KEY, url, _tampered(form)),
        "signed": sign_form(KEY, url, form),
    }
    signature = signatures[case]
    headers = {} if signature is None else {"X-SignalWire-Signature": signature}
    reply = http.post(url, data=form, headers=headers, timeout=TIMEOUT)
    if case == "signed":  # the control: the same request with the right signature
        assert reply.status_code == 200
    else:
        assert reply.status_code == 403
        assert "Thanks" not in reply.text
        assert statuses.snapshot() == []
        assert app.extensions["status_log"].entries() == []


def test_only_the_webhook_routes_exist(served: Any, http: Any) -> None:
    _, server, statuses = served
    assert http.get(server.url + "/admin", timeout=TIMEOUT).status_code == 404
    assert http.get(server.url + "/sms", timeout=TIMEOUT).status_code == 405
    assert http.post(server.url + "/status-log", timeout=TIMEOUT).status_code == 405
    signed = {"X-SignalWire-Signature": sign_form(KEY, server.url + "/admin", {})}
    assert http.get(server.url + "/admin", headers=signed, timeout=TIMEOUT).status_code == 404
    assert statuses.snapshot() == []


def test_stop_gets_no_reply_and_is_recorded(tmp_path: Any) -> None:
    from swsync.optouts import SQLiteOptOutStore

    db = str(tmp_path / "optouts.db")
    client = example.create_app(KEY, opt_outs=db).test_client()
    stop = {**INBOUND_FORM, "Body": "STOP"}
    reply = _post(client, KEY, "http://localhost/sms", stop)
    assert reply.status_code == 200 and _reply_bodies(reply.get_data(as_text=True)) == []
    store = SQLiteOptOutStore(db)
    assert store.is_opted_out(THEIRS)
    start = {**INBOUND_FORM, "MessageSid": "start-1", "Body": "start"}
    assert _reply_bodies(_post(client, KEY, "http://localhost/sms", start).get_data(as_text=True))
    assert not store.is_opted_out(THEIRS)
    store.close()


def test_a_retried_webhook_is_answered_once(served: Any, http: Any) -> None:
    app, server, statuses = served
    url = server.url + "/status"
    headers = {"X-SignalWire-Signature": sign_form(KEY, url, STATUS_FORM)}
    for _ in range(2):
        assert http.post(url, data=STATUS_FORM, headers=headers, timeout=TIMEOUT).status_code == 200
    assert len(statuses.snapshot()) == 1 and len(app.extensions["status_log"].entries()) == 1


# ---------------------------------------------------------------------------
# The example's own logic (Flask's test client; no sockets needed)


def _post(client: Any, key: str, url: str, form: dict[str, str], **kw: Any) -> Any:
    path = url.split("://", 1)[1].partition("/")[2]
    return client.post("/" + path, data=form, headers={"X-SignalWire-Signature": sign_form(key, url, form)}, **kw)


def test_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALWIRE_SIGNING_KEY", KEY)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    client = example.create_app().test_client()
    assert _post(client, KEY, "http://localhost/status", STATUS_FORM).status_code == 200
    assert _post(client, "PSK_other", "http://localhost/status", STATUS_FORM).status_code == 403


@pytest.mark.parametrize("value", [None, "", "  "])
def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: Any) -> None:
    monkeypatch.delenv("SIGNALWIRE_SIGNING_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SIGNALWIRE_SIGNING_KEY") as info:
        example.create_app(value)
    assert isinstance(info.value, ValueError)


def test_public_url_is_the_url_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Behind a proxy: SignalWire signs the public URL, the app sees a local one.
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    public = "https://hooks.example.com/bot"
    client = example.create_app(KEY, public_url=public + "/").test_client()
    url = public + "/status?tenant=acme&next=%2Fhome"
    local = "http://localhost/status?tenant=acme&next=%2Fhome"
    assert _post(client, KEY, local, STATUS_FORM).status_code == 403
    headers = {"X-SignalWire-Signature": sign_form(KEY, url, STATUS_FORM)}
    reply = client.post("/status?tenant=acme&next=%2Fhome", data=STATUS_FORM, headers=headers)
    assert reply.status_code == 200

    monkeypatch.setenv("PUBLIC_URL", public)  # the same, from the environment
    client = example.create_app(KEY).test_client()
    reply = client.post("/status?tenant=acme&next=%2Fhome", data=STATUS_FORM, headers=headers)
    assert reply.status_code == 200


@pytest.mark.parametrize(
    "value",
    ["hooks.example.com", "ftp://hooks.example.com", "https://", "https://h.example.com/?a=1"],
)
def test_bad_public_url_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="PUBLIC_URL"):
        example.create_app(KEY, public_url=value)


def test_url_is_rebuilt_when_the_server_gives_no_raw_target() -> None:
    client = example.create_app(KEY).test_client()
    url = "http://localhost/status?next=%2Fhome&q=caf%C3%A9"
    no_raw = {"RAW_URI": "", "REQUEST_URI": ""}
    assert _post(client, KEY, url, STATUS_FORM, environ_overrides=no_raw).status_code == 200


def test_json_status_callback_signed_over_the_raw_body() -> None:
    statuses = Statuses()
    client = example.create_app(KEY, on_status=statuses).test_client()
    body = json.dumps({"MessageSid": "abc", "MessageStatus": "delivered"}).encode()
    url = "http://localhost/status"
    good = sign_body(KEY, url, body)
    for signature, expected in [(good, 200), (good[::-1], 403)]:
        reply = client.post(
            "/status",
            data=body,
            content_type="application/json",
            headers={"X-SignalWire-Signature": signature},
        )
        assert reply.status_code == expected
    assert [(cb.message_sid, cb.message_status) for cb in statuses.snapshot()] == [("abc", "delivered")]


def test_signed_but_malformed_webhooks_get_400() -> None:
    client = example.create_app(KEY).test_client()
    assert _post(client, KEY, "http://localhost/status", {"MessageSid": "abc"}).status_code == 400
    assert _post(client, KEY, "http://localhost/sms", {"Body": "hi"}).status_code == 400
    not_object = b"[1, 2]"
    url = "http://localhost/status"
    signature = sign_body(KEY, url, not_object)
    reply = client.post(
        "/status",
        data=not_object,
        content_type="application/json",
        headers={"X-SignalWire-Signature": signature},
    )
    assert reply.status_code == 400


def test_oversized_webhook_is_refused() -> None:
    client = example.create_app(KEY).test_client()
    form = {**STATUS_FORM, "Body": "x" * (example.MAX_WEBHOOK_BYTES + 1)}
    assert _post(client, KEY, "http://localhost/status", form).status_code == 413


def test_a_failing_hook_is_logged_and_the_callback_still_acknowledged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(callback: Any) -> None:
        raise RuntimeError("hook bug")

    app = example.create_app(KEY, on_status=broken)
    with caplog.at_level(logging.ERROR):
        reply = _post(app.test_client(), KEY, "http://localhost/status", STATUS_FORM)
    assert reply.status_code == 200
    assert len(app.extensions["status_log"].entries()) == 1
    assert "on_status hook failed" in caplog.text and "hook bug" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"Body": "x" * 1600}, "Thanks, we got: " + "x" * 1583 + "…"),
        (
            {
                "Body": "",
                "NumMedia": "2",
                "MediaUrl0": "https://m.example/a.jpg",
                "MediaUrl1": "https://m.example/b.jpg",
            },
            "Thanks, we got your 2 attachment(s).",
        ),
        ({"Body": "bell \x07 form feed \x0c"}, "Thanks, we got your message."),
    ],
)
def test_reply_text_edge_cases(extra: dict[str, str], expected: str) -> None:
    client = example.create_app(KEY).test_client()
    reply = _post(client, KEY, "http://localhost/sms", {**INBOUND_FORM, **extra})
    assert reply.status_code == 200
    assert reply.content_type == CONTENT_TYPE
    (text,) = _reply_bodies(reply.get_data(as_text=True))
    assert text == expected
    assert len(text) <= 1600


def test_status_log_is_off_by_default() -> None:
    client = example.create_app(KEY).test_client()
    assert client.get("/status-log").status_code == 404  # no such route


def test_status_log_is_bounded() -> None:
    app = example.create_app(KEY, max_log=2, expose_status_log=True)
    client = app.test_client()
    for status in ("queued", "sent", "delivered"):
        form = {**STATUS_FORM, "MessageStatus": status}
        assert _post(client, KEY, "http://localhost/status", form).status_code == 200
    log = client.get("/status-log").get_json()
    assert [e["message_status"] for e in log] == ["sent", "delivered"]


def test_refusals_are_logged_without_the_key_or_the_signature(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = example.create_app(KEY)
    bad = sign_form("PSK_other", "http://localhost/status", STATUS_FORM)
    with caplog.at_level(logging.DEBUG):
        reply = app.test_client().post("/status", data=STATUS_FORM, headers={"X-SignalWire-Signature": bad})
    assert reply.status_code == 403
    assert "refused webhook POST /status (403)" in caplog.text
    assert KEY not in caplog.text and bad not in caplog.text
