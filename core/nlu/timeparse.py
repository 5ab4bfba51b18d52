"""Dates and times in patient messages, via Duckling, tuned for booking clinic visits.

``parse_when(text, lang, now, tz)`` returns the first date/time expression in
``text`` as a :class:`When` in the zone ``tz``, or ``None``.

Duckling (``pyduckling-native-phihos``, import name ``duckling``) does the
parsing; it is imported lazily, on the first call, because importing it starts
the Haskell runtime. Its output is then corrected towards what a patient
booking an appointment means:

* Bare hours are read in clinic hours: when Duckling offers both the am and
  the pm reading (no am/pm, no part of day, not 24-hour), the one in
  08:00-19:59 wins, so "at 4" is 16:00 and "at 8" is 08:00 ("1" to "7" mean
  pm, "8" to "11" am, "12" noon). Explicit times stay: "7am" is 07:00.
* A time already past relative to ``now`` moves to the next alternative that
  Duckling offers ("at 9" said at 09:15 is 09:00 tomorrow). Being in the future
  beats being in clinic hours: "today at 8" said at 09:15 is 20:00. Expressions
  with a single possible reading ("yesterday", "this morning" said at 13:00)
  stay in the past; the caller decides what to say. An open range ("after 9")
  is usable for its whole day: said at 09:15 it is still today from 09:00.
* Parts of day become clinic ranges, ``end`` exclusive and grain "hour":
  morning 08:00-12:00, afternoon 12:00-17:00, evening/tonight/night
  17:00-21:00. (Duckling says morning 00:00/04:00-12:00, afternoon
  12:00-19:00, evening 18:00-24:00; no clinic books a 02:00 visit because the
  patient said "morning".) The weekend is Saturday 00:00 to Monday 00:00, grain
  "day".
* Ranges ("from 2 to 4", "de 10 a 12", "between 9am and 11am") end exclusive at
  the time the patient said: 14:00-16:00. Day ranges ("monday to wednesday")
  end at 00:00 of the day after the last day.
* "after 3" / "después de las 3" / "a partir de las 3" start at that time with
  ``end`` None. "before noon" / "antes de las 3" / "until 5" end at that time
  and start at 08:00 that day (00:00 when the limit is 08:00 or earlier), or
  today 00:00 for a day limit ("before friday"). Spanish "desde"/"hasta" make
  ranges only with a clock time ("desde las 4", "hasta las 5"); "desde el lunes
  tengo fiebre" and "hasta mañana" stay plain days.
* "in 3 days" / "dentro de 3 días" / "en 3 días" are that whole day (grain
  "day"), not "now + 72 h truncated to the hour".
* "within 2 days" / "by friday" are [now, limit) with grain "minute".
* Grains: Duckling's "second" becomes "minute" (floored), "quarter"/"year"
  become "month". Points (``end`` None) are a time, a day, a week (starting
  Monday) or a month; intervals have an exclusive ``end``.
* When the text has several expressions ("monday or tuesday"), the first one
  (earliest in the text) is returned.
* Lone numbers ("1", "3.", "#2") are menu choices, never times: ``None``.

Duckling's cost grows exponentially with the number of adjacent date/time
words ("monday monday monday ..." ten times takes seconds), so long messages
are cut into pieces of at most :data:`_TOKEN_BUDGET` date/time-like words and
only the first :data:`_MAX_PIECES` pieces are parsed. Nothing here raises on
message text; an unknown ``tz`` raises :class:`ValueError`.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Grain = Literal["minute", "hour", "day", "week", "month"]

__all__ = ["Grain", "When", "parse_when", "zone"]

#: Clinic parts of day, [start hour, end hour) local time.
PARTS_OF_DAY: dict[str, tuple[int, int]] = {
    "morning": (8, 12),
    "afternoon": (12, 17),
    "evening": (17, 21),
}
#: Bare hours resolve into [DAY_START_HOUR, DAY_END_HOUR).
DAY_START_HOUR = 8
DAY_END_HOUR = 20

_TOKEN_BUDGET = 6
_MAX_PIECES = 12
_MAX_CHARS = 4000

_SYSTEM_ZONEINFO = "/usr/share/zoneinfo"


@dataclass(frozen=True)
class When:
    """A point (``end`` None) or an interval [start, end) in the caller's zone."""

    start: datetime
    end: datetime | None
    grain: Grain
    # True for "after 3" (from start on, open), False for "at 3" (that moment).
    # Both have end None; booking needs the difference, the JSON does not carry it.
    open_ended: bool = False

    def to_json(self) -> dict[str, str | None]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end is not None else None,
            "grain": self.grain,
        }


