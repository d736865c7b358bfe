"""swsync.flask.validate_webhook on a real werkzeug server, fed by the emulator's
signed webhooks and by hand-signed requests, directly and through a reverse proxy."""

from __future__ import annotations

import json
import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from swsync import Emulator, OptedOutError, RelayClient, RestClient
from swsync.cxml import CONTENT_TYPE, MessagingResponse
from swsync.flask import validate_webhook
from swsync.optouts import SQLiteOptOutStore
from swsync.runonce import MemoryRunOnceStore, RedisRunOnceStore
from swsync.webhooks import InboundMessage, StatusCallback

from .support.webhook_servers import (
    EMPTY,
    INBOUND,
    OURS,
    STATUS,
    THEIRS,
    TIMEOUT,
    LocalServer,
    ReverseProxy,
    Seen,
    post,
    sign_body,
    sign_form,
)

KEY = "PSK_flaskHelperTestKey0123456789abcdef"


def make_app(seen: Seen, **options: Any) -> Flask:
    """Two typed views (inbound replies, status records) and one untyped view."""
    app = Flask(__name__)
    app.config["SIGNALWIRE_SIGNING_KEY"] = KEY

    @app.post("/sms")
    @validate_webhook(**options)
    def sms(message: InboundMessage) -> MessagingResponse:
        seen.add(message)
        return MessagingResponse().message(f"echo: {message.body}")

    @app.post("/status")
    @validate_webhook(**options)
    def status(callback: StatusCallback) -> None:
        seen.add(callback)

    @app.post("/any/<tenant>")
    @validate_webhook(**options)
    def anything(webhook: Any, tenant: str) -> tuple[str, int]:
        seen.add((tenant, webhook))
        if webhook.message_sid == "boom":
            raise RuntimeError("view bug")
        return "ok", 200

    return app


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def served(seen: Seen) -> Iterator[LocalServer]:
    with LocalServer(make_app(seen)) as server:
        yield server


def _bodies(xml: bytes) -> list[str]:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return [verb.findtext("Body") or "" for verb in root]


# ---------------------------------------------------------------------------
# The emulator's real webhooks


def test_emulator_status_callbacks_and_inbound_reply(seen: Seen, served: LocalServer) -> None:
    with (
        Emulator(signing_key=KEY, state_delay=0.0, inbound_webhook_url=served.url + "/sms") as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
    ):
        sent = rest.messages.create(
            to=THEIRS, from_=OURS, body="hi", status_callback=served.url + "/status?tenant=a%2Fb"
        )
        got = seen.wait(lambda items: any(getattr(i, "message_status", "") == "delivered" for i in items))
        history = emu.get_message(sent.sid)["history"]
        statuses = [cb for cb in got if isinstance(cb, StatusCallback)]
        assert [cb.message_status for cb in statuses] == history
        assert {cb.message_sid for cb in statuses} == {sent.sid}
        finished = served.recorder.wait_for(lambda f: len(f) >= len(history))
        assert all(f.status == 200 and f.content_type == CONTENT_TYPE and f.body.decode() == EMPTY for f in finished)

        inbound_sid = emu.inject_inbound(to_number=OURS, from_number=THEIRS, body="a & <b>")
        (message,) = seen.wait(lambda items: any(isinstance(i, InboundMessage) for i in items))[-1:]
        assert isinstance(message, InboundMessage)
        assert (message.message_sid, message.from_, message.body) == (inbound_sid, THEIRS, "a & <b>")
        emu.wait_until(
            lambda: any(r.direction == "outbound-reply" and r.status == "delivered" for r in emu.store.select(None)),
            timeout=TIMEOUT,
        )
        replies = [m for m in rest.messages.list(to=THEIRS) if m.direction == "outbound-reply"]
        assert [r.body for r in replies] == ["echo: a & <b>"]


