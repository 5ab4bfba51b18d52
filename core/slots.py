"""Free slots, computed on demand from a practitioner's availability.

Nothing is pre-generated. For a range of time we build the practitioner's
*working blocks*: the weekly :class:`AvailabilityRule` hours laid out on the
local calendar of the practitioner's zone (so 09:00 stays 09:00 local across a
DST change), united with ``extra`` exceptions, minus ``off`` exceptions, with
touching pieces merged. Slots of ``slot_minutes`` are aligned to the start of
each block and must end inside it.

A slot is *free* when ``[start - buffer_before, end + buffer_after)`` overlaps
no active appointment of the practitioner, and no active appointment's own
``[start - buffer_before, end + buffer_after)`` overlaps the slot. Checking
both ways keeps the answer independent of booking order; it comes down to
"at least ``max(buffer_before, buffer_after)`` between any two appointments"
(see :func:`buffer_gap`). A ``held`` appointment whose ``hold_expires_at <=
now`` is not active any more for this purpose.

Bookable starts lie in ``[now + min_notice, now + horizon_days]`` (never
before ``now``).

Busy intervals are read a bounded window at a time (one day first, doubling),
with only the two time columns selected, so finding the next few free slots
costs a handful of small indexed range queries however many appointments the
practitioner has. The range scans rely on no appointment being longer than
:data:`MAX_APPOINTMENT_LENGTH`; :mod:`core.scheduling` refuses longer ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from core.models import (
    ACTIVE_STATUSES,
    Appointment,
    AvailabilityException,
    AvailabilityRule,
    Practitioner,
)

# No appointment may be longer than this: busy-time range scans look back this
# far from a window's start (keeps the (practitioner_id, start_at) index useful).
MAX_APPOINTMENT_LENGTH = timedelta(hours=24)

_DAY = timedelta(days=1)
_FIRST_WINDOW = timedelta(days=1)  # first busy-interval window; doubles each time
_CHUNK = timedelta(days=7)  # working blocks are laid out a week at a time
_ZERO = timedelta(0)
_TICK = timedelta(microseconds=1)  # turns an exclusive bound into an inclusive one

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Slot:
    practitioner_id: int
    start: datetime  # tz-aware UTC
    end: datetime


def aware(value: datetime, name: str) -> datetime:
    """``value`` in UTC; a naive datetime is a programming error (ValueError)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a tz-aware datetime, got naive {value!r}")
    return value.astimezone(UTC)


def describe(value: datetime, timezone: str, *, date: bool = True) -> str:
    """An instant for operators in ``timezone``: ``2026-04-14 09:00 EDT`` (or ``09:00 EDT``)."""
    local = value.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}" if date else f"{local:%H:%M} {local.tzname()}"


def buffer_gap(p: Practitioner) -> timedelta:
    """The free time a patient booking needs between it and any other appointment.

    A new slot's ``[start - before, end + after)`` must not touch an existing
    appointment, nor an existing appointment's padded range touch the slot;
    on either side that is a gap of ``max(before, after)``.
    """
    return timedelta(minutes=max(p.buffer_before_minutes, p.buffer_after_minutes, 0))


# -- policy -----------------------------------------------------------------------


class _Policy(NamedTuple):
    practitioner_id: int
    slot: timedelta
    gap: timedelta  # buffer_gap()
    earliest: datetime  # first bookable start (inclusive)
    latest: datetime  # last bookable start (inclusive)


def _policy(p: Practitioner, now: datetime) -> _Policy:
    return _Policy(
        practitioner_id=p.id,
        slot=timedelta(minutes=p.slot_minutes),
        gap=buffer_gap(p),
        earliest=max(now, now + timedelta(minutes=p.min_notice_minutes)),
        latest=now + timedelta(days=p.horizon_days),
    )


# -- working blocks ---------------------------------------------------------------


_RuleRow = tuple[time, time, date | None, date | None]


