"""Media of a message: ``MediaList`` (list/stream/page) -> ``MediaContext`` -> ``MediaRecord``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from urllib.parse import quote

from ._fields import nonempty, opt_datetime, opt_str, query_date, sid_segment
from ._record import Field, Record, from_decoded
from ._transport import ClientOrTransport, transport_of
from .page import Page, iterate, paging_params

__all__ = ["MediaContext", "MediaList", "MediaRecord"]


class MediaRecord(Record, kind="a media item"):
    """A snapshot of one media item attached to a message (immutable).

    Attributes are the cXML JSON field names; dates are aware ``datetime`` objects (UTC)
    or ``None``; ``raw`` is a read-only view of the whole JSON object. Fields are
    converted on first access, leniently, as for :class:`MessageRecord`.

    Thread-safety: immutable; share freely.
    """

    __slots__ = ()

    account_sid = Field(opt_str, "The project (account) the media belongs to.")
    parent_sid = Field(opt_str, "SID of the message it is attached to.")
    content_type = Field(opt_str, 'MIME type, e.g. ``"image/png"``.')
    date_created = Field(opt_datetime, "When the media item was created (aware, UTC).")
    date_updated = Field(opt_datetime, "When the media item last changed (aware, UTC).")
    uri = Field(opt_str, "The media item's root-relative URI.")

    def __repr__(self) -> str:
        return f"MediaRecord(sid={self.sid!r}, parent_sid={self.parent_sid!r}, content_type={self.content_type!r})"


_parse = from_decoded(MediaRecord)  # what every response's records are built with


class MediaContext:
    """One media item by SID: ``fetch()`` and ``delete()``.

    Thread-safety: stateless; share freely.
    """

    __slots__ = ("_transport", "message_sid", "sid", "_path")

    def __init__(self, client: ClientOrTransport, message_sid: str, sid: str) -> None:
        """A context for media item ``sid`` of message ``message_sid`` of ``client`` (a ``RestClient``)."""
        self._transport = transport_of(client)
        self.message_sid = message_sid
        self.sid = sid_segment(sid, "sid")
        self._path = f"Messages/{quote(message_sid, safe='')}/Media/{quote(sid, safe='')}.json"

    def __repr__(self) -> str:
        return f"<MediaContext message_sid={self.message_sid!r} sid={self.sid!r}>"

    def fetch(self) -> MediaRecord:
        """Retrieve the media item's metadata.

        Raises:
            RestError: e.g. 404 for an unknown SID.
        """
        return self._transport.record("GET", self._path, _parse)

    def delete(self) -> None:
        """Delete the media item (204).

        Raises:
            RestError: e.g. code 20009 while the message is still queued.
        """
        self._transport.send("DELETE", self._path)


class MediaList:
    """The media of one message: ``list``, ``stream``, ``page``; ``media(sid)``.

    Thread-safety: stateless; share freely.
    """

    __slots__ = ("_transport", "message_sid", "_path")

    _KEY = "media_list"

    def __init__(self, client: ClientOrTransport, message_sid: str) -> None:
        """The media of message ``message_sid`` of ``client`` (a ``RestClient``)."""
        self._transport = transport_of(client)
        self.message_sid = sid_segment(message_sid, "message_sid")
        self._path = f"Messages/{quote(message_sid, safe='')}/Media.json"

    def __call__(self, sid: str) -> MediaContext:
        """Return the context for media item ``sid`` (no request is made)."""
        return MediaContext(self._transport, self.message_sid, sid)

    def __repr__(self) -> str:
        return f"<MediaList message_sid={self.message_sid!r}>"

    @staticmethod
    def _filters(
        date_created: _dt.date | str | None,
        date_created_before: _dt.date | str | None,
        date_created_after: _dt.date | str | None,
        limit: int | None,
        page_size: int | None,
    ) -> dict[str, str]:
        params = paging_params(limit, page_size)
        for key, value, arg in (
            ("DateCreated", date_created, "date_created"),
            ("DateCreated<", date_created_before, "date_created_before"),
            ("DateCreated>", date_created_after, "date_created_after"),
        ):
            if value is not None:
                params[key] = query_date(value, arg)
        return params

    def list(
        self,
        date_created: _dt.date | str | None = None,
        date_created_before: _dt.date | str | None = None,
        date_created_after: _dt.date | str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> list[MediaRecord]:
        """Return the message's media across pages, at most ``limit``.

        Date filters take a ``date``, ``datetime`` or ISO string (sent as ``YYYY-MM-DD``).

        Raises:
            ValueError: bad arguments, before anything is sent.
            RestError, RestConnectionError: as for any request.
        """
        return list(self.stream(date_created, date_created_before, date_created_after, limit, page_size))

    def stream(
        self,
        date_created: _dt.date | str | None = None,
        date_created_before: _dt.date | str | None = None,
        date_created_after: _dt.date | str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[MediaRecord]:
        """Like :meth:`list`, lazily, one page in memory (arguments validated now)."""
        params = self._filters(date_created, date_created_before, date_created_after, limit, page_size)
        return iterate(self._transport, self._path, params, self._KEY, _parse, limit)

    def page(
        self,
        date_created: _dt.date | str | None = None,
        date_created_before: _dt.date | str | None = None,
        date_created_after: _dt.date | str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> Page[MediaRecord]:
        """Fetch one page of the message's media; ``page.next_page()`` continues."""
        params = self._filters(date_created, date_created_before, date_created_after, None, page_size)
        if page_token is not None:
            params["PageToken"] = nonempty(page_token, "page_token")
        return Page.fetch(self._transport, self._path, params, self._KEY, _parse)