def test_status_callback_posted_to_the_inbound_route_gets_no_reply(
    seen: Seen, served: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="swsync.flask"),
        Emulator(signing_key=KEY, state_delay=0.0) as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
    ):
        sent = rest.messages.create(to=THEIRS, from_=OURS, body="hi", status_callback=served.url + "/sms")
        emu.wait_until(lambda: emu.get_message(sent.sid)["history"][-1] == "delivered", timeout=TIMEOUT)
        n = len(emu.get_message(sent.sid)["history"])
        finished = served.recorder.wait_for(lambda f: len(f) >= n)
        emu.wait_until(lambda: emu.stats.webhooks_sent >= n, timeout=TIMEOUT)
        # Answered with an empty <Response/> (so nothing is sent), never given to the reply view.
        assert [(f.target, f.status, f.body.decode()) for f in finished] == [("/sms", 200, EMPTY)] * n
        assert all(f.content_type == CONTENT_TYPE for f in finished)
        assert seen.snapshot() == []
        assert [m.direction for m in emu.store.select(None)] == ["outbound-api"]
    assert "status webhook" in caplog.text and "posted to an inbound view" in caplog.text


def test_callbacks_signed_with_another_key_are_refused(
    seen: Seen, served: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="swsync.flask"),
        Emulator(signing_key="PSK_otherProjectKey", state_delay=0.0) as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
    ):
        sent = rest.messages.create(to=THEIRS, from_=OURS, body="hi", status_callback=served.url + "/status")
        emu.wait_until(lambda: emu.get_message(sent.sid)["history"][-1] == "delivered", timeout=TIMEOUT)
        n = len(emu.get_message(sent.sid)["history"])
        finished = served.recorder.wait_for(lambda f: len(f) >= n)
    assert [f.status for f in finished] == [403] * n
    assert seen.snapshot() == []
    assert "refused webhook POST /status (403): signature does not match" in caplog.text
    assert f"URL checked: {served.url}/status" in caplog.text
    assert KEY not in caplog.text and "PSK_otherProjectKey" not in caplog.text


def test_stop_then_send_raises_opted_out(tmp_path: Any) -> None:
    seen = Seen()
    db = str(tmp_path / "optouts.db")
    with (
        LocalServer(make_app(seen, opt_outs=db)) as server,
        Emulator(signing_key=KEY, state_delay=0.0, inbound_webhook_url=server.url + "/sms") as emu,
    ):
        store = SQLiteOptOutStore(db)  # another connection to the same file, as another process
        with (
            RestClient(emu.project, emu.token, space=emu.rest_url, opt_outs=store) as rest,
            RelayClient(emu.project, emu.token, host=emu.relay_url, opt_outs=store) as relay,
        ):
            emu.inject_inbound(to_number=OURS, from_number=THEIRS, body=" Stop ")
            server.recorder.wait_for(lambda f: len(f) == 1)
            assert seen.snapshot() == []  # a STOP never reaches reply logic
            assert store.is_opted_out(THEIRS)
            before = len(emu.store.select(None))
            with pytest.raises(OptedOutError) as rest_refusal:
                rest.messages.create(to=THEIRS, from_=OURS, body="sale!")
            with pytest.raises(OptedOutError) as relay_refusal:
                relay.send_message(THEIRS, OURS, "sale!")
            assert rest_refusal.value.number == relay_refusal.value.number == THEIRS
            assert rest_refusal.value.may_have_been_sent is False
            assert len(emu.store.select(None)) == before  # nothing reached the server
            rest.messages.create(to="+15550001111", from_=OURS, body="others still work")

            emu.inject_inbound(to_number=OURS, from_number=THEIRS, body="START")
            seen.wait(lambda items: len(items) == 1)
            assert not store.is_opted_out(THEIRS)
            assert rest.messages.create(to=THEIRS, from_=OURS, body="welcome back").sid
        store.close()


# ---------------------------------------------------------------------------
# Hand-signed requests


def test_retried_webhook_reaches_the_view_once(seen: Seen, served: LocalServer) -> None:
    url = served.url + "/status"
    headers = {"X-SignalWire-Signature": sign_form(KEY, url, STATUS)}
    for _ in range(3):
        status, ctype, body = post(url, STATUS, headers)
        assert (status, ctype, body.decode()) == (200, CONTENT_TYPE, EMPTY)
    # The same message with another status is another callback.
    sending = {**STATUS, "MessageStatus": "sent"}
    assert post(url, sending, {"X-SignalWire-Signature": sign_form(KEY, url, sending)})[0] == 200
    assert [(cb.message_sid, cb.message_status) for cb in seen.snapshot()] == [
        ("SM-out-1", "delivered"),
        ("SM-out-1", "sent"),
    ]

    url = served.url + "/sms"
    headers = {"X-SignalWire-Signature": sign_form(KEY, url, INBOUND)}
    first = post(url, INBOUND, headers)
    again = post(url, INBOUND, headers)
    # The retry gets the first answer again (the provider retried because it lost
    # it), without running the view a second time.
    assert _bodies(first[2]) == ["echo: hello"] and again == first
    assert len(seen.snapshot()) == 3


