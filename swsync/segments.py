"""SMS segment arithmetic: which encoding a text needs and how many segments it costs.

A text is sent as GSM-7 when every character is in the GSM 03.38 default alphabet
(3GPP TS 23.038) or its extension table, otherwise the whole text is UCS-2. GSM-7
counts septets (an extension character such as ``€`` or ``{`` costs two); UCS-2
counts UTF-16 code units (a character above U+FFFF, such as most emoji, costs two).
One segment holds 160 septets or 70 units; a longer text is split into segments of
at most 153 septets or 67 units each (the rest of each segment is the concatenation
header).

A split never cuts a character in two: an extension character's escape pair
(ESC + code) and a UTF-16 surrogate pair always travel in one segment, as carriers'
encoders do, so a two-unit character that would straddle a boundary starts the next
segment and the segment before it carries one unit less (``"a" * 152 + "€" + "a" *
152`` is three segments, not two). SignalWire's ``num_segments`` for a sent message
stays authoritative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GSM7",
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "UCS2",
    "Segments",
    "count_segments",
    "is_gsm7",
]

GSM7: Literal["GSM-7"] = "GSM-7"
UCS2: Literal["UCS-2"] = "UCS-2"

#: The 127 user characters of the GSM-7 basic table, in code order 0x00-0x7F
#: (ESC at 0x1B is not a character). Mind the code points: Ç is U+00C7, the Greek
#: capitals are U+0394 Δ, U+03A6 Φ, U+0393 Γ, U+039B Λ, U+03A9 Ω, U+03A0 Π,
#: U+03A8 Ψ, U+03A3 Σ, U+0398 Θ, U+039E Ξ, and ¤ is U+00A4.
GSM7_BASIC: frozenset[str] = frozenset(
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"  # 0x00
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"  # 0x10
    " !\"#\u00a4%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "\u00a1ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"  # 0x50
    "\u00bfabcdefghijklmno"  # 0x60
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"  # 0x70
)

#: The extension table (ESC + code): each of these costs two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|\u20ac")

_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION
_ESC = "\x1b"  # never a user character (see GSM7_BASIC), so it marks escape pairs

_GSM7_SINGLE, _GSM7_MULTI = 160, 153
_UCS2_SINGLE, _UCS2_MULTI = 70, 67


@dataclass(frozen=True, slots=True)
class Segments:
    """How a text is encoded and how many SMS segments it needs.

    Attributes:
        encoding: ``"GSM-7"`` or ``"UCS-2"``.
        segments: number of segments (1 for an empty text).
        units: septets for GSM-7, UTF-16 code units for UCS-2.
        per_segment: capacity of each segment for this text: 160/70 when the text
            fits one segment, 153/67 when it is split.

    Immutable, so safe to share between threads.
    """

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    units: int
    per_segment: int


def is_gsm7(text: str) -> bool:
    """Return ``True`` if every character of ``text`` is in the GSM-7 alphabet.

    The basic table and the extension table both count; an empty text is GSM-7.
    """
    return _GSM7_ALL.issuperset(text)


def count_segments(text: str) -> Segments:
    """Count the encoding, units and segments an SMS body needs.

    Args:
        text: the message body (Python ``str``; any code points).

    Returns:
        A :class:`Segments`, e.g. ``count_segments("hello") ==
        Segments(encoding="GSM-7", segments=1, units=5, per_segment=160)``.

    Raises:
        TypeError: ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    # Work on the distinct characters (a C-speed set build) instead of a Python
    # loop over every character: bodies repeat characters heavily.
    chars = set(text)
    if chars <= _GSM7_ALL:
        encoding: Literal["GSM-7", "UCS-2"] = GSM7
        wide = chars & GSM7_EXTENSION
        single, multi = _GSM7_SINGLE, _GSM7_MULTI
    else:
        encoding = UCS2
        wide = {c for c in chars if c > "\uffff"} if max(chars) > "\uffff" else set()
        single, multi = _UCS2_SINGLE, _UCS2_MULTI
    units = len(text) + sum(text.count(c) for c in wide)
    if units <= single:
        return Segments(encoding, 1, units, single)
    if not wide:
        return Segments(encoding, -(-units // multi), units, multi)
    if encoding == GSM7:
        return Segments(encoding, _split_gsm7(text, wide, multi), units, multi)
    return Segments(encoding, _split_utf16(text, multi), units, multi)


def _split_gsm7(text: str, wide: set[str], multi: int) -> int:
    """Segments of at most ``multi`` septets, never splitting an escape pair (ESC + code)."""
    septets = text  # becomes one character per septet, ESC included
    for c in wide:
        septets = septets.replace(c, _ESC + c)
    count, start = 1, 0
    while len(septets) - start > multi:
        end = start + multi
        if septets[end - 1] == _ESC:  # the pair would straddle: it moves on whole
            end -= 1
        count, start = count + 1, end
    return count


def _split_utf16(text: str, multi: int) -> int:
    """Segments of at most ``multi`` UTF-16 units, never splitting a surrogate pair."""
    units = memoryview(text.encode("utf-16-le", "surrogatepass")).cast("H")
    count, start = 1, 0
    while len(units) - start > multi:
        end = start + multi
        if 0xD800 <= units[end - 1] <= 0xDBFF and 0xDC00 <= units[end] <= 0xDFFF:
            end -= 1  # a pair would straddle: it moves on whole
        count, start = count + 1, end
    return count