# --------------------------------------------------------------------------- duckling


_lock = threading.Lock()
_tz_db: Any = None


def _duckling() -> Any:
    import duckling  # lazy: importing starts the Haskell runtime

    return duckling


def _zoneinfo_dir() -> str:
    if os.path.isdir(_SYSTEM_ZONEINFO):
        return _SYSTEM_ZONEINFO
    # The tzdata package (a project dependency) ships the same files.
    return str(importlib.resources.files("tzdata") / "zoneinfo")


def _time_zones() -> Any:
    """Duckling's time-zone database, loaded once per process."""
    global _tz_db
    if _tz_db is None:
        with _lock:
            if _tz_db is None:
                _tz_db = _duckling().load_time_zones(_zoneinfo_dir())
    return _tz_db


def _duckling_parse(text: str, lang: str, now: datetime, tz: str) -> list[dict[str, Any]]:
    d = _duckling()
    try:
        ref = d.parse_ref_time(_time_zones(), tz, int(now.timestamp()))
        ctx = d.Context(ref, d.default_locale_lang(d.parse_lang(lang.upper())))
        result = d.parse(text, ctx, d.parse_dimensions(["time"]), False)
    except BaseException as exc:  # pyo3 panics (e.g. NUL bytes) are BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return []
    return [r for r in result if isinstance(r, dict)] if isinstance(result, list) else []


def zone(tz: str) -> ZoneInfo:
    """The ZoneInfo for ``tz``; ValueError when the zone is unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone: {tz!r}") from exc


# --------------------------------------------------------------------------- text prep

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
_LONE_NUMBER = re.compile(r"^\s*[#(\[]?\s*\d{1,4}\s*[).\]:-]?\s*$")

# Typos and SMS spellings Duckling does not know; whole words, case-insensitive.
_TYPOS: dict[str, dict[str, str]] = {
    "en": {
        "tmw": "tomorrow",
        "tmrow": "tomorrow",
        "2moro": "tomorrow",
        "2morro": "tomorrow",
        "2morrow": "tomorrow",
        "2mrw": "tomorrow",
        "tomoro": "tomorrow",
        "tomorro": "tomorrow",
        "tommorrow": "tomorrow",
        "2day": "today",
        "tdy": "today",
        "2nite": "tonight",
        "tonite": "tonight",
        "nxt": "next",
        "wensday": "wednesday",
        "wednsday": "wednesday",
        "wedensday": "wednesday",
        "wendsday": "wednesday",
        "thrusday": "thursday",
        "thurday": "thursday",
        "thursay": "thursday",
        "tusday": "tuesday",
        "tuseday": "tuesday",
        "teusday": "tuesday",
        "firday": "friday",
        "fridy": "friday",
        "satuday": "saturday",
        "saterday": "saturday",
        "mornin": "morning",
        "arvo": "afternoon",
    },
    "es": {
        "mñn": "mañana",
        "mñna": "mañana",
        "mnn": "mañana",
        "maniana": "mañana",
        "miercole": "miércoles",
        "mierc": "miércoles",
        "sab": "sábado",
        "dom": "domingo",
    },
}
_REWRITES: dict[str, tuple[tuple[re.Pattern[str], str], ...]] = {
    "en": (),
    "es": (
        # Duckling misses "lo antes posible" (English "asap" is [now, ...)).
        (
            re.compile(
                r"\b(?:lo\s+antes\s+posible|lo\s+m[aá]s\s+pronto\s+posible|cuanto\s+antes)\b",
                re.IGNORECASE,
            ),
            "ahora",
        ),
        # Duckling misses "hasta las 5" and the plural "por las tardes".
        (re.compile(r"\bhasta\s+(?=las?\b|el\s+mediod)", re.IGNORECASE), "antes de "),
        (
            re.compile(r"\b(por|en)\s+las\s+(mañana|tarde|noche)s\b", re.IGNORECASE),
            r"\1 la \2",
        ),
    ),
}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _clean(text: str) -> str:
    """NFKC (so full-width "ｔｏｍｏｒｒｏｗ" reads), no control or zero-width characters,
    whitespace runs (newlines included) as one space: Duckling needs a plain line."""
    text = unicodedata.normalize("NFKC", text[:_MAX_CHARS])
    text = _ZERO_WIDTH.sub("", _CONTROL.sub(" ", text))
    return " ".join(text.split())


def _normalise(text: str, lang: str) -> str:
    typos = _TYPOS.get(lang, {})

    def fix(m: re.Match[str]) -> str:
        return typos.get(m.group(0).lower(), m.group(0))

    out = _WORD.sub(fix, text) if typos else text
    for pattern, repl in _REWRITES.get(lang, ()):
        out = pattern.sub(repl, out)
    return out


def _fold(text: str) -> str:
    """Lower case without accents, for keyword checks."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# --------------------------------------------------------------------------- budget

