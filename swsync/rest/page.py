"""``Page``: one page of a list response, and the generator that walks the pages.

Pages are followed through the ``next_page_uri`` the server returns, exactly as given
(root-relative, joined to the origin only); the client never builds page URLs itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import RestError
from ._fields import opt_int, opt_str
from ._transport import ClientOrTransport, decode, transport_of

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = ["Page"]

T = TypeVar("T")

MAX_PAGE_SIZE = 1000
_META = frozenset(
    "uri first_page_uri next_page_uri previous_page_uri last_page_uri page page_size start end total num_pages".split()
)


class Page(Generic[T]):
    """One page of records plus the server's paging links.

    ``records`` is the list of typed records on this page; iterate the page or use
    ``len()`` for the same. ``next_page()`` fetches the following page (``None`` after
    the last one). ``uri``, ``first_page_uri``, ``next_page_uri``, ``previous_page_uri``,
    ``page`` and ``page_size`` are the envelope's fields as sent.

    Thread-safety: immutable after construction; ``next_page()`` may be called from any thread.
    """

    __slots__ = (
        "records",
        "uri",
        "first_page_uri",
        "next_page_uri",
        "previous_page_uri",
        "page",
        "page_size",
        "_transport",
        "_key",
        "_parse",
    )

    def __init__(
        self,
        client: ClientOrTransport,
        payload: Any,
        key: str,
        parse: Callable[[Mapping[str, Any]], T],
    ) -> None:
        """Build a page from a decoded list response (raises ``ValueError`` if malformed).

        ``client`` is the ``RestClient`` that ``next_page()`` sends through.
        """
        transport = transport_of(client)
        items, next_uri = _envelope(transport, payload, key)
        self.records: list[T] = [parse(item) for item in items]
        self.next_page_uri: str | None = next_uri
        self.uri = opt_str(payload.get("uri"))
        self.first_page_uri = opt_str(payload.get("first_page_uri"))
        self.previous_page_uri = opt_str(payload.get("previous_page_uri"))
        self.page = opt_int(payload.get("page"))
        self.page_size = opt_int(payload.get("page_size"))
        self._transport = transport
        self._key = key
        self._parse = parse

    @classmethod
    def fetch(
        cls,
        client: ClientOrTransport,
        path: str,
        params: Mapping[str, str] | None,
        key: str,
        parse: Callable[[Mapping[str, Any]], T],
    ) -> Page[T]:
        """GET ``path`` with ``client`` (a ``RestClient``) and build the page (``RestError`` for a malformed body)."""
        transport = transport_of(client)
        status, payload = transport.send("GET", path, params=params)
        try:
            return cls(transport, payload, key, parse)
        except (TypeError, ValueError) as exc:
            raise _malformed(transport, status, path, exc) from None

    def next_page(self) -> Page[T] | None:
        """Fetch the next page, or return ``None`` when this is the last one.

        Raises:
            RestError, RestConnectionError: as for any request.
        """
        if self.next_page_uri is None:
            return None
        return Page.fetch(self._transport, self.next_page_uri, None, self._key, self._parse)

    def __iter__(self) -> Iterator[T]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"<Page page={self.page} records={len(self.records)} has_next={self.next_page_uri is not None}>"


def paging_params(limit: int | None, page_size: int | None) -> dict[str, str]:
    """Validate ``limit``/``page_size``; return the ``PageSize`` query parameter, if any.

    Without ``page_size``, a ``limit`` asks for pages of ``min(limit, 1000)`` so no more
    is fetched than needed; with neither, the server's default page size applies.

    Raises:
        ValueError: ``limit`` below 1 or ``page_size`` outside 1..1000 (or not an int).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    if page_size is not None and (
        isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE
    ):
        raise ValueError(f"page_size must be an int from 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
    if page_size is None and limit is not None:
        page_size = min(limit, MAX_PAGE_SIZE)
    return {} if page_size is None else {"PageSize": str(page_size)}


def _envelope(transport: Transport, payload: Any, key: str) -> tuple[list[Any], str | None]:
    """Check a list response's shape; return its records array and ``next_page_uri``.

    Raises:
        ValueError: not an object, no records array, or a ``next_page_uri`` that is not
            a string on this client's origin.
    """
    if not isinstance(payload, dict):
        raise ValueError("a list response must be a JSON object")
    items = payload.get(key)
    if items is None:
        # Tolerate a renamed records key, the way twilio's Page does: the single
        # top-level key that is not part of the paging envelope.
        others = [k for k in payload if k not in _META]
        if len(others) == 1:
            items = payload[others[0]]
    if not isinstance(items, list):
        raise ValueError(f"a list response must have a {key!r} array")
    next_uri = payload.get("next_page_uri")
    if next_uri is not None:
        if not isinstance(next_uri, str) or not next_uri:
            raise ValueError("next_page_uri must be a string or null")
        transport.url(next_uri)  # refuse another origin before anyone follows it
    return items, next_uri


def _malformed(transport: Transport, status: int, path: str, exc: Exception) -> RestError:
    return RestError(status, f"malformed list response: {exc}", method="GET", url=transport.url(path))


def iterate(
    client: ClientOrTransport,
    path: str,
    params: Mapping[str, str] | None,
    key: str,
    parse: Callable[[Mapping[str, Any]], T],
    limit: int | None,
) -> Iterator[T]:
    """Yield records page by page, holding one page of JSON in memory; stop after ``limit``.

    Nothing is requested until the first record is asked for, and no page is fetched
    once ``limit`` records have been yielded. Unlike :class:`Page`, each record is built
    as it is yielded: a consumer that does not keep records frees each one at once,
    which halves the number of cyclic-GC passes on a long stream. A record without a
    ``sid`` raises ``RestError`` when the stream reaches it. ``client`` is the
    ``RestClient`` to send through.
    """
    transport = transport_of(client)
    remaining = limit
    url: str | None = path
    while url is not None:
        # Rebinding `response` frees the previous body only now that the next one is in,
        # as a plain loop over session.get() does. Freed earlier, a large body leaves ~2x
        # its size free at the top of glibc's heap, which is trimmed and then faulted
        # back in on every page: measured as +10% CPU on pages of 1,000 messages.
        response, full_url = transport.exchange("GET", url, params=params)
        status = response.status_code
        payload = decode(response, "GET", full_url)
        try:
            items, next_uri = _envelope(transport, payload, key)
        except ValueError as exc:
            raise _malformed(transport, status, url, exc) from None
        if next_uri is not None and (not items or next_uri == url):
            # A next page that cannot make progress would be fetched forever.
            raise _malformed(transport, status, url, ValueError("next_page_uri does not advance"))
        if remaining is not None:
            if len(items) >= remaining:
                items, next_uri = items[:remaining], None
            remaining -= len(items)
        for item in items:
            try:
                record = parse(item)
            except (TypeError, ValueError) as exc:
                raise _malformed(transport, status, url, exc) from None
            yield record
        # Free this page's objects before fetching the next: lower peak memory, and the
        # next page's objects reuse the memory just released.
        del payload, items
        url, params = next_uri, None
