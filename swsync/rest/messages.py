"""Messages: ``MessageList`` (create/list/stream/page) -> ``MessageContext`` -> ``MessageRecord``."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from .._validate import content, phone_number
from ..optouts import check_not_opted_out
from ._fields import (
    EMPTY,
    nonempty,
    opt_datetime,
    opt_decimal,
    opt_int,
    opt_str,
    query_date,
    sid_segment,
)
from ._record import Field, Record, from_decoded
from ._transport import ClientOrTransport, transport_of
from .media import MediaList
from .page import Page, iterate, paging_params

__all__ = ["MessageContext", "MessageList", "MessageRecord", "MessageStatus"]

MAX_VALIDITY_PERIOD = 172800  # seconds (48 h), the documented ceiling
# MaxPrice: a decimal with up to 4 places (SignalWire's "Create a Message" cXML REST reference)
_MAX_PRICE = re.compile(r"\d+\.?\d{0,4}")


class MessageStatus(str, Enum):
    """A message's ``status``; compares equal to its wire string (``"delivered"``).

    A record whose status is not one of these keeps the server's plain string, so a
    new status never breaks parsing.
    """

    QUEUED = "queued"
    INITIATED = "initiated"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    RECEIVING = "receiving"
    RECEIVED = "received"

    __str__ = str.__str__  # "delivered", not "MessageStatus.DELIVERED"

    @property
    def is_final(self) -> bool:
        """True for statuses that never change again (``sent`` may still become ``delivered``)."""
        return self in _FINAL

    @classmethod
    def parse(cls, value: Any) -> MessageStatus | str | None:
        """Return the member for a known wire value, the string itself for an unknown one."""
        if not isinstance(value, str):
            return None
        return _STATUS.get(value, value)


def _str_map(value: Any) -> Mapping[str, str]:
    """A read-only view of a JSON object of strings (``EMPTY`` for anything else)."""
    if not isinstance(value, dict) or not value:
        return EMPTY
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            return MappingProxyType({k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)})
    return MappingProxyType(value)


_STATUS: dict[str, MessageStatus] = {m.value: m for m in MessageStatus}
_FINAL = frozenset({MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.RECEIVED})


class MessageRecord(Record, kind="a message"):
    """A snapshot of one message as the REST API returned it (immutable).

    Attributes are the cXML JSON field names (``from_`` for ``from``). Dates are aware
    ``datetime`` objects (UTC) or ``None``; ``price`` is a ``Decimal`` or ``None``;
    ``num_segments``, ``num_media`` and ``error_code`` are ``int`` or ``None`` (numeric
    strings are converted). ``status`` is a :class:`MessageStatus`, or the raw string for
    a status this version does not know. ``raw`` is a read-only view of the whole JSON
    object, unknown fields included.

    Each attribute is converted from the JSON on first access and cached. Conversion is
    lenient and never raises: a value of the wrong type, or one that does not parse,
    reads as ``None`` (the original stays in ``raw``). Equal when the JSON objects are
    equal. Not to be confused with the RELAY ``Message``, which is live and waitable.

    Thread-safety: immutable; share freely.
    """

    __slots__ = ()

    account_sid = Field(opt_str, "The project (account) the message belongs to.")
    api_version = Field(opt_str, 'API version the message was created with (``"2010-04-01"``).')
    from_ = Field(opt_str, "The sender (JSON ``from``).", key="from")
    to = Field(opt_str, "The recipient.")
    body = Field(opt_str, 'The text (``""`` once redacted).')
    status = Field(
        MessageStatus.parse, "A :class:`MessageStatus`, or the plain string for a status this version does not know."
    )
    direction = Field(opt_str, "``inbound``, ``outbound-api``, ``outbound-call`` or ``outbound-reply``.")
    num_segments = Field(opt_int, "Number of SMS segments.")
    num_media = Field(opt_int, "Number of media items.")
    price = Field(opt_decimal, "Cost in ``price_unit``, or ``None`` until the message is rated.")
    price_unit = Field(opt_str, 'Currency of ``price`` (``"USD"``).')
    error_code = Field(opt_int, "cXML error code of a failed or undelivered message.")
    error_message = Field(opt_str, "Text of ``error_code``.")
    date_created = Field(opt_datetime, "When the message was created (aware, UTC).")
    date_updated = Field(opt_datetime, "When the message last changed (aware, UTC).")
    date_sent = Field(opt_datetime, "When the message was sent (aware, UTC), ``None`` before that.")
    messaging_service_sid = Field(opt_str, "The Number Group it was sent through, if any.")
    uri = Field(opt_str, "The message's root-relative URI.")
    subresource_uris = Field(_str_map, 'Read-only mapping of sub-resource names to URIs (``"media"``).')

    def __repr__(self) -> str:
        status = self.status.value if isinstance(self.status, MessageStatus) else self.status
        return f"MessageRecord(sid={self.sid!r}, status={status!r}, to={self.to!r}, from_={self.from_!r})"


_parse = from_decoded(MessageRecord)  # what every response's records are built with


def _filters(
    to: str | None,
    from_: str | None,
    status: MessageStatus | str | None,
    date_sent: _dt.date | str | None,
    date_sent_before: _dt.date | str | None,
    date_sent_after: _dt.date | str | None,
    limit: int | None,
    page_size: int | None,
) -> dict[str, str]:
    params = paging_params(limit, page_size)
    # Numbers are checked like create()'s (E.164 or a short code), so a typo fails here
    # instead of silently matching nothing.
    for key, number, arg in (("To", to, "to"), ("From", from_, "from_")):
        if number is not None:
            params[key] = phone_number(number, arg)
    if status is not None:
        params["Status"] = str(nonempty(status, "status"))
    for key, value, arg in (
        ("DateSent", date_sent, "date_sent"),
        ("DateSent<", date_sent_before, "date_sent_before"),
        ("DateSent>", date_sent_after, "date_sent_after"),
    ):
        if value is not None:
            params[key] = query_date(value, arg)
    return params


def _limits(max_price: Decimal | str | float | None, validity_period: int | None) -> list[tuple[str, str]]:
    """The ``MaxPrice`` and ``ValidityPeriod`` form fields of a create, checked."""
    data: list[tuple[str, str]] = []
    if max_price is not None:
        price = opt_decimal(max_price)
        text = format(price, "f") if price is not None and price.is_finite() else ""
        # The API's pattern: digits, optionally a point and at most 4 decimals.
        if not _MAX_PRICE.fullmatch(text):
            raise ValueError(f"max_price must be a non-negative amount with at most 4 decimals, got {max_price!r}")
        data.append(("MaxPrice", text))
    if validity_period is not None:
        if (
            isinstance(validity_period, bool)
            or not isinstance(validity_period, int)
            or not 1 <= validity_period <= MAX_VALIDITY_PERIOD
        ):
            raise ValueError(
                f"validity_period must be an int from 1 to {MAX_VALIDITY_PERIOD} seconds, got {validity_period!r}"
            )
        data.append(("ValidityPeriod", str(validity_period)))
    return data


class MessageContext:
    """One message by SID: ``fetch()``, ``update(body="")`` (redact), ``delete()``, ``media``.

    Creating a context sends nothing. Thread-safety: stateless; share freely.
    """

    __slots__ = ("_transport", "sid", "_path")

    def __init__(self, client: ClientOrTransport, sid: str) -> None:
        """A context for message ``sid`` of ``client`` (a :class:`RestClient`)."""
        self._transport = transport_of(client)
        self.sid = sid_segment(sid, "sid")
        self._path = f"Messages/{quote(sid, safe='')}.json"

    def __repr__(self) -> str:
        return f"<MessageContext sid={self.sid!r}>"

    def fetch(self) -> MessageRecord:
        """Retrieve the message.

        Raises:
            RestError: e.g. 404 (code 20404) for an unknown SID.
        """
        return self._transport.record("GET", self._path, _parse)

    def update(self, body: str = "") -> MessageRecord:
        """Redact the message by setting its body to the empty string; return the result.

        Redaction is the only update the API supports. Not retried after a 5xx (it is a POST).

        Raises:
            ValueError: ``body`` is anything but ``""``.
            RestError: e.g. the message is still in progress (code 10000).
        """
        if body != "":
            raise ValueError("update() only redacts: body must be the empty string")
        return self._transport.record("POST", self._path, _parse, data={"Body": ""})

    def delete(self) -> None:
        """Delete the message (and its media). Returns ``None`` on 204.

        A DELETE is retried after a connection error or 5xx; if the lost attempt had
        succeeded, the retry ends with ``RestError`` 404.

        Raises:
            RestError: e.g. 404 for an unknown SID, or code 20009 while still queued.
        """
        self._transport.send("DELETE", self._path)

    @property
    def media(self) -> MediaList:
        """The message's media sub-resource (``list``/``stream``/``page``, ``media(sid)``)."""
        return MediaList(self._transport, self.sid)


