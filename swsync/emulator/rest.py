"""The emulator's cXML (LaML) REST side: Messages and Media, Twilio-compatible.

Routes (each also without the ``/api/laml`` prefix, each with or without
``.json``), relative to ``/api/laml/2010-04-01/Accounts/{project}``::

    POST   /Messages                      create (201)
    GET    /Messages                      list (filters, paging)
    GET    /Messages/{sid}                fetch
    POST   /Messages/{sid}                redact (Body="")
    DELETE /Messages/{sid}                delete (204; refused while ``queued``)
    GET    /Messages/{sid}/Media          list media
    GET    /Messages/{sid}/Media/{sid}    fetch media
    DELETE /Messages/{sid}/Media/{sid}    delete media (204)

HTTP Basic auth with project:token. Errors are ``{"code", "message", "more_info",
"status"}``.

Threads and locks: docs/design.md, "Threads" and "Locks".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from .. import _validate
from .engine import Engine
from .pacing import BACKLOG_CODE, REST_RATE_CODE, backlog_message
from .store import (
    API_VERSION,
    REJECTED_NUMBER,
    SERVICE_NUMBER,
    MediaRecord,
    MessageRecord,
    rfc2822,
    sort_key,
)

__all__ = ["RestApi", "media_json", "message_json"]

LAML = "/api/laml/2010-04-01"
MORE_INFO = "https://developer.signalwire.com/compatibility-api/reference/error-codes"

_ROUTE = re.compile(
    r"(?:/api/laml)?/2010-04-01/Accounts/(?P<account>[^/]+)/Messages"
    r"(?:/(?P<sid>[^/]+?)(?P<media>/Media(?:/(?P<media_sid>[^/]+?))?)?)?"
    r"(?:\.json)?/?"
)

_MESSAGE_FILTERS = ("To", "From", "Status", "DateSent", "DateSent<", "DateSent>")
_MEDIA_FILTERS = ("DateCreated", "DateCreated<", "DateCreated>")


class ApiError(Exception):
    """An error response: HTTP ``status``, cXML ``code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(err: ApiError) -> web.Response:
    """Render ``err`` as the cXML API's JSON error body."""
    return web.json_response(
        {
            "code": err.code,
            "message": err.message,
            "more_info": f"{MORE_INFO}#{err.code}",
            "status": err.status,
        },
        status=err.status,
        headers=err.headers,
    )


def message_json(r: MessageRecord) -> dict[str, Any]:
    """The cXML Message object (SignalWire Compatibility API docs: "Message") for a record."""
    uri = f"{LAML}/Accounts/{r.account_sid}/Messages/{r.sid}"
    return {
        "account_sid": r.account_sid,
        "api_version": API_VERSION,
        "sid": r.sid,
        "from": r.from_,
        "to": r.to,
        "body": r.body,
        "num_segments": r.num_segments,
        "num_media": len(r.media),
        "status": r.status,
        "direction": r.direction,
        "date_created": rfc2822(r.date_created),
        "date_updated": rfc2822(r.date_updated),
        "date_sent": rfc2822(r.date_sent),
        "error_code": r.error_code,
        "error_message": r.error_message,
        "price": r.price,
        "price_unit": "USD",
        "messaging_service_sid": r.messaging_service_sid,
        "uri": f"{uri}.json",
        "subresource_uris": {"media": f"{uri}/Media.json"},
    }


def media_json(account_sid: str, m: MediaRecord) -> dict[str, Any]:
    """The cXML Media object (SignalWire Compatibility API docs: "Media") for a media record."""
    return {
        "sid": m.sid,
        "account_sid": account_sid,
        "parent_sid": m.parent_sid,
        "content_type": m.content_type,
        "date_created": rfc2822(m.date_created),
        "date_updated": rfc2822(m.date_updated),
        "uri": f"{LAML}/Accounts/{account_sid}/Messages/{m.parent_sid}/Media/{m.sid}.json",
    }


def _is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > 8 and " " not in value


