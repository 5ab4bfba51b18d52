"""Reading one typed answer for one item, or saying why it cannot be read.

``parse_answer`` returns a :class:`Parsed`: the value to store, a skip, or a
problem (a catalog key) so the step can re-ask and say what it expects.
Answers are read in both languages whatever the conversation's language:
"sí" in an English intake, or "3 days" in a Spanish one, is understood, not
re-asked.

Stored values (``intake_responses.answers``, per linkId): ``str`` for text,
``int`` for integers, ``bool`` for yes/no, the option's code for a choice,
``{"value": n, "unit": "d", "comparator": "<"?}`` (UCUM unit) for a
duration, ``"YYYY-MM-DD"`` for a date, and ``None`` for "not answered".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from core.intake.questionnaire import Item
from core.nlu import classify_intent

MAX_TRIES = 3  # the third failed try moves on and records "not answered"


@dataclass(frozen=True)
class Parsed:
    value: Any = None
    problem: str | None = None  # catalog key, e.g. "intake.error.range"
    values: dict[str, object] = field(default_factory=dict)  # the problem's placeholders
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.skipped


def fold(text: str) -> str:
    """Lower case, no accents or apostrophes, punctuation as spaces except the
    marks numbers need ("7/10", "2-3", "7.5")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    stripped = stripped.replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^\w\s/.,\-]", " ", stripped).replace("_", " ").split())


def _words(text: str) -> str:
    """``fold`` without any punctuation: how short replies are compared."""
    return " ".join(re.sub(r"[^\w\s]", " ", fold(text)).split())


SKIP_WORDS = frozenset(
    {
        "skip",
        "pass",
        "next",
        "idk",
        "i dont know",
        "dont know",
        "i do not know",
        "not sure",
        "im not sure",
        "unsure",
        "no idea",
        "n a",
        "na",
        "dunno",
        "saltar",
        "salta",
        "omitir",
        "paso",
        "siguiente",
        "no se",
        "nose",
        "no lo se",
        "ni idea",
        "no estoy seguro",
        "no estoy segura",
    }
)
PAUSE_WORDS = frozenset(
    {
        "pause",
        "later",
        "not now",
        "continue later",
        "answer later",
        "stop questions",
        "pausa",
        "pausar",
        "luego",
        "mas tarde",
        "despues",
        "ahora no",
        "en otro momento",
        "otro momento",
    }
)
RESUME_WORDS = frozenset(
    {
        "questions",
        "question",
        "intake",
        "questionnaire",
        "answer questions",
        "the questions",
        "preguntas",
        "pregunta",
        "cuestionario",
        "responder preguntas",
        "las preguntas",
    }
)
_YES = frozenset(
    [
        "yes",
        "y",
        "yeah",
        "yep",
        "yup",
        "sure",
        "si",
        "s",
        "claro",
        "sip",
        "afirmativo",
        "tuve",
        "tengo",
    ]
)
_NO = frozenset(
    [
        "no",
        "n",
        "nope",
        "nah",
        "never",
        "none",
        "nothing",
        "nunca",
        "ninguno",
        "ninguna",
        "nada",
        "negativo",
    ]
)
_NUMBER_WORDS = {
    "zero": 0,
    "cero": 0,
    "one": 1,
    "a": 1,
    "an": 1,
    "uno": 1,
    "una": 1,
    "un": 1,
    "two": 2,
    "couple": 2,
    "dos": 2,
    "three": 3,
    "tres": 3,
    "four": 4,
    "cuatro": 4,
    "five": 5,
    "cinco": 5,
    "six": 6,
    "seis": 6,
    "seven": 7,
    "siete": 7,
    "eight": 8,
    "ocho": 8,
    "nine": 9,
    "nueve": 9,
    "ten": 10,
    "diez": 10,
}
_UNITS = {
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "hora": "h",
    "horas": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "dia": "d",
    "dias": "d",
    "w": "wk",
    "wk": "wk",
    "wks": "wk",
    "week": "wk",
    "weeks": "wk",
    "semana": "wk",
    "semanas": "wk",
    "mo": "mo",
    "mos": "mo",
    "month": "mo",
    "months": "mo",
    "mes": "mo",
    "meses": "mo",
    "y": "a",
    "yr": "a",
    "yrs": "a",
    "year": "a",
    "years": "a",
    "ano": "a",
    "anos": "a",
}
UNIT_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "a": 365.0}
UNIT_NAMES = {"h": "hours", "d": "days", "wk": "weeks", "mo": "months", "a": "years"}
# Words for "since when" that name a time rather than a length: (value, unit, comparator).
_SINCE: dict[str, tuple[int, str, str | None]] = {
    "today": (1, "d", "<"),
    "this morning": (1, "d", "<"),
    "tonight": (1, "d", "<"),
    "this afternoon": (1, "d", "<"),
    "a few hours": (1, "d", "<"),
    "few hours": (1, "d", "<"),
    "hoy": (1, "d", "<"),
    "esta manana": (1, "d", "<"),
    "esta tarde": (1, "d", "<"),
    "unas horas": (1, "d", "<"),
    "pocas horas": (1, "d", "<"),
    "yesterday": (1, "d", None),
    "last night": (1, "d", None),
    "ayer": (1, "d", None),
    "anoche": (1, "d", None),
    "day before yesterday": (2, "d", None),
    "anteayer": (2, "d", None),
    "antier": (2, "d", None),
    "last week": (1, "wk", None),
    "semana pasada": (1, "wk", None),
    "last month": (1, "mo", None),
    "mes pasado": (1, "mo", None),
    "last year": (1, "a", None),
    "ano pasado": (1, "a", None),
}
_WEEKDAYS = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
    "lunes": 0,
    "martes": 1,
    "miercoles": 2,
    "jueves": 3,
    "viernes": 4,
    "sabado": 5,
    "domingo": 6,
}
_MONTHS = {
    "jan": 1,
    "ene": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "abr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "ago": 8,
    "sep": 9,
    "set": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
    "dic": 12,
}
_ARTICLES = frozenset({"a", "an", "un", "una"})
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NUM = r"\d+(?:[.,]\d+)?"