_TIMEISH = """
    monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs
    fri sat sun lunes martes miercoles jueves viernes sabado domingo
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec enero febrero marzo abril mayo junio julio
    agosto septiembre setiembre octubre noviembre diciembre ene abr ago dic
    today tomorrow tmrw tmr tonight yesterday now hoy manana ayer pasado ahora
    morning mornings afternoon evening night noon midnight lunch tarde tardes noche noches
    mediodia madrugada medianoche
    day days week weeks weekend month months year years hour hours minute minutes dia dias
    semana semanas mes meses ano anos hora horas minuto minutos
    one two three four five six seven eight nine ten eleven twelve half quarter
    uno una dos tres cuatro cinco seis siete ocho nueve diez once doce media cuarto
    am pm next last this proximo proxima viene
    """
_TIMEISH_WORDS = frozenset(_TIMEISH.split())


def _timeish(word: str) -> bool:
    w = _fold(word)
    return any(ch.isdigit() for ch in w) or w.strip(".,;:!?¿¡()'\"") in _TIMEISH_WORDS


def _pieces(text: str) -> list[str]:
    """Split ``text`` so that no piece has more than _TOKEN_BUDGET date/time-like words."""
    words = text.split()
    if sum(1 for w in words if _timeish(w)) <= _TOKEN_BUDGET:
        return [text]
    pieces: list[str] = []
    for sentence in re.split(r"(?<=[.!?;])\s+", text):
        current: list[str] = []
        count = 0
        for word in sentence.split():
            if _timeish(word):
                if count == _TOKEN_BUDGET:
                    pieces.append(" ".join(current))
                    current, count = [], 0
                count += 1
            current.append(word)
        if current:
            pieces.append(" ".join(current))
        if len(pieces) >= _MAX_PIECES:
            break
    return pieces[:_MAX_PIECES]


# --------------------------------------------------------------------------- candidates

_GRAINS: dict[str, Grain] = {
    "second": "minute",
    "minute": "minute",
    "hour": "hour",
    "day": "day",
    "week": "week",
    "month": "month",
    "quarter": "month",
    "year": "month",
}


@dataclass(frozen=True)
class _Raw:
    """One Duckling reading: a value (start only) or an interval (from and/or to)."""

    interval: bool
    start: datetime | None
    start_grain: str | None
    end: datetime | None
    end_grain: str | None


@dataclass(frozen=True)
class _Span:
    text: str  # the matched text
    folded: str  # the same, lower case without accents
    before: str  # folded text before the match
    lang: str


def _dt(iso: object, tz: ZoneInfo) -> datetime | None:
    if not isinstance(iso, str):
        return None
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=tz)
    return parsed.astimezone(tz)


def _raw(value: object, tz: ZoneInfo) -> _Raw | None:
    if not isinstance(value, dict):
        return None
    if value.get("type") == "interval":
        frm, to = value.get("from"), value.get("to")
        start = _dt(frm.get("value"), tz) if isinstance(frm, dict) else None
        end = _dt(to.get("value"), tz) if isinstance(to, dict) else None
        if start is None and end is None:
            return None
        return _Raw(
            True,
            start,
            str(frm.get("grain")) if isinstance(frm, dict) else None,
            end,
            str(to.get("grain")) if isinstance(to, dict) else None,
        )
    start = _dt(value.get("value"), tz)
    if start is None:
        return None
    return _Raw(False, start, str(value.get("grain")), None, None)