def test_emulator_webhooks_retried_by_the_network_run_once_and_reply_once(seen: Seen) -> None:
    # Every webhook the emulator sends is delivered twice (a provider retry after a
    # lost answer); the emulator gets the retry's answer.
    with (
        LocalServer(make_app(seen, trusted_proxies=1)) as app,
        LocalServer(ReverseProxy(app.url, repeat=2), name="proxy") as proxy,
        Emulator(signing_key=KEY, state_delay=0.0, inbound_webhook_url=proxy.url + "/sms") as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
    ):
        sent = rest.messages.create(to=THEIRS, from_=OURS, body="hi", status_callback=proxy.url + "/status")
        emu.wait_until(lambda: emu.get_message(sent.sid)["history"][-1] == "delivered", timeout=TIMEOUT)
        history = emu.get_message(sent.sid)["history"]
        emu.inject_inbound(to_number=OURS, from_number=THEIRS, body="once")
        emu.wait_until(
            lambda: any(r.direction == "outbound-reply" and r.status == "delivered" for r in emu.store.select(None)),
            timeout=TIMEOUT,
        )
        finished = app.recorder.wait_for(lambda f: len(f) >= 2 * (len(history) + 1))
        emu.wait_until(lambda: emu.stats.webhooks_sent >= len(history) + 1, timeout=TIMEOUT)
        replies = [r.body for r in emu.store.select(None) if r.direction == "outbound-reply"]
    assert len(finished) == 2 * (len(history) + 1)  # every webhook reached the app twice
    got = seen.snapshot()
    assert [cb.message_status for cb in got if isinstance(cb, StatusCallback)] == history
    assert [m.body for m in got if isinstance(m, InboundMessage)] == ["once"]
    assert replies == ["echo: once"]  # the retry's answer carried the reply, sent once


def test_concurrent_retries_run_the_view_once() -> None:
    # Eight copies of one webhook at once, on a server with a thread per request:
    # the view runs once, while it runs every copy is answered.
    seen = Seen()
    release = threading.Event()
    app = make_app(seen)

    @app.post("/slow")
    @validate_webhook
    def slow(callback: StatusCallback) -> None:
        seen.add(callback)
        assert release.wait(TIMEOUT)

    with LocalServer(app, threaded=True) as server:
        url = server.url + "/slow"
        headers = {"X-SignalWire-Signature": sign_form(KEY, url, STATUS)}
        barrier = threading.Barrier(8)
        answers: list[int] = []

        def send() -> None:
            barrier.wait(TIMEOUT)
            answers.append(post(url, STATUS, headers)[0])

        threads = [threading.Thread(target=send, name=f"test-retry-{i}") for i in range(8)]
        for t in threads:
            t.start()
        seen.wait(lambda items: len(items) == 1)
        server.recorder.wait_for(lambda f: len(f) == 7)  # the others, answered meanwhile
        release.set()
        for t in threads:
            t.join(TIMEOUT)
    assert answers == [200] * 8 and len(seen.snapshot()) == 1


def test_a_failing_view_is_run_again_on_retry(seen: Seen, served: LocalServer) -> None:
    url = served.url + "/any/acme"
    form = {**STATUS, "MessageSid": "boom"}
    headers = {"X-SignalWire-Signature": sign_form(KEY, url, form)}
    assert post(url, form, headers)[0] == 500
    assert post(url, form, headers)[0] == 500  # the claim was released: the view ran again
    assert len(seen.snapshot()) == 2