def _union(intervals: list[Interval]) -> list[Interval]:
    """Sorted, disjoint; touching intervals merge (09-13 + 13-17 is one block)."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _subtract(blocks: list[Interval], holes: list[Interval]) -> list[Interval]:
    """``blocks`` minus ``holes``; both sorted and disjoint."""
    if not holes:
        return blocks
    out: list[Interval] = []
    i = 0
    for start, end in blocks:
        while i < len(holes) and holes[i][1] <= start:
            i += 1
        j = i
        cursor = start
        while j < len(holes) and holes[j][0] < end:
            hole_start, hole_end = holes[j]
            if hole_start > cursor:
                out.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
            if cursor >= end:
                break
            j += 1
        if cursor < end:
            out.append((cursor, end))
    return out


_RULES = select(
    AvailabilityRule.weekday,
    AvailabilityRule.start_time,
    AvailabilityRule.end_time,
    AvailabilityRule.valid_from,
    AvailabilityRule.valid_until,
).where(AvailabilityRule.practitioner_id == bindparam("pid"))

_EXCEPTIONS = select(
    AvailabilityException.kind,
    AvailabilityException.start_at,
    AvailabilityException.end_at,
).where(
    AvailabilityException.practitioner_id == bindparam("pid"),
    AvailabilityException.start_at < bindparam("hi"),
    AvailabilityException.end_at > bindparam("lo"),
)


class _Calendar:
    """Working time of one practitioner over ``[lo, hi)``: rules and exceptions read once.

    Rules are laid out for every local date from the day before a range to the
    day after it, so a block is exact unless it runs unbroken for more than a
    day (then it is cut at that margin).
    """

    def __init__(self, session: Session, p: Practitioner, lo: datetime, hi: datetime) -> None:
        self.zone = ZoneInfo(p.timezone)
        self.rules: dict[int, list[_RuleRow]] = {}
        for weekday, opens, closes, valid_from, valid_until in session.execute(
            _RULES, {"pid": p.id}
        ):
            self.rules.setdefault(weekday, []).append((opens, closes, valid_from, valid_until))
        self.extras: list[Interval] = []
        self.offs: list[Interval] = []
        margin = 2 * _DAY  # covers the one-local-day margin in any zone
        for kind, start, end in session.execute(
            _EXCEPTIONS, {"pid": p.id, "lo": lo - margin, "hi": hi + margin}
        ):
            if kind == "extra":
                self.extras.append((start, end))
            elif kind == "off":
                self.offs.append((start, end))

    def blocks(self, lo: datetime, hi: datetime) -> list[Interval]:
        """Working blocks (UTC), sorted and disjoint, that touch ``[lo, hi)``."""
        zone = self.zone
        first = lo.astimezone(zone).date() - _DAY
        last = hi.astimezone(zone).date() + _DAY
        pieces: list[Interval] = []
        if self.rules:
            day = first
            while day <= last:
                for start_t, end_t, valid_from, valid_until in self.rules.get(day.weekday(), ()):
                    if (valid_from is not None and day < valid_from) or (
                        valid_until is not None and day > valid_until
                    ):
                        continue
                    start = datetime.combine(day, start_t, zone).astimezone(UTC)
                    # An end at or before the start runs past midnight (00:00 = end of day).
                    end_day = day if end_t > start_t else day + _DAY
                    end = datetime.combine(end_day, end_t, zone).astimezone(UTC)
                    pieces.append((start, end))
                day += _DAY
        span_lo = datetime.combine(first, time(), zone).astimezone(UTC)
        span_hi = datetime.combine(last + _DAY, time(), zone).astimezone(UTC)
        pieces += [(s, e) for s, e in self.extras if s < span_hi and e > span_lo]
        offs = [(s, e) for s, e in self.offs if s < span_hi and e > span_lo]
        blocks = _subtract(_union(pieces), _union(offs))
        return [(s, e) for s, e in blocks if e > lo and s < hi]

    def iter_blocks(self, lo: datetime, hi: datetime) -> Iterator[Interval]:
        """Blocks touching ``[lo, hi)`` in order, worked out a week at a time."""
        cursor = lo
        emitted: datetime | None = None  # end of the last block yielded
        while cursor < hi:
            chunk_hi = min(cursor + _CHUNK, hi)
            for start, end in self.blocks(cursor, chunk_hi):
                if emitted is not None and start < emitted:
                    # Spans the chunk boundary: yielded with the previous chunk, except
                    # what that chunk's one-day margin cut off (round-the-clock hours).
                    if end <= emitted:
                        continue
                    start = emitted
                yield start, end
                emitted = end
            cursor = chunk_hi


def working_blocks(session: Session, p: Practitioner, lo: datetime, hi: datetime) -> list[Interval]:
    """The practitioner's working blocks (UTC), sorted and disjoint, that touch ``[lo, hi)``."""
    return _Calendar(session, p, lo, hi).blocks(lo, hi)


