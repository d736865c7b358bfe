"""Argument checks shared by the RELAY and REST clients (raise ``ValueError``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MAX_BODY_CHARS = 1600
MAX_MEDIA = 10

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






def content(body: str | None, media: Sequence[str] | None) -> tuple[str | None, list[str]]:
    """Check a message's body and media URLs; return them normalised.

    Raises ``ValueError`` for no body and no media, a body over 1600 characters or
    with a lone surrogate (not encodable as UTF-8), more than 10 media URLs, or a
    media entry that is not an http(s) URL string.
    """
    if body is not None and not isinstance(body, str):
        raise ValueError(f"body must be a string, got {type(body).__name__}")
    if isinstance(media, str):
        raise ValueError("media must be a list of URL strings, not a single string")
    urls = list(media or ())
    if not body and not urls:
        raise ValueError("a message needs a body or at least one media URL")
    if body is not None and len(body) > MAX_BODY_CHARS:
        raise ValueError(f"body is {len(body)} characters; the limit is {MAX_BODY_CHARS}")
    if body is not None:
        bad = _lone_surrogate(body)
        if bad is not None:
            raise ValueError(f"body is not valid Unicode text: it contains U+{bad:04X}, a lone surrogate")
    if len(urls) > MAX_MEDIA:
        raise ValueError(f"{len(urls)} media URLs given; the limit is {MAX_MEDIA}")
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"media URLs must be http(s) URL strings, got {url!r}")
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
