"""Reading a date of birth as patients type it."""

from __future__ import annotations

import re
from datetime import date

from flows.context import fold

_MONTHS = {
    # English
    "jan": 1,
    "january": 1,
    "feb": 2,
    "february": 2,
    "mar": 3,
    "march": 3,
    "apr": 4,
    "april": 4,
    "may": 5,
    "jun": 6,
    "june": 6,
    "jul": 7,
    "july": 7,
    "aug": 8,
    "august": 8,
    "sep": 9,
    "sept": 9,
    "september": 9,
    "oct": 10,
    "october": 10,
    "nov": 11,
    "november": 11,
    "dec": 12,
    "december": 12,
    # Spanish
    "ene": 1,
    "enero": 1,
    "febrero": 2,
    "marzo": 3,
    "abr": 4,
    "abril": 4,
    "mayo": 5,
    "junio": 6,
    "julio": 7,
    "ago": 8,
    "agosto": 8,
    "setiembre": 9,
    "septiembre": 9,
    "octubre": 10,
    "noviembre": 11,
    "dic": 12,
    "diciembre": 12,
}
_NUMERIC = re.compile(r"^(\d{1,4})[\s/.\-](\d{1,2})[\s/.\-](\d{2,4})$")
_ORDINAL = re.compile(r"(\d)(?:st|nd|rd|th|o|a|er)\b")


class DobError(ValueError):
    """Why the text is not a usable date of birth: ``unreadable``, ``future`` or ``too_old``."""


def _year(value: int, today: date) -> int:
    if value >= 100:
        return value
    # Two-digit years: the most recent past year with those digits.
    century = today.year - today.year % 100
    return century + value if century + value <= today.year else century - 100 + value


def parse_dob(text: str, lang: str, today: date) -> date:
    """``12/31/1980`` (English: month first), ``31/12/1980`` (Spanish: day first),
    ``1980-12-31``, ``31 Dec 1980``, ``December 31, 1980``, ``31 de diciembre de 1980``.
    A numeric date that cannot be month-first is read day-first, and the
    other way round."""
    cleaned = fold(text).replace(",", " ")
    cleaned = " ".join(w for w in cleaned.split() if w not in {"de", "del", "of", "the"})
    candidates: list[tuple[int, int, int]] = []
    numeric = _NUMERIC.match(cleaned.replace(" ", "/") if " " in cleaned else cleaned)
    if numeric:
        a, b, c = (int(g) for g in numeric.groups())
        if len(numeric.group(1)) == 4:
            candidates.append((a, b, c))  # ISO order
        else:
            year = _year(c, today)
            first, second = ((b, a), (a, b)) if lang == "es" else ((a, b), (b, a))
            candidates += [(year, *first), (year, *second)]
    else:
        words = _ORDINAL.sub(r"\1", cleaned).split()
        month = next((_MONTHS[w] for w in words if w in _MONTHS), None)
        numbers = [int(w) for w in words if w.isdigit()]
        if month is not None and len(numbers) == 2:
            day, year = numbers if numbers[1] > 31 else numbers[::-1]
            candidates.append((_year(year, today), month, day))
    for year, month, day in candidates:
        try:
            born = date(year, month, day)
        except ValueError:
            continue
        if born > today:
            raise DobError("future")
        if today.year - born.year > 120:
            raise DobError("too_old")
        return born
    raise DobError("unreadable")
