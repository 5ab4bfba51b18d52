"""Reminders and visit links: when each goes out, and the tick that queues them.

The appointments table is the source of truth. A scheduler tick
(``plan_appointments``) plans every new booked appointment once: one
``notifications`` row per reminder offset (and the video link for a video
visit), with the time it is due and the latest time it is still worth sending
(``send_by``). Another tick (``enqueue_due``) turns every due row into an
outbox row with two set-based statements, claiming them first
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so any number of scheduler
processes never queue one twice. The dispatcher renders the text when it
sends (``core.notices``), from the appointment as it is then.

Rules, in the patient's zone (else the clinic's):

* An offset of whole days keeps the wall-clock time ("24h" before a Monday
  10:00 visit is Sunday 10:00, even across a DST change); other offsets are
  exact durations.
* A reminder whose time passed before the appointment was booked is not
  planned (``passed_before_booking``).
* Quiet hours: a reminder due inside them moves to their end when that is
  still ``min(MIN_LEAD, offset)`` before the visit; else to just before they
  began, unless another reminder of the visit is already planned within
  ``REDUNDANT`` of that; else it is skipped (``quiet_hours``). ``send_by`` is
  the next start of quiet hours (or the visit), so a tick that comes late
  never sends into the night (``missed_window``).
* At most ``per_day`` reminders per patient per local day; the ones nearest
  their visit win (``daily_cap``).
* Rows of an appointment that is no longer booked are cancelled, not sent.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, delete, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import telemetry
from core.logs import get_logger
from core.models import (
    Appointment,
    ChannelIdentity,
    Clinic,
    Notification,
    OutboxMessage,
    Patient,
    table_of,
)
from core.scheduling import AppointmentNotFound, InvalidTransition
from core.settings import Settings, parse_offsets, parse_quiet_hours
from core.video import links_for, notification_data

log = get_logger(__name__)

BOOKED = ("booked", "confirmed")
DAY = timedelta(days=1)
# A reminder later than this before the visit is too late to matter.
MIN_LEAD = timedelta(minutes=30)
# Moved before quiet hours, a reminder leaves this long before they start.
EDGE_LEAD = timedelta(minutes=30)
# A moved reminder this close to another of the same visit would only repeat it.
REDUNDANT = timedelta(hours=12)
VIDEO_LINK_BEFORE = timedelta(minutes=10)
INTAKE_LEAD = timedelta(hours=12)
NO_SHOW_ANSWERABLE = timedelta(days=7)
# The tick does not chase visits older than this (a scheduler down for days).
NO_SHOW_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class Policy:
    offsets: tuple[timedelta, ...]
    quiet: tuple[time, time] | None
    per_day: int
    risk_offsets: tuple[timedelta, ...]
    no_show_grace: timedelta
    # The video link: its address and signature, and when it opens (core.video).
    public_url: str
    secret: str
    video_early_minutes: int

    @classmethod
    def of(cls, settings: Settings, clinic: Clinic | None = None) -> Policy:
        """The clinic's policy where it set one, else the service settings.

        A clinic value that does not parse is ignored with a warning: a bad
        row must not stop every clinic's reminders.
        """

        def pick(value: Any, default: Any, parse: Callable[[Any], Any]) -> Any:
            if value is None:
                return parse(default)
            try:
                return parse(value)
            except ValueError:
                log.warning("clinic_reminder_policy_invalid", clinic_id=clinic and clinic.id)
                return parse(default)

        c = clinic
        offsets = pick(c and c.reminder_offsets, settings.reminder_offsets, parse_offsets)
        return cls(
            offsets=offsets or parse_offsets(settings.reminder_offsets),
            quiet=pick(c and c.quiet_hours, settings.quiet_hours, parse_quiet_hours),
            per_day=int(
                c.reminders_per_day if c and c.reminders_per_day else settings.reminders_per_day
            ),
            risk_offsets=pick(
                c and c.risk_reminder_offsets, settings.risk_reminder_offsets, parse_offsets
            ),
            no_show_grace=timedelta(
                minutes=c.no_show_grace_minutes
                if c and c.no_show_grace_minutes
                else settings.no_show_grace_minutes
            ),
            public_url=settings.public_url,
            secret=settings.secret_key,
            video_early_minutes=settings.video_early_minutes,
        )


# -- when: pure functions ----------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    offset: timedelta
    due_at: datetime | None  # None: skipped, see reason
    send_by: datetime | None
    reason: str | None = None  # the skip reason, or "quiet_hours_moved"


def _local(value: datetime, zone: ZoneInfo) -> datetime:
    return value.astimezone(zone)


def _at(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``day`` at local ``at``, in UTC (a time skipped by DST reads as the hour before it)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def before(start_at: datetime, offset: timedelta, zone: ZoneInfo) -> datetime:
    """``offset`` before ``start_at``: whole days keep the local wall-clock time."""
    if offset % DAY == timedelta(0):
        wall = _local(start_at, zone).replace(tzinfo=None) - offset
        return wall.replace(tzinfo=zone).astimezone(UTC)
    return start_at - offset


def in_quiet(value: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None) -> bool:
    if quiet is None:
        return False
    start, end = quiet
    at = _local(value, zone).time()
    return start <= at < end if start < end else (at >= start or at < end)


def quiet_end_after(value: datetime, zone: ZoneInfo, quiet: tuple[time, time]) -> datetime:
    day = _local(value, zone).date()
    candidate = _at(day, quiet[1], zone)
    return candidate if candidate > value else _at(day + DAY, quiet[1], zone)


def quiet_start_before(value: datetime, zone: ZoneInfo, quiet: tuple[time, time]) -> datetime:
    day = _local(value, zone).date()
    candidate = _at(day, quiet[0], zone)
    return candidate if candidate <= value else _at(day - DAY, quiet[0], zone)


def next_quiet_start(value: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None) -> datetime:
    if quiet is None:
        return datetime.max.replace(tzinfo=UTC)
    day = _local(value, zone).date()
    candidate = _at(day, quiet[0], zone)
    return candidate if candidate > value else _at(day + DAY, quiet[0], zone)


def out_of_quiet(value: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None) -> datetime:
    """``value``, or the end of the quiet hours it falls in."""
    return quiet_end_after(value, zone, quiet) if quiet and in_quiet(value, zone, quiet) else value


def plan_offsets(
    start_at: datetime,
    zone: ZoneInfo,
    offsets: Iterable[timedelta],
    quiet: tuple[time, time] | None,
    *,
    booked_at: datetime,
) -> list[Planned]:
    """When each reminder of a visit at ``start_at`` goes out; largest offset first."""
    planned: list[Planned] = []
    taken: list[datetime] = []
    for offset in sorted(set(offsets), reverse=True):
        due = before(start_at, offset, zone)
        reason = None
        if due < booked_at:
            planned.append(Planned(offset, None, None, "passed_before_booking"))
            continue
        if quiet is not None and in_quiet(due, zone, quiet):
            forward = quiet_end_after(due, zone, quiet)
            backward = quiet_start_before(due, zone, quiet) - EDGE_LEAD
            if forward <= start_at - min(MIN_LEAD, offset):
                due, reason = forward, "quiet_hours_moved"
            elif backward >= booked_at and all(abs(backward - t) >= REDUNDANT for t in taken):
                due, reason = backward, "quiet_hours_moved"
            else:
                planned.append(Planned(offset, None, None, "quiet_hours"))
                continue
        if due >= start_at:
            planned.append(Planned(offset, None, None, "too_late"))
            continue
        taken.append(due)
        planned.append(
            Planned(offset, due, min(start_at, next_quiet_start(due, zone, quiet)), reason)
        )
    return planned


# -- planning: the tick ----------------------------------------------------------


def _for_update(session: Session, query: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=Appointment)
    return query


def planned_row(**values: Any) -> dict[str, Any]:
    """A ``notifications`` row for ``insert_notifications``: a bulk INSERT needs
    every column in every row, so the ones a caller leaves out get their start
    values here."""
    start: dict[str, Any] = {
        "appointment_id": None,
        "purpose": "reminder",
        "offset_minutes": None,
        "expires_at": None,
        "status": "planned",
        "reason": None,
        "claim": None,
        "queued_at": None,
        "answer": None,
        "answered_at": None,
        "data": {},
    }
    return start | values


def insert_notifications(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        dialect_insert(table_of(Notification)).on_conflict_do_nothing(
            index_elements=["dedupe_key"]
        ),
        list(rows),
    )


def recipients(session: Session, patient_ids: Iterable[int]) -> dict[int, list[ChannelIdentity]]:
    """Each patient's identities, most recently heard from first."""
    found: dict[int, list[ChannelIdentity]] = {}
    ids = sorted(set(patient_ids))
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        rows = session.scalars(select(ChannelIdentity).where(ChannelIdentity.patient_id.in_(chunk)))
        for identity in rows:
            assert identity.patient_id is not None
            found.setdefault(identity.patient_id, []).append(identity)
    floor = datetime.min.replace(tzinfo=UTC)
    for identities in found.values():
        identities.sort(key=lambda i: i.last_inbound_at or i.created_at or floor, reverse=True)
    return found