def is_skip(text: str) -> bool:
    return _words(text) in SKIP_WORDS


def is_pause(text: str) -> bool:
    return _words(text) in PAUSE_WORDS


def is_resume(text: str) -> bool:
    return _words(text) in RESUME_WORDS


def yes_no(text: str, lang: str) -> bool | None:
    """Yes or no, in either language ("yes", "sí", "nope", "no fever"...)."""
    words = _words(text).split()
    if not words:
        return None
    if words[0] in _YES:
        return True
    if words[0] in _NO:
        return False
    for language in (lang, "es" if lang == "en" else "en"):
        intent = classify_intent(text, language)
        if intent in ("confirm", "deny"):
            return intent == "confirm"
    return None


def looks_like_gibberish(text: str) -> bool:
    """Keyboard mashing ("asdfgh", "qwerty", "jjjjj") or no letters at all.
    Short, cheap and deliberately lenient: real words in either language pass."""
    words = re.findall(r"[^\W\d_]+", fold(text))
    if sum(len(w) for w in words) < 2:
        return True
    mashed = 0
    for word in words:
        if (
            re.search(r"(.)\1\1\1", word)
            or (
                len(word) >= 4
                and any(
                    word[i : i + 4] in row for row in _KEYBOARD_ROWS for i in range(len(word) - 3)
                )
            )
            or (len(word) >= 5 and re.search(r"[bcdfghjklmnpqrstvwxz]{5}", word))
        ):
            mashed += 1
    return mashed == len(words)


def _numbers(folded: str) -> list[float]:
    found = [float(n.replace(",", ".")) for n in re.findall(_NUM, folded)]
    # Articles count as "one" only before a unit ("a week"), never alone.
    found += [
        float(_NUMBER_WORDS[w]) for w in folded.split() if w in _NUMBER_WORDS and w not in _ARTICLES
    ]
    return found