def _readings(result: dict[str, Any], tz: ZoneInfo) -> list[_Raw]:
    value = result.get("value")
    readings: list[_Raw] = []
    main = _raw(value, tz)
    if main is not None:
        readings.append(main)
    alternatives = value.get("values") if isinstance(value, dict) else None
    if isinstance(alternatives, list):
        for alt in alternatives:
            reading = _raw(alt, tz)
            if reading is not None and reading not in readings:
                readings.append(reading)
    return readings


def _floor(dt: datetime, grain: Grain) -> datetime:
    dt = dt.replace(second=0, microsecond=0)
    if grain == "minute":
        return dt
    dt = dt.replace(minute=0)
    if grain == "hour":
        return dt
    dt = dt.replace(hour=0)
    if grain == "day":
        return dt
    if grain == "week":
        return dt - timedelta(days=dt.weekday())
    return dt.replace(day=1)


def _period_end(start: datetime, grain: Grain) -> datetime:
    if grain == "minute":
        return start + timedelta(minutes=1)
    if grain == "hour":
        return start + timedelta(hours=1)
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    first = start.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


def _at(day: datetime, hour: int) -> datetime:
    return day.replace(hour=hour, minute=0, second=0, microsecond=0)


# Connectors that make Duckling treat the upper bound as inclusive in English.
_EN_RANGE = re.compile(r"\b(to|till?|until|through|thru|and)\b|[-–—]")
_PART_WORDS: dict[str, re.Pattern[str]] = {
    "morning": re.compile(r"\b(morning|mornings|manana|mananas)\b"),
    "afternoon": re.compile(r"\b(afternoon|afternoons|tarde|tardes)\b"),
    "evening": re.compile(r"\b(evening|evenings|tonight|night|nights|noche|noches)\b"),
}
_WEEKEND = re.compile(r"\b(weekend|fin de semana|finde)\b")
_AFTER_BEFORE = re.compile(
    r"(?:\b(?P<after>after|despues|luego|a partir|desde)"
    r"|\b(?P<before>before|until|till|antes|hasta))"
    r"\s+(?:de\s+|del\s+)?$"
)
_CLOCK_ONLY = frozenset({"desde", "hasta"})
_RELATIVE_DAYS = re.compile(
    r"^(?:(?:in|en|dentro\s+de)\s+\S+\s+(?:days?|dias?|weeks?|semanas?)"
    r"|\S+\s+(?:days?|weeks?)\s+from\s+(?:now|today))$"
)
_DENTRO_DE = re.compile(r"^dentro\s+de\b")
_SMALL_UNITS = re.compile(r"\b(hours?|horas?|minutes?|minutos?|mins?)\b")


def _part_of_day(raw: _Raw, span: _Span) -> When | None:
    """Duckling's part-of-day interval mapped to the clinic range, or None."""
    start, end = raw.start, raw.end
    if start is None or end is None or raw.start_grain != "hour":
        return None
    same_day = end.date() == start.date()
    next_midnight = end.date() == start.date() + timedelta(days=1) and end.hour == 0
    shape: str | None = None
    if same_day and start.hour in (0, 4) and end.hour == 12:
        shape = "morning"
    elif same_day and start.hour == 12 and end.hour == 19:
        shape = "afternoon"
    elif next_midnight and start.hour == 18:
        shape = "evening"
    if shape is None or not _PART_WORDS[shape].search(span.folded):
        return None
    lo, hi = PARTS_OF_DAY[shape]
    return When(_at(start, lo), _at(start, hi), "hour")


def _weekend(raw: _Raw, span: _Span) -> When | None:
    start, end = raw.start, raw.end
    if start is None or end is None or not _WEEKEND.search(span.folded):
        return None
    if start.weekday() == 4 and start.hour == 18 and end.weekday() == 0 and end.hour == 0:
        saturday = _floor(start, "day") + timedelta(days=1)
        return When(saturday, _floor(end, "day"), "day")
    return None


def _before(limit: datetime, grain: Grain, now: datetime) -> When:
    """An interval ending at ``limit`` ("before noon", "antes de las 3", "before friday")."""
    if grain in ("minute", "hour"):
        opening = _at(limit, DAY_START_HOUR)
        start = opening if limit > opening else _floor(limit, "day")
        return When(start, limit, grain)
    today = _floor(now, "day")
    start = today if today < limit else limit - timedelta(days=1)
    return When(start, limit, "day")


