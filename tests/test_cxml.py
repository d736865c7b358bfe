"""cXML messaging documents: structure, escaping (parsed back with ElementTree), validation."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swsync.cxml import CONTENT_TYPE, MessagingResponse

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def parse(response: MessagingResponse) -> ET.Element:
    xml = str(response)
    assert xml == response.to_xml()
    assert xml.startswith(DECLARATION)
    return ET.fromstring(xml.encode("utf-8"))  # bytes: honours the declaration


def test_empty_response() -> None:
    xml = MessagingResponse().to_xml()
    assert xml in (DECLARATION + "<Response />", DECLARATION + "<Response></Response>")
    root = parse(MessagingResponse())
    assert root.tag == "Response" and len(root) == 0 and not root.attrib


def test_reference_document() -> None:
    r = MessagingResponse()
    r.message(
        "Thanks, we got your order.",
        to="+15557654321",
        from_="+15551234567",
        action="https://app.example.com/sms/after",
        method="POST",
        media=["https://app.example.com/receipt.png"],
    )
    r.redirect("https://app.example.com/sms/next", method="POST")
    assert r.to_xml() == (
        DECLARATION + "<Response>"
        '<Message action="https://app.example.com/sms/after" from="+15551234567" '
        'method="POST" to="+15557654321">'
        "<Body>Thanks, we got your order.</Body>"
        "<Media>https://app.example.com/receipt.png</Media>"
        "</Message>"
        '<Redirect method="POST">https://app.example.com/sms/next</Redirect>'
        "</Response>"
    )


def test_api_example_and_chaining() -> None:
    r = MessagingResponse()
    assert r.message("Thanks!", media=["https://example.com/a.png"]) is r
    assert r.redirect("https://example.com/next") is r
    root = parse(r)
    assert [child.tag for child in root] == ["Message", "Redirect"]
    message = root[0]
    assert message.attrib == {}
    assert [(c.tag, c.text) for c in message] == [
        ("Body", "Thanks!"),
        ("Media", "https://example.com/a.png"),
    ]
    assert root[1].attrib == {} and root[1].text == "https://example.com/next"
    chained = MessagingResponse().message("a").message("b").to_xml()
    assert chained.count("<Message>") == 2


def test_attribute_names_and_alphabetical_order() -> None:
    r = MessagingResponse().message(
        "x",
        to="+2",
        status_callback="https://cb",
        method="get",
        from_="+1",
        action="https://act",
    )
    xml = r.to_xml()
    assert '<Message action="https://act" from="+1" method="GET" statusCallback="https://cb" to="+2">' in xml
    assert "from_" not in xml and "status_callback" not in xml
    assert list(parse(r)[0].attrib) == ["action", "from", "method", "statusCallback", "to"]


def test_media_only_and_many_media() -> None:
    urls = [f"https://media.example.com/{i}.png" for i in range(10)]
    message = parse(MessagingResponse().message(media=urls))[0]
    assert [c.tag for c in message] == ["Media"] * 10
    assert [c.text for c in message] == urls


NASTY = "Tom & Jerry <b>\"quoted\" 'single'</b> ]]> café ♥ 😀 \t line\nbreak\r\nCRLF"


def test_escaping_round_trips_text_and_attributes() -> None:
    url = "https://example.com/a?x=1&y=<2>&z=\"q\"&w='s'&é=😀"
    r = MessagingResponse()
    r.message(NASTY, to="{{From}}", from_='Tom & "Jerry" <x>', action=url, media=[url])
    r.redirect(url, method="get")
    xml = r.to_xml()
    assert "Tom & Jerry" not in xml and "<b>" not in xml and "\r" not in xml
    root = parse(r)
    message, redirect = root
    assert message.find("Body").text == NASTY  # type: ignore[union-attr]
    assert message.find("Media").text == url  # type: ignore[union-attr]
    assert message.attrib == {"action": url, "from": 'Tom & "Jerry" <x>', "to": "{{From}}"}
    assert redirect.text == url and redirect.attrib == {"method": "GET"}


def test_attribute_whitespace_round_trips() -> None:
    value = "a\tb\nc\r\nd"
    root = parse(MessagingResponse().message("x", to=value))
    assert root[0].attrib["to"] == value


def test_max_body_is_accepted() -> None:
    body = "é" * 1600
    assert parse(MessagingResponse().message(body))[0][0].text == body


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"body": "a" * 1601}, "1600"),
        ({"body": "x", "media": [f"https://m/{i}" for i in range(11)]}, "10"),
        ({}, "body or"),
        ({"body": ""}, "body or"),
        ({"body": "x", "method": "PUT"}, "method"),
        ({"body": "x", "method": ""}, "method"),
        ({"body": "x", "media": "https://m/a"}, "list"),
        ({"body": "x", "media": ["ftp://m/a"]}, "http"),
        ({"body": "x", "to": ""}, "to"),
        ({"body": "x", "from_": ""}, "from_"),
        ({"body": "x", "action": ""}, "action"),
        ({"body": "x", "status_callback": ""}, "status_callback"),
        ({"body": "form\ffeed"}, "U\\+000C"),
        ({"body": "nul\x00"}, "U\\+0000"),
        ({"body": "x", "to": "+1\x1b"}, "U\\+001B"),
        ({"body": "lone \ud800"}, "U\\+D800"),
        ({"body": "x", "media": ["https://m/\ufffe"]}, "U\\+FFFE"),
    ],
)
def test_message_validation(kwargs: dict[str, object], match: str) -> None:
    r = MessagingResponse()
    with pytest.raises(ValueError, match=match):
        r.message(**kwargs)  # type: ignore[arg-type]
    assert len(parse(r)) == 0  # nothing half-added


def test_body_must_be_str() -> None:
    with pytest.raises(ValueError):
        MessagingResponse().message(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "method"),
    [("", None), ("https://x", "DELETE"), ("https://x\x01", None), (None, None)],
)
def test_redirect_validation(url: object, method: str | None) -> None:
    r = MessagingResponse()
    with pytest.raises(ValueError):
        r.redirect(url, method=method)  # type: ignore[arg-type]
    assert len(parse(r)) == 0


def test_content_type_and_repr() -> None:
    assert CONTENT_TYPE.startswith("text/xml")
    assert "2 verb" in repr(MessagingResponse().message("a").redirect("https://x"))


_xml_chars = st.characters(blacklist_categories=("Cs",)).filter(
    lambda c: c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff")
)


@settings(max_examples=150, deadline=None)
@given(
    body=st.text(_xml_chars, min_size=1, max_size=200),
    to=st.text(_xml_chars, min_size=1, max_size=40),
)
def test_any_valid_text_round_trips(body: str, to: str) -> None:
    message = parse(MessagingResponse().message(body, to=to))[0]
    assert message.attrib == {"to": to}
    assert message.find("Body").text == body  # type: ignore[union-attr]
