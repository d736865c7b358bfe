"""SMS segment counting: worked examples, boundaries and an independent reference."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swsync.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Segments,
    count_segments,
    is_gsm7,
)

# --- An independent reference, written from the 3GPP TS 23.038 table ---------------
# The basic table as code points, indexed by GSM code 0x00-0x7F; None marks ESC (0x1B).
_REF_BASIC_BY_CODE = [
    0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5, 0xE5,
    0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, None, 0xC6, 0xE6,
    0xDF, 0xC9,
    0x20, 0x21, 0x22, 0x23, 0xA4, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F,
    *range(0x30, 0x40),
    0xA1, *range(0x41, 0x50),
    *range(0x50, 0x5B), 0xC4, 0xD6, 0xD1, 0xDC, 0xA7,
    0xBF, *range(0x61, 0x70),
    *range(0x70, 0x7B), 0xE4, 0xF6, 0xF1, 0xFC, 0xE0,
]  # fmt: skip
# Extension table: GSM code after ESC -> code point.
_REF_EXT_BY_CODE = {
    0x0A: 0x0C, 0x14: 0x5E, 0x28: 0x7B, 0x29: 0x7D, 0x2F: 0x5C,
    0x3C: 0x5B, 0x3D: 0x7E, 0x3E: 0x5D, 0x40: 0x7C, 0x65: 0x20AC,
}  # fmt: skip
REF_BASIC = {chr(cp) for cp in _REF_BASIC_BY_CODE if cp is not None}
REF_EXT = {chr(cp) for cp in _REF_EXT_BY_CODE.values()}


def reference_count(text: str) -> tuple[str, int, int, int]:
    """Straightforward per-character count: (encoding, segments, units, per_segment).

    A split text fills each segment character by character; a character that costs two
    units (an escape pair, a surrogate pair) and does not fit starts the next segment.
    """
    if all(c in REF_BASIC or c in REF_EXT for c in text):
        costs = [2 if c in REF_EXT else 1 for c in text]
        single, multi, enc = 160, 153, "GSM-7"
    else:
        costs = [len(c.encode("utf-16-le", "surrogatepass")) // 2 for c in text]
        single, multi, enc = 70, 67, "UCS-2"
    units = sum(costs)
    if units <= single:
        return enc, 1, units, single
    segments, room = 1, multi
    for cost in costs:
        if cost > room:
            segments, room = segments + 1, multi
        room -= cost
    return enc, segments, units, multi


def as_tuple(s: Segments) -> tuple[str, int, int, int]:
    return (s.encoding, s.segments, s.units, s.per_segment)


# --- The documented contract and worked examples ---------------------------------


def test_api_example() -> None:
    assert count_segments("hello") == Segments(encoding="GSM-7", segments=1, units=5, per_segment=160)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("Hello World!", "GSM-7", 12, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("€" * 81, "GSM-7", 162, 2),
        ("Price: 10€ {ok}", "GSM-7", 18, 1),
        ("é" * 70, "GSM-7", 70, 1),
        ("ê" * 70, "UCS-2", 70, 1),
        ("ê" * 71, "UCS-2", 71, 2),
        ("Café ✓", "UCS-2", 6, 1),
        ("😀" * 35, "UCS-2", 70, 1),
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 1600, "GSM-7", 1600, 11),
    ],
)
def test_worked_examples(text: str, encoding: str, units: int, segments: int) -> None:
    result = count_segments(text)
    assert (result.encoding, result.units, result.segments) == (encoding, units, segments)


def test_empty_text_is_one_gsm7_segment() -> None:
    assert count_segments("") == Segments("GSM-7", 1, 0, 160)


# --- Boundaries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 159, ("GSM-7", 1, 159, 160)),
        ("a" * 160, ("GSM-7", 1, 160, 160)),
        ("a" * 161, ("GSM-7", 2, 161, 153)),
        ("a" * 153 * 2, ("GSM-7", 2, 306, 153)),
        ("a" * (153 * 2 + 1), ("GSM-7", 3, 307, 153)),
        ("a" * 153 * 3, ("GSM-7", 3, 459, 153)),
        ("a" * (153 * 3 + 1), ("GSM-7", 4, 460, 153)),
        # An extension character costs two septets and can push a text over the edge.
        ("a" * 158 + "€", ("GSM-7", 1, 160, 160)),
        ("a" * 159 + "€", ("GSM-7", 2, 161, 153)),
        ("a" * 159 + "\f", ("GSM-7", 2, 161, 153)),
        # An escape pair never straddles a segment: 76 pairs fill 152 of 153 septets.
        ("[" * 152, ("GSM-7", 2, 304, 153)),
        ("[" * 153, ("GSM-7", 3, 306, 153)),
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3, 306, 153)),
        ("a" * 153 + "€" + "a" * 151, ("GSM-7", 2, 306, 153)),
        ("a" * 151 + "€" + "a" * 153, ("GSM-7", 2, 306, 153)),
        ("]" * 153 + "a", ("GSM-7", 3, 307, 153)),
        # UCS-2
        ("ê" * 69, ("UCS-2", 1, 69, 70)),
        ("ê" * 70, ("UCS-2", 1, 70, 70)),
        ("ê" * 71, ("UCS-2", 2, 71, 67)),
        ("ê" * 67 * 2, ("UCS-2", 2, 134, 67)),
        ("ê" * (67 * 2 + 1), ("UCS-2", 3, 135, 67)),
        ("ê" * 67 * 3, ("UCS-2", 3, 201, 67)),
        # A character above U+FFFF is a surrogate pair: two units.
        ("a" * 68 + "😀", ("UCS-2", 1, 70, 70)),
        ("a" * 69 + "😀", ("UCS-2", 2, 71, 67)),
        # ... and a surrogate pair never straddles a segment either.
        ("😀" * 67, ("UCS-2", 3, 134, 67)),
        ("a" * 66 + "😀" + "a" * 66, ("UCS-2", 3, 134, 67)),
        ("a" * 67 + "😀" + "a" * 65, ("UCS-2", 2, 134, 67)),
        ("a" * 65 + "😀" + "a" * 67, ("UCS-2", 2, 134, 67)),
        # One non-GSM character switches the whole text (and its capacity) to UCS-2.
        ("a" * 69 + "ç", ("UCS-2", 1, 70, 70)),
        ("a" * 70 + "ç", ("UCS-2", 2, 71, 67)),
        ("€" * 69 + "ç", ("UCS-2", 1, 70, 70)),  # € is one UCS-2 unit, not two
    ],
)
def test_boundaries(text: str, expected: tuple[str, int, int, int]) -> None:
    assert as_tuple(count_segments(text)) == expected
    assert as_tuple(count_segments(text)) == reference_count(text)


# --- The tables -------------------------------------------------------------------


def test_tables_match_3gpp_reference() -> None:
    assert isinstance(GSM7_BASIC, frozenset)
    assert isinstance(GSM7_EXTENSION, frozenset)
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert GSM7_BASIC == REF_BASIC
    assert GSM7_EXTENSION == REF_EXT
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    "char",
    [
        "\u00c7",  # Ç (the table has the capital)
        *"\u0394\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e",  # Greek capitals
        "\u00a4",  # ¤
        "\n",
        "\r",
        " ",
    ],
)
def test_code_point_pitfalls_are_gsm7(char: str) -> None:
    assert is_gsm7(char)
    assert count_segments(char * 160) == Segments("GSM-7", 1, 160, 160)


@pytest.mark.parametrize(
    "char",
    [
        "\u2206",  # INCREMENT, looks like Δ
        "\u2126",  # OHM SIGN, looks like Ω
        "\u00e7",  # ç (lowercase is not in the table)
        "`",
        "\t",
        "\x1b",  # ESC is not a user character
        "\x00",
        "\u00ea",
        "\u00e1",
        "\u00ed",
        "\u00f3",
        "\u00fa",
        "\u2018",
        "\u2019",
        "\u201c",
        "\u201d",
        "\u2026",
        "\u2013",
        "\u2014",
        "\u00a0",  # NBSP
        "\U0001f600",
    ],
)
def test_characters_outside_gsm7(char: str) -> None:
    assert not is_gsm7(char)
    assert not is_gsm7("plain text " + char)
    assert count_segments("a" + char).encoding == "UCS-2"


def test_is_gsm7() -> None:
    assert is_gsm7("")
    assert is_gsm7("Hello World! {} [] ~ | \\ ^ € \f")
    assert not is_gsm7("Hello ♥")


def test_segments_is_immutable_and_comparable() -> None:
    s = count_segments("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.units = 3  # type: ignore[misc]
    assert s == Segments("GSM-7", 1, 2, 160)
    assert hash(s) == hash(Segments("GSM-7", 1, 2, 160))
    assert "GSM-7" in repr(s)


@pytest.mark.parametrize("bad", [b"hello", None, 5, ["a"]])
def test_rejects_non_str(bad: object) -> None:
    with pytest.raises(TypeError):
        count_segments(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "segments"),
    [("😀" * 67, 3), ("a" * 66 + "😀" + "a" * 66, 3), ("a" * 152 + "€" + "a" * 152, 3)],
    ids=["emoji-x67", "emoji-at-boundary", "euro-at-boundary"],
)
def test_a_two_unit_character_never_straddles_a_segment(text: str, segments: int) -> None:
    assert count_segments(text).segments == segments


def test_lone_surrogate_counts_one_unit() -> None:
    # Python strings can hold lone surrogates; each is one UTF-16 unit.
    assert as_tuple(count_segments("a\ud800")) == ("UCS-2", 1, 2, 70)


# --- Property tests against reference_count (above) ------------------------------

_GSM_ALPHABET = sorted(REF_BASIC | REF_EXT)
_OTHER = ["ç", "ê", "♥", "\t", "`", "\u2019", "\u00a0", "😀", "\U0010ffff", "\u2206"]

gsm_texts = st.text(alphabet=st.sampled_from(_GSM_ALPHABET), max_size=700)
mixed_texts = st.text(alphabet=st.sampled_from(_GSM_ALPHABET + _OTHER), max_size=400)
any_texts = st.text(max_size=300)


@settings(max_examples=200, deadline=None)
@given(st.one_of(gsm_texts, mixed_texts, any_texts))
def test_matches_reference(text: str) -> None:
    assert as_tuple(count_segments(text)) == reference_count(text)
    assert is_gsm7(text) == (reference_count(text)[0] == "GSM-7")


@settings(max_examples=100, deadline=None)
@given(gsm_texts)
def test_gsm7_invariants(text: str) -> None:
    s = count_segments(text)
    assert s.encoding == "GSM-7"
    assert len(text) <= s.units <= 2 * len(text)
    assert s.units <= s.segments * s.per_segment
    if s.segments > 1:
        assert s.per_segment == 153 and s.units > 160
        # Each full segment carries 152 or 153 septets (152 when an escape pair moved on).
        assert s.units > (s.segments - 1) * 152
    else:
        assert s.per_segment == 160 and s.units <= 160


@settings(max_examples=100, deadline=None)
@given(mixed_texts, st.sampled_from(_OTHER))
def test_one_foreign_character_forces_ucs2(text: str, char: str) -> None:
    s = count_segments(text + char)
    assert s.encoding == "UCS-2"
    assert s.per_segment in (70, 67)
    assert s.units == len((text + char).encode("utf-16-le")) // 2