def _interpret(raw: _Raw, span: _Span, now: datetime) -> When | None:
    """One Duckling reading -> When, with the clinic corrections."""
    if raw.interval:
        return _interpret_interval(raw, span, now)
    assert raw.start is not None
    grain = _GRAINS.get(raw.start_grain or "", "day")
    start = _floor(raw.start, grain) if grain == "minute" else raw.start
    if grain in ("minute", "hour") and _RELATIVE_DAYS.match(span.folded.strip()):
        return When(_floor(start, "day"), None, "day")
    m = _AFTER_BEFORE.search(span.before)
    word = (m.group("after") or m.group("before")) if m else None
    if word is None or (word in _CLOCK_ONLY and grain not in ("minute", "hour")):
        # "desde el lunes tengo fiebre" is a symptom's start, "hasta mañana" a goodbye
        return When(start, None, grain)
    if m and m.group("after"):
        return When(start, None, grain, open_ended=True)
    return _before(start, grain, now)


def _interpret_interval(raw: _Raw, span: _Span, now: datetime) -> When | None:
    start, end = raw.start, raw.end
    # "dentro de 2 días" / "within 2 days" / "by friday": Duckling says [now, now + x).
    if (
        start is not None
        and end is not None
        and raw.start_grain == "second"
        and abs((start - now).total_seconds()) < 60
    ):
        if _DENTRO_DE.match(span.folded.strip()):
            if _SMALL_UNITS.search(span.folded):
                return When(_floor(end, "minute"), None, "minute")
            return When(_floor(end, "day"), None, "day")
        return When(_floor(start, "minute"), _floor(end, "minute"), "minute")
    pod = _part_of_day(raw, span) or _weekend(raw, span)
    if pod is not None:
        return pod
    if start is None:
        assert end is not None
        return _before(end, _GRAINS.get(raw.end_grain or "", "hour"), now)
    grain = _GRAINS.get(raw.start_grain or "", "hour")
    start = _floor(start, grain) if grain == "minute" else start
    if end is None:
        return When(start, None, grain, open_ended=True)
    end_grain = _GRAINS.get(raw.end_grain or "", grain)
    if span.lang == "en" and end_grain in ("minute", "hour") and _EN_RANGE.search(span.folded):
        # English "from 2 to 4" comes back as [14:00, 17:00): Duckling made "4" inclusive.
        step = timedelta(hours=1) if end_grain == "hour" else timedelta(minutes=1)
        if end - step > start:
            end = end - step
    if end <= start:
        return When(start, None, grain)
    return When(start, end, grain)


def _anchor(w: When) -> datetime:
    return w.start


def _is_future(w: When, now: datetime, open_ended: bool) -> bool:
    """Still usable at ``now``: a time not yet passed, a period or range not yet over.

    An open range ("after 9") counts from its day: said at 09:15 it still means today.
    """
    if w.end is not None:
        return w.end > now
    if open_ended:
        return _period_end(_floor(w.start, "day"), "day") > now
    if w.grain in ("minute", "hour"):
        return w.start >= _floor(now, "minute")
    return _period_end(w.start, w.grain) > now


