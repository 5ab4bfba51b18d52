"""Message catalog (English and Spanish) and dates in words.

Every patient-facing text is a key in ``en.toml`` and ``es.toml``; a test
keeps the two catalogs' keys and placeholders identical.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"
_LOCALES = {"en": "en_US", "es": "es"}
_HERE = Path(__file__).parent


@cache
def catalog(lang: str) -> dict[str, str]:
    with (_HERE / f"{lang}.toml").open("rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    return {str(k): str(v) for k, v in data.items()}


def normalize_language(lang: str | None) -> str:
    if lang and lang[:2].lower() in LANGUAGES:
        return lang[:2].lower()
    return DEFAULT_LANGUAGE


def t(lang: str, key: str, **values: object) -> str:
    """The text for ``key`` in ``lang``, with ``{placeholders}`` filled in."""
    texts = catalog(normalize_language(lang))
    template = texts.get(key) or catalog(DEFAULT_LANGUAGE)[key]
    return template.format(**values) if values else template


def _local(value: datetime, tz: str) -> datetime:
    return value.astimezone(ZoneInfo(tz))


def format_day(
    value: date | datetime, lang: str, tz: str | None = None, *, pattern: str = "fmt.day"
) -> str:
    """``Tue 14 Apr`` / ``mar 14 de abr``; ``pattern="fmt.date"`` adds the year."""
    from babel.dates import format_date

    if isinstance(value, datetime) and tz:
        value = _local(value, tz)
    return str(format_date(value, t(lang, pattern), locale=_LOCALES[normalize_language(lang)]))


def format_clock(value: datetime, lang: str, tz: str) -> str:
    """``2:30 PM`` / ``14:30``."""
    from babel.dates import format_time

    text = format_time(_local(value, tz), "short", locale=_LOCALES[normalize_language(lang)])
    # CLDR puts a narrow no-break space before AM/PM; it is not GSM-7 and would
    # make every SMS that carries a time cost UCS-2 segments.
    return str(text).replace("\u202f", " ").replace("\xa0", " ")


def format_when(value: datetime, lang: str, tz: str) -> str:
    """``Tue 14 Apr, 2:30 PM`` / ``mar 14 de abr, 14:30``."""
    return t(lang, "fmt.when", day=format_day(value, lang, tz), time=format_clock(value, lang, tz))
