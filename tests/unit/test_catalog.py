"""Every patient-facing text exists in English and Spanish with the same placeholders."""

from __future__ import annotations

import string

import pytest

from core.i18n import LANGUAGES, catalog, format_when, t

_fmt = string.Formatter()


def placeholders(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in _fmt.parse(text) if name}


def test_catalogs_have_the_same_keys() -> None:
    english = set(catalog("en"))
    for lang in LANGUAGES:
        assert set(catalog(lang)) == english, lang


@pytest.mark.parametrize("key", sorted(catalog("en")))
def test_placeholders_match(key: str) -> None:
    assert placeholders(catalog("es")[key]) == placeholders(catalog("en")[key])


def test_no_prompt_asks_for_a_lone_cancel() -> None:
    # On SMS a lone CANCEL opts the patient out (CONTRACT.md): never invite it.
    for lang in LANGUAGES:
        for key, text in catalog(lang).items():
            assert "reply cancel" not in text.lower(), key
            assert "responda anular" not in text.lower(), key


def test_dates_in_words() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 4, 14, 18, 30, tzinfo=UTC)
    assert format_when(when, "en", "America/New_York") == "Tue 14 Apr, 2:30 PM"
    assert format_when(when, "es", "Europe/Madrid") == "mar 14 de abr, 20:30"
    assert t("xx", "menu.book") == "Book a visit"  # unknown language falls back to English