def reachable(identities: Sequence[ChannelIdentity]) -> list[ChannelIdentity]:
    """The identities not opted out (all of them when every one opted out: the
    dispatcher's consent check then decides what may still go)."""
    return [i for i in identities if i.opted_out_at is None] or list(identities)


def address_for(
    identities: Sequence[ChannelIdentity], channel: str | None
) -> tuple[str, str] | None:
    """Where to write to a patient: the channel they booked on, else the one
    they used last; never an identity that opted out."""
    usable = reachable(identities)
    for identity in usable:
        if identity.channel == channel:
            return identity.channel, identity.address
    return (usable[0].channel, usable[0].address) if usable else None


def plan_appointments(
    session: Session, policy_for: Callable[[int], Policy], now: datetime, *, limit: int = 5000
) -> int:
    """Plan the notifications of booked appointments not planned yet; returns
    how many appointments were planned. ``policy_for(clinic_id)``."""
    a = Appointment
    query = (
        select(a.id, a.clinic_id, a.patient_id, a.start_at, a.end_at, a.channel)
        .add_columns(a.visit_type, a.created_at, Patient.timezone, Clinic.timezone)
        .join(Patient, Patient.id == a.patient_id)
        .join(Clinic, Clinic.id == a.clinic_id)
        # Literal statuses, as in the partial index's condition: SQLite uses a
        # partial index only when the query repeats its terms, not parameters.
        .where(
            a.reminders_planned_at.is_(None), text("appointments.status IN ('booked', 'confirmed')")
        )
        .order_by(a.id)
        .limit(limit)
    )
    appointments = list(session.execute(_for_update(session, query)))
    if not appointments:
        return 0
    patient_ids = {row.patient_id for row in appointments}
    identities = recipients(session, patient_ids)
    risky = _patients_with_no_shows(session, patient_ids, now)
    per_day = _reminders_per_day(session, patient_ids, now)
    # Each video visit's patient link, created here so the notification can name it.
    video_links = links_for(
        session, [row.id for row in appointments if row.visit_type == "video"], "patient", now
    )
    rows: list[dict[str, Any]] = []
    for row in appointments:
        (
            appointment_id,
            clinic_id,
            patient_id,
            start_at,
            end_at,
            channel,
            visit_type,
            created_at,
            patient_zone,
            clinic_zone,
        ) = row
        if end_at <= now:
            continue
        target = address_for(identities.get(patient_id, []), channel)
        if target is None:
            log.info("reminders_no_address", appointment_id=appointment_id)
            continue
        policy = policy_for(clinic_id)
        zone = ZoneInfo(patient_zone or clinic_zone or "UTC")
        base = planned_row(
            appointment_id=appointment_id,
            patient_id=patient_id,
            channel=target[0],
            address=target[1],
            created_at=now,
        )
        offsets = set(policy.offsets) | (set(policy.risk_offsets) if patient_id in risky else set())
        booked_at = max(created_at, now - timedelta(minutes=5)) if created_at else now
        plans = plan_offsets(start_at, zone, offsets, policy.quiet, booked_at=booked_at)
        # The reminder that also offers the symptom intake: the nearest one sent
        # at least INTAKE_LEAD before the visit (the 24h one by default).
        intake_at = min(
            (p.offset for p in plans if p.due_at is not None and p.offset >= INTAKE_LEAD),
            default=None,
        )
        # The reminder nearest the visit matters most: it gets the day's cap first.
        for plan in sorted(plans, key=lambda p: p.offset):
            minutes = int(plan.offset.total_seconds() // 60)
            status, reason = "planned", plan.reason
            due, send_by = plan.due_at, plan.send_by
            if due is not None:
                day = (patient_id, _local(due, zone).date())
                if per_day[day] >= policy.per_day:
                    status, reason = "skipped", "daily_cap"
                else:
                    per_day[day] += 1
            else:
                status = "skipped"
            rows.append(
                base
                | {
                    "kind": "reminder",
                    "dedupe_key": f"reminder:{appointment_id}:{minutes}",
                    "offset_minutes": minutes,
                    "due_at": due or start_at,
                    "send_by": send_by or start_at,
                    "expires_at": start_at,
                    "status": status,
                    "reason": reason,
                    "data": {
                        **({"risk": True} if plan.offset not in policy.offsets else {}),
                        **({"intake": True} if plan.offset == intake_at else {}),
                    },
                }
            )
        if visit_type == "video":
            link_due = max(start_at - VIDEO_LINK_BEFORE, now)
            rows.append(
                base
                | {
                    "kind": "video_link",
                    "dedupe_key": f"video_link:{appointment_id}",
                    "offset_minutes": int(VIDEO_LINK_BEFORE.total_seconds() // 60),
                    "due_at": link_due,
                    "send_by": end_at,
                    "expires_at": None,
                    "status": "planned",
                    "reason": None,
                    "data": notification_data(
                        video_links[appointment_id],
                        public_url=policy.public_url,
                        secret=policy.secret,
                        early_minutes=policy.video_early_minutes,
                    ),
                }
            )
    insert_notifications(session, rows)
    session.execute(
        update(Appointment)
        .where(Appointment.id.in_([row.id for row in appointments]))
        .values(reminders_planned_at=now)
        .execution_options(synchronize_session=False)
    )
    return len(appointments)


def _patients_with_no_shows(session: Session, patient_ids: set[int], now: datetime) -> set[int]:
    ids = sorted(patient_ids)
    found: set[int] = set()
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        found.update(
            session.scalars(
                select(Appointment.patient_id)
                .where(
                    Appointment.patient_id.in_(chunk),
                    Appointment.status == "no_show",
                    Appointment.start_at < now,
                )
                .distinct()
            )
        )
    return found


def _reminders_per_day(
    session: Session, patient_ids: set[int], now: datetime
) -> Counter[tuple[int, date]]:
    """Reminders already planned or sent per (patient, local day), from today on."""
    counts: Counter[tuple[int, date]] = Counter()
    ids = sorted(patient_ids)
    n = Notification
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        rows = session.execute(
            select(n.patient_id, n.due_at, n.kind, n.status, Patient.timezone, Clinic.timezone)
            .join(Patient, Patient.id == n.patient_id)
            .join(Clinic, Clinic.id == Patient.clinic_id)
            # Only (patient_id, due_at) in SQL: with the status here both backends
            # pick ix_notifications_due and read every planned row.
            .where(n.patient_id.in_(chunk), n.due_at >= now - DAY)
        )
        for patient_id, due_at, kind, status, patient_zone, clinic_zone in rows:
            if kind != "reminder" or status not in ("planned", "queued", "answered"):
                continue
            zone = ZoneInfo(patient_zone or clinic_zone or "UTC")
            counts[(patient_id, _local(due_at, zone).date())] += 1
    return counts


def replan(session: Session, appointment_id: int) -> None:
    """The appointment moved in place: drop what was planned and not yet sent;
    the next tick plans it again."""
    session.execute(
        delete(Notification).where(
            Notification.appointment_id == appointment_id,
            Notification.status.in_(("planned", "skipped")),
            Notification.kind.in_(("reminder", "video_link")),
        )
    )
    session.execute(
        update(Appointment)
        .where(Appointment.id == appointment_id)
        .values(reminders_planned_at=None)
        .execution_options(synchronize_session="fetch")
    )


# -- queuing: the set-based tick --------------------------------------------------


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


OUTBOX_COLUMNS = (
    "channel",
    "address",
    "payload",
    "purpose",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)


def enqueue_due(session: Session, now: datetime, *, limit: int = 100_000) -> int:
    """Queue every due notification in the outbox; returns how many.

    Set-based: one UPDATE claims the due rows (PostgreSQL skips rows another
    scheduler holds) with a token, one INSERT ... SELECT writes their outbox
    rows. The outbox payload names the notification; the dispatcher renders it.
    How late each reminder is queued after its ``due_at`` (the tick's lag) goes
    to ``telemed_reminder_lag_seconds`` (``core.telemetry``).
    """
    n = table_of(Notification)
    a = table_of(Appointment)
    # Correlated: a primary-key probe per due row, not a scan of every appointment.
    inactive = (
        select(a.c.id).where(a.c.id == n.c.appointment_id, a.c.status.not_in(BOOKED)).exists()
    )
    session.execute(
        update(n)
        .where(
            n.c.status == "planned",
            n.c.due_at <= now,
            n.c.kind.in_(("reminder", "video_link")),
            inactive,
        )
        .values(status="cancelled", reason="appointment_changed")
    )
    session.execute(
        update(n)
        # send_by is always after due_at: bounding due_at keeps this to the
        # (status, due_at) index range instead of every planned row.
        .where(n.c.status == "planned", n.c.due_at <= now, n.c.send_by <= now)
        .values(status="skipped", reason="missed_window")
    )
    due = select(n.c.id).where(n.c.status == "planned", n.c.due_at <= now).order_by(n.c.due_at)
    due = due.limit(limit)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        due = due.with_for_update(skip_locked=True)
    token = uuid.uuid4().hex
    claimed = _rowcount(
        session.execute(
            update(n)
            # No status test here: the subquery has it (PostgreSQL's FOR UPDATE
            # re-checks it on the locked row), and with it SQLite scans every
            # planned row instead of probing the claimed ids.
            .where(n.c.id.in_(due.scalar_subquery()))
            .values(status="queued", queued_at=now, claim=token)
        )
    )
    if not claimed:
        return 0
    telemetry.reminders_queued(
        (now - due).total_seconds()
        for due in session.scalars(
            select(n.c.due_at).where(n.c.claim == token, n.c.kind == "reminder")
        )
    )
    payload = (
        func.json_build_object("notification", n.c.id)
        if postgres
        else func.json_object("notification", n.c.id)
    )
    o = table_of(OutboxMessage)
    session.execute(
        insert(o).from_select(
            OUTBOX_COLUMNS,
            select(
                n.c.channel,
                n.c.address,
                payload,
                n.c.purpose,
                literal("pending"),
                literal(0),
                literal(now, type_=o.c.next_attempt_at.type),
                literal(now, type_=o.c.created_at.type),
            )
            .where(n.c.claim == token)
            .order_by(n.c.due_at, n.c.id),
        )
    )
    return claimed


# -- no-shows ----------------------------------------------------------------------


def mark_no_shows(
    session: Session, policy_for: Callable[[int], Policy], now: datetime, *, limit: int = 1000
) -> int:
    """Visits not checked in within the grace period become ``no_show``; each
    patient gets one kind follow-up offering to rebook. Returns how many."""
    a = Appointment
    longest = timedelta(minutes=5)  # the smallest grace any clinic may set
    query = (
        select(a)
        .where(
            a.status.in_(BOOKED),
            a.checked_in_at.is_(None),
            a.start_at <= now - longest,
            a.start_at > now - NO_SHOW_LOOKBACK,
        )
        .order_by(a.start_at)
        .limit(limit)
    )
    candidates = list(session.scalars(_for_update(session, query)).unique())
    missed = [x for x in candidates if x.start_at <= now - policy_for(x.clinic_id).no_show_grace]
    if not missed:
        return 0
    identities = recipients(session, {x.patient_id for x in missed})
    rows = []
    for appointment in missed:
        row = _no_show(
            appointment,
            identities.get(appointment.patient_id, []),
            policy_for(appointment.clinic_id),
            now,
        )
        if row is not None:
            rows.append(row)
    session.flush()
    insert_notifications(session, rows)
    return len(missed)


def _no_show(
    appointment: Appointment, identities: Sequence[ChannelIdentity], policy: Policy, now: datetime
) -> dict[str, Any] | None:
    """Marks one visit ``no_show``; returns its follow-up row to plan (None:
    no way to reach the patient)."""
    appointment.status = "no_show"
    appointment.updated_at = now
    target = address_for(identities, appointment.channel)
    if target is None:
        return None
    patient = appointment.patient
    zone = ZoneInfo(patient.timezone or appointment.practitioner.clinic.timezone or "UTC")
    due = out_of_quiet(now, zone, policy.quiet)
    return planned_row(
        kind="no_show",
        dedupe_key=f"no_show:{appointment.id}",
        appointment_id=appointment.id,
        patient_id=appointment.patient_id,
        channel=target[0],
        address=target[1],
        due_at=due,
        send_by=due + timedelta(hours=12),
        expires_at=due + NO_SHOW_ANSWERABLE,
        created_at=now,
    )


def mark_no_show(
    session: Session, appointment_id: int, policy_for: Callable[[int], Policy], now: datetime
) -> Appointment:
    """Staff mark one visit a no-show (the dashboard) before the tick would:
    the same change and the same follow-up. Only a booked visit that has
    started and nobody checked in; else ``InvalidTransition`` with the reason."""
    appointment = session.scalars(
        select(Appointment)
        .where(Appointment.id == appointment_id)
        .with_for_update(of=Appointment)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if appointment is None:
        raise AppointmentNotFound(f"no appointment {appointment_id}")
    if appointment.status not in BOOKED:
        raise InvalidTransition(f"appointment {appointment.id} is {appointment.status}")
    if appointment.checked_in_at is not None:
        raise InvalidTransition(
            f"the patient of appointment {appointment.id} checked in: complete it instead"
        )
    if appointment.start_at > now:
        raise InvalidTransition(f"appointment {appointment.id} has not started yet")
    row = _no_show(
        appointment,
        recipients(session, [appointment.patient_id]).get(appointment.patient_id, []),
        policy_for(appointment.clinic_id),
        now,
    )
    session.flush()
    insert_notifications(session, [row] if row is not None else [])
    return appointment


def policies(session: Session, settings: Settings) -> Callable[[int], Policy]:
    """``policy_for(clinic_id)``, reading each clinic once."""
    cache: dict[int, Policy] = {}

    def policy_for(clinic_id: int) -> Policy:
        if clinic_id not in cache:
            cache[clinic_id] = Policy.of(settings, session.get(Clinic, clinic_id))
        return cache[clinic_id]

    return policy_for
