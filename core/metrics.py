"""Numbers for the operator: the weekly report (``telemed report``) and the
current totals behind ``GET /metrics``.

Everything is counted from the tables, so it survives restarts and is the
same whichever process asks:

* **reminders sent**: ``reminder`` notifications put in the outbox
  (``queued_at``). **Answered**, **confirmed**, **rescheduled**, **cancelled**:
  of those, the ones the patient answered at all, and the ones whose answer
  was ``confirm``, ``reschedule`` or ``cancel`` (a reminder answered by
  changing or cancelling the visit). In the weekly report an answer counts in
  the week its reminder was *sent*, so answered <= sent within each week.
* **visits due**: appointments whose start has passed (and falls in the week)
  that were ``completed``, ``no_show``, or are still ``booked``/``confirmed``
  (no one marked them otherwise: they are taken to have happened).
  Cancelled and held ones never were visits.
* **no-show rate** = no-shows / visits due; ``None`` when no visit was due.
* **waitlist offers sent**: ``waitlist_offer`` notifications put in the
  outbox; **fills**: the offers answered ``take`` (the slot was booked), in the
  week the offer was sent.
* **outbox pending**: outbox rows not yet handed to a provider (``pending``,
  including retries waiting for their next attempt, and ``sending``), and the
  age of the oldest of them.

Weeks start on Monday 00:00 in the clinic's zone. Counting is set-based: each
row's week is a ``CASE`` over the week boundaries (UTC instants computed here,
so DST is right and no dialect's date functions are needed), grouped in SQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, literal_column, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core import outbox
from core.models import Appointment, Notification, OutboxMessage

MAX_WEEKS = 104
DEFAULT_WEEKS = 4

# Reminder answers the report counts on their own (core.notices.record_answer).
CONFIRM, RESCHEDULE, CANCEL = "confirm", "reschedule", "cancel"
REMINDER_ANSWERS = (CONFIRM, RESCHEDULE, CANCEL)
FILL = "take"  # a waitlist offer answered "take" booked the slot
# Appointment statuses of a visit that was due once its start passed.
VISIT_STATUSES = ("completed", "no_show", "booked", "confirmed")
_KINDS = ("reminder", "waitlist_offer")


@dataclass(frozen=True)
class WeekRow:
    """One week of the report; the field names are the JSON keys."""

    week_start: date
    reminders_sent: int = 0
    reminders_answered: int = 0
    reminders_confirmed: int = 0
    reminders_rescheduled: int = 0
    reminders_cancelled: int = 0
    visits_due: int = 0
    no_shows: int = 0
    no_show_rate: float | None = None
    waitlist_offers_sent: int = 0
    waitlist_fills: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["week_start"] = self.week_start.isoformat()
        if self.no_show_rate is not None:
            data["no_show_rate"] = round(self.no_show_rate, 4)
        return data


@dataclass(frozen=True)
class Totals:
    """All-time numbers and the outbox's state, for Prometheus."""

    reminders_sent: int = 0
    # Every answer a sent reminder got, by value (confirm, reschedule, cancel, stale...).
    reminders_answered: dict[str, int] = field(default_factory=dict)
    visits_due: int = 0
    no_shows: int = 0
    waitlist_offers_sent: int = 0
    waitlist_fills: int = 0
    outbox_pending: int = 0
    outbox_oldest_pending_seconds: float = 0.0


def no_show_rate(no_shows: int, visits_due: int) -> float | None:
    return no_shows / visits_due if visits_due else None