class MessageList:
    """The Messages resource: ``create``, ``list``, ``stream``, ``page``; ``messages(sid)``.

    Thread-safety: stateless; share freely (calls go through the client's session).
    """

    __slots__ = ("_transport",)

    _PATH = "Messages.json"
    _KEY = "messages"

    def __init__(self, client: ClientOrTransport) -> None:
        """The Messages resource of ``client`` (a :class:`RestClient`; ``client.messages`` is one)."""
        self._transport = transport_of(client)

    def __call__(self, sid: str) -> MessageContext:
        """Return the context for message ``sid`` (no request is made)."""
        return MessageContext(self._transport, sid)

    def __repr__(self) -> str:
        return "<MessageList>"

    def create(
        self,
        to: str,
        from_: str | None = None,
        body: str | None = None,
        media_url: Sequence[str] | None = None,
        status_callback: str | None = None,
        application_sid: str | None = None,
        max_price: Decimal | str | float | None = None,
        validity_period: int | None = None,
        messaging_service_sid: str | None = None,
        send_as_mms: bool = False,
    ) -> MessageRecord:
        """Send a message (``POST /Messages``) and return the created record (HTTP 201).

        Args:
            to: destination, E.164 or a short code.
            from_: your sending number, E.164 or a short code.
            body: text, at most 1600 characters; ``body`` and/or ``media_url`` is required.
            media_url: up to 10 http(s) URLs (sent as repeated ``MediaUrl`` fields).
            status_callback: URL that receives a POST on each status change.
            application_sid: cXML application whose status callback to use.
            max_price: USD cap; the message fails (30010) instead of costing more.
            validity_period: seconds it may stay queued (1..172800).
            messaging_service_sid: Number Group to send from.
            send_as_mms: send as MMS even when the message has no media (``SendAsMms=true``),
                e.g. a long text that should arrive whole rather than in SMS segments.

        Returns:
            The new message, typically ``queued``. A message the server accepted but could
            not send comes back with ``status="failed"`` and ``error_code`` set, not an error.

        Raises:
            ValueError: bad arguments, before anything is sent.
            OptedOutError: ``to`` is in the client's opt-out store (nothing is sent).
            RestError: the server refused the message (e.g. 422, code 21210). A POST is
                retried only on 429 or when the connection could not be opened.
            RestConnectionError: the exchange failed; check ``may_have_been_sent``
                before sending again.
            RateLimited: the client's ``rate_limit`` did not admit it within its
                ``max_wait`` (nothing was sent).
        """
        phone_number(to, "to")
        if from_ is None:
            if messaging_service_sid is None:
                raise ValueError("from_ is required unless messaging_service_sid picks the sender")
        else:
            phone_number(from_, "from_")
        body, urls = content(body, media_url, "media_url")
        if not isinstance(send_as_mms, bool):
            raise ValueError(f"send_as_mms must be True or False, got {send_as_mms!r}")
        data: list[tuple[str, str]] = [("To", to)]
        if from_ is not None:
            data.append(("From", from_))
        if body is not None:
            data.append(("Body", body))
        data.extend(("MediaUrl", url) for url in urls)
        for key, value, arg in (
            ("StatusCallback", status_callback, "status_callback"),
            ("ApplicationSid", application_sid, "application_sid"),
            ("MessagingServiceSid", messaging_service_sid, "messaging_service_sid"),
        ):
            if value is not None:
                data.append((key, nonempty(value, arg)))
        data.extend(_limits(max_price, validity_period))
        if send_as_mms:
            data.append(("SendAsMms", "true"))
        # The client's opt-out store (RestClient(opt_outs=...)), after every argument check.
        transport = self._transport
        check_not_opted_out(transport.opt_outs, to)
        limit = transport.rate_limit
        if limit is not None:  # blocks until admitted, or raises RateLimited (nothing sent)
            limit.acquire(
                from_number=from_ or messaging_service_sid or "", body=body, media=urls, account=transport.project
            )
        return transport.record("POST", self._PATH, _parse, data=data)

    def list(
        self,
        to: str | None = None,
        from_: str | None = None,
        status: MessageStatus | str | None = None,
        date_sent: _dt.date | str | None = None,
        date_sent_before: _dt.date | str | None = None,
        date_sent_after: _dt.date | str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> list[MessageRecord]:
        """Return matching messages, newest first, across pages, at most ``limit``.

        Args:
            to, from_: exact-match numbers, E.164 or a short code (``ValueError`` otherwise).
            status: a :class:`MessageStatus` or its string.
            date_sent, date_sent_before, date_sent_after: ``date``, ``datetime`` or ISO
                string, sent as ``YYYY-MM-DD`` (UTC) in ``DateSent``, ``DateSent<``
                (on or before), ``DateSent>`` (on or after).
            limit: stop after this many records, fetching no page beyond them.
            page_size: records per request, 1..1000 (default ``min(limit, 1000)`` with a
                limit, else the server's default of 50).

        Raises:
            ValueError: bad arguments, before anything is sent.
            RestError, RestConnectionError: as for any request.
        """
        return list(self.stream(to, from_, status, date_sent, date_sent_before, date_sent_after, limit, page_size))

    def stream(
        self,
        to: str | None = None,
        from_: str | None = None,
        status: MessageStatus | str | None = None,
        date_sent: _dt.date | str | None = None,
        date_sent_before: _dt.date | str | None = None,
        date_sent_after: _dt.date | str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[MessageRecord]:
        """Like :meth:`list`, but lazily: one page in memory, fetched as iteration needs it.

        Arguments are validated now; the first request is made on the first ``next()``.
        """
        params = _filters(to, from_, status, date_sent, date_sent_before, date_sent_after, limit, page_size)
        return iterate(self._transport, self._PATH, params, self._KEY, _parse, limit)

    def page(
        self,
        to: str | None = None,
        from_: str | None = None,
        status: MessageStatus | str | None = None,
        date_sent: _dt.date | str | None = None,
        date_sent_before: _dt.date | str | None = None,
        date_sent_after: _dt.date | str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> Page[MessageRecord]:
        """Fetch one page of matching messages; ``page.next_page()`` continues.

        ``page_token`` is the opaque ``PageToken`` of a page URI the server returned.

        Raises:
            ValueError: bad arguments, before anything is sent.
            RestError, RestConnectionError: as for any request.
        """
        params = _filters(to, from_, status, date_sent, date_sent_before, date_sent_after, None, page_size)
        if page_token is not None:
            params["PageToken"] = nonempty(page_token, "page_token")
        return Page.fetch(self._transport, self._PATH, params, self._KEY, _parse)