def _date_param(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ApiError(400, 10000, f"Invalid {name}: {value!r} (expected YYYY-MM-DD)") from None


def _date_filter(query: Any, names: Sequence[str], attr: Callable[[Any], Any]) -> Callable[[Any], bool] | None:
    """A predicate for ``Name``, ``Name<``, ``Name>`` date filters (inclusive)."""
    exact_s, before_s, after_s = (query.get(n) for n in names)
    if not (exact_s or before_s or after_s):
        return None
    exact = _date_param(names[0], exact_s) if exact_s else None
    before = _date_param(names[1], before_s) if before_s else None
    after = _date_param(names[2], after_s) if after_s else None

    def match(item: Any) -> bool:
        when = attr(item)
        if when is None:
            return False
        day = when.date()
        if exact is not None and day != exact:
            return False
        if before is not None and day > before:
            return False
        return after is None or day >= after

    return match


class RestApi:
    """The REST request handler. Loop thread only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for every path except the WebSocket ``GET /``."""
        engine = self.engine
        engine.counters.rest_requests += 1
        engine.store.log_request(request.method, request.raw_path)
        try:
            fault = engine.faults.take_rest_fault()
            if fault == "throttle":
                raise ApiError(
                    429,
                    20429,
                    "Too Many Requests",
                    headers={"Retry-After": str(engine.faults.retry_after)},
                )
            if fault == "error":
                raise ApiError(500, 20504, "Internal Server Error (injected by the emulator)")
            retry = engine.pacing.rest_request(request.method)  # Emulator(mps=...) only
            if retry is not None:
                raise ApiError(
                    429,
                    REST_RATE_CODE,
                    "Too Many Requests: over the API request rate",
                    headers={"Retry-After": str(retry)},
                )
            m = _ROUTE.fullmatch(request.path)
            if m is None:
                raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
            self._authorize(request, m["account"])
            return await self._dispatch(request, m)
        except ApiError as err:
            return error_response(err)

    def _authorize(self, request: web.Request, account: str) -> None:
        engine = self.engine
        if not (engine.basic_auth_ok(request.headers.get("Authorization", "")) and account == engine.project):
            raise ApiError(
                401,
                20003,
                "Authentication Error - invalid username or password",
                headers={"WWW-Authenticate": 'Basic realm="SignalWire"'},
            )

    async def _dispatch(self, request: web.Request, m: re.Match[str]) -> web.StreamResponse:
        method = request.method
        sid = m["sid"]
        if sid is None:
            if method == "GET":
                return self._list_messages(request)
            if method == "POST":
                return await self._create(request)
            raise _not_allowed(method)
        record = self.engine.store.get(sid)
        if record is None:
            raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
        if m["media"] is None:
            if method == "GET":
                return web.json_response(message_json(record))
            if method == "POST":
                return await self._redact(request, record)
            if method == "DELETE":
                if record.status == "queued":
                    raise ApiError(400, 20009, "Cannot delete a message that is still queued")
                self.engine.store.delete(record.sid)
                return web.Response(status=204)
            raise _not_allowed(method)
        media_sid = m["media_sid"]
        if media_sid is None:
            if method == "GET":
                return self._list_media(request, record)
            raise _not_allowed(method)
        media = next((x for x in record.media if x.sid == media_sid), None)
        if media is None:
            raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
        if method == "GET":
            return web.json_response(media_json(record.account_sid, media))
        if method == "DELETE":
            if record.status == "queued":
                raise ApiError(400, 20009, "Cannot delete media of a message that is still queued")
            self.engine.store.delete_media(record, media)
            return web.Response(status=204)
        raise _not_allowed(method)

    # -- create / redact ------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        form = await request.post()
        to, from_, body, urls, callback, service = _create_fields(form)
        if to == REJECTED_NUMBER:
            raise ApiError(422, 21211, f"The 'To' number {to} is not a valid, SMS-capable phone number.")
        pacing = self.engine.pacing  # Emulator(mps=...): carrier turns and backlog
        admitted, departure = pacing.book(to, from_, body, urls)
        if not admitted:
            raise ApiError(400, BACKLOG_CODE, backlog_message(pacing.backlog))
        record = self.engine.create_outbound(
            to=to,
            from_=from_,
            body=body or "",
            media=urls,
            direction="outbound-api",
            origin="rest",
            status_callback=callback or None,
            messaging_service_sid=service or None,
            send_as_mms=_boolean(form, "SendAsMms"),
        )
        pacing.assign(record.sid, departure)
        self.engine.counters.rest_creates += 1
        return web.json_response(message_json(record), status=201)

    async def _redact(self, request: web.Request, record: MessageRecord) -> web.Response:
        form = await request.post()
        if form.get("Body") != "":
            raise ApiError(400, 50509, "The only supported update is redaction: Body must be empty.")
        if record.status in ("queued", "initiated"):
            raise ApiError(400, 10000, "Cannot redact a message that is still in progress.")
        self.engine.store.redact(record)
        return web.json_response(message_json(record))

    # -- lists --------------------------------------------------------------------------

    def _list_messages(self, request: web.Request) -> web.Response:
        q = request.query
        page, size, token = _paging(q)
        to, from_, status = q.get("To"), q.get("From"), q.get("Status")
        dates = _date_filter(q, _MESSAGE_FILTERS[3:], lambda r: r.date_sent)

        def match(r: MessageRecord) -> bool:
            return (
                (to is None or r.to == to)
                and (from_ is None or r.from_ == from_)
                and (status is None or r.status == status)
                and (dates is None or dates(r))
            )

        plain = to is None and from_ is None and status is None and dates is None
        records = self.engine.store.select(None if plain else match)

        body = _page(
            f"{LAML}/Accounts/{self.engine.project}/Messages",
            [(n, q[n]) for n in _MESSAGE_FILTERS if n in q],
            records,
            page,
            size,
            token,
            key=sort_key,
            anchor=self.engine.store.position,  # survives deletion of the anchor record
            name="messages",
            render=message_json,
        )
        return web.json_response(body)

    def _list_media(self, request: web.Request, record: MessageRecord) -> web.Response:
        q = request.query
        page, size, token = _paging(q)
        dates = _date_filter(q, _MEDIA_FILTERS, lambda m: m.date_created)
        position = {m.sid: i for i, m in enumerate(record.media)}
        items = [m for m in record.media if dates is None or dates(m)]
        account = record.account_sid

        def anchor(sid: str) -> Any:
            i = position.get(sid)
            return None if i is None else -i

        body = _page(
            f"{LAML}/Accounts/{account}/Messages/{record.sid}/Media",
            [(n, q[n]) for n in _MEDIA_FILTERS if n in q],
            items,
            page,
            size,
            token,
            key=lambda m: -position[m.sid],
            anchor=anchor,
            name="media_list",
            render=lambda m: media_json(account, m),
        )
        return web.json_response(body)


def _create_fields(form: Any) -> tuple[str, str, str | None, list[str], str | None, str | None]:
    """``To``, ``From``, ``Body``, media URLs, ``StatusCallback`` and ``MessagingServiceSid`` of a create form.

    Raises:
        ApiError: a field is missing or invalid (the cXML API's 400 and code).
    """
    to = _text(form, "To")
    from_ = _text(form, "From")
    body = _text(form, "Body")
    callback = _text(form, "StatusCallback")
    service = _text(form, "MessagingServiceSid")
    media = form.getall("MediaUrl", [])
    if not to:
        raise ApiError(400, 21604, "A 'To' phone number is required.")
    if not _validate.is_phone_number(to):
        raise ApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if not from_ and service:
        from_ = SERVICE_NUMBER  # the emulator's stand-in for the service's number pool
    if not from_:
        raise ApiError(400, 21212, "A 'From' phone number or a MessagingServiceSid is required.")
    if not _validate.is_phone_number(from_):
        raise ApiError(400, 21212, f"The 'From' number {from_} is not a valid phone number.")
    return to, from_, body, _checked_content(body, media, callback), callback, service


def _checked_content(body: str | None, media: list[Any], callback: str | None) -> list[str]:
    """The media URLs, once body, media and callback are valid; else the cXML API's 400."""
    if not body and not media:
        raise ApiError(400, 21602, "Message body is required.")
    if body and len(body) > _validate.MAX_BODY_CHARS:
        raise ApiError(
            400,
            21617,
            f"The concatenated message body exceeds the {_validate.MAX_BODY_CHARS} character limit.",
        )
    if len(media) > _validate.MAX_MEDIA:
        raise ApiError(400, 21623, f"Too many media URLs: at most {_validate.MAX_MEDIA} are allowed.")
    urls: list[str] = []
    for url in media:
        if not isinstance(url, str) or not _is_http_url(url):
            raise ApiError(400, 21620, f"Media URL {url!r} is invalid.")
        urls.append(url)
    if callback is not None and not _is_http_url(callback):
        raise ApiError(400, 21402, "StatusCallback must be an http(s) URL.")
    return urls


def _text(form: Any, name: str) -> str | None:
    """A form field as text (``None`` when absent); a file upload is a 400."""
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ApiError(400, 10000, f"{name} must be a text field")


def _boolean(form: Any, name: str) -> bool:
    """A ``true``/``false`` form field (absent: false); anything else is a 400."""
    value = _text(form, name)
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise ApiError(400, 10000, f"{name} must be true or false, got {value!r}")


def _not_allowed(method: str) -> ApiError:
    return ApiError(405, 20004, f"Method {method} not allowed on this resource")


def _paging(q: Any) -> tuple[int, int, str | None]:
    raw_size = q.get("PageSize", "50")
    try:
        size = int(raw_size)
    except ValueError:
        size = 0
    if not 1 <= size <= 1000:
        raise ApiError(400, 54454, f"Invalid PageSize {raw_size!r}: must be between 1 and 1000")
    raw_page = q.get("Page", "0")
    try:
        page = int(raw_page)
    except ValueError:
        page = -1
    if page < 0:
        raise ApiError(400, 10000, f"Invalid Page {raw_page!r}: must be an integer >= 0")
    token = q.get("PageToken") or None
    if page > 0 and token is None:
        raise ApiError(400, 54453, "PageToken is required when Page is greater than 0")
    return page, size, token


def _page(
    base: str,
    filters: list[tuple[str, str]],
    items: list[Any],
    page: int,
    size: int,
    token: str | None,
    *,
    key: Callable[[Any], Any],
    anchor: Callable[[str], Any],
    name: str,
    render: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """Slice ``items`` (sorted by ``key`` descending) into one page envelope.

    ``PA<sid>`` starts after the item with that sid; ``PB<sid>`` ends before it.
    """
    start = 0
    if token is not None:
        kind, sid = token[:2], token[2:]
        mark = anchor(sid) if kind in ("PA", "PB") and sid else None
        if mark is None:
            raise ApiError(400, 21481, f"Invalid PageToken {token!r}")
        if kind == "PA":
            start = next((i for i, it in enumerate(items) if key(it) < mark), len(items))
            chunk = items[start : start + size]
        else:
            end = next((i for i, it in enumerate(items) if key(it) <= mark), len(items))
            start = max(0, end - size)
            chunk = items[start:end]
    else:
        chunk = items[:size]

    def uri(page_no: int, tok: str | None) -> str:
        query = [*filters, ("Page", str(page_no)), ("PageSize", str(size))]
        if tok is not None:
            query.append(("PageToken", tok))
        return f"{base}?{urlencode(query)}"

    more = start + len(chunk) < len(items)
    return {
        "uri": uri(page, token),
        "first_page_uri": uri(0, None),
        "next_page_uri": uri(page + 1, "PA" + _sid(chunk[-1])) if more and chunk else None,
        "previous_page_uri": uri(page - 1, "PB" + _sid(chunk[0])) if page > 0 and start > 0 and chunk else None,
        "page": page,
        "page_size": size,
        name: [render(it) for it in chunk],
    }


def _sid(item: Any) -> str:
    return str(item.sid)
