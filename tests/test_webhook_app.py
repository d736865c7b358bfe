"""The framework-neutral parts of the webhook helpers: the signed URL (checked
against Werkzeug's own ProxyFix), parsing and classification."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from swsync import _webhook_app as core
from swsync.errors import ConfigurationError
from swsync.webhooks import InboundMessage, StatusCallback

FORWARDED = [
    {},
    {"X-Forwarded-Proto": "https"},
    {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"},
    {"X-Forwarded-Host": "hooks.example.com:8443"},
    {"X-Forwarded-Host": "a.example, b.example", "X-Forwarded-Port": "444, 443"},
    {
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "evil, hooks.example.com",
        "X-Forwarded-Port": "1, 443",
        "X-Forwarded-Prefix": "/x, /bot",
    },
    {"X-Forwarded-Host": "[::1]:8080", "X-Forwarded-Port": "9"},
    {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "[::1]", "X-Forwarded-Port": "443"},
    {"X-Forwarded-Prefix": "/bot/"},
]


@pytest.mark.parametrize("headers", FORWARDED)
@pytest.mark.parametrize("hops", [1, 2, 3])
def test_forwarded_origin_matches_werkzeug_proxyfix(headers: dict[str, str], hops: int) -> None:
    seen: dict[str, str] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request = Request(environ)
        seen["url"] = f"{request.scheme}://{request.host}{request.script_root}"
        start_response("204 No Content", [])
        return []

    fixed = ProxyFix(app, x_for=0, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)
    environ = EnvironBuilder(path="/sms", base_url="http://127.0.0.1:5000", headers=headers).get_environ()
    list(fixed(dict(environ), lambda *a: None))
    origin, prefix = core.forwarded_origin(environ, "http://127.0.0.1:5000", hops)
    assert origin + prefix == seen["url"]


def test_raw_target_is_rebuilt_without_raw_uri() -> None:
    environ = {"PATH_INFO": "/a b/caf\xc3\xa9", "SCRIPT_NAME": "/app", "QUERY_STRING": "next=%2Fhome"}
    assert core.raw_target(environ) == "/app/a%20b/caf%C3%A9?next=%2Fhome"
    assert core.raw_target({"RAW_URI": "/x?a=%2F", "PATH_INFO": "/x"}) == "/x?a=%2F"
    assert core.raw_target({"PATH_INFO": ""}) == "/"


def test_signed_url_prefers_public_url_then_proxies_then_own() -> None:
    environ = {"RAW_URI": "/sms?a=1", "HTTP_X_FORWARDED_HOST": "proxy.example"}
    own = core.Config(signing_key="k", public_url=None, trusted_proxies=0, run_once=None, opt_outs=None)
    assert core.signed_url(environ, "http://127.0.0.1:1", own) == "http://127.0.0.1:1/sms?a=1"
    proxied = core.Config(signing_key="k", public_url=None, trusted_proxies=1, run_once=None, opt_outs=None)
    assert core.signed_url(environ, "http://127.0.0.1:1", proxied) == "http://proxy.example/sms?a=1"
    public = core.Config(
        signing_key="k", public_url="https://h.example/p", trusted_proxies=1, run_once=None, opt_outs=None
    )
    assert core.signed_url(environ, "http://127.0.0.1:1", public) == "https://h.example/p/sms?a=1"


@pytest.mark.parametrize("value", ["hooks.example.com", "ftp://h.example", "https://", "https://h/?a=1"])
def test_bad_public_url(value: str) -> None:
    with pytest.raises(ConfigurationError, match="public_url"):
        core.Options(public_url=value)


@pytest.mark.parametrize("value", [-1, True, "2", 1.5])
def test_bad_trusted_proxies(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        core.Options(trusted_proxies=value)


def test_bad_accept() -> None:
    with pytest.raises(ValueError, match="accept"):
        core.Options(accept="calls")  # type: ignore[arg-type]


def test_status_and_inbound_told_apart_by_fields() -> None:
    base = {"MessageSid": "S", "From": "+15551230000", "To": "12345"}
    assert isinstance(core.parse({**base, "MessageStatus": "sent"}), StatusCallback)
    assert isinstance(core.parse({**base, "SmsStatus": "received"}), InboundMessage)
    assert isinstance(core.parse({**base, "MessageStatus": "received"}), InboundMessage)
    with pytest.raises(ValueError, match="From"):
        core.parse({**base, "From": "John"})


def test_accept_from_annotation() -> None:
    def inbound(m: InboundMessage) -> None: ...
    def status(request: object, c: StatusCallback) -> None: ...
    def untyped(m): ...  # type: ignore[no-untyped-def]

    assert core.accept_from_annotation(inbound, 0) == "inbound"
    assert core.accept_from_annotation(status, 1) == "status"
    assert core.accept_from_annotation(status, 0) == "any"
    assert core.accept_from_annotation(untyped, 0) == "any"
    assert core.accept_from_annotation(untyped, 3) == "any"


def test_cxml_text() -> None:
    assert core.cxml_text(None) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert core.cxml_text("plain") is None