def test_json_webhooks(seen: Seen, served: LocalServer) -> None:
    url = served.url + "/any/json"
    body = json.dumps({**INBOUND, "NumMedia": 0}).encode()
    for header, signature in [
        ("X-SignalWire-Signature", sign_body(KEY, url, body)),
        ("X-SignalWire-SHA256-Signature", sign_body(KEY, url, body, "sha256")),
    ]:
        status, _, _ = post(url, body, {header: signature}, content_type="application/json")
        assert status == 200
    # bodySHA256 variant: the form signature of the URL alone, plus the body's hash.
    import hashlib

    status_body = json.dumps({**STATUS, "MessageSid": "SM-json"}).encode()
    signed = f"{url}?bodySHA256={hashlib.sha256(status_body).hexdigest()}"
    assert (
        post(
            signed, status_body, {"X-SignalWire-Signature": sign_form(KEY, signed, {})}, content_type="application/json"
        )[0]
        == 200
    )
    tampered = status_body.replace(b"delivered", b"failed")
    assert (
        post(signed, tampered, {"X-SignalWire-Signature": sign_form(KEY, signed, {})}, content_type="application/json")[
            0
        ]
        == 403
    )
    got = seen.snapshot()
    assert [type(w).__name__ for _, w in got] == ["InboundMessage", "StatusCallback"]  # run once
    assert got[0][1].num_media == 0 and got[1][1].message_sid == "SM-json"
    forged = post(url, body, {"X-SignalWire-Signature": sign_body("PSK_x", url, body)}, content_type="application/json")
    assert forged[0] == 403
    not_object = b"[1]"
    assert (
        post(
            url,
            not_object,
            {"X-SignalWire-Signature": sign_body(KEY, url, not_object)},
            content_type="application/json",
        )[0]
        == 400
    )