def week_starts(now: datetime, zone: ZoneInfo, weeks: int) -> list[date]:
    """The Mondays (local dates) of the last ``weeks`` weeks, oldest first;
    the last one is the current week's."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise ValueError(f"weeks must be from 1 to {MAX_WEEKS}, not {weeks}")
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _week_of(
    column: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    bounds: Sequence[datetime],
) -> ColumnElement[Any]:
    """The index of the week ``column`` falls in, given ``len(weeks) + 1``
    ascending boundaries (rows outside them are filtered out by the caller)."""
    return case(
        *[(column < bounds[i + 1], literal_column(str(i))) for i in range(len(bounds) - 1)],
        else_=literal_column("-1"),
    )


def weekly_report(
    session: Session, *, now: datetime, zone: ZoneInfo, weeks: int = DEFAULT_WEEKS
) -> list[WeekRow]:
    """The last ``weeks`` weeks (the current one included, up to ``now``), oldest first."""
    mondays = week_starts(now, zone, weeks)
    bounds = [_midnight(d, zone) for d in [*mondays, mondays[-1] + timedelta(weeks=1)]]
    first, last = bounds[0], bounds[-1]

    n = Notification
    sent = (
        select(_week_of(n.queued_at, bounds).label("week"), n.kind, n.answer)
        .where(n.kind.in_(_KINDS), n.queued_at >= first, n.queued_at < last)
        .subquery()
    )
    notes: Counter[tuple[int, str, str | None]] = Counter()
    for week, kind, answer, count in session.execute(
        select(sent.c.week, sent.c.kind, sent.c.answer, func.count()).group_by(
            sent.c.week, sent.c.kind, sent.c.answer
        )
    ):
        notes[(int(week), kind, answer)] += int(count)

    a = Appointment
    due = (
        select(_week_of(a.start_at, bounds).label("week"), a.status)
        .where(
            a.status.in_(VISIT_STATUSES),
            a.start_at >= first,
            a.start_at < last,
            a.start_at < now,
        )
        .subquery()
    )
    visits: Counter[tuple[int, str]] = Counter()
    for week, status, count in session.execute(
        select(due.c.week, due.c.status, func.count()).group_by(due.c.week, due.c.status)
    ):
        visits[(int(week), status)] += int(count)

    rows: list[WeekRow] = []
    for i, monday in enumerate(mondays):
        reminders = {answer: c for (w, k, answer), c in notes.items() if w == i and k == "reminder"}
        offers = {
            answer: c for (w, k, answer), c in notes.items() if w == i and k == "waitlist_offer"
        }
        no_shows = visits[(i, "no_show")]
        visits_due = sum(c for (w, _), c in visits.items() if w == i)
        rows.append(
            WeekRow(
                week_start=monday,
                reminders_sent=sum(reminders.values()),
                reminders_answered=sum(c for answer, c in reminders.items() if answer is not None),
                reminders_confirmed=reminders.get(CONFIRM, 0),
                reminders_rescheduled=reminders.get(RESCHEDULE, 0),
                reminders_cancelled=reminders.get(CANCEL, 0),
                visits_due=visits_due,
                no_shows=no_shows,
                no_show_rate=no_show_rate(no_shows, visits_due),
                waitlist_offers_sent=sum(offers.values()),
                waitlist_fills=offers.get(FILL, 0),
            )
        )
    return rows


def totals(session: Session, *, now: datetime) -> Totals:
    """All-time totals of the report's numbers, plus the outbox depth and the
    age in seconds of its oldest waiting row (0 when empty)."""
    n = Notification
    answered: Counter[str] = Counter()
    reminders_sent = offers_sent = fills = 0
    for kind, answer, count in session.execute(
        select(n.kind, n.answer, func.count())
        .where(n.kind.in_(_KINDS), n.queued_at.is_not(None))
        .group_by(n.kind, n.answer)
    ):
        if kind == "reminder":
            reminders_sent += int(count)
            if answer is not None:
                answered[answer] += int(count)
        else:
            offers_sent += int(count)
            fills += int(count) if answer == FILL else 0

    a = Appointment
    visits: Counter[str] = Counter()
    for status, count in session.execute(
        select(a.status, func.count())
        .where(a.status.in_(VISIT_STATUSES), a.start_at < now)
        .group_by(a.status)
    ):
        visits[status] += int(count)

    o = OutboxMessage
    pending, oldest = session.execute(
        select(func.count(), func.min(o.created_at)).where(o.status.in_(outbox.WAITING))
    ).one()
    age = 0.0
    if oldest is not None:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        age = max(0.0, (now - oldest).total_seconds())
    return Totals(
        reminders_sent=reminders_sent,
        reminders_answered={k: answered[k] for k in sorted(answered)},
        visits_due=sum(visits.values()),
        no_shows=visits["no_show"],
        waitlist_offers_sent=offers_sent,
        waitlist_fills=fills,
        outbox_pending=int(pending),
        outbox_oldest_pending_seconds=age,
    )
