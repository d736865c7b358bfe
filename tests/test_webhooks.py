"""Webhook signatures (known-answer vectors computed independently) and typed views."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, parse_qsl, urlencode

import pytest
import requests
from werkzeug.datastructures import Headers, MultiDict

from swsync.webhooks import (
    SIGNATURE_HEADER,
    TWILIO_SIGNATURE_HEADER,
    InboundMessage,
    Media,
    RequestValidator,
    StatusCallback,
    signature_from_headers,
)

from .support.webhook_servers import sign_body, sign_form  # written out independently of swsync.webhooks

KEY = "PSK_ExampleSigningKey0123456789"
URL = "https://hooks.example.com/sms/status?tenant=acme"
URL_443 = "https://hooks.example.com:443/sms/status?tenant=acme"
PARAMS = {
    "MessageSid": "0a059168-ead0-41af-9d1f-343dae832527",
    "SmsSid": "0a059168-ead0-41af-9d1f-343dae832527",
    "AccountSid": "ea108133-d6b3-407c-9536-9fad8a929a6a",
    "From": "+15551234567",
    "To": "+15557654321",
    "Body": "Hello World!",
    "NumMedia": "0",
    "MessageStatus": "delivered",
    "SmsStatus": "delivered",
    "ApiVersion": "2010-04-01",
}
JSON_BODY = b'{"message":{"id":"0a059168-ead0-41af-9d1f-343dae832527","state":"received"}}'

# Published vectors (Twilio's webhook-security docs, which SignalWire's compatibility scheme
# follows), cross-checked against the twilio and signalwire packages.
SIG_B = "ktBy1SQhuyhi++2WdZhjwy3gbJU="
SIG_B_443 = "Tx9YL0se1jek4PYtoB5evHHFb+Q="
SIG_A = "069307a08f04ad310a38085124fd964385624c22"
SIG_A_256 = "09e7527eed30f0ed2085ad9ed76e240c5673cc496c1c8c58055cb934995b26ac"


@pytest.fixture
def validator() -> RequestValidator:
    return RequestValidator(KEY)


# --- Scheme B: form parameters -----------------------------------------------------


def test_published_form_vectors(validator: RequestValidator) -> None:
    assert validator.compute_signature(URL, PARAMS) == SIG_B
    assert validator.compute_signature(URL_443, PARAMS) == SIG_B_443
    assert validator.validate(URL, PARAMS, SIG_B)
    assert validator.validate(URL, PARAMS, SIG_B_443)  # default port added
    assert validator.validate(URL_443, PARAMS, SIG_B)  # port removed
    assert validator.validate(URL_443, PARAMS, SIG_B_443)


def test_published_signalwire_suite_vector() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    v = RequestValidator("12345")
    assert v.compute_signature(url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert v.validate(url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


def test_independent_vector_matches(validator: RequestValidator) -> None:
    assert sign_form(KEY, URL, list(PARAMS.items())) == SIG_B  # the helper itself is right
    params = {"b": "2", "B": "1", "a": "ü ☃ &=+", "Z": ""}  # code-point order: B Z a b
    expected = sign_form(KEY, URL, list(params.items()))
    assert validator.compute_signature(URL, params) == expected
    assert validator.compute_signature(URL, list(params.items())) == expected
    assert validator.validate(URL, params, expected)


def test_get_webhook_signs_url_only(validator: RequestValidator) -> None:
    url = "https://hooks.example.com/sms?From=%2B15551234567&Body=Hi+there"
    expected = sign_form(KEY, url, [])
    assert validator.compute_signature(url) == expected
    assert validator.compute_signature(url, {}) == expected
    assert validator.validate(url, None, expected)
    assert validator.validate(url, {}, expected)
    assert not validator.validate(url.replace("Hi", "Ho"), None, expected)


@pytest.mark.parametrize(
    ("given", "signed"),
    [
        ("https://h.example.com/p?q=1", "https://h.example.com:443/p?q=1"),
        ("https://h.example.com:443/p?q=1", "https://h.example.com/p?q=1"),
        ("http://h.example.com/p", "http://h.example.com:80/p"),
        ("http://h.example.com:80/p", "http://h.example.com/p"),
        ("https://h.example.com:8443/p", "https://h.example.com:8443/p"),
        ("https://h.example.com:8443/p", "https://h.example.com/p"),  # twilio strips it
        ("http://127.0.0.1:8765/hook", "http://127.0.0.1/hook"),
        ("http://[::1]:8765/hook", "http://[::1]/hook"),
        ("https://[::1]/hook", "https://[::1]:443/hook"),
        ("https://user@h.example.com:443/p", "https://user@h.example.com/p"),
        ("https://h.example.com?x=1", "https://h.example.com:443?x=1"),
        ("https://h.example.com/p?", "https://h.example.com/p?"),  # kept byte for byte
    ],
)
def test_port_variants_accepted(validator: RequestValidator, given: str, signed: str) -> None:
    assert validator.validate(given, PARAMS, sign_form(KEY, signed, list(PARAMS.items())))


@pytest.mark.parametrize(
    ("given", "signed"),
    [
        ("https://h.example.com/p", "https://h.example.com:8443/p"),
        ("https://h.example.com/p", "https://h.example.com:80/p"),
        ("http://h.example.com/p", "http://h.example.com:443/p"),
        ("https://h.example.com:8443/p", "https://h.example.com:8444/p"),
        ("https://h.example.com/p", "http://h.example.com/p"),
        ("https://h.example.com/p", "https://h.example.com/p/"),
        ("https://h.example.com/p?a=1&b=2", "https://h.example.com/p?b=2&a=1"),
    ],
)
def test_other_urls_rejected(validator: RequestValidator, given: str, signed: str) -> None:
    assert not validator.validate(given, PARAMS, sign_form(KEY, signed, list(PARAMS.items())))


def test_tampering_fails(validator: RequestValidator) -> None:
    assert not validator.validate(URL, {**PARAMS, "Body": "Hello World?"}, SIG_B)
    assert not validator.validate(URL, {**PARAMS, "Extra": "x"}, SIG_B)
    missing = dict(PARAMS)
    del missing["To"]
    assert not validator.validate(URL, missing, SIG_B)
    assert not validator.validate(URL.replace("acme", "acne"), PARAMS, SIG_B)
    assert not validator.validate("https://hooks.example.com/sms/status", PARAMS, SIG_B)
    assert not validator.validate(URL, PARAMS, SIG_B[:-2] + "Q=")
    assert not validator.validate(URL, PARAMS, SIG_B.lower())
    assert not RequestValidator(KEY + "x").validate(URL, PARAMS, SIG_B)
    # Moving a character between a name and a value changes the signature too.
    assert not validator.validate(URL, {**PARAMS, "Body": "", "BodyH": "ello World!"}, SIG_B)


@pytest.mark.parametrize("signature", [None, "", b"", "  ", "ktBy1SQhuyhi++2WdZhjwy3gbJü="])
def test_missing_or_garbage_signature_is_false(validator: RequestValidator, signature: str | bytes | None) -> None:
    assert validator.validate(URL, PARAMS, signature) is False
    assert validator.validate_body(URL, JSON_BODY, signature) is False


def test_signature_as_bytes(validator: RequestValidator) -> None:
    assert validator.validate(URL, PARAMS, SIG_B.encode())


def test_multidict_and_pairs(validator: RequestValidator) -> None:
    form = MultiDict([("From", "+15551234567"), ("Body", "hi")])
    expected = sign_form(KEY, URL, [("From", "+15551234567"), ("Body", "hi")])
    assert validator.compute_signature(URL, form) == expected
    assert validator.validate(URL, form, expected)
    assert validator.validate(URL, parse_qs("From=%2B15551234567&Body=hi"), expected)
    assert validator.validate(URL, parse_qsl("From=%2B15551234567&Body=hi"), expected)


def test_repeated_names(validator: RequestValidator) -> None:
    pairs = [("MediaUrl", "https://b"), ("Body", "x"), ("MediaUrl", "https://a"),
             ("MediaUrl", "https://b")]  # fmt: skip
    # compute_signature: twilio rule, values of a repeated name sorted and de-duplicated.
    twilio = sign_form(KEY, URL, [("Body", "x"), ("MediaUrl", "https://a"), ("MediaUrl", "https://b")])
    # The other convention: stable sort by name, submission order, duplicates kept.
    submission = sign_form(KEY, URL, pairs)
    assert twilio != submission
    assert validator.compute_signature(URL, pairs) == twilio
    assert validator.compute_signature(URL, MultiDict(pairs)) == twilio
    for params in (pairs, MultiDict(pairs), parse_qs(urlencode(pairs))):
        assert validator.validate(URL, params, twilio)
        assert validator.validate(URL, params, submission)
    assert not validator.validate(URL, pairs[:2], twilio)


@pytest.mark.parametrize("bad", [{"a": 1}, {"a": b"x"}, [("a", None)], {1: "a"}])
def test_non_str_params_raise(validator: RequestValidator, bad: object) -> None:
    with pytest.raises(TypeError):
        validator.compute_signature(URL, bad)  # type: ignore[arg-type]


# --- Scheme A: raw body -----------------------------------------------------------


def test_published_body_vectors(validator: RequestValidator) -> None:
    assert sign_body(KEY, URL, JSON_BODY) == SIG_A
    assert sign_body(KEY, URL, JSON_BODY, "sha256") == SIG_A_256
    assert validator.compute_body_signature(URL, JSON_BODY) == SIG_A
    assert validator.compute_body_signature(URL, JSON_BODY.decode()) == SIG_A
    assert validator.compute_body_signature(URL, JSON_BODY, algorithm="sha256") == SIG_A_256
    assert validator.validate(URL, JSON_BODY, SIG_A)
    assert validator.validate(URL, JSON_BODY.decode(), SIG_A)
    assert validator.validate_body(URL, bytearray(JSON_BODY), SIG_A)
    assert validator.validate_body(URL, memoryview(JSON_BODY), SIG_A_256)
    assert validator.validate_body(URL, JSON_BODY, SIG_A.upper())


def test_body_port_variants(validator: RequestValidator) -> None:
    assert validator.validate_body(URL_443, JSON_BODY, SIG_A)
    assert validator.validate_body(URL, JSON_BODY, sign_body(KEY, URL_443, JSON_BODY))
    assert validator.validate_body(URL, JSON_BODY, sign_body(KEY, URL_443, JSON_BODY, "sha256"))


def test_body_tampering_fails(validator: RequestValidator) -> None:
    assert not validator.validate_body(URL, JSON_BODY + b" ", SIG_A)
    assert not validator.validate_body(URL, JSON_BODY.replace(b"received", b"receivex"), SIG_A)
    assert not validator.validate_body(URL + "x", JSON_BODY, SIG_A)
    assert not validator.validate_body(URL, JSON_BODY, SIG_A[:-1] + "d")
    assert not validator.validate_body(URL, JSON_BODY, SIG_A_256[:-1] + "d")
    # A form signature of the URL alone is not enough for a raw body.
    assert not validator.validate_body(URL, JSON_BODY, sign_form(KEY, URL, []))


def test_body_sha256_query_variant(validator: RequestValidator) -> None:
    body = b'{"MessageSid":"abc","MessageStatus":"sent","n":1}'
    url = "https://hooks.example.com/status?bodySHA256=" + hashlib.sha256(body).hexdigest()
    signature = sign_form(KEY, url, [])
    assert validator.validate_body(url, body, signature)
    assert validator.validate(url, body, signature)
    assert not validator.validate_body(url, body + b"x", signature)
    other = "https://hooks.example.com/status?bodySHA256=" + hashlib.sha256(b"x").hexdigest()
    assert not validator.validate_body(other, body, sign_form(KEY, other, []))


@pytest.mark.parametrize("value", ["%C3%A9", "\u00e9", "\u00e9" * 64])
def test_non_ascii_query_or_signature_is_rejected_not_raised(validator: RequestValidator, value: str) -> None:
    url = "https://hooks.example.com/status?bodySHA256=" + value
    assert validator.validate(url, b'{"a":"b"}', "0" * 40) is False
    assert validator.validate_body(url, b'{"a":"b"}', "\u00e9" * 40) is False


def test_json_object_body_accepts_form_signature(validator: RequestValidator) -> None:
    # As the signalwire 2.x validator does for string params holding a JSON object.
    body = b'{"MessageSid":"abc","MessageStatus":"sent"}'
    signature = sign_form(KEY, URL, [("MessageSid", "abc"), ("MessageStatus", "sent")])
    assert validator.validate(URL, body, signature)
    assert not validator.validate(URL, b'{"MessageSid":"abd","MessageStatus":"sent"}', signature)
    assert not validator.validate(URL, b"not json", signature)


# --- The validator object ---------------------------------------------------------


def test_key_never_shown(validator: RequestValidator) -> None:
    assert KEY not in repr(validator)
    assert KEY not in str(validator)
    with pytest.raises(TypeError):
        pickle.dumps(validator)
    assert not hasattr(validator, "__dict__")


@pytest.mark.parametrize("bad", ["", None, b"key"])
def test_bad_key(bad: object) -> None:
    with pytest.raises(ValueError):
        RequestValidator(bad)  # type: ignore[arg-type]


# --- Headers ----------------------------------------------------------------------


def test_signature_from_headers() -> None:
    assert SIGNATURE_HEADER == "X-SignalWire-Signature"
    assert TWILIO_SIGNATURE_HEADER == "X-Twilio-Signature"
    assert signature_from_headers({"X-SignalWire-Signature": "a"}) == "a"
    assert signature_from_headers({"X-Twilio-Signature": "b"}) == "b"
    assert signature_from_headers({"X-Twilio-Signature": "b", "X-SignalWire-Signature": "a"}) == "a"
    assert signature_from_headers({"x-twilio-signature": "b"}) == "b"
    assert signature_from_headers({"X-SIGNALWIRE-SIGNATURE": "a"}) == "a"
    assert signature_from_headers({"X-SignalWire-Signature": "", "X-Twilio-Signature": "b"}) == "b"
    assert signature_from_headers({"Content-Type": "text/plain"}) is None
    assert signature_from_headers({}) is None
    assert signature_from_headers(Headers([("x-signalwire-signature", "c")])) == "c"


# --- End to end through Flask on a real socket ------------------------------------


@pytest.fixture
def flask_server() -> Iterator[tuple[str, list[tuple[bool, object]]]]:
    from flask import Flask, request
    from werkzeug.serving import make_server

    seen: list[tuple[bool, object]] = []
    app = Flask(__name__)

    @app.post("/sms/inbound")
    def inbound() -> tuple[str, int]:
        ok = RequestValidator(KEY).validate(request.url, request.form, signature_from_headers(request.headers))
        seen.append((ok, InboundMessage.from_params(request.form)))
        return ("", 204) if ok else ("forbidden", 403)

    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, name="test-flask-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    assert not thread.is_alive()


def test_flask_recipe_end_to_end(flask_server: tuple[str, list[tuple[bool, object]]]) -> None:
    base, seen = flask_server
    url = base + "/sms/inbound?tenant=acme&x=%2B1"
    form = {"MessageSid": "m1", "From": "+15551234567", "To": "+15557654321",
            "Body": "Crème brûlée & <tags> = 100%", "NumMedia": "1",
            "MediaUrl0": "https://media.example.com/a.png", "MediaContentType0": "image/png"}  # fmt: skip
    good = sign_form(KEY, url, list(form.items()))
    r = requests.post(url, data=form, headers={"X-Twilio-Signature": good}, timeout=10)
    assert r.status_code == 204
    r = requests.post(url, data={**form, "Body": "x"}, headers={SIGNATURE_HEADER: good}, timeout=10)
    assert r.status_code == 403
    r = requests.post(url, data=form, timeout=10)
    assert r.status_code == 403
    assert [ok for ok, _ in seen] == [True, False, False]
    message = seen[0][1]
    assert isinstance(message, InboundMessage)
    assert message.body == "Crème brûlée & <tags> = 100%"
    assert message.media == (Media("https://media.example.com/a.png", "image/png"),)


# --- Typed views ------------------------------------------------------------------


def test_status_callback_full() -> None:
    form = {**PARAMS, "MessageStatus": "undelivered", "ErrorCode": "30003",
            "ErrorMessage": "Unreachable destination handset", "NumSegments": "2"}  # fmt: skip
    cb = StatusCallback.from_params(form)
    assert cb.message_sid == "0a059168-ead0-41af-9d1f-343dae832527"
    assert cb.message_status == "undelivered"
    assert cb.account_sid == "ea108133-d6b3-407c-9536-9fad8a929a6a"
    assert (cb.from_, cb.to, cb.body) == ("+15551234567", "+15557654321", "Hello World!")
    assert (cb.num_media, cb.num_segments) == (0, 2)
    assert cb.error_code == 30003
    assert cb.error_message == "Unreachable destination handset"
    assert cb.api_version == "2010-04-01"
    assert cb.raw["SmsStatus"] == "delivered"
    assert dict(cb.raw) == form


def test_status_callback_minimal_and_unknown_status() -> None:
    cb = StatusCallback.from_params({"MessageSid": "m", "MessageStatus": "partially_delivered"})
    assert cb == StatusCallback(message_sid="m", message_status="partially_delivered",
                                raw={"MessageSid": "m", "MessageStatus": "partially_delivered"})  # fmt: skip
    assert (cb.account_sid, cb.from_, cb.to, cb.body, cb.num_media, cb.num_segments) == (None,) * 6
    assert (cb.error_code, cb.error_message, cb.api_version) == (None, None, None)
    # Empty optional values (e.g. ErrorCode=) read as None.
    cb = StatusCallback.from_params({"MessageSid": "m", "MessageStatus": "sent", "ErrorCode": ""})
    assert cb.error_code is None


@pytest.mark.parametrize("name", ["MessageSid", "MessageStatus"])
@pytest.mark.parametrize("value", [None, ""])
def test_status_callback_required(name: str, value: str | None) -> None:
    form = dict(PARAMS)
    if value is None:
        del form[name]
    else:
        form[name] = value
    with pytest.raises(ValueError, match=name):
        StatusCallback.from_params(form)


@pytest.mark.parametrize("name", ["NumMedia", "NumSegments", "ErrorCode"])
@pytest.mark.parametrize("value", ["abc", "-1", "1.5", " 1", "+1", "1_0", "\u0661", "9" * 30])
def test_status_callback_bad_ints(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        StatusCallback.from_params({**PARAMS, name: value})


def test_status_callback_from_json_numbers_and_multidict() -> None:
    cb = StatusCallback.from_params({"MessageSid": "m", "MessageStatus": "sent", "NumSegments": 3})
    assert cb.num_segments == 3
    cb = StatusCallback.from_params(MultiDict([*PARAMS.items(), ("Body", "second")]))
    assert cb.body == "Hello World!"
    with pytest.raises(ValueError, match="NumSegments"):
        StatusCallback.from_params({"MessageSid": "m", "MessageStatus": "s", "NumSegments": True})
    with pytest.raises(ValueError, match="Body"):
        StatusCallback.from_params({"MessageSid": "m", "MessageStatus": "s", "Body": 5})
    with pytest.raises(TypeError):
        StatusCallback.from_params([("MessageSid", "m")])  # type: ignore[arg-type]


def test_views_are_immutable_and_hashable() -> None:
    cb = StatusCallback.from_params(PARAMS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cb.message_status = "failed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cb.raw["Body"] = "x"  # type: ignore[index]
    assert hash(cb) == hash(StatusCallback.from_params(dict(PARAMS)))
    msg = InboundMessage.from_params(PARAMS)
    assert hash(msg) == hash(InboundMessage.from_params(dict(PARAMS)))


INBOUND = {
    "MessageSid": "7d3d5b8c-2f7c-4d8a-9f1e-1b2c3d4e5f60",
    "AccountSid": "ea108133-d6b3-407c-9536-9fad8a929a6a",
    "From": "+15557654321",
    "To": "+15551234567",
    "Body": "Photo attached",
    "NumMedia": "2",
    "NumSegments": "1",
    "MediaUrl0": "https://media.example.com/0",
    "MediaContentType0": "image/jpeg",
    "MediaUrl1": "https://media.example.com/1",
    "MediaContentType1": "video/mp4",
}


def test_inbound_with_media() -> None:
    msg = InboundMessage.from_params(INBOUND)
    assert msg.message_sid == INBOUND["MessageSid"]
    assert msg.account_sid == INBOUND["AccountSid"]
    assert (msg.from_, msg.to, msg.body) == ("+15557654321", "+15551234567", "Photo attached")
    assert (msg.num_media, msg.num_segments) == (2, 1)
    assert msg.media == (
        Media("https://media.example.com/0", "image/jpeg"),
        Media("https://media.example.com/1", "video/mp4"),
    )
    url, content_type = msg.media[1]
    assert (url, content_type) == ("https://media.example.com/1", "video/mp4")
    assert msg.raw["MediaUrl1"] == "https://media.example.com/1"


def test_inbound_minimal() -> None:
    msg = InboundMessage.from_params({"MessageSid": "m", "From": "+1555", "To": "+1556"})
    assert (msg.account_sid, msg.body, msg.num_segments) == (None, None, None)
    assert (msg.num_media, msg.media) == (0, ())
    # A media-only message has an empty Body, which is kept as "".
    msg = InboundMessage.from_params({"MessageSid": "m", "From": "+1", "To": "+2", "Body": ""})
    assert msg.body == ""


def test_inbound_media_without_count_or_type() -> None:
    form = {"MessageSid": "m", "From": "+1", "To": "+2", "MediaUrl0": "https://a", "MediaUrl1": "https://b",
            "MediaUrl3": "https://not-contiguous"}  # fmt: skip
    msg = InboundMessage.from_params(form)
    assert msg.media == (Media("https://a", None), Media("https://b", None))
    assert msg.num_media == 2


@pytest.mark.parametrize("name", ["MessageSid", "From", "To"])
def test_inbound_required(name: str) -> None:
    form = dict(INBOUND)
    del form[name]
    with pytest.raises(ValueError, match=name):
        InboundMessage.from_params(form)


@pytest.mark.parametrize("num_media", ["3", "999999999"])
def test_inbound_media_count_mismatch(num_media: str) -> None:
    with pytest.raises(ValueError, match="MediaUrl2"):
        InboundMessage.from_params({**INBOUND, "NumMedia": num_media})


def test_inbound_bad_num_media() -> None:
    with pytest.raises(ValueError, match="NumMedia"):
        InboundMessage.from_params({**INBOUND, "NumMedia": "two"})