def parse_integer(item: Item, text: str) -> Parsed:
    folded = fold(text)
    low, high = item.min_value, item.max_value
    limits: dict[str, object] = {"min": low if low is not None else "", "max": high}
    # "7/10", "7 out of 10", "7 de 10": the scale's top is not a second answer.
    folded = re.sub(r"(\d)\s*(?:/|out of|de|sobre)\s*10\b", r"\1", folded)
    # Signs matter for the range check ("-2"), but "2-3" is a range.
    negative = re.match(r"^-\s*\d", folded) is not None
    words = [w for w in re.split(r"[\s/]+", folded) if w]
    numbers = [float(n.replace(",", ".")) for n in re.findall(_NUM, folded)]
    numbers += [float(_NUMBER_WORDS[w]) for w in words if w in _NUMBER_WORDS and w not in _ARTICLES]
    if not numbers:
        return Parsed(problem="intake.error.unclear", values=limits)
    distinct = len(set(numbers))
    if distinct > 2 or (distinct == 2 and not re.search(r"\d\s*(?:-|to|or|a|o)\s*\d", folded)):
        return Parsed(problem="intake.error.unclear", values=limits)
    # "6-7" or "6 or 7": the higher, as a clinician would read it for triage.
    value = round(max(numbers))
    if negative:
        value = -value
    if (low is not None and value < low) or (high is not None and value > high):
        return Parsed(problem="intake.error.range", values={**limits, "value": value})
    return Parsed(value=value)


def parse_duration(text: str, today: date) -> Parsed:
    folded = fold(text)
    plain = _words(text)
    for words, (value, unit, comparator) in sorted(_SINCE.items(), key=lambda kv: -len(kv[0])):
        if re.search(rf"\b{words}\b", plain):
            return Parsed(value=_duration(value, unit, comparator))
    for word, weekday in _WEEKDAYS.items():
        if re.search(rf"\b{word}\b", plain):
            # "since Monday": the last such day before today.
            days = (today.weekday() - weekday) % 7 or 7
            return Parsed(value=_duration(days, "d", None))
    unit_words = "|".join(sorted(_UNITS, key=len, reverse=True))
    number_words = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
    amount = rf"(?:{_NUM}|{number_words})"
    match = re.search(
        rf"\b({amount})(?:\s*(?:-|to|or|a|o)\s*({amount}))?\s*({unit_words})\b", folded
    )
    if match is None:
        # "a week" / "una semana" come through above ("a" is one); a bare
        # number has no unit: ask which.
        numbers = _numbers(folded)
        if numbers:
            return Parsed(problem="intake.error.no_unit", values={"value": _fmt(max(numbers))})
        return Parsed(problem="intake.error.unclear")
    # "2-3 days": the longer, as a clinician would read it for triage.
    length = max(_amount(g) for g in match.groups()[:2] if g)
    unit = _UNITS[match.group(3)]
    if length <= 0:
        return Parsed(value=_duration(1, "d", "<"))
    if length * UNIT_DAYS[unit] > 100 * 365:
        return Parsed(problem="intake.error.unclear")
    return Parsed(value=_duration(length, unit, None))


def _amount(word: str) -> float:
    return float(_NUMBER_WORDS[word]) if word in _NUMBER_WORDS else float(word.replace(",", "."))


