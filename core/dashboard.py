"""The queries behind the dashboard pages: the day's schedule, one
appointment, a patient's record, patient search, and reading the pages'
query parameters.

Pages get plain values (frozen dataclasses) or rows loaded with everything
the template reads, so rendering never goes back to the database. The day
view is the hot page (a clinic of 40 practitioners with 1,000 visits a day):
it runs one query per table, selects only the columns it shows, and builds
its rows in one pass (bench/dashboard.py measures it).

Who may see what is decided with ``core.users``; the web layer turns a
refusal into a 403 page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import DateTime, and_, func, or_, select, type_coerce
from sqlalchemy.orm import Session, joinedload, selectinload

from core import consent
from core.audit import ACTIONS, entries
from core.clock import utc
from core.intake.questionnaire import QuestionnaireError, by_id
from core.intake.summary import LEVEL_NAMES, render_value
from core.models import (
    ACTIVE_STATUSES,
    Alert,
    Appointment,
    AuditEntry,
    ChannelIdentity,
    Clinic,
    InboundLog,
    IntakeResponse,
    Notification,
    OutboxMessage,
    Patient,
    Practitioner,
    Prescription,
    QuestionThread,
    table_of,
)
from core.users import Actor, doctor_patient_ids
from core.waitlist import NOT_FREED

# Ids are 32-bit integers in PostgreSQL: anything larger names no row.
MAX_ID = 2**31 - 1
BOOKED = ("booked", "confirmed")
# core.scheduling.complete accepts a visit from this long before its start.
COMPLETE_EARLY = timedelta(hours=1)
SHORT_SUMMARY = 160  # characters of the intake summary in the day view
MAX_SEARCH = 100  # characters of a patient search that are used
SEARCH_RESULTS = 100
RECENT_MESSAGES = 50
OPEN_ALERTS = 50
MAX_REPORT_WEEKS = 52
AUDIT_PAGE = 200
CONSENT_PURPOSES = ("reply", "reminder", "clinical", "marketing")
# Statuses on the day view: holds are a patient halfway through booking, not visits.
SHOWN_STATUSES = ("booked", "confirmed", "completed", "no_show", "cancelled")


class InputError(ValueError):
    """A page parameter or form field that cannot be used; the message says why."""


# -- reading parameters ------------------------------------------------------------


def parse_id(text: str | None) -> int | None:
    """A row id from a URL or a form; None when it is not one (words, signs,
    zero, or beyond what the database's ids can hold)."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def parse_date(text: str | None, name: str) -> date | None:
    """A ``YYYY-MM-DD`` date, None when blank; else InputError naming ``name``."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{name} must be a date written like 2026-04-13.") from None


def parse_weeks(text: str | None, default: int = 8) -> int:
    if text is None or not text.strip():
        return default
    text = text.strip()
    if len(text) <= 3 and text.isascii() and text.isdigit():
        weeks = int(text)
        if 1 <= weeks <= MAX_REPORT_WEEKS:
            return weeks
    raise InputError(f"weeks must be a whole number from 1 to {MAX_REPORT_WEEKS}.")


def zone_named(name: str | None, default: str = "UTC") -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants of a local day's first and next midnight."""
    try:
        lower = datetime.combine(day, time(0), zone).astimezone(UTC)
        upper = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(f"{day.isoformat()} is out of range.") from None
    return lower, upper


def clinic_of(session: Session, clinic_id: int | None) -> Clinic | None:
    """The user's clinic, else the first one (a single-clinic service)."""
    if clinic_id is not None:
        found = session.get(Clinic, clinic_id)
        if found is not None:
            return found
    return session.scalars(select(Clinic).order_by(Clinic.id).limit(1)).first()


# -- the day view ------------------------------------------------------------------


def actions_for(
    status: str, start_at: datetime, checked_in_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The buttons an appointment offers now, by the rules of core.scheduling
    (check_in, complete, cancel) and core.reminders.mark_no_show."""
    found: list[str] = []
    if status in BOOKED and checked_in_at is None:
        found.append("check-in")
    if status in (*BOOKED, "no_show") and start_at <= now + COMPLETE_EARLY:
        found.append("complete")
    if status in BOOKED and checked_in_at is None and start_at <= now:
        found.append("no-show")
    if status in ACTIVE_STATUSES and (status == "held" or start_at > now):
        found.append("cancel")
    return tuple(found)


def short_summary(summary: str | None) -> str | None:
    """The intake summary on one line, without its triage line (the badge says it)."""
    if not summary:
        return None
    lines = [line.strip() for line in summary.splitlines()]
    text = "; ".join(line for line in lines if line and not line.startswith("Triage:"))
    if len(text) > SHORT_SUMMARY:
        text = text[: SHORT_SUMMARY - 1].rstrip() + "…"
    return text or None


class ScheduleRow(NamedTuple):
    """One appointment in the day view; times already in the clinic's zone.
    A named tuple: a thousand are built per page view, and the day view's
    template unpacks them in this order (dash/_appointment_row.html)."""

    id: int
    practitioner_id: int
    patient_id: int
    patient_name: str
    start: str  # "09:00"
    end: str
    status: str
    visit_type: str
    channel: str | None
    checked_in: str | None  # "09:02", when checked in
    triage: str | None
    summary: str | None
    actions: tuple[str, ...]


@dataclass(frozen=True)
class PractitionerDay:
    id: int
    name: str
    specialty: str
    rows: list[ScheduleRow]


@dataclass(frozen=True)
class AlertRow:
    id: int
    kind: str
    level: str
    rules: list[Any]
    patient_id: int | None
    patient_name: str | None
    appointment_id: int | None
    when: str  # local "2026-04-13 09:12"


@dataclass(frozen=True)
class DayView:
    day: date
    zone: str
    practitioners: list[PractitionerDay]
    choices: list[tuple[int, str]]  # the practitioners a viewer may filter by
    alerts: list[AlertRow]
    overdue_questions: int
    appointments: int


_A = table_of(Appointment).c
# The driver's own value of a time column (naive UTC on SQLite, aware on
# PostgreSQL), without the per-row Python step of models.UTCDateTime: the
# day view turns each distinct instant into UTC once (``_moments``).
_RAW_TIME = DateTime()


def _moments(zone: ZoneInfo) -> Callable[[Any], tuple[datetime, str]]:
    """(tz-aware UTC, ``HH:MM`` in ``zone``) of a raw time value, remembered:
    a day's visits share a few dozen slot times, and converting is the cost."""
    seen: dict[Any, tuple[datetime, str]] = {}

    def moment(raw: Any) -> tuple[datetime, str]:
        found = seen.get(raw)
        if found is None:
            instant = utc(raw)
            local = instant.astimezone(zone)
            found = seen[raw] = (instant, f"{local.hour:02d}:{local.minute:02d}")
        return found

    return moment


def _rows(
    session: Session, where: Sequence[Any], zone: ZoneInfo, now: datetime
) -> list[ScheduleRow]:
    """Schedule rows for the appointments matching ``where`` (over the Core
    columns of ``appointments``, ``_A``): one query for the appointments with
    their patients' names, one for their intakes. Core tables rather than the
    ORM: plain rows, no identity map, for the thousand rows of a busy day."""
    patient, intake = table_of(Patient).c, table_of(IntakeResponse).c
    found = session.execute(
        select(
            _A.id,
            _A.practitioner_id,
            _A.patient_id,
            type_coerce(_A.start_at, _RAW_TIME),
            type_coerce(_A.end_at, _RAW_TIME),
            _A.status,
            _A.visit_type,
            _A.channel,
            type_coerce(_A.checked_in_at, _RAW_TIME),
            patient.name,
        )
        .join_from(table_of(Appointment), table_of(Patient), patient.id == _A.patient_id)
        .where(*where)
        .order_by(_A.start_at, _A.id)
    ).all()
    if not found:
        return []
    intakes: dict[int, tuple[str | None, str | None]] = {}
    for appointment_id, level, summary in session.execute(
        select(intake.appointment_id, intake.triage_level, intake.summary)
        .join_from(table_of(IntakeResponse), table_of(Appointment), _A.id == intake.appointment_id)
        .where(*where)
        .order_by(intake.id)
    ):
        intakes[appointment_id] = (level, short_summary(summary))  # the latest wins
    moment = _moments(zone)
    rows = []
    for (
        ident,
        practitioner_id,
        patient_id,
        start_raw,
        end_raw,
        status,
        visit_type,
        channel,
        checked_in_raw,
        name,
    ) in found:
        level, summary = intakes.get(ident, (None, None))
        start_at, start = moment(start_raw)
        checked_in_at, checked_in = moment(checked_in_raw) if checked_in_raw else (None, None)
        rows.append(
            ScheduleRow(
                ident,
                practitioner_id,
                patient_id,
                name or f"Patient #{patient_id}",
                start,
                moment(end_raw)[1],
                status,
                visit_type,
                channel,
                checked_in,
                level,
                summary,
                actions_for(status, start_at, checked_in_at, now),
            )
        )
    return rows


def _shown() -> list[Any]:
    return [
        _A.status.in_(SHOWN_STATUSES),
        or_(_A.cancel_reason.is_(None), _A.cancel_reason.not_in(NOT_FREED)),
    ]


def schedule_row(
    session: Session, appointment_id: int, zone: ZoneInfo, now: datetime
) -> ScheduleRow | None:
    """One row of the day view, as it is now (after a button changed it)."""
    rows = _rows(session, [_A.id == appointment_id], zone, now)
    return rows[0] if rows else None


def visible_practitioners(
    session: Session, viewer: Actor, clinic_id: int
) -> list[tuple[int, str, str]]:
    """(id, name, specialty) of the practitioners whose day ``viewer`` sees:
    a doctor their own, staff and admins the clinic's active ones."""
    p = Practitioner
    query = select(p.id, p.name, p.specialty).order_by(p.name, p.id)
    if viewer.role == "doctor":
        if viewer.practitioner_id is None:
            return []
        query = query.where(p.id == viewer.practitioner_id)
    else:
        query = query.where(p.clinic_id == clinic_id, p.active.is_(True))
    return [(ident, name, specialty) for ident, name, specialty in session.execute(query)]


def open_alerts(
    session: Session, viewer: Actor, clinic_id: int, zone: ZoneInfo, *, limit: int = OPEN_ALERTS
) -> list[AlertRow]:
    """Open alerts, newest first: the clinic's, or a doctor's patients' only."""
    query = (
        select(
            Alert.id,
            Alert.kind,
            Alert.level,
            Alert.rules,
            Alert.patient_id,
            Patient.name,
            Alert.appointment_id,
            Alert.created_at,
        )
        .outerjoin(Patient, Patient.id == Alert.patient_id)
        .where(Alert.status == "open", Alert.clinic_id == clinic_id)
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    if viewer.role == "doctor":
        if viewer.practitioner_id is None:
            return []
        query = query.where(Alert.patient_id.in_(doctor_patient_ids(viewer.practitioner_id)))
    return [
        AlertRow(
            id=ident,
            kind=kind,
            level=level,
            rules=list(rules or []),
            patient_id=patient_id,
            patient_name=name,
            appointment_id=appointment_id,
            when=created.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        )
        for ident, kind, level, rules, patient_id, name, appointment_id, created in session.execute(
            query
        )
    ]


def overdue_questions(session: Session, viewer: Actor, clinic_id: int, now: datetime) -> int:
    """Open question threads past the answer the patient was promised."""
    q = QuestionThread
    query = (
        select(func.count())
        .select_from(q)
        .where(q.status == "open", q.due_at < now, q.clinic_id == clinic_id)
    )
    if viewer.role == "doctor":
        if viewer.practitioner_id is None:
            return 0
        query = query.where(q.practitioner_id == viewer.practitioner_id)
    return int(session.scalar(query) or 0)


def day_view(
    session: Session,
    viewer: Actor,
    *,
    clinic_id: int,
    day: date,
    zone: ZoneInfo,
    now: datetime,
    practitioner_id: int | None = None,
) -> DayView:
    """A day's schedule per practitioner (``practitioner_id``: only theirs),
    with the open alerts and the count of overdue questions. The caller has
    checked that ``viewer`` may see ``practitioner_id``."""
    lower, upper = day_bounds(day, zone)
    choices = visible_practitioners(session, viewer, clinic_id)
    shown = [c for c in choices if practitioner_id is None or c[0] == practitioner_id]
    by_id: dict[int, list[ScheduleRow]] = {ident: [] for ident, _, _ in shown}
    rows: list[ScheduleRow] = []
    if by_id:
        where = [*_shown(), _A.start_at >= lower, _A.start_at < upper]
        if practitioner_id is not None or viewer.role == "doctor":
            where.append(_A.practitioner_id.in_(list(by_id)))
        else:
            where.append(_A.clinic_id == clinic_id)
        rows = _rows(session, where, zone, now)
    for row in rows:
        found = by_id.get(row.practitioner_id)
        if found is not None:  # an inactive practitioner's leftovers are not shown
            found.append(row)
    return DayView(
        day=day,
        zone=zone.key,
        practitioners=[
            PractitionerDay(ident, name, specialty, by_id[ident])
            for ident, name, specialty in shown
        ],
        choices=[(ident, name) for ident, name, _ in choices],
        alerts=open_alerts(session, viewer, clinic_id, zone),
        overdue_questions=overdue_questions(session, viewer, clinic_id, now),
        appointments=sum(len(v) for v in by_id.values()),
    )


# -- one appointment ---------------------------------------------------------------


@dataclass(frozen=True)
class IntakeView:
    id: int
    appointment_id: int
    status: str
    triage: str | None
    triage_name: str | None
    rules: list[Any]
    summary: str | None
    answers: list[tuple[str, str]]  # (question, answer as the doctor reads it)
    updated_at: datetime


def intake_view(row: IntakeResponse) -> IntakeView:
    answers = dict(row.answers or {})
    try:
        q = by_id(row.questionnaire)
    except (KeyError, OSError, QuestionnaireError):
        q = None
    if q is not None:
        lines = [
            (item.label, render_value(item, answers[item.link_id]))
            for item in q.enabled_items(answers)
            if item.link_id in answers
        ]
    else:  # a questionnaire this version does not ship: the raw answers
        lines = [(str(key), str(value)) for key, value in answers.items()]
    return IntakeView(
        id=row.id,
        appointment_id=row.appointment_id,
        status=row.status,
        triage=row.triage_level,
        triage_name=LEVEL_NAMES.get(row.triage_level or "", row.triage_level),
        rules=list(row.triage_rules or []),
        summary=row.summary,
        answers=lines,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class AppointmentDetail:
    appointment: Appointment  # with patient, practitioner and clinic loaded
    intake: IntakeView | None
    prescriptions: list[Prescription]  # with items and pharmacy loaded
    notifications: list[Notification]
    actions: tuple[str, ...]


def load_appointment(session: Session, appointment_id: int) -> Appointment | None:
    return session.scalars(
        select(Appointment)
        .options(joinedload(Appointment.patient))
        .where(Appointment.id == appointment_id)
    ).first()


def appointment_detail(
    session: Session, appointment_id: int, *, now: datetime
) -> AppointmentDetail | None:
    appointment = load_appointment(session, appointment_id)
    if appointment is None:
        return None
    intake = session.scalars(
        select(IntakeResponse)
        .where(IntakeResponse.appointment_id == appointment_id)
        .order_by(IntakeResponse.id.desc())
        .limit(1)
    ).first()
    prescriptions = list(
        session.scalars(
            select(Prescription)
            .options(selectinload(Prescription.items), joinedload(Prescription.pharmacy))
            .where(Prescription.appointment_id == appointment_id)
            .order_by(Prescription.issued_at.desc(), Prescription.id.desc())
        ).unique()
    )
    notifications = list(
        session.scalars(
            select(Notification)
            .where(Notification.appointment_id == appointment_id)
            .order_by(Notification.due_at, Notification.id)
        )
    )
    return AppointmentDetail(
        appointment=appointment,
        intake=intake_view(intake) if intake is not None else None,
        prescriptions=prescriptions,
        notifications=notifications,
        actions=actions_for(
            appointment.status, appointment.start_at, appointment.checked_in_at, now
        ),
    )


# -- patients ----------------------------------------------------------------------


def search_patients(
    session: Session, viewer: Actor, text: str | None, *, limit: int = SEARCH_RESULTS
) -> list[Patient]:
    """Patients whose name contains ``text`` or whose phone (or an address
    they write from) contains its digits; a doctor's own patients only.
    Blank: the most recently added."""
    query = select(Patient).order_by(Patient.created_at.desc(), Patient.id.desc()).limit(limit)
    if viewer.role == "doctor":
        if viewer.practitioner_id is None:
            return []
        query = query.where(Patient.id.in_(doctor_patient_ids(viewer.practitioner_id)))
    words = (text or "").strip()[:MAX_SEARCH]
    if words:
        digits = "".join(c for c in words if c.isascii() and c.isdigit())
        phone_like = len(digits) >= 3 and all(c.isdigit() or c in "+-() ." for c in words)
        if phone_like:
            query = query.where(
                or_(
                    Patient.phone.contains(digits, autoescape=True),
                    Patient.id.in_(
                        select(ChannelIdentity.patient_id).where(
                            ChannelIdentity.address.contains(digits, autoescape=True)
                        )
                    ),
                )
            )
        else:
            query = query.where(func.lower(Patient.name).contains(words.lower(), autoescape=True))
    return list(session.scalars(query))


@dataclass(frozen=True)
class IdentityView:
    channel: str
    address: str
    verified_at: datetime | None
    opted_out_at: datetime | None
    last_inbound_at: datetime | None
    locked: bool
    consents: list[tuple[str, bool]]  # (purpose, allowed now)


@dataclass(frozen=True)
class MessageLine:
    at: datetime
    direction: str  # "in" (from the patient) or "out"
    channel: str
    address: str
    text: str
    status: str | None  # delivery status of what went out


@dataclass(frozen=True)
class PatientRecord:
    patient: Patient
    identities: list[IdentityView]
    appointments: list[Appointment]  # newest first, practitioner loaded
    messages: list[MessageLine]  # newest first
    intakes: list[IntakeView]
    prescriptions: list[Prescription]  # items, practitioner, pharmacy loaded
    threads: list[QuestionThread]  # practitioner loaded
    now: datetime


def _outbound_text(row: OutboxMessage, kinds: dict[int, str]) -> str:
    payload = row.payload or {}
    if "text" in payload:
        return str(payload["text"])
    note = payload.get("notification")
    if isinstance(note, int):
        return f"[{kinds.get(note, 'notification').replace('_', ' ')}, written when sent]"
    return "[message]"


def recent_messages(
    session: Session, identities: Sequence[ChannelIdentity], *, limit: int = RECENT_MESSAGES
) -> list[MessageLine]:
    """What a patient wrote from their identities and what was sent to them, newest first."""
    if not identities:
        return []
    inbound_of = or_(
        *(
            and_(InboundLog.channel == i.channel, InboundLog.address == i.address)
            for i in identities
        )
    )
    outbound_of = or_(
        *(
            and_(OutboxMessage.channel == i.channel, OutboxMessage.address == i.address)
            for i in identities
        )
    )
    lines = [
        MessageLine(row.received_at, "in", row.channel, row.address, row.body, None)
        for row in session.scalars(
            select(InboundLog)
            .where(inbound_of)
            .order_by(InboundLog.received_at.desc(), InboundLog.id.desc())
            .limit(limit)
        )
    ]
    sent = list(
        session.scalars(
            select(OutboxMessage)
            .where(outbound_of)
            .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
            .limit(limit)
        )
    )
    note_ids = [n for row in sent if isinstance(n := (row.payload or {}).get("notification"), int)]
    kinds: dict[int, str] = {}
    if note_ids:
        kinds = dict(
            session.execute(
                select(Notification.id, Notification.kind).where(Notification.id.in_(note_ids))
            ).tuples()
        )
    lines += [
        MessageLine(
            row.sent_at or row.created_at,
            "out",
            row.channel,
            row.address,
            _outbound_text(row, kinds),
            row.status,
        )
        for row in sent
    ]
    lines.sort(key=lambda m: m.at, reverse=True)
    return lines[:limit]


def patient_record(session: Session, patient_id: int, *, now: datetime) -> PatientRecord | None:
    patient = session.get(Patient, patient_id)
    if patient is None:
        return None
    identities = list(
        session.scalars(
            select(ChannelIdentity)
            .where(ChannelIdentity.patient_id == patient_id)
            .order_by(ChannelIdentity.id)
        )
    )
    appointments = list(
        session.scalars(
            select(Appointment)
            .where(Appointment.patient_id == patient_id, Appointment.status != "held")
            .order_by(Appointment.start_at.desc(), Appointment.id.desc())
        ).unique()
    )
    intakes = [
        intake_view(row)
        for row in session.scalars(
            select(IntakeResponse)
            .where(IntakeResponse.patient_id == patient_id)
            .order_by(IntakeResponse.started_at.desc(), IntakeResponse.id.desc())
        )
    ]
    prescriptions = list(
        session.scalars(
            select(Prescription)
            .options(
                selectinload(Prescription.items),
                joinedload(Prescription.practitioner),
                joinedload(Prescription.pharmacy),
            )
            .where(Prescription.patient_id == patient_id)
            .order_by(Prescription.issued_at.desc(), Prescription.id.desc())
        ).unique()
    )
    threads = list(
        session.scalars(
            select(QuestionThread)
            .options(joinedload(QuestionThread.practitioner))
            .where(QuestionThread.patient_id == patient_id)
            .order_by(QuestionThread.created_at.desc(), QuestionThread.id.desc())
        ).unique()
    )
    return PatientRecord(
        patient=patient,
        identities=[
            IdentityView(
                channel=i.channel,
                address=i.address,
                verified_at=i.verified_at,
                opted_out_at=i.opted_out_at,
                last_inbound_at=i.last_inbound_at,
                locked=i.locked_at is not None,
                consents=[(purpose, consent.allows(i, purpose)) for purpose in CONSENT_PURPOSES],
            )
            for i in identities
        ],
        appointments=appointments,
        messages=recent_messages(session, identities),
        intakes=intakes,
        prescriptions=prescriptions,
        threads=threads,
        now=now,
    )


# -- the audit log's filters ---------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    user_email: str | None = None
    patient_id: int | None = None
    action: str | None = None
    entity: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive
    page: int = 1


def audit_filter(params: dict[str, str]) -> AuditFilter:
    """The audit page's filters from its query string; InputError on the first bad one."""
    email = params.get("user", "").strip().lower()
    if len(email) > 254:
        raise InputError("The user's e-mail is longer than an e-mail address can be.")
    patient_text = params.get("patient", "").strip()
    patient_id = parse_id(patient_text) if patient_text else None
    if patient_text and patient_id is None:
        raise InputError("The patient must be a patient's number, like 42.")
    action = params.get("action", "").strip()
    if action and action not in ACTIONS:
        raise InputError(f"The action must be one of: {', '.join(ACTIONS)}.")
    entity = params.get("entity", "").strip()
    if len(entity) > 32:
        raise InputError("The entity is at most 32 characters (patient, appointment...).")
    since = parse_date(params.get("from"), "From")
    until = parse_date(params.get("to"), "To")
    if since is not None and until is not None and until < since:
        raise InputError("To must not be before From.")
    page_text = params.get("page", "").strip()
    page = parse_id(page_text) if page_text else 1
    if page is None or page > 100_000:
        raise InputError("The page must be a number from 1.")
    return AuditFilter(
        email or None, patient_id, action or None, entity or None, since, until, page
    )


def audit_page(
    session: Session, wanted: AuditFilter, zone: ZoneInfo
) -> tuple[list[AuditEntry], bool]:
    """One page of audit entries, newest first, and whether an older page exists.
    Dates are whole local days of ``zone``."""
    since = day_bounds(wanted.since, zone)[0] if wanted.since else None
    until = day_bounds(wanted.until, zone)[1] if wanted.until else None
    found = entries(
        session,
        user_email=wanted.user_email,
        patient_id=wanted.patient_id,
        action=wanted.action,
        entity=wanted.entity,
        since=since,
        until=until,
        limit=AUDIT_PAGE + 1,
        offset=(wanted.page - 1) * AUDIT_PAGE,
    )
    return found[:AUDIT_PAGE], len(found) > AUDIT_PAGE
