"""No double booking under a real race: many connections, one slot.

Every thread opens its OWN ``Database`` (engine, connection) on the same
database: the same SQLite file, or the same PostgreSQL URL. A barrier lets
them all go at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from core.db import Database
from core.models import Appointment, AvailabilityRule, Clinic, Patient, Practitioner
from core.scheduling import SlotUnavailable, book, hold_slot

NY = "America/New_York"
THREADS = 20
NOW = datetime(2026, 4, 12, 12, tzinfo=UTC)  # Sunday
SLOT = datetime(2026, 4, 13, 9, tzinfo=ZoneInfo(NY)).astimezone(UTC)  # Monday 09:00

Attempt = Callable[[Database, int, int], object]


def make_clinic(db: Database, patients: int) -> tuple[int, list[int]]:
    with db.transaction() as s:
        clinic = Clinic(name="Race clinic", timezone=NY)
        s.add(clinic)
        s.flush()
        p = Practitioner(
            clinic_id=clinic.id,
            name="Dr Race",
            specialty="General practice",
            timezone=NY,
            slot_minutes=30,
            min_notice_minutes=0,
            horizon_days=30,
        )
        s.add(p)
        s.flush()
        for weekday in range(5):
            s.add(
                AvailabilityRule(
                    practitioner_id=p.id, weekday=weekday, start_time=time(9), end_time=time(17)
                )
            )
        people = [Patient(clinic_id=clinic.id, name=f"P{i}") for i in range(patients)]
        s.add_all(people)
        s.flush()
        return p.id, [person.id for person in people]


def hold_attempt(db: Database, pid: int, patient_id: int) -> object:
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        return hold_slot(
            s,
            practitioner=p,
            patient_id=patient_id,
            start=SLOT,
            now=NOW,
            hold_minutes=10,
            channel="sms",
        ).id


def book_attempt(db: Database, pid: int, patient_id: int) -> object:
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        return book(s, practitioner=p, patient_id=patient_id, start=SLOT, now=NOW, channel="sms").id


def staff_attempt(db: Database, pid: int, patient_id: int) -> object:
    """Staff bookings of different lengths, all covering 09:10-09:20."""
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        start = SLOT + timedelta(minutes=patient_id % 10)
        return book(
            s,
            practitioner=p,
            patient_id=patient_id,
            start=start,
            end=start + timedelta(minutes=20 + patient_id % 7),
            now=NOW,
            channel=None,
            enforce_rules=False,
        ).id


def race(db: Database, attempt: Attempt) -> tuple[list[object], list[BaseException]]:
    pid, patients = make_clinic(db, THREADS)
    databases = [Database(db.url) for _ in range(THREADS)]
    for database in databases:
        database.ping()  # connect before the start line
    barrier = threading.Barrier(THREADS, timeout=30)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(database: Database, patient_id: int) -> None:
        try:
            barrier.wait()
            outcome = attempt(database, pid, patient_id)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(outcome)

    threads = [
        threading.Thread(target=run, args=(database, patient_id), daemon=True)
        for database, patient_id in zip(databases, patients, strict=True)
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads), "a booking hung"
    finally:
        for database in databases:
            database.dispose()
    with db.transaction() as s:
        active = s.scalars(
            select(Appointment).where(
                Appointment.practitioner_id == pid,
                Appointment.status.in_(("held", "booked", "confirmed")),
            )
        ).unique()
        assert [a.id for a in active] == results
    return results, errors


@pytest.mark.parametrize("attempt", [hold_attempt, book_attempt, staff_attempt])
def test_one_slot_many_patients_at_once(db: Database, attempt: Attempt) -> None:
    results, errors = race(db, attempt)
    assert len(results) == 1, errors
    assert len(errors) == THREADS - 1
    unexpected = [e for e in errors if type(e) is not SlotUnavailable]
    assert not unexpected, unexpected


def test_exclusion_constraint_is_the_backstop_on_postgres(postgres_db: Database) -> None:
    """A row the pre-check cannot see still cannot overlap: the constraint says no.

    The busy-time checks only look back MAX_APPOINTMENT_LENGTH (24 hours) from
    a range; a 3-day appointment written around this module (raw SQL) escapes
    them, so the INSERT reaches PostgreSQL and trips ``appointments_no_overlap``.
    The violation becomes SlotUnavailable and the savepoint keeps the caller's
    transaction usable.
    """
    db = postgres_db
    pid, (squatter, patient) = make_clinic(db, 2)
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        s.execute(
            text(
                "INSERT INTO appointments (clinic_id, practitioner_id, patient_id, start_at,"
                " end_at, status, visit_type, created_at, updated_at) VALUES (:clinic,"
                " :pid, :patient, :start, :end, 'booked', 'in_person', :now, :now)"
            ),
            {
                "clinic": p.clinic_id,
                "pid": pid,
                "patient": squatter,
                "start": SLOT - timedelta(days=2),
                "end": SLOT + timedelta(days=1),
                "now": NOW,
            },
        )
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        with pytest.raises(SlotUnavailable, match="just booked"):
            hold_slot(
                s,
                practitioner=p,
                patient_id=patient,
                start=SLOT,
                now=NOW,
                hold_minutes=10,
                channel="sms",
            )
        s.add(Patient(clinic_id=p.clinic_id, name="written after the violation"))
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 3
        assert s.scalar(select(func.count()).select_from(Appointment)) == 1
