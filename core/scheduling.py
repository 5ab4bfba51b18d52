"""Booking operations: hold, confirm, book, cancel, release; finding practitioners.

Slot computation lives in :mod:`core.slots` and is re-exported here, so callers
use ``core.scheduling`` for everything.

No double booking is a database guarantee:

* Every write that makes an appointment active first locks the practitioner
  row (``SELECT ... FOR NO KEY UPDATE`` on PostgreSQL; on SQLite the whole
  transaction is already ``BEGIN IMMEDIATE``, single-writer), then checks for
  overlapping active appointments (buffers included for patient bookings),
  then writes inside a SAVEPOINT. Bookings through this module therefore
  queue per practitioner and the loser gets :class:`SlotUnavailable` from the
  check, with a readable reason.
* On PostgreSQL the ``appointments_no_overlap`` exclusion constraint is the
  backstop for any writer that skips the lock: its violation (SQLSTATE 23P01)
  is turned into :class:`SlotUnavailable` (or :class:`HoldExpired`). The
  SAVEPOINT keeps the caller's transaction usable either way, so it can still
  write a "that slot is gone" reply.
* Expired holds overlapping the new range are cancelled (``hold_expired``) in
  the same savepoint, so they never trip the constraint.

Every datetime argument must be tz-aware (naive ones raise ValueError); what
is stored and returned is UTC.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from rapidfuzz import fuzz
from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from core.models import ACTIVE_STATUSES, VISIT_TYPES, Appointment, Practitioner
from core.slots import (
    MAX_APPOINTMENT_LENGTH,
    Occupant,
    Slot,
    active_overlapping,
    aware,
    buffer_gap,
    describe,
    free_slots,
    is_live,
    is_slot_free,
    nearest_free_slots,
    rule_problem,
)

__all__ = [
    "HOLD_EXPIRED",
    "HOLD_REPLACED",
    "MAX_APPOINTMENT_LENGTH",
    "RESCHEDULED",
    "AppointmentNotFound",
    "HoldExpired",
    "InvalidTransition",
    "SchedulingError",
    "Slot",
    "SlotUnavailable",
    "book",
    "cancel",
    "check_in",
    "complete",
    "confirm",
    "confirm_hold",
    "find_practitioners",
    "free_slots",
    "hold_slot",
    "is_slot_free",
    "nearest_free_slots",
    "release_expired_holds",
    "upcoming_appointments",
]

# cancel_reason values written by this module.
HOLD_EXPIRED = "hold_expired"  # the hold ran out (sweeper, or freed for another booking)
HOLD_REPLACED = "hold_replaced"  # the patient held another slot
RESCHEDULED = "rescheduled"  # replaced through confirm_hold(replaces_id=...)

_EXCLUSION_VIOLATION = "23P01"


class SchedulingError(Exception):
    """Base of scheduling failures; ``str()`` is a reason an operator can read."""


class SlotUnavailable(SchedulingError):
    """Taken meanwhile, outside hours, too soon, beyond the horizon, or in the past."""


class HoldExpired(SchedulingError):
    """The hold ran out and its slot was taken (or has passed) meanwhile."""


class AppointmentNotFound(SchedulingError):
    pass


class InvalidTransition(SchedulingError):
    """The appointment is not in a state that allows this (cancelled, past...)."""


# -- helpers ----------------------------------------------------------------------


def _lock_practitioner(session: Session, practitioner_id: int) -> None:
    """Serialise bookings of one practitioner until the transaction ends.

    ``FOR NO KEY UPDATE`` does not block the ``FOR KEY SHARE`` that foreign-key
    checks take, so inserting appointments elsewhere is not held up. SQLite
    renders no locking clause (its transactions are single-writer already).
    """
    session.execute(
        select(Practitioner.id)
        .where(Practitioner.id == practitioner_id)
        .with_for_update(key_share=True)
    )


def _locked_appointment(session: Session, appointment_id: int) -> Appointment:
    found = session.scalars(
        select(Appointment)
        .where(Appointment.id == appointment_id)
        .with_for_update(of=Appointment)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if found is None:
        raise AppointmentNotFound(f"no appointment {appointment_id}")
    return found


def _expire_loaded(session: Session, ids: Iterable[int]) -> None:
    """Make loaded copies of appointments changed by bulk UPDATEs reload."""
    for appointment_id in ids:
        obj = session.identity_map.get(identity_key(Appointment, appointment_id))
        if obj is not None:
            session.expire(obj)


def _is_overlap_violation(exc: IntegrityError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == _EXCLUSION_VIOLATION


def _check_visit_type(p: Practitioner, visit_type: str) -> None:
    if visit_type not in VISIT_TYPES:
        raise ValueError(f"visit_type must be one of {VISIT_TYPES}, got {visit_type!r}")
    if p.visit_types and visit_type not in p.visit_types:
        raise SchedulingError(f"{p.name} does not offer {visit_type.replace('_', ' ')} visits")


def _conflict_reason(
    p: Practitioner,
    start: datetime,
    end: datetime,
    row: Occupant,
) -> str:
    when = describe(start, p.timezone)
    other = (
        f"{describe(row.start_at, p.timezone)} to {describe(row.end_at, p.timezone, date=False)}"
    )
    if row.start_at < end and row.end_at > start:
        return f"{p.name} is already booked at {when} (appointment {other})"
    minutes = int(buffer_gap(p).total_seconds() // 60)
    return (
        f"{when} is too close to {p.name}'s appointment at {other} "
        f"({minutes} minutes are kept free between appointments)"
    )


def _occupy(
    session: Session,
    p: Practitioner,
    appointment: Appointment,
    *,
    now: datetime,
    buffers: bool,
    replace_holds_of: int | None,
    error: type[SchedulingError],
    apply: Callable[[], None],
) -> None:
    """Make ``appointment`` occupy its time, or raise ``error`` with a reason.

    Locks the practitioner, checks for overlaps (with buffers when asked),
    then in a SAVEPOINT: cancels expired holds in the way, releases the
    patient's other holds when ``replace_holds_of`` is set, runs ``apply``
    (add the row, or switch it to an active status) and flushes. An exclusion
    violation rolls back only the savepoint.
    """
    _lock_practitioner(session, p.id)
    start, end = appointment.start_at, appointment.end_at
    gap = buffer_gap(p) if buffers else timedelta(0)
    lo, hi = start - gap, end + gap
    expired: list[int] = []
    for row in active_overlapping(session, p.id, lo, hi):
        if row.id == appointment.id:
            continue
        if not is_live(row.status, row.hold_expires_at, now):
            expired.append(row.id)
        elif not (
            replace_holds_of is not None
            and row.status == "held"
            and row.patient_id == replace_holds_of
        ):
            raise error(_conflict_reason(p, start, end, row))
    replaced: list[int] = []
    if replace_holds_of is not None:
        replaced = list(
            session.scalars(
                select(Appointment.id).where(
                    Appointment.patient_id == replace_holds_of, Appointment.status == "held"
                )
            )
        )
    try:
        with session.begin_nested():
            if expired:
                session.execute(
                    update(Appointment)
                    .where(
                        Appointment.id.in_(expired),
                        Appointment.status == "held",
                        Appointment.hold_expires_at <= now,
                    )
                    .values(status="cancelled", cancel_reason=HOLD_EXPIRED, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            if replaced:
                session.execute(
                    update(Appointment)
                    .where(Appointment.id.in_(replaced), Appointment.status == "held")
                    .values(status="cancelled", cancel_reason=HOLD_REPLACED, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
            apply()
            session.flush()
    except IntegrityError as exc:
        if _is_overlap_violation(exc):
            raise error(
                f"{p.name} was just booked at {describe(start, p.timezone)} by someone else"
            ) from None
        raise
    finally:
        _expire_loaded(session, [*expired, *replaced])


# -- operations -------------------------------------------------------------------


def hold_slot(
    session: Session,
    *,
    practitioner: Practitioner,
    patient_id: int,
    start: datetime,
    now: datetime,
    hold_minutes: int,
    channel: str | None,
    visit_type: str = "in_person",
) -> Appointment:
    """Hold a free slot for ``hold_minutes`` (status ``held``).

    ``start`` must be a slot by the rules (hours, alignment, notice, horizon)
    and free. The patient's other holds are released (``hold_replaced``) in
    the same savepoint, so a failed hold leaves them in place.
    """
    start = aware(start, "start")
    now = aware(now, "now")
    if hold_minutes <= 0:
        raise ValueError("hold_minutes must be positive")
    p = practitioner
    _check_visit_type(p, visit_type)
    problem = rule_problem(session, p, start, now=now)
    if problem is not None:
        raise SlotUnavailable(problem)
    appointment = Appointment(
        clinic_id=p.clinic_id,
        practitioner_id=p.id,
        patient_id=patient_id,
        start_at=start,
        end_at=start + timedelta(minutes=p.slot_minutes),
        status="held",
        visit_type=visit_type,
        channel=channel,
        hold_expires_at=now + timedelta(minutes=hold_minutes),
        created_at=now,
        updated_at=now,
    )
    _occupy(
        session,
        p,
        appointment,
        now=now,
        buffers=True,
        replace_holds_of=patient_id,
        error=SlotUnavailable,
        apply=lambda: session.add(appointment),
    )
    return appointment


def confirm_hold(
    session: Session, appointment_id: int, *, now: datetime, replaces_id: int | None = None
) -> Appointment:
    """``held`` -> ``booked``.

    A hold that ran out (still ``held``, or already ``cancelled`` with reason
    ``hold_expired`` by the sweeper) is booked anyway when its slot is still
    free, else :class:`HoldExpired`. With ``replaces_id`` the patient's old
    appointment is cancelled (``rescheduled``) and the new one points back to
    it, in the same transaction; the old one is validated before anything
    changes.
    """
    now = aware(now, "now")
    found = session.get(Appointment, appointment_id)
    if found is None:
        raise AppointmentNotFound(f"no appointment {appointment_id}")
    p = found.practitioner
    _lock_practitioner(session, p.id)  # practitioner before appointment rows, as in _occupy
    appointment = _locked_appointment(session, appointment_id)
    old: Appointment | None = None
    if replaces_id is not None:
        old = _locked_appointment(session, replaces_id)
        if old.id == appointment.id:
            raise InvalidTransition("an appointment cannot replace itself")
        if old.patient_id != appointment.patient_id:
            raise InvalidTransition(
                f"appointment {old.id} belongs to another patient than appointment {appointment.id}"
            )
        if old.status not in ("booked", "confirmed"):
            raise InvalidTransition(f"appointment {old.id} is {old.status}; nothing to reschedule")
        if old.start_at <= now:
            raise InvalidTransition(f"appointment {old.id} has already started")

    status, when = appointment.status, describe(appointment.start_at, p.timezone)
    expired_hold = (status == "held" and not is_live(status, appointment.hold_expires_at, now)) or (
        status == "cancelled" and appointment.cancel_reason == HOLD_EXPIRED
    )
    if status == "held" and not expired_hold:
        if appointment.start_at <= now:
            raise HoldExpired(f"the held slot at {when} has already started")
        appointment.status = "booked"
        appointment.hold_expires_at = None
        appointment.updated_at = now
        session.flush()
    elif expired_hold:
        if appointment.start_at <= now:
            raise HoldExpired(f"the hold on {when} ran out and the slot has passed")

        def reactivate() -> None:
            appointment.status = "booked"
            appointment.hold_expires_at = None
            appointment.cancel_reason = None
            appointment.updated_at = now

        _occupy(
            session,
            p,
            appointment,
            now=now,
            buffers=True,
            replace_holds_of=None,
            error=HoldExpired,
            apply=reactivate,
        )
    else:
        raise InvalidTransition(f"appointment {appointment.id} is {status}, not held")

    if old is not None:
        old.status = "cancelled"
        old.cancel_reason = RESCHEDULED
        old.updated_at = now
        appointment.rescheduled_from_id = old.id
        session.flush()
    return appointment


def book(
    session: Session,
    *,
    practitioner: Practitioner,
    patient_id: int,
    start: datetime,
    now: datetime,
    channel: str | None,
    visit_type: str = "in_person",
    end: datetime | None = None,
    enforce_rules: bool = True,
) -> Appointment:
    """Book directly (status ``booked``).

    ``enforce_rules=True``: ``start`` must be a free slot by the rules, and
    ``end`` (if given) must be ``start + slot_minutes``. ``enforce_rules=False``
    (staff): no working-hours, alignment, notice, horizon or buffer rule and
    any length up to :data:`MAX_APPOINTMENT_LENGTH` (``end`` defaults to
    ``start + slot_minutes``), but never overlapping another active
    appointment and never entirely in the past.
    """
    start = aware(start, "start")
    now = aware(now, "now")
    end = None if end is None else aware(end, "end")
    p = practitioner
    _check_visit_type(p, visit_type)
    length = timedelta(minutes=p.slot_minutes)
    if enforce_rules:
        problem = rule_problem(session, p, start, now=now)
        if problem is not None:
            raise SlotUnavailable(problem)
        if end is not None and end != start + length:
            raise SchedulingError(
                f"{p.name}'s slots last {p.slot_minutes} minutes; "
                "another length needs a staff booking"
            )
        end = start + length
    else:
        end = start + length if end is None else end
        if end <= start:
            raise SchedulingError("the appointment must end after it starts")
        if end - start > MAX_APPOINTMENT_LENGTH:
            raise SchedulingError(
                f"an appointment may last at most {MAX_APPOINTMENT_LENGTH.total_seconds() / 3600:g}"
                " hours"
            )
        if end <= now:
            raise SlotUnavailable(f"{describe(start, p.timezone)} is in the past")
    appointment = Appointment(
        clinic_id=p.clinic_id,
        practitioner_id=p.id,
        patient_id=patient_id,
        start_at=start,
        end_at=end,
        status="booked",
        visit_type=visit_type,
        channel=channel,
        created_at=now,
        updated_at=now,
    )
    _occupy(
        session,
        p,
        appointment,
        now=now,
        buffers=enforce_rules,
        replace_holds_of=None,
        error=SlotUnavailable,
        apply=lambda: session.add(appointment),
    )
    return appointment


def cancel(
    session: Session, appointment_id: int, *, now: datetime, reason: str = "patient"
) -> Appointment:
    """Cancel an active appointment that has not started (a hold at any time)."""
    now = aware(now, "now")
    appointment = _locked_appointment(session, appointment_id)
    if appointment.status not in ACTIVE_STATUSES:
        raise InvalidTransition(f"appointment {appointment.id} is already {appointment.status}")
    if appointment.status != "held" and appointment.start_at <= now:
        raise InvalidTransition(f"appointment {appointment.id} has already started")
    appointment.status = "cancelled"
    appointment.cancel_reason = reason
    appointment.updated_at = now
    session.flush()
    return appointment


def confirm(session: Session, appointment_id: int, *, now: datetime) -> Appointment:
    """The patient says they will come: ``booked`` -> ``confirmed`` (twice is fine)."""
    now = aware(now, "now")
    appointment = _locked_appointment(session, appointment_id)
    if appointment.status == "confirmed":
        return appointment
    if appointment.status != "booked":
        raise InvalidTransition(f"appointment {appointment.id} is {appointment.status}")
    if appointment.start_at <= now:
        raise InvalidTransition(f"appointment {appointment.id} has already started")
    appointment.status = "confirmed"
    appointment.updated_at = now
    session.flush()
    return appointment


def check_in(session: Session, appointment_id: int, *, now: datetime) -> Appointment:
    """The patient arrived (or joined the video call): never a no-show."""
    now = aware(now, "now")
    appointment = _locked_appointment(session, appointment_id)
    if appointment.status not in ("booked", "confirmed"):
        raise InvalidTransition(f"appointment {appointment.id} is {appointment.status}")
    appointment.checked_in_at = now
    appointment.updated_at = now
    session.flush()
    return appointment


def complete(session: Session, appointment_id: int, *, now: datetime) -> Appointment:
    """The visit took place: ``completed`` (checked in too, if nobody did)."""
    now = aware(now, "now")
    appointment = _locked_appointment(session, appointment_id)
    if appointment.status not in ("booked", "confirmed", "no_show"):
        raise InvalidTransition(f"appointment {appointment.id} is {appointment.status}")
    if appointment.start_at > now + timedelta(hours=1):
        raise InvalidTransition(f"appointment {appointment.id} has not started yet")
    appointment.status = "completed"
    appointment.checked_in_at = appointment.checked_in_at or now
    appointment.updated_at = now
    session.flush()
    return appointment


def release_expired_holds(session: Session, *, now: datetime) -> int:
    """Cancel (``hold_expired``) every hold whose time ran out; returns how many."""
    now = aware(now, "now")
    result = session.execute(
        update(Appointment)
        .where(Appointment.status == "held", Appointment.hold_expires_at <= now)
        .values(status="cancelled", cancel_reason=HOLD_EXPIRED, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(cast(CursorResult[Any], result).rowcount)


def upcoming_appointments(session: Session, patient_id: int, *, now: datetime) -> list[Appointment]:
    """The patient's active appointments with ``end > now``, by start.

    Live holds are included (check ``status``); expired holds are not.
    """
    now = aware(now, "now")
    rows = session.scalars(
        select(Appointment)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.status.in_(ACTIVE_STATUSES),
            Appointment.end_at > now,
        )
        .order_by(Appointment.start_at, Appointment.id)
    ).unique()
    return [a for a in rows if is_live(a.status, a.hold_expires_at, now)]


# -- finding practitioners -------------------------------------------------------

# Specialty words patients use, normalised (lower case, no accents or apostrophes).
_SPECIALTIES: dict[str, tuple[str, ...]] = {
    "general": (
        "general practice",
        "general practitioner",
        "general medicine",
        "gp",
        "general",
        "family doctor",
        "family medicine",
        "family physician",
        "primary care",
        "medicina general",
        "medico general",
        "medica general",
        "medicina familiar",
        "medico de familia",
        "medica de familia",
        "medico de cabecera",
        "doctor general",
    ),
    "dermatology": (
        "dermatology",
        "dermatologist",
        "derm",
        "skin doctor",
        "skin specialist",
        "skin",
        "dermatologia",
        "dermatologo",
        "dermatologa",
        "medico de la piel",
        "piel",
    ),
    "pediatrics": (
        "pediatrics",
        "peds",
        "paeds",
        "paediatrics",
        "pediatrician",
        "paediatrician",
        "childrens doctor",
        "children doctor",
        "child doctor",
        "kids doctor",
        "baby doctor",
        "pediatria",
        "pediatra",
        "medico de ninos",
        "doctor de ninos",
        "medico infantil",
    ),
    "cardiology": (
        "cardiology",
        "cardio",
        "cardiologist",
        "heart doctor",
        "heart specialist",
        "heart",
        "cardiologia",
        "cardiologo",
        "cardiologa",
        "medico del corazon",
        "corazon",
    ),
    "gynecology": (
        "gynecology",
        "gynaecology",
        "gynecologist",
        "gynaecologist",
        "obstetrics",
        "obgyn",
        "ob gyn",
        "ginecologia",
        "ginecologo",
        "ginecologa",
    ),
    "ophthalmology": (
        "ophthalmology",
        "ophthalmologist",
        "eye doctor",
        "oftalmologia",
        "oftalmologo",
        "oftalmologa",
        "medico de los ojos",
    ),
    "psychiatry": ("psychiatry", "psychiatrist", "psiquiatria", "psiquiatra"),
    "psychology": (
        "psychology",
        "psychologist",
        "therapist",
        "psicologia",
        "psicologo",
        "psicologa",
    ),
    "neurology": ("neurology", "neurologist", "neurologia", "neurologo", "neurologa"),
    "orthopedics": (
        "orthopedics",
        "orthopaedics",
        "orthopedist",
        "bone doctor",
        "traumatologia",
        "traumatologo",
        "traumatologa",
        "ortopedia",
    ),
    "ent": ("ent", "ear nose and throat", "otorrinolaringologia", "otorrino"),
}

# Words that never identify a practitioner by name.
_NOT_NAMES = frozenset(
    " ".join(
        (
            "dr dra doc doctor doctora medico medica the el la los las a an un una with con",
            "de del see ver want quiero need necesito i me my mi please por favor",
            "appointment cita book reservar to for para and y mr mrs ms sr sra srta",
        )
    ).split()
)

_NAME_CUTOFF = 80.0
_SPECIALTY_CUTOFF = 85.0


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = re.sub(r"['’`]", "", plain)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def _contains(haystack: str, phrase: str) -> bool:
    return f" {phrase} " in f" {haystack} "


def _specialty_score(query: str, phrases: Sequence[str]) -> float:
    best = 0.0
    tokens = query.split()
    for phrase in phrases:
        if _contains(query, phrase):
            return 100.0
        if len(query) >= 5:
            best = max(best, fuzz.ratio(query, phrase))
        if " " not in phrase and len(phrase) >= 6:
            for token in tokens:
                if len(token) >= 6:
                    best = max(best, fuzz.ratio(token, phrase))
    return best if best >= _SPECIALTY_CUTOFF else 0.0


def _groups_of(p: Practitioner) -> list[tuple[str, ...]]:
    """The synonym groups a practitioner's specialty belongs to (plus its own words)."""
    own = tuple(s for s in (_normalise(p.specialty), _normalise(p.specialty_es or "")) if s)
    groups = [own]
    for phrases in _SPECIALTIES.values():
        if any(
            name in phrases or fuzz.ratio(name, phrase) >= 90 for name in own for phrase in phrases
        ):
            groups.append(phrases)
    return groups


