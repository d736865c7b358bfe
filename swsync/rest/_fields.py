"""Lenient converters from cXML JSON values to Python types, and query-value formatting.

The server is the source of truth, but what it sends is validated before use: a value
of the wrong type becomes ``None`` (the original always stays in the record's ``.raw``)
instead of leaking a surprising type into user code.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import functools
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

_MONTHS = {m: f"{i:02d}" for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_UTC = _dt.timezone.utc
EMPTY: Mapping[str, Any] = MappingProxyType({})
_fromisoformat = _dt.datetime.fromisoformat


def opt_str(value: Any) -> str | None:
    """Return ``value`` if it is a string, ``str(value)`` for a plain number, else ``None``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def opt_int(value: Any) -> int | None:
    """Return an ``int`` from an int or a numeric string (``"30003"``), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def opt_decimal(value: Any) -> Decimal | None:
    """Return a ``Decimal`` from a JSON number or numeric string, else ``None``.

    Floats go through ``str()`` so ``0.005`` becomes ``Decimal('0.005')``, not its
    binary approximation.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, (int, float, str)):
        return _decimal(value)
    return None


@functools.lru_cache(maxsize=256, typed=True)
def _decimal(value: float | str) -> Decimal | None:
    # Cached: a page of 1,000 messages carries only a handful of distinct prices.
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


@functools.lru_cache(maxsize=1024)
def _parse_date(value: str) -> _dt.datetime | None:
    # Fast path for the form every server response uses: "Mon, 13 Aug 2018 21:38:46 +0000",
    # rearranged for the C ISO parser (0.6 µs); parsedate_to_datetime costs ~8 µs, and a
    # page of 1,000 records has ~3,000 dates. Anything unusual takes the slow path.
    if len(value) == 31 and value[25:] == " +0000" and value[3:5] == ", " and value[16] == " ":
        month = _MONTHS.get(value[8:11])
        if month is not None:
            try:
                return _fromisoformat(f"{value[12:16]}-{month}-{value[5:7]}T{value[17:25]}+00:00")
            except ValueError:
                pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" means "UTC, source zone unknown"; the API's dates are UTC either way.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)


def opt_datetime(value: Any) -> _dt.datetime | None:
    """Parse an RFC 2822 date into an aware ``datetime`` (``None`` when null or invalid)."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_date(value)


def query_date(value: _dt.date | _dt.datetime | str, arg: str) -> str:
    """Format a date filter as ``YYYY-MM-DD`` (UTC), the form the list endpoints take.

    Accepts a ``date``, a ``datetime`` (aware values are converted to UTC first; naive
    ones are taken as UTC) or an ISO 8601 string (date or date-time, ``Z`` allowed).

    Raises:
        ValueError: any other value.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return _dt.date.fromisoformat(text).isoformat()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            value = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{arg} must be a date, a datetime or an ISO 8601 string, got {value!r}") from None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_UTC)
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise ValueError(f"{arg} must be a date, a datetime or an ISO 8601 string, got {value!r}")


def nonempty(value: object, arg: str) -> str:
    """Return ``value`` if it is a non-blank string (a SID, a token, a filter value)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{arg} must be a non-empty string, got {value!r}")
    return value


def sid_segment(value: object, arg: str = "sid") -> str:
    """Return ``value`` if it can be one path segment of a resource URL (a SID).

    ``.`` and ``..`` would be collapsed by URL normalisation and address another
    resource, so they are refused like an empty SID.
    """
    text = nonempty(value, arg)
    if text in (".", ".."):
        raise ValueError(f"{arg} {text!r} is not a valid SID")
    return text
