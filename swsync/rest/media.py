"""Media of a message: ``MediaList`` (list/stream/page) -> ``MediaContext`` -> ``MediaRecord``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._fields import EMPTY, nonempty, opt_datetime, opt_str, query_date
from .page import Page, iterate, paging_params

if TYPE_CHECKING:
    from .client import RestClient

__all__ = ["MediaContext", "MediaList", "MediaRecord"]



@dataclass(frozen=True, slots=True, repr=False)
class MediaRecord:
    """A snapshot of one media item attached to a message (immutable).

    Attributes are the cXML JSON field names; dates are aware ``datetime`` objects (UTC)
    or ``None``; ``raw`` is a read-only view (not a copy) of the whole JSON object.

    Thread-safety: immutable; share freely.
    """

    sid: str
    account_sid: str | None = None
    parent_sid: str | None = None
    content_type: str | None = None
    date_created: _dt.datetime | None = None
    date_updated: _dt.datetime | None = None
    uri: str | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> MediaRecord:
        """Build a record from a decoded Media JSON object.

        Raises:
            ValueError: ``payload`` is not an object or has no string ``sid``.
        """
        if not isinstance(payload, Mapping):
            raise ValueError(f"a media item must be a JSON object, got {type(payload).__name__}")
        get = payload.get
        sid = get("sid")
        if not isinstance(sid, str) or not sid:
            raise ValueError("a media item has no 'sid'")
        return cls(
            sid=sid,
            account_sid=opt_str(get("account_sid")),
            parent_sid=opt_str(get("parent_sid")),
            content_type=opt_str(get("content_type")),
            date_created=opt_datetime(get("date_created")),
            date_updated=opt_datetime(get("date_updated")),
            uri=opt_str(get("uri")),
            raw=MappingProxyType(payload),
        )

    def __repr__(self) -> str:
        return (
            f"MediaRecord(sid={self.sid!r}, parent_sid={self.parent_sid!r}, "
            f"content_type={self.content_type!r})"
        )


class MediaContext:
    """One media item by SID: ``fetch()`` and ``delete()``.

    Thread-safety: stateless; share freely.
    """

    __slots__ = ("_client", "message_sid", "sid", "_path")

    def __init__(self, client: RestClient, message_sid: str, sid: str) -> None:
        self._client = client
        self.message_sid = message_sid
        self.sid = nonempty(sid, "sid")
        self._path = f"Messages/{quote(message_sid, safe='')}/Media/{quote(sid, safe='')}.json"

    def __repr__(self) -> str:
        return f"<MediaContext message_sid={self.message_sid!r} sid={self.sid!r}>"

    def fetch(self) -> MediaRecord:
        """Retrieve the media item's metadata.

        Raises:
            RestError: e.g. 404 for an unknown SID.
        """
        status, payload = self._client._send("GET", self._path)
        return self._client._record(MediaRecord.from_payload, status, payload, "GET", self._path)

    def delete(self) -> None:
        """Delete the media item (204).

        Raises:
            RestError: e.g. code 20009 while the message is still queued.
        """
        self._client._send("DELETE", self._path)


class MediaList:
    """The media of one message: ``list``, ``stream``, ``page``; ``media(sid)``.

    Thread-safety: stateless; share freely.
    """

    __slots__ = ("_client", "message_sid", "_path")

    _KEY = "media_list"

    def __init__(self, client: RestClient, message_sid: str) -> None:
        self._client = client
        self.message_sid = nonempty(message_sid, "message_sid")
        self._path = f"Messages/{quote(message_sid, safe='')}/Media.json"

    def __call__(self, sid: str) -> MediaContext:
        """Return the context for media item ``sid`` (no request is made)."""
        return MediaContext(self._client, self.message_sid, sid)

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
        return list(self.stream(date_created, date_created_before, date_created_after,
                                limit, page_size))

    def stream(
        self,
        date_created: _dt.date | str | None = None,
        date_created_before: _dt.date | str | None = None,
        date_created_after: _dt.date | str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[MediaRecord]:
        """Like :meth:`list`, lazily, one page in memory (arguments validated now)."""
        params = self._filters(date_created, date_created_before, date_created_after,
                               limit, page_size)
        return iterate(self._client, self._path, params, self._KEY, MediaRecord.from_payload,
                       limit)

    def page(
        self,
        date_created: _dt.date | str | None = None,
        date_created_before: _dt.date | str | None = None,
        date_created_after: _dt.date | str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> Page[MediaRecord]:
        """Fetch one page of the message's media; ``page.next_page()`` continues."""
        params = self._filters(date_created, date_created_before, date_created_after,
                               None, page_size)
        if page_token is not None:
            params["PageToken"] = nonempty(page_token, "page_token")
        return Page.fetch(self._client, self._path, params, self._KEY, MediaRecord.from_payload)