def _slot_starts(blocks: Iterable[Interval], slot: timedelta, lo: datetime) -> Iterator[datetime]:
    """Slot starts >= ``lo`` aligned to each block's start, fitting in the block."""
    for block_start, block_end in blocks:
        start = block_start
        if lo > block_start:
            start = block_start + slot * -((block_start - lo) // slot)  # ceil
        while start + slot <= block_end:
            yield start
            start += slot


# -- busy time --------------------------------------------------------------------


_BUSY_COLUMNS = select(Appointment.start_at, Appointment.end_at).where(
    Appointment.practitioner_id == bindparam("pid"),
    Appointment.start_at < bindparam("hi"),
    Appointment.status.in_(ACTIVE_STATUSES),
    or_(
        Appointment.status != "held",
        Appointment.hold_expires_at.is_(None),
        Appointment.hold_expires_at > bindparam("now"),
    ),
)
# The first window also catches appointments that began before it (bounded look-back);
# later windows continue exactly where the previous one stopped.
_BUSY_FIRST = _BUSY_COLUMNS.where(
    Appointment.start_at >= bindparam("lookback"), Appointment.end_at > bindparam("lo")
).order_by(Appointment.start_at)
_BUSY_NEXT = _BUSY_COLUMNS.where(Appointment.start_at >= bindparam("lo")).order_by(
    Appointment.start_at
)


class Occupant(NamedTuple):
    id: int
    patient_id: int
    status: str
    hold_expires_at: datetime | None
    start_at: datetime
    end_at: datetime


def active_overlapping(
    session: Session, practitioner_id: int, lo: datetime, hi: datetime
) -> list[Occupant]:
    """Active appointments (expired holds included) overlapping ``[lo, hi)``, earliest first."""
    rows = session.execute(
        select(
            Appointment.id,
            Appointment.patient_id,
            Appointment.status,
            Appointment.hold_expires_at,
            Appointment.start_at,
            Appointment.end_at,
        )
        .where(
            Appointment.practitioner_id == practitioner_id,
            Appointment.start_at < hi,
            Appointment.start_at >= lo - MAX_APPOINTMENT_LENGTH,
            Appointment.end_at > lo,
            Appointment.status.in_(ACTIVE_STATUSES),
        )
        .order_by(Appointment.start_at)
    )
    return [Occupant(*row) for row in rows]


def is_live(status: str, hold_expires_at: datetime | None, now: datetime) -> bool:
    """Does an active-status appointment still occupy its time at ``now``?"""
    return status != "held" or hold_expires_at is None or hold_expires_at > now


class _Busy:
    """Busy time of one practitioner, read lazily a growing window at a time.

    Appointments are widened by the buffer gap on both sides and merged, so a
    slot ``[s, e)`` is free iff it overlaps none of them.
    """

    def __init__(self, session: Session, policy: _Policy, now: datetime) -> None:
        self._session = session
        self._policy = policy
        self._now = now
        self._intervals: list[Interval] = []
        self._index = 0
        self._fetched_hi: datetime | None = None
        self._window = _FIRST_WINDOW

    def _fetch(self, lo: datetime, hi: datetime, first: bool) -> None:
        params = {"pid": self._policy.practitioner_id, "lo": lo, "hi": hi, "now": self._now}
        if first:
            params["lookback"] = lo - MAX_APPOINTMENT_LENGTH
        rows = self._session.execute(_BUSY_FIRST if first else _BUSY_NEXT, params)
        gap = self._policy.gap
        merged = self._intervals
        for start, end in rows:
            start, end = start - gap, end + gap
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))

    def is_free(self, start: datetime, end: datetime) -> bool:
        """Calls must come in non-decreasing ``start`` order."""
        need_lo = start - self._policy.gap
        need_hi = end + self._policy.gap
        if self._fetched_hi is None:
            self._fetched_hi = max(need_lo + self._window, need_hi)
            self._fetch(need_lo, self._fetched_hi, first=True)
        while need_hi > self._fetched_hi:
            self._window *= 2
            lo = self._fetched_hi
            self._fetched_hi = max(lo + self._window, need_hi)
            self._fetch(lo, self._fetched_hi, first=False)
        intervals = self._intervals
        i = self._index
        while i < len(intervals) and intervals[i][1] <= start:
            i += 1
        self._index = i
        return not (i < len(intervals) and intervals[i][0] < end)


# -- free slots -------------------------------------------------------------------


