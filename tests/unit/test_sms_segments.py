"""GSM-7 detection, segment counting and splitting of SMS bodies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_BODY_CHARS,
    is_gsm7,
    segments,
    split_for_sms,
    to_gsm7_friendly,
    truncate_on_boundary,
    utf16_len,
)


def test_the_gsm7_tables_have_their_sizes() -> None:
    # 128 codes in the basic table, one of them the escape to the extension table.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10


@pytest.mark.parametrize(
    "text",
    [
        "Your visit is on Tuesday at 3:00 PM. Reply 1 to confirm.",
        "Café à la carte? No: café è ù ì ò Ç Ø ø Å å Ñ ñ ü ö ä É Ü Ö Ä ß à ¿ ¡",
        "Price: 5€ [approx] {x} ~ | \\ ^",
        "@£$¥_\n\r!\"#%&'()*+,-./:;<=>?§",
        "",
    ],
)
def test_gsm7_texts(text: str) -> None:
    assert is_gsm7(text)


@pytest.mark.parametrize(
    "text",
    [
        "¿Cuándo? mañana está bien",  # á is not GSM-7
        "Sí",
        "Don’t",  # typographic apostrophe
        "“quoted”",
        "wait…",
        "ok 👍",
        "ç",  # only the capital Ç is GSM-7
        "tab\there",
    ],
)
def test_non_gsm7_texts(text: str) -> None:
    assert not is_gsm7(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 459, 3),
        ("a" * 460, 4),
        # extension characters take two septets
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("a" * 159 + "{", 2),
        ("a" * 158 + "[", 1),
        # UCS-2: 70 / 67
        ("á" * 70, 1),
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        # one non-GSM character makes the whole text UCS-2
        ("a" * 69 + "á", 1),
        ("a" * 70 + "á", 2),
        # an emoji is two UTF-16 units
        ("👍" * 35, 1),
        ("👍" * 36, 2),
    ],
)
def test_segment_counts(text: str, expected: int) -> None:
    assert segments(text) == expected


def test_an_escape_pair_is_not_split_across_parts() -> None:
    # 152 septets then a 2-septet character: the pair moves to the next part.
    text = "a" * 152 + "€" + "a" * 10
    assert segments(text) == 2
    text = "a" * 152 + "€" + "a" * 152
    assert segments(text) == 3


def test_friendly_replaces_typography_and_keeps_gsm_accents() -> None:
    text = "Don’t “panic” – it’s fine… really\u00a0now — ok ‘yes’ «sí»"
    friendly = to_gsm7_friendly(text)
    assert friendly == "Don't \"panic\" - it's fine... really now - ok 'yes' \"sí\""
    kept = "é è ù ì ò Ç Ø ø Å å Ñ ñ ü ö ä É Ü Ö Ä ß à ¿ ¡"
    assert to_gsm7_friendly(kept) == kept
    assert is_gsm7(to_gsm7_friendly("Don’t – wait… “ok”"))
    # accents GSM-7 lacks stay: Spanish is UCS-2 and that is fine
    assert to_gsm7_friendly("¿Cuándo? Sí, miércoles") == "¿Cuándo? Sí, miércoles"


def test_friendly_text_can_drop_from_ucs2_to_gsm7() -> None:
    text = "Your appointment’s confirmed – see you Tuesday…" * 2
    assert segments(text) > segments(to_gsm7_friendly(text))


def test_short_text_is_not_split() -> None:
    text = "Your visit is confirmed.\n1. Reschedule\n2. Menu"
    assert split_for_sms(text) == [text]
    assert split_for_sms("") == []
    assert split_for_sms("  \n ") == []


def test_long_text_splits_on_sentence_boundaries() -> None:
    sentences = [f"This is sentence number {n} of a long reply." for n in range(1, 40)]
    text = " ".join(sentences)
    parts = split_for_sms(text)
    assert len(parts) > 1
    for part in parts:
        assert segments(part) <= 3
        assert part.endswith(".")
        assert part.startswith("This is sentence number")
    assert " ".join(parts) == text


def test_long_text_splits_on_lines_and_keeps_option_numbers() -> None:
    lines = ["Choose a time:"] + [
        f"{n}. Tuesday 14 April at {n}:00 with Dr. Ana" for n in range(30)
    ]
    text = "\n".join(lines)
    parts = split_for_sms(text)
    assert len(parts) > 1
    for part in parts:
        assert segments(part) <= 3
        for line in part.splitlines():
            assert line in lines  # no line was cut: "1." stays with its label
    assert "\n".join(parts) == text


def test_a_too_long_sentence_is_cut_between_words() -> None:
    sentence = " ".join(["word"] * 300) + "."
    parts = split_for_sms(sentence)
    assert len(parts) > 1
    for part in parts:
        assert segments(part) <= 3
        assert not part.startswith(" ") and not part.endswith(" ")
    assert " ".join(parts) == sentence


def test_a_single_huge_word_is_hard_cut() -> None:
    parts = split_for_sms("x" * 1000)
    assert [len(p) for p in parts] == [459, 459, 82]


def test_ucs2_text_splits_within_ucs2_limits() -> None:
    text = " ".join(["¿Podría venir el miércoles por la mañana?"] * 20)
    parts = split_for_sms(text)
    for part in parts:
        assert segments(part) <= 3
        assert utf16_len(part) <= 201
    assert " ".join(parts) == text


def test_max_segments_can_be_raised_but_parts_stay_under_1600() -> None:
    text = "Hello there. " * 400
    parts = split_for_sms(text, max_segments=20)
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= MAX_BODY_CHARS
        assert segments(part) <= 20


def test_max_segments_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_for_sms("hi", max_segments=0)


def test_truncate_on_boundary() -> None:
    assert truncate_on_boundary("short") == "short"
    text = "A sentence that goes on. " * 100
    cut = truncate_on_boundary(text)
    assert utf16_len(cut) <= MAX_BODY_CHARS
    assert cut.endswith("goes on.")
    assert text.startswith(cut)
    assert utf16_len(truncate_on_boundary("👍" * 1000)) <= MAX_BODY_CHARS


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("abc áé€{ .!?\n👍1")) | st.characters(),
        max_size=2500,
    ),
    st.integers(min_value=1, max_value=12),
)
def test_split_invariants(text: str, max_segments: int) -> None:
    parts = split_for_sms(text, max_segments=max_segments)
    for part in parts:
        assert part.strip()
        assert segments(part) <= max_segments
        assert utf16_len(part) <= MAX_BODY_CHARS
    # nothing is lost but whitespace at the cuts
    assert "".join("".join(parts).split()) == "".join(text.split())
