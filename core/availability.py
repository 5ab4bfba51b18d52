"""Editing a practitioner's availability: weekly hours and time off.

What this writes is exactly what :mod:`core.slots` reads on every search
(``AvailabilityRule`` and ``AvailabilityException`` rows); free slots are
computed on demand and nothing caches them, so a change shows up in the next
search with nothing to invalidate.

- Weekly hours: per weekday (Monday 0 .. Sunday 6) zero or more ranges in the
  practitioner's zone, each within one day: ``00:00 <= start < end <= 24:00``.
  24:00 is stored as ``time(0)``, which :mod:`core.slots` reads as the end of
  the day (an end at or before the start runs to the next day). Ranges of one
  day may touch (09:00-13:00 and 13:00-17:00) but not overlap.
  :func:`replace_hours` swaps the open-ended rules (no ``valid_from`` /
  ``valid_until``) for the new set in the caller's transaction; dated rules,
  which this editor does not show as editable, are kept.
- Time off: an ``off`` exception over an absolute range entered in the
  practitioner's zone, at most :data:`MAX_TIME_OFF` long.

Booked appointments are never moved or cancelled by a change here;
:func:`appointments_outside_hours` counts the upcoming ones that no longer fit,
so the page can warn.

Validation returns messages per field (for a form to show next to each
input), in plain English for staff; callers escape them on display.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.logs import get_logger
from core.models import (
    ACTIVE_STATUSES,
    Appointment,
    AvailabilityException,
    AvailabilityRule,
    Practitioner,
)
from core.slots import working_blocks

log = get_logger(__name__)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_RANGES_PER_DAY = 12
MAX_TIME_OFF = timedelta(days=366)
# How far ahead time off may start: a typo in the year ("2206") is a mistake,
# not a plan.
MAX_TIME_OFF_AHEAD = timedelta(days=3 * 366)
MAX_REASON = 200  # AvailabilityException.reason
END_OF_DAY = time(0)  # a stored end of 00:00 means 24:00

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::00)?$")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2})(?::00)?)?$")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class WeeklyRange:
    """One range of weekly hours; ``end`` of ``time(0)`` is 24:00."""

    weekday: int
    start: time
    end: time

    @property
    def minutes(self) -> tuple[int, int]:
        return _minutes(self.start), _minutes(self.end, end=True)

    @property
    def label(self) -> str:
        return format_range(self.start, self.end)


@dataclass(frozen=True)
class TimeOff:
    start: datetime  # UTC
    end: datetime
    reason: str | None


def _minutes(value: time, *, end: bool = False) -> int:
    total = value.hour * 60 + value.minute
    return _MINUTES_PER_DAY if end and total == 0 else total


def format_clock(value: time, *, end: bool = False) -> str:
    """``09:00``; an end of midnight is ``24:00``."""
    return "24:00" if end and value == END_OF_DAY else f"{value:%H:%M}"


def format_range(start: time, end: time) -> str:
    return f"{format_clock(start)}–{format_clock(end, end=True)}"


def parse_clock(text: str, *, end: bool = False) -> time:
    """``9:00``, ``09:00`` or ``09:00:00`` -> a time; ``24:00`` only as an end
    (returned as ``time(0)``, see :data:`END_OF_DAY`). ValueError with the
    message for anything else."""
    found = _CLOCK.match(text.strip())
    if found is None:
        raise ValueError("Not a time: use HH:MM, like 09:00.")
    hour, minute = int(found.group(1)), int(found.group(2))
    if end and hour == 24 and minute == 0:
        return END_OF_DAY
    if hour > 23 or minute > 59:
        raise ValueError("Not a time of day: use 00:00 to 24:00.")
    # As an end, 00:00 is the midnight that ends the day: the same as 24:00.
    return time(hour, minute)


# -- weekly hours ---------------------------------------------------------------------


def check_hours(
    days: Mapping[int, Sequence[tuple[str, str]]],
) -> tuple[list[WeeklyRange], dict[tuple[int, int], str]]:
    """Weekly hours as typed, ``{weekday: [(start, end), ...]}``, checked.

    A row with both times blank is skipped (an unused row of the form).
    Returns the ranges, sorted, and the problems keyed by ``(weekday, row)``
    (the row's index in that day's list); the ranges are to be used only when
    there are no problems.
    """
    ranges: list[WeeklyRange] = []
    problems: dict[tuple[int, int], str] = {}
    for weekday, rows in days.items():
        if not 0 <= weekday <= 6:
            continue
        filled = [
            (i, s.strip(), e.strip()) for i, (s, e) in enumerate(rows) if s.strip() or e.strip()
        ]
        if len(filled) > MAX_RANGES_PER_DAY:
            problems[(weekday, filled[MAX_RANGES_PER_DAY][0])] = (
                f"At most {MAX_RANGES_PER_DAY} ranges a day."
            )
            continue
        good: list[tuple[int, WeeklyRange]] = []
        for i, start_text, end_text in filled:
            if not start_text or not end_text:
                problems[(weekday, i)] = "Enter both a start and an end time."
                continue
            try:
                start = parse_clock(start_text)
            except ValueError as exc:
                problems[(weekday, i)] = f"Start: {exc}"
                continue
            try:
                end = parse_clock(end_text, end=True)
            except ValueError as exc:
                problems[(weekday, i)] = f"End: {exc}"
                continue
            candidate = WeeklyRange(weekday, start, end)
            lo, hi = candidate.minutes
            if hi <= lo:
                problems[(weekday, i)] = (
                    "The end must be after the start (hours cannot run past midnight: "
                    "end at 24:00 and go on next day)."
                )
                continue
            good.append((i, candidate))
        good.sort(key=lambda pair: pair[1].minutes)
        reach: WeeklyRange | None = None  # of the ranges so far, the one ending last
        for i, r in good:
            if reach is not None and r.minutes[0] < reach.minutes[1]:
                problems[(weekday, i)] = f"Overlaps {reach.label} on the same day."
            if reach is None or r.minutes[1] > reach.minutes[1]:
                reach = r
        ranges += [r for _, r in good]
    ranges.sort(key=lambda r: (r.weekday, r.minutes))
    return ranges, problems


def _lock(session: Session, practitioner_id: int) -> None:
    """Take the practitioner's row lock, as bookings do, so a booking running
    now sees either the old hours or the new ones, never a mix."""
    session.execute(
        select(Practitioner.id)
        .where(Practitioner.id == practitioner_id)
        .with_for_update(key_share=True)
    )


def weekly_rules(session: Session, practitioner_id: int) -> list[AvailabilityRule]:
    """All weekly rules, by weekday and start (dated ones included)."""
    return list(
        session.scalars(
            select(AvailabilityRule)
            .where(AvailabilityRule.practitioner_id == practitioner_id)
            .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time, AvailabilityRule.id)
        )
    )


def is_open_ended(rule: AvailabilityRule) -> bool:
    return rule.valid_from is None and rule.valid_until is None


def replace_hours(session: Session, practitioner_id: int, ranges: Sequence[WeeklyRange]) -> None:
    """The practitioner's open-ended weekly hours become ``ranges`` (checked
    with :func:`check_hours`). Appointments are not touched."""
    _lock(session, practitioner_id)
    session.execute(
        delete(AvailabilityRule).where(
            AvailabilityRule.practitioner_id == practitioner_id,
            AvailabilityRule.valid_from.is_(None),
            AvailabilityRule.valid_until.is_(None),
        )
    )
    for r in ranges:
        session.add(
            AvailabilityRule(
                practitioner_id=practitioner_id,
                weekday=r.weekday,
                start_time=r.start,
                end_time=r.end,
            )
        )
    session.flush()
    log.info("hours_replaced", practitioner_id=practitioner_id, ranges=len(ranges))


# -- time off -------------------------------------------------------------------------


def parse_local(text: str, zone: ZoneInfo, *, end: bool = False) -> datetime:
    """``2026-04-18T09:00`` (what a datetime-local input sends), ``2026-04-18
    09:00`` or a bare date, in ``zone`` -> UTC. A bare date is the start of
    that day, or as an end the end of it (so 18 to 19 April is two whole
    days). ValueError with the message for anything else."""
    found = _DATETIME.match(text.strip())
    if found is None:
        raise ValueError("Not a date and time: use YYYY-MM-DD HH:MM.")
    year, month, day = (int(found.group(n)) for n in (1, 2, 3))
    try:
        on = date(year, month, day)
    except ValueError:
        raise ValueError("No such date.") from None
    if found.group(4) is None:
        at = time(0)
        if end:
            on += timedelta(days=1)
    else:
        at = parse_clock(f"{found.group(4)}:{found.group(5)}")
    return datetime.combine(on, at, zone).astimezone(UTC)


def check_time_off(
    start_text: str, end_text: str, reason: str, zone: ZoneInfo, now: datetime
) -> tuple[TimeOff | None, dict[str, str]]:
    """Time off as typed: problems keyed ``from``, ``to`` and ``reason``."""
    problems: dict[str, str] = {}
    start = end = None
    if not start_text.strip():
        problems["from"] = "Enter when the time off starts."
    else:
        try:
            start = parse_local(start_text, zone)
        except ValueError as exc:
            problems["from"] = str(exc)
    if not end_text.strip():
        problems["to"] = "Enter when the time off ends."
    else:
        try:
            end = parse_local(end_text, zone, end=True)
        except ValueError as exc:
            problems["to"] = str(exc)
    if start is not None and end is not None:
        if end <= start:
            problems["to"] = "The end must be after the start."
        elif end - start > MAX_TIME_OFF:
            problems["to"] = "At most a year at a time: add longer time off in parts."
        elif end <= now:
            problems["to"] = "That time is already past."
        elif start > now + MAX_TIME_OFF_AHEAD:
            problems["from"] = "That is more than three years ahead: check the year."
    text = " ".join(reason.split())
    if len(text) > MAX_REASON:
        problems["reason"] = f"At most {MAX_REASON} characters."
    if problems or start is None or end is None:
        return None, problems
    return TimeOff(start, end, text or None), problems


def add_time_off(session: Session, practitioner_id: int, off: TimeOff) -> AvailabilityException:
    _lock(session, practitioner_id)
    row = AvailabilityException(
        practitioner_id=practitioner_id,
        kind="off",
        start_at=off.start,
        end_at=off.end,
        reason=off.reason,
    )
    session.add(row)
    session.flush()
    log.info("time_off_added", practitioner_id=practitioner_id, exception_id=row.id)
    return row


def remove_time_off(session: Session, practitioner_id: int, exception_id: int) -> bool:
    """Removes one exception of this practitioner; False when there is none."""
    _lock(session, practitioner_id)
    row = session.get(AvailabilityException, exception_id)
    if row is None or row.practitioner_id != practitioner_id:
        return False
    session.delete(row)
    session.flush()
    log.info("time_off_removed", practitioner_id=practitioner_id, exception_id=exception_id)
    return True


def upcoming_exceptions(
    session: Session, practitioner_ids: Sequence[int], now: datetime, *, limit: int = 200
) -> list[AvailabilityException]:
    """Time off and extra hours not over yet, soonest first."""
    if not practitioner_ids:
        return []
    return list(
        session.scalars(
            select(AvailabilityException)
            .where(
                AvailabilityException.practitioner_id.in_(practitioner_ids),
                AvailabilityException.end_at > now,
            )
            .order_by(AvailabilityException.start_at, AvailabilityException.id)
            .limit(limit)
        )
    )


# -- effects on booked appointments ----------------------------------------------------


def appointments_outside_hours(session: Session, practitioner: Practitioner, now: datetime) -> int:
    """Upcoming booked or confirmed appointments that no longer lie inside the
    practitioner's working time (weekly hours and extras, minus time off)."""
    rows = list(
        session.execute(
            select(Appointment.start_at, Appointment.end_at)
            .where(
                Appointment.practitioner_id == practitioner.id,
                Appointment.start_at >= now,
                Appointment.status.in_([s for s in ACTIVE_STATUSES if s != "held"]),
            )
            .order_by(Appointment.start_at)
        )
    )
    if not rows:
        return 0
    blocks = working_blocks(session, practitioner, rows[0][0], max(end for _, end in rows))
    outside = 0
    i = 0
    for start, end in rows:
        while i < len(blocks) and blocks[i][1] <= start:
            i += 1
        if not (i < len(blocks) and blocks[i][0] <= start and end <= blocks[i][1]):
            outside += 1
    return outside