def _iter_free(
    session: Session,
    p: Practitioner,
    policy: _Policy,
    now: datetime,
    lo: datetime,
    hi: datetime,
) -> Iterator[Slot]:
    """Free slots with ``lo <= start <= hi``, earliest first (bounds already clipped)."""
    if not p.active or policy.slot <= _ZERO or hi < lo:
        return
    blocks = _Calendar(session, p, lo, hi + policy.slot).iter_blocks(lo, hi + policy.slot)
    busy = _Busy(session, policy, now)
    for start in _slot_starts(blocks, policy.slot, lo):
        if start > hi:
            return
        end = start + policy.slot
        if busy.is_free(start, end):
            yield Slot(policy.practitioner_id, start, end)


def free_slots(
    session: Session,
    practitioner: Practitioner,
    *,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 10,
) -> list[Slot]:
    """The next ``limit`` free slots, earliest first.

    ``start``/``end`` bound the slot *starts*: ``start <= slot.start < end``
    (a one-minute window asks for one exact time); they are further clipped to
    the bookable range ``[now + min_notice, now + horizon_days]``.
    """
    now = aware(now, "now")
    policy = _policy(practitioner, now)
    lo = policy.earliest if start is None else max(policy.earliest, aware(start, "start"))
    hi = policy.latest
    if end is not None:
        hi = min(hi, aware(end, "end") - _TICK)
    found: list[Slot] = []
    if limit <= 0:
        return found
    for slot in _iter_free(session, practitioner, policy, now, lo, hi):
        found.append(slot)
        if len(found) >= limit:
            break
    return found


def nearest_free_slots(
    session: Session,
    practitioner: Practitioner,
    around: datetime,
    *,
    now: datetime,
    limit: int = 3,
) -> list[Slot]:
    """The ``limit`` free slots whose start is closest to ``around``, earliest first.

    Closeness is ``abs(slot.start - around)``; on a tie the later slot wins.
    The search widens around ``around`` (a day, doubling) until it is sure no
    closer slot exists or it covers the whole bookable range.
    """
    now = aware(now, "now")
    around = aware(around, "around")
    policy = _policy(practitioner, now)
    if limit <= 0:
        return []

    def closeness(slot: Slot) -> tuple[timedelta, bool]:
        return abs(slot.start - around), slot.start < around

    reach = _DAY
    while True:
        lo = max(policy.earliest, around - reach)
        hi = min(policy.latest, around + reach)
        found = list(_iter_free(session, practitioner, policy, now, lo, hi))
        best = sorted(found, key=closeness)[:limit]
        everything = lo == policy.earliest and hi == policy.latest
        if everything or (len(best) == limit and abs(best[-1].start - around) < reach):
            return sorted(best, key=lambda s: s.start)
        reach *= 2


def rule_problem(
    session: Session, practitioner: Practitioner, start: datetime, *, now: datetime
) -> str | None:
    """Why ``start`` is not a bookable slot by the rules (busy time aside), or None."""
    start = aware(start, "start")
    now = aware(now, "now")
    p = practitioner
    policy = _policy(p, now)
    when = describe(start, p.timezone)
    if not p.active:
        return f"{p.name} is not taking bookings"
    if policy.slot <= _ZERO:
        return f"{p.name} has no slot length configured"
    if start < now:
        return f"{when} is in the past"
    if start < policy.earliest:
        return f"{when} is too soon: {p.name} needs {p.min_notice_minutes} minutes' notice"
    if start > policy.latest:
        return f"{when} is beyond the {p.horizon_days}-day booking horizon"
    end = start + policy.slot
    for block_start, block_end in working_blocks(session, p, start, end):
        if block_start <= start and end <= block_end:
            if (start - block_start) % policy.slot == _ZERO:
                return None
            first = describe(block_start, p.timezone)
            return (
                f"{when} is not a slot start: {p.name}'s {p.slot_minutes}-minute slots "
                f"start from {first}"
            )
    return f"{p.name} is not working at {when}"


def is_slot_free(
    session: Session, practitioner: Practitioner, start: datetime, *, now: datetime
) -> bool:
    """Is ``start`` a real slot by the rules, and free (buffers included)?"""
    start = aware(start, "start")
    now = aware(now, "now")
    if rule_problem(session, practitioner, start, now=now) is not None:
        return False
    policy = _policy(practitioner, now)
    return _Busy(session, policy, now).is_free(start, start + policy.slot)