def _name_score(tokens: Sequence[str], p: Practitioner) -> float:
    names = [t for t in _normalise(p.name).split() if t not in _NOT_NAMES and len(t) >= 2]
    best = 0.0
    for token in tokens:
        if token in names:
            return 100.0
        if len(token) >= 4:
            for name in names:
                best = max(best, fuzz.ratio(token, name))
    return best if best >= _NAME_CUTOFF else 0.0


def find_practitioners(session: Session, query: str, lang: str = "en") -> list[Practitioner]:
    """Active practitioners matching a name or a specialty, best first.

    Names: any word of the name ("ruiz", "dr okafor", "Ana"), with typos
    ("okafr"). Specialties: English and Spanish words and everyday phrases
    ("dermatologist", "skin doctor", "dermatología", "pediatra", "children's
    doctor", "GP", "general"), with typos. Both languages always match;
    ``lang`` is accepted for callers and does not narrow the search. A blank
    query returns every active practitioner (by id). Only the best tier is
    returned: matches within 10 points of the best score.
    """
    del lang  # both languages always match
    everyone = list(
        session.scalars(
            select(Practitioner).where(Practitioner.active.is_(True)).order_by(Practitioner.id)
        ).unique()
    )
    if not query.strip():
        return everyone
    normalised = _normalise(query)
    tokens = [t for t in normalised.split() if t not in _NOT_NAMES]
    scored: list[tuple[float, Practitioner]] = []
    for p in everyone:
        score = _name_score(tokens, p)
        if score < 100.0:
            for phrases in _groups_of(p):
                score = max(score, _specialty_score(normalised, phrases))
        if score > 0.0:
            scored.append((score, p))
    if not scored:
        return []
    top = max(score for score, _ in scored)
    scored.sort(key=lambda item: (-item[0], item[1].id))
    return [p for score, p in scored if score >= top - 10.0]