def _ambiguous_hours(readings: list[_Raw]) -> bool:
    """True when Duckling offers both the am and pm reading of the same clock time."""
    seen: set[tuple[int, int, int]] = set()
    for r in readings:
        point, grain = (r.start, r.start_grain) if r.start is not None else (r.end, r.end_grain)
        if point is None or grain not in ("hour", "minute"):
            continue
        seen.add((point.hour % 12, point.minute, point.hour // 12))
    return any((h, m, 1 - half) in seen for (h, m, half) in seen)


def _daytime(w: When) -> bool:
    return DAY_START_HOUR <= _anchor(w).hour < DAY_END_HOUR


def _choose(readings: list[_Raw], span: _Span, now: datetime) -> When | None:
    options = [w for w in (_interpret(r, span, now) for r in readings) if w is not None]
    if not options:
        return None
    ambiguous = _ambiguous_hours(readings)
    open_ended = any(r.interval and r.end is None for r in readings) or bool(
        (m := _AFTER_BEFORE.search(span.before)) and m.group("after")
    )

    def rank(w: When) -> tuple[bool, bool]:
        return (_is_future(w, now, open_ended), (not ambiguous) or _daytime(w))

    best = options[0]
    if rank(best) == (True, True):
        return best
    for wanted in ((True, True), (True, False), (False, True)):
        for w in options:
            if rank(w) == wanted:
                return w
    return best


def _primary(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first expression: earliest start, then longest, then fewest readings."""

    def key(r: dict[str, Any]) -> tuple[int, int, int]:
        raw_start, raw_end = r.get("start"), r.get("end")
        start = raw_start if isinstance(raw_start, int) else 0
        end = raw_end if isinstance(raw_end, int) else start
        value = r.get("value")
        alts = value.get("values") if isinstance(value, dict) else None
        return (start, start - end, len(alts) if isinstance(alts, list) else 0)

    usable = [r for r in results if r.get("dim", "time") == "time"]
    return min(usable, key=key) if usable else None


# --------------------------------------------------------------------------- fallbacks

_BARE_PART: dict[str, tuple[re.Pattern[str], ...]] = {
    "en": (
        re.compile(
            r"^(?:(?:in\s+the|this|at|any|an?)\s+)?(?P<part>morning|afternoon|evening|night)s?"
            r"(?:\s+(?:please|pls|plz|works|is\s+fine|is\s+good|is\s+better|only|ok))?[.!]*$"
        ),
    ),
    "es": (
        re.compile(
            r"^(?:(?:por|en|de)\s+)?(?:la|las)?\s*(?P<part>manana|tarde|noche)s?"
            r"(?:\s+(?:por\s+favor|mejor|mejor\s+aun|solo|porfa))?[.!]*$"
        ),
    ),
}
_PART_ALIASES = {
    "morning": "morning",
    "manana": "morning",
    "afternoon": "afternoon",
    "tarde": "afternoon",
    "evening": "evening",
    "night": "evening",
    "noche": "evening",
}


def _bare_part_of_day(text: str, lang: str, now: datetime) -> When | None:
    """Short messages that are just a part of day ("morning", "por las tardes")."""
    folded = " ".join(_fold(text).split())
    for pattern in _BARE_PART.get(lang, ()):
        m = pattern.match(folded)
        if not m:
            continue
        if lang == "es" and m.group("part") == "manana" and not re.search(r"\bla", folded):
            return None  # a lone "mañana" is tomorrow; Duckling already answered that
        lo, hi = PARTS_OF_DAY[_PART_ALIASES[m.group("part")]]
        day = _floor(now, "day")
        if _at(day, hi) <= now:
            day = day + timedelta(days=1)
        return When(_at(day, lo), _at(day, hi), "hour")
    return None


# --------------------------------------------------------------------------- public


def _lang(lang: str) -> str:
    code = (lang or "en").strip().lower().replace("_", "-").split("-")[0]
    return code if code in ("en", "es") else "en"


def parse_when(text: str, lang: str, now: datetime, tz: str) -> When | None:
    """The first date/time in ``text`` as the patient means it, in zone ``tz``.

    ``lang`` is "en" or "es" (anything else is read as English). A naive ``now`` is
    taken as wall time in ``tz``. Returns None when there is no date/time, for lone
    numbers, and for any text Duckling cannot handle. Raises ValueError only for an
    unknown ``tz``.
    """
    tzinfo = zone(tz)
    now = now.replace(tzinfo=tzinfo) if now.tzinfo is None else now.astimezone(tzinfo)
    if not isinstance(text, str):
        return None
    cleaned = _clean(text)
    if not cleaned.strip() or _LONE_NUMBER.match(cleaned):
        return None
    code = _lang(lang)
    normalised = _normalise(cleaned, code)
    for piece in _pieces(normalised):
        results = _duckling_parse(piece, code, now, tz)
        result = _primary(results)
        if result is None:
            continue
        start = result.get("start")
        end = result.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
            start, end = 0, 0
        span = _Span(
            text=piece[start:end],
            folded=_fold(piece[start:end]),
            before=_fold(piece[:start]),
            lang=code,
        )
        when = _choose(_readings(result, tzinfo), span, now)
        if when is not None:
            return when
    return _bare_part_of_day(normalised, code, now)
