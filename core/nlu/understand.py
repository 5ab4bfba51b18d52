"""One call that says what the bot understood from a patient message.

``understand(text, lang, now, tz)`` combines language detection, intent
classification and date/time parsing into an :class:`Understanding`, whose
``to_json()`` is the object ``telemed understand --json`` prints (see the
public contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.nlu.intents import classify_intent
from core.nlu.language import detect_language
from core.nlu.timeparse import When, parse_when, zone

__all__ = ["Understanding", "detect_red_flags", "understand"]

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Understanding:
    text: str
    language: str
    intent: str
    when: When | None
    emergency: bool
    red_flags: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "language": self.language,
            "intent": self.intent,
            "when": self.when.to_json() if self.when is not None else None,
            "emergency": self.emergency,
            "red_flags": list(self.red_flags),
        }


def detect_red_flags(text: str, lang: str) -> tuple[str, ...]:
    """Ids of the red-flag rules that fire on ``text`` (sorted, unique); ``emergency``
    is any of them.

    See :mod:`core.nlu.redflags` for the rules and how text is read. ``lang`` is
    accepted for the contract but not used: both languages are always checked,
    because patients mix them and a missed emergency is the worst failure.
    """
    del lang
    from core.nlu.redflags import detect

    return tuple(sorted({flag.rule for flag in detect(text)}))


def _language(lang: str | None) -> str | None:
    if lang is None:
        return None
    code = lang.strip().lower().replace("_", "-").split("-")[0]
    return code if code in ("en", "es") else None


def understand(
    text: str, lang: str | None = None, now: datetime | None = None, tz: str = "UTC"
) -> Understanding:
    """What ``text`` says: language, intent, date/time, red flags.

    ``lang`` ("en"/"es"; "es-MX" etc. accepted) is detected when None or
    unsupported, defaulting to "en" when the text gives no signal. ``now``
    defaults to the current time; a naive ``now`` is wall time in ``tz``. When
    the text has no date/time in ``lang`` but clearly is the other language,
    the other language's parse is used. Raises ValueError only for an unknown
    ``tz``.
    """
    tzinfo = zone(tz)
    if now is None:
        now = datetime.now(tzinfo)
    given = _language(lang)
    detected = detect_language(text) if isinstance(text, str) else None
    language = given or detected or DEFAULT_LANGUAGE
    safe_text = text if isinstance(text, str) else ""
    intent = classify_intent(safe_text, language)
    when = parse_when(safe_text, language, now, tz)
    if when is None and detected is not None and detected != language:
        when = parse_when(safe_text, detected, now, tz)
    red_flags = detect_red_flags(safe_text, language)
    return Understanding(
        text=safe_text,
        language=language,
        intent=intent,
        when=when,
        emergency=bool(red_flags),
        red_flags=red_flags,
    )
