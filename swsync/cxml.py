"""Build cXML messaging documents: the reply to an inbound-message webhook.

Example::

    from swsync.cxml import CONTENT_TYPE, MessagingResponse

    reply = MessagingResponse().message("Thanks!", media=["https://example.com/a.png"])
    return str(reply), 200, {"Content-Type": CONTENT_TYPE}

gives::

    <?xml version="1.0" encoding="UTF-8"?><Response><Message><Body>Thanks!</Body>
    <Media>https://example.com/a.png</Media></Message></Response>

(on one line). Attributes are written in alphabetical order with their cXML names
(``from_`` -> ``from``, ``status_callback`` -> ``statusCallback``); text is escaped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from ._validate import content

__all__ = ["CONTENT_TYPE", "MessagingResponse"]

#: The ``Content-Type`` to send a cXML document with.
CONTENT_TYPE = "text/xml; charset=utf-8"

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_METHODS = ("GET", "POST")
# Characters XML 1.0 cannot carry at all, not even as character references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise ValueError(f"{name} contains U+{ord(bad.group()):04X}, which an XML document cannot carry")
    return value


def _method(method: str | None) -> str | None:
    if method is None:
        return None
    upper = method.upper() if isinstance(method, str) else None
    if upper not in _METHODS:
        raise ValueError(f"method must be 'GET' or 'POST', got {method!r}")
    return upper


def _element(tag: str, attributes: dict[str, str | None]) -> ET.Element:
    # ElementTree keeps insertion order (3.8+); cXML convention is alphabetical.
    return ET.Element(tag, {k: v for k, v in sorted(attributes.items()) if v is not None})


class MessagingResponse:
    """A cXML ``<Response>`` for messaging, built verb by verb.

    Every method validates its arguments, appends one verb and returns the
    response itself, so calls chain:
    ``MessagingResponse().message("Hi").redirect("https://...")``.
    ``str(response)`` (or :meth:`to_xml`) renders the document; an empty response
    renders as ``<Response />``, which tells SignalWire to do nothing.

    Not thread-safe: build a response in one thread (each request its own).
    """

    __slots__ = ("_root",)

    def __init__(self) -> None:
        self._root = ET.Element("Response")

    def message(
        self,
        body: str | None = None,
        *,
        to: str | None = None,
        from_: str | None = None,
        action: str | None = None,
        method: str | None = None,
        status_callback: str | None = None,
        media: Sequence[str] = (),
    ) -> MessagingResponse:
        """Append a ``<Message>`` verb: send a message (by default, a reply).

        Args:
            body: the text, written as a ``<Body>`` noun; at most 1600 characters.
            to: destination; default = the sender of the inbound message. Not
                checked for E.164, so short codes and ``{{From}}`` templates work.
            from_: sender; default = the number that received the inbound message.
            action: URL called with the message's status; its cXML reply replaces
                the rest of this document.
            method: ``"GET"`` or ``"POST"`` (case-insensitive) for ``action``.
            status_callback: written as ``statusCallback`` (a twilio attribute that
                SignalWire does not document; prefer ``action``).
            media: up to 10 http(s) URLs, one ``<Media>`` noun each.

        Returns:
            This response, for chaining.

        Raises:
            ValueError: no body and no media, a body over 1600 characters, more
                than 10 media URLs, a method other than GET/POST, an empty
                attribute, or a character XML cannot represent.
        """
        text, urls = content(body, media)
        attributes = {
            "to": None if to is None else _text(to, "to"),
            "from": None if from_ is None else _text(from_, "from_"),
            "action": None if action is None else _text(action, "action"),
            "method": _method(method),
            "statusCallback": (None if status_callback is None else _text(status_callback, "status_callback")),
        }
        element = _element("Message", attributes)
        if text is not None:
            ET.SubElement(element, "Body").text = _text(text, "body")
        for url in urls:
            ET.SubElement(element, "Media").text = _text(url, "media URL")
        self._root.append(element)
        return self

    def redirect(self, url: str, method: str | None = None) -> MessagingResponse:
        """Append a ``<Redirect>`` verb: stop here and fetch the next document.

        Args:
            url: the absolute URL of the next cXML document.
            method: ``"GET"`` or ``"POST"`` (case-insensitive); default POST.

        Returns:
            This response, for chaining.

        Raises:
            ValueError: an empty URL, a bad method, or a character XML cannot
                represent.
        """
        element = _element("Redirect", {"method": _method(method)})
        element.text = _text(url, "url")
        self._root.append(element)
        return self

    def to_xml(self) -> str:
        """Return the document: the XML declaration followed by ``<Response>``."""
        xml = ET.tostring(self._root, encoding="unicode")
        # ElementTree leaves CR raw in text, where any XML parser turns it into LF;
        # after serialization a raw CR can only be text content, so escape it.
        return _DECLARATION + xml.replace("\r", "&#13;")

    def __str__(self) -> str:
        return self.to_xml()

    def __repr__(self) -> str:
        return f"<MessagingResponse with {len(self._root)} verb(s)>"