def _fmt(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _duration(value: float, unit: str, comparator: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": _fmt(value), "unit": unit}
    if comparator:
        out["comparator"] = comparator
    return out


def duration_days(value: Any) -> float | None:
    """A stored duration in days, for triage rules."""
    if not isinstance(value, dict) or "value" not in value:
        return None
    return float(value["value"]) * UNIT_DAYS.get(str(value.get("unit")), 1.0)


def describe_duration(value: Any) -> str:
    """``3 days``, ``< 1 days``... for the doctor's summary (English)."""
    if not isinstance(value, dict):
        return str(value)
    prefix = "< " if value.get("comparator") == "<" else ""
    unit = str(value.get("unit"))
    name = UNIT_NAMES.get(unit, unit)
    if value.get("value") == 1:
        name = name.rstrip("s")
    return f"{prefix}{value.get('value')} {name}"


def parse_date(text: str, lang: str, today: date) -> Parsed:
    plain = _words(text)
    if plain in ("today", "hoy"):
        return Parsed(value=today.isoformat())
    if plain in ("yesterday", "ayer"):
        return Parsed(value=(today - timedelta(days=1)).isoformat())
    candidates: list[tuple[int, int, int]] = []
    folded = fold(text)
    iso = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", folded)
    numeric = re.fullmatch(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{2,4})", folded)
    if iso:
        candidates.append((int(iso[1]), int(iso[2]), int(iso[3])))
    elif numeric:
        a, b, year = int(numeric[1]), int(numeric[2]), int(numeric[3])
        year = year + 2000 if year < 100 and year + 2000 <= today.year else year
        year = year + 1900 if year < 100 else year
        # English writes the month first, Spanish the day; the other order
        # when the first cannot be a date.
        orders = [(b, a), (a, b)] if lang == "es" else [(a, b), (b, a)]
        candidates += [(year, month, day) for month, day in orders]
    else:
        words = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", plain).split()
        month = next((_MONTHS[w[:3]] for w in words if w[:3] in _MONTHS and len(w) >= 3), None)
        numbers = [int(w) for w in words if w.isdigit()]
        if month is not None and numbers:
            day = next((n for n in numbers if n <= 31), None)
            year = next((n for n in numbers if n > 31), today.year)
            if day is not None:
                candidates.append((year, month, day))
    for year, month, day in candidates:
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if found > today:
            return Parsed(problem="intake.error.future")
        if today.year - found.year > 120:
            return Parsed(problem="intake.error.unclear")
        return Parsed(value=found.isoformat())
    return Parsed(problem="intake.error.unclear")


def parse_choice(item: Item, text: str) -> Parsed:
    plain = _words(text)
    if re.fullmatch(r"\d{1,2}", plain):
        index = int(plain)
        if 1 <= index <= len(item.options):
            return Parsed(value=item.options[index - 1].code)
        return Parsed(problem="intake.error.unclear")
    for option in item.options:
        names = {_words(option.code)} | {_words(t) for t in option.texts.values()}
        if plain in names:
            return Parsed(value=option.code)
    codes = {o.code for o in item.options}
    # Yes/no/not sure questions (v2-0532 Y/N/UNK): read as such in either language.
    if {"Y", "N"} <= codes:
        if "UNK" in codes and plain in SKIP_WORDS:
            return Parsed(value="UNK")
        answer = yes_no(text, "en")
        if answer is not None:
            return Parsed(value="Y" if answer else "N")
    if len(plain) >= 3:
        starts = [
            o.code
            for o in item.options
            if any(_words(t).startswith(plain) for t in o.texts.values())
        ]
        if len(set(starts)) == 1:
            return Parsed(value=starts[0])
        from rapidfuzz import fuzz, process

        labels = [(_words(t), o.code) for o in item.options for t in o.texts.values()]
        best = process.extractOne(plain, [label for label, _ in labels], scorer=fuzz.ratio)
        if best is not None and best[1] >= 85:
            return Parsed(value=labels[best[2]][1])
    return Parsed(problem="intake.error.unclear")


def parse_text(item: Item, text: str) -> Parsed:
    cleaned = " ".join(text.split())
    if looks_like_gibberish(cleaned):
        return Parsed(problem="intake.error.unclear")
    limit = item.max_length or 1000
    # A long message is kept (cut to the item's maxLength), not re-asked:
    # typing it again on a phone would be worse than losing its tail.
    return Parsed(value=cleaned[:limit])


def parse_answer(
    item: Item, text: str, lang: str, today: date, *, has_media: bool = False
) -> Parsed:
    """The answer ``text`` gives to ``item``, or why it gives none."""
    cleaned = " ".join(text.split())
    if not cleaned:
        return Parsed(problem="intake.error.photo" if has_media else "intake.error.empty")
    if item.type == "choice":
        chosen = parse_choice(item, cleaned)
        if chosen.ok:
            return chosen  # "not sure" may be one of the options
    if is_skip(cleaned):
        if item.required:
            return Parsed(problem="intake.error.needed")
        return Parsed(skipped=True)
    if item.type == "choice":
        return chosen
    if item.type == "boolean":
        plain = _words(cleaned)
        if plain in ("1", "2"):
            return Parsed(value=plain == "1")
        answer = yes_no(cleaned, lang)
        return (
            Parsed(value=answer) if answer is not None else Parsed(problem="intake.error.unclear")
        )
    if item.type == "integer":
        return parse_integer(item, cleaned)
    if item.type == "quantity":
        return parse_duration(cleaned, today)
    if item.type == "date":
        return parse_date(cleaned, lang, today)
    return parse_text(item, cleaned)


def expect_key(item: Item) -> tuple[str, dict[str, object]]:
    """The catalog key (and placeholders) that says what ``item`` expects."""
    if item.type == "integer":
        return "intake.expect.integer", {"min": item.min_value or 0, "max": item.max_value or 10}
    if item.type == "boolean":
        return "intake.expect.boolean", {}
    if item.type == "choice":
        return "intake.expect.choice", {}
    if item.type == "quantity":
        return "intake.expect.duration", {}
    if item.type == "date":
        return "intake.expect.date", {}
    return "intake.expect.text", {}