def test_forged_missing_and_unconfigured_signatures_fail_closed(
    seen: Seen, served: LocalServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = served.url + "/sms"
    forged = sign_form("PSK_attacker", url, INBOUND)
    with caplog.at_level(logging.WARNING, logger="swsync.flask"):
        assert post(url, INBOUND, {"X-SignalWire-Signature": forged})[0] == 403
        assert post(url, INBOUND)[0] == 403
        tampered = {**INBOUND, "Body": "changed"}
        good = sign_form(KEY, url, INBOUND)
        assert post(url, tampered, {"X-SignalWire-Signature": good})[0] == 403
    assert "no X-SignalWire-Signature header" in caplog.text
    assert forged not in caplog.text and good not in caplog.text and KEY not in caplog.text
    assert seen.snapshot() == []

    monkeypatch.delenv("SIGNALWIRE_SIGNING_KEY", raising=False)
    app = make_app(seen)
    del app.config["SIGNALWIRE_SIGNING_KEY"]
    with LocalServer(app) as bare, caplog.at_level(logging.ERROR, logger="swsync.flask"):
        url = bare.url + "/sms"
        assert post(url, INBOUND, {"X-SignalWire-Signature": sign_form(KEY, url, INBOUND)})[0] == 403
        assert "no signing key configured" in caplog.text
        monkeypatch.setenv("SIGNALWIRE_SIGNING_KEY", KEY)  # the environment is the last fallback
        assert post(url, INBOUND, {"X-SignalWire-Signature": sign_form(KEY, url, INBOUND)})[0] == 200
    assert len(seen.snapshot()) == 1


def test_short_codes_accepted_and_bad_numbers_refused(seen: Seen, served: LocalServer) -> None:
    url = served.url + "/sms"
    short = {**INBOUND, "MessageSid": "SM-short", "From": "72345"}
    assert post(url, short, {"X-SignalWire-Signature": sign_form(KEY, url, short)})[0] == 200
    assert seen.snapshot()[0].from_ == "72345"
    for bad in ({**INBOUND, "From": "555-1234"}, {"MessageSid": "x", "Body": "no numbers"}):
        status, _, body = post(url, bad, {"X-SignalWire-Signature": sign_form(KEY, url, bad)})
        assert status == 400, body
    assert len(seen.snapshot()) == 1


def test_inbound_posted_to_a_status_view_is_answered_empty(seen: Seen, served: LocalServer) -> None:
    url = served.url + "/status"
    status, ctype, body = post(url, INBOUND, {"X-SignalWire-Signature": sign_form(KEY, url, INBOUND)})
    assert (status, ctype, body.decode()) == (200, CONTENT_TYPE, EMPTY)
    assert seen.snapshot() == []


# ---------------------------------------------------------------------------
# Behind reverse proxies


def test_emulator_through_a_reverse_proxy_needs_trusted_proxies() -> None:
    seen = Seen()
    with (
        LocalServer(make_app(seen)) as plain,
        LocalServer(make_app(seen, trusted_proxies=1)) as fixed,
        LocalServer(ReverseProxy(plain.url), name="proxy") as proxy_plain,
        LocalServer(ReverseProxy(fixed.url), name="proxy") as proxy_fixed,
        Emulator(signing_key=KEY, state_delay=0.0) as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
    ):
        # The emulator signs the proxy's URL; the app behind it sees its own host and port.
        for proxy in (proxy_plain, proxy_fixed):
            rest.messages.create(to=THEIRS, from_=OURS, body="hi", status_callback=proxy.url + "/status?x=1")
        n = 4  # queued, initiated, sent, delivered
        plain.recorder.wait_for(lambda f: len(f) >= n)
        fixed.recorder.wait_for(lambda f: len(f) >= n)
    assert [f.status for f in plain.recorder.finished] == [403] * n
    assert [f.status for f in fixed.recorder.finished] == [200] * n
    assert [cb.message_status for cb in seen.snapshot()] == ["queued", "initiated", "sent", "delivered"]


@pytest.mark.parametrize(
    "options, expected",
    [
        ({}, 403),
        ({"trusted_proxies": 1}, 200),
        ({"public_url": "https://hooks.example.com/bot/"}, 200),
        ({"public_url": "https://elsewhere.example.com/bot"}, 403),
    ],
)
def test_tls_terminating_proxy_with_a_path_prefix(options: dict[str, Any], expected: int) -> None:
    # The provider calls https://hooks.example.com/bot/sms; a TLS terminator strips
    # /bot and forwards plain HTTP to the app on another host and port.
    seen = Seen()
    public = "https://hooks.example.com/bot/sms?tenant=acme"
    with (
        LocalServer(make_app(seen, **options)) as app,
        LocalServer(
            ReverseProxy(app.url, proto="https", host="hooks.example.com", port="443", strip_prefix="/bot"),
            name="proxy",
        ) as proxy,
    ):
        headers = {"X-SignalWire-Signature": sign_form(KEY, public, INBOUND)}
        status, _, _ = post(proxy.url + "/bot/sms?tenant=acme", INBOUND, headers)
    assert status == expected
    assert len(seen.snapshot()) == (expected == 200)


@pytest.mark.parametrize("hops, expected", [(1, 403), (2, 200), (3, 403)])
def test_trusted_hops_pick_the_right_forwarded_values(hops: int, expected: int) -> None:
    # client -> edge (claims https://hooks.example.com) -> internal proxy -> app.
    # The client also sends a spoofed X-Forwarded-Host: it must never be used.
    seen = Seen()
    public = "https://hooks.example.com/sms"
    with (
        LocalServer(make_app(seen, trusted_proxies=hops)) as app,
        LocalServer(ReverseProxy(app.url), name="proxy") as internal,
        LocalServer(
            ReverseProxy(internal.url, proto="https", host="hooks.example.com", port="443"), name="proxy"
        ) as edge,
    ):
        headers = {
            "X-SignalWire-Signature": sign_form(KEY, public, INBOUND),
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Port": "443",
        }
        status, _, _ = post(edge.url + "/sms", INBOUND, headers)
    assert status == expected


def test_spoofed_forwarded_headers_cannot_match_an_attackers_url() -> None:
    # An attacker who captured a webhook signed for the attacker's own URL cannot
    # replay it here by claiming that host: one trusted proxy overwrites nothing
    # but appends, and the app reads the value the proxy appended.
    seen = Seen()
    attacker_url = "https://evil.example/sms"
    with (
        LocalServer(make_app(seen, trusted_proxies=1)) as app,
        LocalServer(ReverseProxy(app.url), name="proxy") as proxy,
    ):
        headers = {
            "X-SignalWire-Signature": sign_form(KEY, attacker_url, INBOUND),
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
        }
        assert post(proxy.url + "/sms", INBOUND, headers)[0] == 403
    assert seen.snapshot() == []


# ---------------------------------------------------------------------------
# Stores


def test_redis_run_once_is_shared_by_two_apps(redis_server: Any) -> None:
    # Two app processes behind a load balancer share one Redis: a retry that lands
    # on the other one still runs once.
    seen = Seen()
    import redis

    redis_url = redis_server.db_url(7)  # the shared server (tests/conftest.py); our own database
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        store_a = RedisRunOnceStore(redis_url, ttl=60)
        store_b = RedisRunOnceStore(client=client, ttl=60)
        with (
            LocalServer(make_app(seen, run_once=store_a, public_url="https://hooks.example.com")) as a,
            LocalServer(make_app(seen, run_once=store_b, public_url="https://hooks.example.com")) as b,
        ):
            signature = sign_form(KEY, "https://hooks.example.com/status", STATUS)
            answers = [post(s.url + "/status", STATUS, {"X-SignalWire-Signature": signature}) for s in (a, b, a)]
        assert [status for status, _, _ in answers] == [200, 200, 200]
        assert len(seen.snapshot()) == 1
        inbound_sig = sign_form(KEY, "https://hooks.example.com/sms", INBOUND)
        with LocalServer(
            make_app(seen, run_once=RedisRunOnceStore(redis_url, ttl=60), public_url="https://hooks.example.com")
        ) as c:
            first = post(c.url + "/sms", INBOUND, {"X-SignalWire-Signature": inbound_sig})
        with LocalServer(make_app(seen, run_once=store_b, public_url="https://hooks.example.com")) as d:
            retry = post(d.url + "/sms", INBOUND, {"X-SignalWire-Signature": inbound_sig})
        assert _bodies(first[2]) == ["echo: hello"] and retry == first  # replayed from Redis
        assert len(seen.snapshot()) == 2
        assert 0 < client.ttl("swsync:webhook:status:SM-out-1:delivered") <= 60
    finally:
        client.close()


def test_run_once_can_be_turned_off_and_the_memory_store_is_bounded() -> None:
    seen = Seen()
    with LocalServer(make_app(seen, run_once=False)) as server:
        url = server.url + "/status"
        headers = {"X-SignalWire-Signature": sign_form(KEY, url, STATUS)}
        assert [post(url, STATUS, headers)[0] for _ in range(2)] == [200, 200]
    assert len(seen.snapshot()) == 2
    store = MemoryRunOnceStore(maxsize=2)
    assert [store.claim(k) for k in ("a", "b", "a", "c", "b")] == [True, True, False, True, True]
    assert len(store) == 2


def test_get_webhooks_and_oversized_bodies(tmp_path: Any) -> None:
    seen = Seen()
    app = make_app(seen)

    @app.get("/get-sms")
    @validate_webhook
    def get_sms(message: InboundMessage) -> None:
        seen.add(message)

    import http.client
    from urllib.parse import urlencode

    with LocalServer(app) as server:
        url = f"{server.url}/get-sms?{urlencode(INBOUND)}"
        for signature, expected in ((sign_form(KEY, url, {}), 200), (sign_form("PSK_x", url, {}), 403)):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            conn.request("GET", url[len(server.url) :], headers={"X-SignalWire-Signature": signature})
            assert conn.getresponse().status == expected
            conn.close()
        big = {**INBOUND, "Body": "x" * 300_000}
        assert post(server.url + "/sms", big, {"X-SignalWire-Signature": "x"})[0] == 413
    assert [m.body for m in seen.snapshot()] == ["hello"]


def test_logged_url_hides_query_values(seen: Seen, served: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    url = served.url + "/sms?tenant=acme&token=s3cret"
    with caplog.at_level(logging.WARNING, logger="swsync.flask"):
        assert post(url, INBOUND, {"X-SignalWire-Signature": sign_form("PSK_x", url, INBOUND)})[0] == 403
    assert f"URL checked: {served.url}/sms?tenant=...&token=...;" in caplog.text
    assert "s3cret" not in caplog.text and "acme" not in caplog.text


def test_async_views_are_refused() -> None:
    async def view(message: InboundMessage) -> None: ...

    with pytest.raises(TypeError, match="synchronous"):
        validate_webhook(view)


def test_clients_take_an_opt_out_path_and_refuse_anything_else(tmp_path: Any) -> None:
    from swsync.errors import ConfigurationError

    db = str(tmp_path / "o.db")
    SQLiteOptOutStore(db).opt_out(THEIRS)
    with Emulator(state_delay=0.0) as emu, RestClient(emu.project, emu.token, space=emu.rest_url, opt_outs=db) as rest:
        with pytest.raises(OptedOutError):
            rest.messages.create(to=THEIRS, from_=OURS, body="x")
        with pytest.raises(ConfigurationError, match="opt_outs"):
            RestClient(emu.project, emu.token, space=emu.rest_url, opt_outs=42)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="opt_outs"):
            RelayClient(emu.project, emu.token, host=emu.relay_url, opt_outs={THEIRS})  # type: ignore[arg-type]
