"""Reading a Rasa tracker's slots the way the rest of the service reads words.

A time comes from Rasa's Duckling extractor (an ISO string, or an interval
``{"from": ..., "to": ...}``, with the grain in the entity's
``additional_info``) or as free text ("tomorrow morning"), which goes
through the service's own parser. Values Rasa sends as numbers, lists or
booleans are taken as the text they stand for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from core.nlu import When, parse_when
from core.nlu.timeparse import Grain
from flows.booking import window_from_when

from .turn import Turn

GRAINS: tuple[Grain, ...] = ("minute", "hour", "day", "week", "month")


class BadSlot(ValueError):
    """A slot whose value cannot be read (the key of the clarifying reply in ``key``)."""

    def __init__(self, slot: str, key: str) -> None:
        super().__init__(f"{slot}: unreadable")
        self.slot = slot
        self.key = key


@dataclass(frozen=True)
class Wanted:
    """The start times a patient's words allow: [lo, hi), or one ``exact`` moment."""

    lo: datetime
    hi: datetime
    exact: bool


def text_of(value: Any) -> str | None:
    """A slot value as stripped text; None when empty."""
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def slot_text(tracker: Any, name: str) -> str | None:
    return text_of(tracker.get_slot(name))


def latest_entity(tracker: Any, name: str) -> str | None:
    """The entity ``name`` in the patient's latest message (a button tapped now),
    not a slot left over from earlier in the conversation."""
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if isinstance(entity, dict) and entity.get("entity") == name:
            found = text_of(entity.get("value"))
            if found is not None:
                return found
    return None


def slot_id(tracker: Any, name: str) -> int | None:
    """An id slot (set by our own buttons); None when absent or not a positive number."""
    text = slot_text(tracker, name)
    if text is None:
        return None
    try:
        value = int(float(text))
    except ValueError:
        return None
    return value if 0 < value < 2**31 else None


def parse_instant(text: str, tz: str) -> datetime | None:
    """An ISO 8601 moment (naive ones in ``tz``), as UTC; None if it is not one."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def _duckling_grain(tracker: Any) -> Grain | None:
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if not isinstance(entity, dict) or entity.get("entity") != "time":
            continue
        info = entity.get("additional_info")
        grain = info.get("grain") if isinstance(info, dict) else None
        if grain in GRAINS:
            return cast(Grain, grain)
        if grain in ("second",):
            return "minute"
    return None


def _from_instant(start: datetime, grain: Grain | None, tz: str) -> When:
    if grain is None:
        # No grain said: local midnight means the day, anything else that moment.
        local = start.astimezone(ZoneInfo(tz))
        grain = "day" if (local.hour, local.minute) == (0, 0) else "minute"
    return When(start=start, end=None, grain=grain)


def wanted_time(turn: Turn, tracker: Any, slot: str = "time") -> Wanted | None:
    """The ``time`` slot as a window of start times; None when it is empty.

    Raises BadSlot for a value that is no time, one already past, or one
    beyond the practitioner's horizon (checked by the caller).
    """
    value = tracker.get_slot(slot)
    when: When | None
    if isinstance(value, dict):
        lo_text, hi_text = text_of(value.get("from")), text_of(value.get("to"))
        lo = parse_instant(lo_text, turn.tz) if lo_text else None
        hi = parse_instant(hi_text, turn.tz) if hi_text else None
        if (lo_text and lo is None) or (hi_text and hi is None) or (lo is None and hi is None):
            raise BadSlot(slot, "booking.day_again")
        if lo is None:
            lo = turn.now
        if hi is None:
            # "after 3": from then to the end of that day.
            day = lo.astimezone(ZoneInfo(turn.tz)).date() + timedelta(days=1)
            hi = datetime.combine(day, datetime.min.time(), ZoneInfo(turn.tz)).astimezone(UTC)
        if hi <= lo:
            raise BadSlot(slot, "booking.day_again")
        return _checked(turn, Wanted(lo, hi, exact=False), slot)
    text = text_of(value)
    if text is None:
        return None
    instant = parse_instant(text, turn.tz)
    if instant is not None:
        when = _from_instant(instant, _duckling_grain(tracker), turn.tz)
    else:
        when = parse_when(text[:200], turn.lang, turn.now, turn.tz)
    if when is None:
        raise BadSlot(slot, "booking.day_again")
    lo, hi = window_from_when(when)
    exact = when.grain in ("minute", "hour") and hi - lo <= timedelta(minutes=1)
    return _checked(turn, Wanted(lo, hi, exact), slot)


def _checked(turn: Turn, wanted: Wanted, slot: str) -> Wanted:
    if wanted.hi <= turn.now:
        raise BadSlot(slot, "booking.past")
    return wanted
