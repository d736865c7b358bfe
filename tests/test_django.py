"""swsync.django on a real WSGI server (wsgiref, which passes no raw request target,
so the helper rebuilds it) with Django's CSRF middleware on, fed by the emulator's
signed webhooks and by hand-signed requests, directly and through a reverse proxy."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="swsync-tests-only",
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "hooks.example.com"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "swsync.django.WebhookMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        INSTALLED_APPS=[],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        SWSYNC_WEBHOOK_PREFIX="/signalwire/",
        SIGNALWIRE_SIGNING_KEY="PSK_djangoHelperTestKey0123456789abcdef",
        USE_TZ=True,
    )
    django.setup()

from django.core.cache import cache  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from swsync import Emulator, OptedOutError, RestClient  # noqa: E402
from swsync.cxml import CONTENT_TYPE, MessagingResponse  # noqa: E402
from swsync.django import WebhookMiddleware, validate_webhook  # noqa: E402
from swsync.optouts import MemoryOptOutStore  # noqa: E402
from swsync.runonce import CacheRunOnceStore, MemoryRunOnceStore  # noqa: E402
from swsync.webhooks import InboundMessage, StatusCallback  # noqa: E402

from .support.webhook_servers import (  # noqa: E402
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

KEY = settings.SIGNALWIRE_SIGNING_KEY
SEEN = Seen()  # what the views below were called with; reset by the `fresh` fixture


@validate_webhook
def sms(request: HttpRequest, message: InboundMessage) -> MessagingResponse:
    SEEN.add(message)
    return MessagingResponse().message(f"echo: {message.body}")


@validate_webhook
def status(request: HttpRequest, callback: StatusCallback) -> None:
    SEEN.add(callback)


def mw_sms(request: HttpRequest, message: InboundMessage) -> HttpResponse:
    # Not decorated: the middleware validates it (it is under SWSYNC_WEBHOOK_PREFIX).
    SEEN.add(("mw", message))
    return HttpResponse(str(MessagingResponse().message("via middleware")), content_type=CONTENT_TYPE)


def mw_any(request: HttpRequest, webhook: Any, tenant: str) -> None:
    SEEN.add((tenant, webhook))


def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")  # an ordinary view: CSRF applies


urlpatterns = [
    path("hooks/sms", sms),
    path("hooks/status", status),
    path("signalwire/sms", mw_sms),
    path("signalwire/any/<str:tenant>", mw_any),
    path("form", form),
]


@pytest.fixture
def fresh() -> Iterator[None]:
    with SEEN._cond:
        SEEN.items.clear()
    with override_settings(SWSYNC_RUN_ONCE=MemoryRunOnceStore(), SWSYNC_OPT_OUTS=None):
        yield


@pytest.fixture
def served(fresh: None) -> Iterator[LocalServer]:
    with LocalServer(get_wsgi_application(), kind="wsgiref", name="django") as server:
        yield server


def test_emulator_callbacks_and_inbound_reply(served: LocalServer) -> None:
    with (
        Emulator(signing_key=KEY, state_delay=0.0, inbound_webhook_url=served.url + "/hooks/sms") as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
    ):
        # A percent-encoded query: wsgiref gives no raw target, so it is rebuilt.
        sent = rest.messages.create(
            to=THEIRS, from_=OURS, body="hi", status_callback=served.url + "/hooks/status?next=%2Fhome&q=caf%C3%A9"
        )
        got = SEEN.wait(lambda items: any(getattr(i, "message_status", "") == "delivered" for i in items))
        history = emu.get_message(sent.sid)["history"]
        assert [cb.message_status for cb in got] == history
        finished = served.recorder.wait_for(lambda f: len(f) >= len(history))
        assert all((f.status, f.content_type, f.body.decode()) == (200, CONTENT_TYPE, EMPTY) for f in finished)

        inbound_sid = emu.inject_inbound(to_number=OURS, from_number="12345", body="hello")
        message = SEEN.wait(lambda items: isinstance(items[-1], InboundMessage))[-1]
        assert (message.message_sid, message.from_) == (inbound_sid, "12345")  # a short code
        emu.wait_until(
            lambda: any(r.direction == "outbound-reply" and r.status == "delivered" for r in emu.store.select(None)),
            timeout=TIMEOUT,
        )
        replies = [m.body for m in rest.messages.list(to="12345") if m.direction == "outbound-reply"]
        assert replies == ["echo: hello"]


def test_middleware_validates_views_under_the_prefix_and_csrf_still_guards_the_rest(
    served: LocalServer,
) -> None:
    assert post(served.url + "/form", {"a": "b"})[0] == 403  # Django's CSRF protection is on
    with (
        Emulator(signing_key=KEY, state_delay=0.0, inbound_webhook_url=served.url + "/signalwire/sms") as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url) as rest,
    ):
        emu.inject_inbound(to_number=OURS, from_number=THEIRS, body="hi")
        SEEN.wait(lambda items: len(items) == 1)
        # A status callback posted to the inbound route: answered, never given to the view.
        sent = rest.messages.create(to=THEIRS, from_=OURS, body="x", status_callback=served.url + "/signalwire/sms")
        emu.wait_until(lambda: emu.get_message(sent.sid)["history"][-1] == "delivered", timeout=TIMEOUT)
        n = len(emu.get_message(sent.sid)["history"])
        finished = served.recorder.wait_for(lambda f: len(f) >= 2 + n)
        emu.wait_until(lambda: emu.stats.webhooks_sent >= 1 + n, timeout=TIMEOUT)
    assert [(tag, m.body) for tag, m in SEEN.snapshot()] == [("mw", "hi")]
    assert [(f.status, f.body.decode()) for f in finished[2:]] == [(200, EMPTY)] * n
    url = served.url + "/signalwire/any/acme"
    assert post(url, STATUS, {"X-SignalWire-Signature": sign_form("PSK_forged", url, STATUS)})[0] == 403
    assert post(url, STATUS, {"X-SignalWire-Signature": sign_form(KEY, url, STATUS)})[0] == 200
    assert SEEN.snapshot()[-1][0] == "acme"


def test_forged_and_retried_and_json(served: LocalServer, caplog: pytest.LogCaptureFixture) -> None:
    url = served.url + "/hooks/status"
    with caplog.at_level(logging.WARNING, logger="swsync.django"):
        forged = sign_form("PSK_attacker", url, STATUS)
        assert post(url, STATUS, {"X-SignalWire-Signature": forged})[0] == 403
    assert f"signature does not match (URL checked: {url}" in caplog.text
    assert KEY not in caplog.text and forged not in caplog.text

    cache.clear()
    with override_settings(SWSYNC_RUN_ONCE=CacheRunOnceStore(cache, ttl=60)):
        headers = {"X-SignalWire-Signature": sign_form(KEY, url, STATUS)}
        assert [post(url, STATUS, headers)[0] for _ in range(3)] == [200] * 3
        assert cache.get("swsync:webhook:status:SM-out-1:delivered") == 1
    assert len(SEEN.snapshot()) == 1

    url = served.url + "/hooks/sms"
    body = json.dumps({**INBOUND, "MessageSid": "SM-json"}).encode()
    status_code, ctype, reply = post(
        url, body, {"X-SignalWire-Signature": sign_body(KEY, url, body)}, content_type="application/json"
    )
    assert (status_code, ctype) == (200, CONTENT_TYPE) and b"echo: hello" in reply
    assert SEEN.snapshot()[-1].message_sid == "SM-json"
    with override_settings(SWSYNC_RUN_ONCE=CacheRunOnceStore(cache, ttl=60)):
        headers = {"X-SignalWire-Signature": sign_form(KEY, url, INBOUND)}
        first, retry = (post(url, INBOUND, headers) for _ in range(2))
    assert b"echo: hello" in first[2] and retry == first  # the retry is answered from the cache
    assert len(SEEN.snapshot()) == 3


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, 403),
        ({"USE_X_FORWARDED_HOST": True, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}, 200),
        ({"USE_X_FORWARDED_HOST": True}, 403),  # the scheme is still http
        ({"SWSYNC_TRUSTED_PROXIES": 1}, 200),
        ({"SWSYNC_PUBLIC_URL": "https://hooks.example.com"}, 200),
    ],
)
def test_behind_a_tls_terminating_proxy(served: LocalServer, overrides: dict[str, Any], expected: int) -> None:
    public = "https://hooks.example.com/hooks/sms"
    with (
        override_settings(**overrides),
        LocalServer(ReverseProxy(served.url, proto="https", host="hooks.example.com"), name="proxy") as proxy,
    ):
        headers = {"X-SignalWire-Signature": sign_form(KEY, public, INBOUND)}
        assert post(proxy.url + "/hooks/sms", INBOUND, headers)[0] == expected


def test_stop_then_send_raises_opted_out(served: LocalServer) -> None:
    store = MemoryOptOutStore()
    with (
        override_settings(SWSYNC_OPT_OUTS=store),
        Emulator(signing_key=KEY, state_delay=0.0, inbound_webhook_url=served.url + "/hooks/sms") as emu,
        RestClient(emu.project, emu.token, space=emu.rest_url, opt_outs=store) as rest,
    ):
        emu.inject_inbound(to_number=OURS, from_number=THEIRS, body="UNSUBSCRIBE")
        (finished,) = served.recorder.wait_for(lambda f: len(f) == 1)
        assert (finished.status, finished.body.decode()) == (200, EMPTY)
        assert SEEN.snapshot() == [] and store.is_opted_out(THEIRS)
        with pytest.raises(OptedOutError):
            rest.messages.create(to=THEIRS, from_=OURS, body="promo")
        assert len(emu.store.select(None)) == 1  # only the inbound STOP


def test_middleware_must_come_before_csrf(fresh: None) -> None:
    wrong = ["django.middleware.csrf.CsrfViewMiddleware", "swsync.django.WebhookMiddleware"]
    with override_settings(MIDDLEWARE=wrong), pytest.raises(ImproperlyConfigured, match="before"):
        WebhookMiddleware(lambda request: HttpResponse())
    with override_settings(SWSYNC_WEBHOOK_PREFIX=None), pytest.raises(ImproperlyConfigured):
        WebhookMiddleware(lambda request: HttpResponse())
