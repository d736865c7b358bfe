"""Argument checks shared by the RELAY and REST clients (raise ``ValueError``)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

MAX_BODY_CHARS = 1600
MAX_MEDIA = 10

# The largest timeout swsync hands to threading, sockets and timers (about three
# years). threading refuses anything above threading.TIMEOUT_MAX with OverflowError,
# so larger values (and infinity) mean "no limit" where None is allowed, and are
# clamped to this where a finite bound is needed.
MAX_TIMEOUT = 1e8

# Whitespace (ASCII and Unicode) and control characters never belong in a URL: a CR/LF
# could split the request line or a header of whoever fetches the media (RFC 3986 §2).
_URL_BAD_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")

# E.164: "+", then 2 to 15 digits, no leading zero (ITU-T E.164). Short codes: SignalWire
# sends from "a SignalWire phone number or short code that you own", written as plain
# digits; 3 to 8 digits covers every national short-code plan in use.
_NUMBER = re.compile(r"\+[1-9][0-9]{1,14}|[0-9]{3,8}")


def phone_number(number: object, arg: str) -> str:
    """Return ``number`` if it is an E.164 number or a short code (3 to 8 digits).

    Raises ``ValueError`` naming both accepted forms otherwise.
    """
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise ValueError(
            f"{arg} must be an E.164 number such as '+15551234567' or a short code "
            f"of 3 to 8 digits such as '12345', got {number!r}"
        )
    return number


def is_phone_number(value: object) -> bool:
    """True when ``value`` is an E.164 number or a short code (see ``phone_number``)."""
    return isinstance(value, str) and _NUMBER.fullmatch(value) is not None


def _seconds(value: object, arg: str) -> float:
    """``value`` as a non-negative float (infinity allowed); ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{arg} must be a number of seconds, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float: no practical limit
        number = math.inf
    if math.isnan(number) or number < 0:
        raise ValueError(f"{arg} must be a non-negative number of seconds, got {value!r}")
    return number


def timeout(value: object, arg: str = "timeout") -> float | None:
    """Normalise a wait's timeout: ``None`` or seconds; ``inf`` and huge values mean no limit.

    Returns ``None`` (wait without limit) for ``None``, infinity and anything at or
    above ``MAX_TIMEOUT``. Raises ``ValueError`` for NaN, a negative number or a
    non-number, so a bad value can never spin or overflow later.
    """
    if value is None:
        return None
    number = _seconds(value, arg)
    return None if number >= MAX_TIMEOUT else number


def duration(value: object, arg: str) -> float:
    """Normalise a positive option in seconds; ``inf`` and huge values clamp to ``MAX_TIMEOUT``.

    Raises ``ValueError`` for zero, NaN, a negative number or a non-number.
    """
    number = _seconds(value, arg)
    if number == 0:
        raise ValueError(f"{arg} must be a positive number of seconds, got {value!r}")
    return min(number, MAX_TIMEOUT)


def media_url(url: object, arg: str = "media") -> str:
    """Return ``url`` if it is an absolute http(s) URL with a host; else raise ``ValueError``.

    The scheme is case-insensitive (``HTTPS://`` is valid, RFC 3986 §3.1); whitespace
    and control characters (CR, LF, tab, NUL...) are refused anywhere in it.
    """
    if not isinstance(url, str):
        raise ValueError(f"{arg} entries must be URL strings, got {type(url).__name__} {url!r}")
    if _URL_BAD_CHAR.search(url):
        raise ValueError(f"{arg} entry {url!r} contains whitespace or a control character")
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:  # e.g. "http://[::1" or a non-numeric port
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"{arg} entries must be http(s) URLs with a host, got {url!r}")
    return url


def media_urls(media: object, arg: str = "media") -> list[str]:
    """Return ``media`` (``None`` or a list/sequence of URLs) as a list of checked URLs.

    One validation for RELAY (``media``) and REST (``media_url``): a single string,
    bytes or a dict is refused (a dict is not a list of URLs), and every entry must
    pass :func:`media_url`. At most ``MAX_MEDIA`` entries.
    """
    if media is None:
        return []
    if isinstance(media, (str, bytes, bytearray)):
        raise ValueError(f"{arg} must be a list of URL strings, not a single string")
    if isinstance(media, Mapping) or not isinstance(media, Iterable):
        raise ValueError(f"{arg} must be a list of URL strings, not {type(media).__name__}")
    urls = list(media)
    if len(urls) > MAX_MEDIA:
        raise ValueError(f"{len(urls)} media URLs given; the limit is {MAX_MEDIA}")
    for url in urls:
        media_url(url, arg)
    return urls


def content(body: str | None, media: Sequence[str] | None, media_arg: str = "media") -> tuple[str | None, list[str]]:
    """Check a message's body and media URLs; return them normalised.

    Raises ``ValueError`` for no body and no media, a body over 1600 characters or
    with a lone surrogate (not encodable as UTF-8), more than 10 media URLs, or a
    media entry that is not an http(s) URL with a host (see :func:`media_urls`).
    ``media_arg`` names the argument in messages (``media_url`` for REST).
    """
    if body is not None and not isinstance(body, str):
        raise ValueError(f"body must be a string, got {type(body).__name__}")
    urls = media_urls(media, media_arg)
    if not body and not urls:
        raise ValueError("a message needs a body or at least one media URL")
    if body is not None and len(body) > MAX_BODY_CHARS:
        raise ValueError(f"body is {len(body)} characters; the limit is {MAX_BODY_CHARS}")
    if body is not None:
        bad = _lone_surrogate(body)
        if bad is not None:
            raise ValueError(f"body is not valid Unicode text: it contains U+{bad:04X}, a lone surrogate")
    return (body or None), urls


def _lone_surrogate(text: str) -> int | None:
    """The first code point that UTF-8 cannot encode (a lone surrogate), if any."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return ord(text[exc.start])
    return None


def str_list(values: Iterable[str] | None, arg: str) -> list[str]:
    """Return ``values`` as a list of non-empty strings (``None`` gives ``[]``)."""
    if values is None:
        return []
    if isinstance(values, str):
        raise ValueError(f"{arg} must be a list of strings, not a single string")
    out = list(values)
    for v in out:
        if not isinstance(v, str) or not v:
            raise ValueError(f"{arg} must contain non-empty strings, got {v!r}")
    return out
