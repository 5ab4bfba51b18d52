"""Holding, confirming, booking, cancelling, releasing; finding practitioners."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import Appointment, AvailabilityRule, Clinic, Patient, Practitioner
from core.scheduling import (
    AppointmentNotFound,
    HoldExpired,
    InvalidTransition,
    SchedulingError,
    SlotUnavailable,
    book,
    cancel,
    confirm_hold,
    find_practitioners,
    free_slots,
    hold_slot,
    release_expired_holds,
    upcoming_appointments,
)

NY = "America/New_York"


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A wall-clock time in New York, as UTC."""
    return datetime(y, m, d, h, mi, tzinfo=ZoneInfo(NY)).astimezone(UTC)


MONDAY_9 = at(2026, 4, 13, 9)
MONDAY_10 = at(2026, 4, 13, 10)


def make_clinic(
    db: Database,
    *,
    blocks: Iterable[tuple[time, time]] = ((time(9), time(17)),),
    patients: int = 3,
    before: int = 0,
    after: int = 0,
    notice: int = 60,
    horizon: int = 30,
    visit_types: list[str] | None = None,
) -> tuple[int, list[int]]:
    """A New York practitioner working weekdays, and some patients."""
    with db.transaction() as s:
        clinic = Clinic(name="Test clinic", timezone=NY)
        s.add(clinic)
        s.flush()
        p = Practitioner(
            clinic_id=clinic.id,
            name="Dr Ana Ruiz",
            specialty="General practice",
            timezone=NY,
            slot_minutes=30,
            buffer_before_minutes=before,
            buffer_after_minutes=after,
            min_notice_minutes=notice,
            horizon_days=horizon,
            visit_types=visit_types or ["in_person", "video"],
        )
        s.add(p)
        s.flush()
        blocks = list(blocks)
        for weekday in range(5):
            for start, end in blocks:
                s.add(
                    AvailabilityRule(
                        practitioner_id=p.id, weekday=weekday, start_time=start, end_time=end
                    )
                )
        people = [Patient(clinic_id=clinic.id, name=f"Patient {i}") for i in range(patients)]
        s.add_all(people)
        s.flush()
        return p.id, [person.id for person in people]


def doctor(s: Session, pid: int) -> Practitioner:
    p = s.get(Practitioner, pid)
    assert p is not None
    return p


def get(s: Session, appointment_id: int) -> Appointment:
    a = s.get(Appointment, appointment_id)
    assert a is not None
    return a


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at(2026, 4, 12, 8))  # Sunday morning in New York


def hold(
    s: Session, pid: int, patient: int, start: datetime, clock: FixedClock, minutes: int = 10
) -> Appointment:
    return hold_slot(
        s,
        practitioner=doctor(s, pid),
        patient_id=patient,
        start=start,
        now=clock.now(),
        hold_minutes=minutes,
        channel="sms",
    )


def active_at(s: Session, pid: int, start: datetime) -> list[Appointment]:
    return list(
        s.scalars(
            select(Appointment).where(
                Appointment.practitioner_id == pid,
                Appointment.start_at == start,
                Appointment.status.in_(("held", "booked", "confirmed")),
            )
        ).unique()
    )


# -- hold and confirm -------------------------------------------------------------


def test_hold_then_confirm(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        held = hold(s, pid, alice, MONDAY_9, clock)
        assert held.status == "held"
        assert held.start_at == MONDAY_9
        assert held.end_at == MONDAY_9 + timedelta(minutes=30)
        assert held.hold_expires_at == clock.now() + timedelta(minutes=10)
        assert held.channel == "sms"
        held_id = held.id
        # A held slot is not offered to anyone else.
        assert MONDAY_9 not in [x.start for x in free_slots(s, doctor(s, pid), now=clock.now())]
    clock.advance(timedelta(minutes=5))
    with db.transaction() as s:
        booked = confirm_hold(s, held_id, now=clock.now())
        assert (booked.id, booked.status, booked.hold_expires_at) == (held_id, "booked", None)
    with db.transaction() as s:
        assert get(s, held_id).status == "booked"


@pytest.mark.parametrize(
    ("start", "reason"),
    [
        (at(2026, 4, 13, 8), "not working"),
        (at(2026, 4, 18, 10), "not working"),  # Saturday
        (at(2026, 4, 13, 9, 10), "not a slot start"),
        (at(2026, 4, 12, 8, 30), "too soon"),
        (at(2026, 4, 10, 10), "in the past"),
        (at(2026, 6, 1, 10), "horizon"),
    ],
)
def test_hold_refuses_what_the_rules_forbid(
    db: Database, clock: FixedClock, start: datetime, reason: str
) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s, pytest.raises(SlotUnavailable, match=reason):
        hold(s, pid, alice, start, clock)


def test_naive_datetimes_are_refused(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        with pytest.raises(ValueError, match="tz-aware"):
            hold(s, pid, alice, datetime(2026, 4, 13, 13), clock)
        with pytest.raises(ValueError, match="tz-aware"):
            book(
                s,
                practitioner=doctor(s, pid),
                patient_id=alice,
                start=MONDAY_9,
                now=datetime(2026, 4, 12, 12),
                channel=None,
            )
        with pytest.raises(ValueError, match="tz-aware"):
            release_expired_holds(s, now=datetime(2026, 4, 12, 12))


def test_taken_slot_leaves_the_transaction_usable(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        hold(s, pid, alice, MONDAY_9, clock)
    with db.transaction() as s:
        with pytest.raises(SlotUnavailable, match="already booked"):
            hold(s, pid, bob, MONDAY_9, clock)
        # The caller can still write (e.g. a "slot gone" reply) in the same transaction.
        s.add(Patient(clinic_id=doctor(s, pid).clinic_id, name="written after the failure"))
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 4
        assert len(active_at(s, pid, MONDAY_9)) == 1


def test_buffers_apply_to_holds(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db, after=15)
    with db.transaction() as s:
        hold(s, pid, alice, MONDAY_9, clock)
    with db.transaction() as s, pytest.raises(SlotUnavailable, match="too close"):
        hold(s, pid, bob, at(2026, 4, 13, 9, 30), clock)
    with db.transaction() as s:
        assert hold(s, pid, bob, MONDAY_10, clock).status == "held"


def test_confirm_after_expiry_books_when_still_free(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        held_id = hold(s, pid, alice, MONDAY_9, clock).id
    clock.advance(timedelta(minutes=30))
    with db.transaction() as s:
        assert confirm_hold(s, held_id, now=clock.now()).status == "booked"


def test_confirm_after_the_sweeper_released_it_books_when_still_free(
    db: Database, clock: FixedClock
) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        held_id = hold(s, pid, alice, MONDAY_9, clock).id
    clock.advance(timedelta(minutes=30))
    with db.transaction() as s:
        assert release_expired_holds(s, now=clock.now()) == 1
    with db.transaction() as s:
        booked = confirm_hold(s, held_id, now=clock.now())
        assert (booked.status, booked.cancel_reason) == ("booked", None)


def test_confirm_after_expiry_when_taken_raises_hold_expired(
    db: Database, clock: FixedClock
) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        alice_hold = hold(s, pid, alice, MONDAY_9, clock).id
    clock.advance(timedelta(minutes=11))
    with db.transaction() as s:
        bob_hold = hold(s, pid, bob, MONDAY_9, clock).id  # the expired hold is released
        assert get(s, alice_hold).status == "cancelled"
        assert get(s, alice_hold).cancel_reason == "hold_expired"
    with db.transaction() as s:
        with pytest.raises(HoldExpired):
            confirm_hold(s, alice_hold, now=clock.now())
        assert get(s, bob_hold).status == "held"
    with db.transaction() as s:
        assert [a.id for a in active_at(s, pid, MONDAY_9)] == [bob_hold]


def test_confirm_an_expired_hold_whose_slot_was_taken_but_not_yet_released(
    db: Database, clock: FixedClock
) -> None:
    pid, (alice, bob, _) = make_clinic(db, after=30)
    with db.transaction() as s:
        alice_hold = hold(s, pid, alice, MONDAY_10, clock).id
    clock.advance(timedelta(minutes=11))
    with db.transaction() as s:  # Bob takes 09:30, which only the buffer makes clash
        hold(s, pid, bob, at(2026, 4, 13, 9, 30), clock)
    with db.transaction() as s, pytest.raises(HoldExpired, match="too close"):
        confirm_hold(s, alice_hold, now=clock.now())


def test_one_hold_per_patient(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        first = hold(s, pid, alice, MONDAY_9, clock).id
    with db.transaction() as s:
        second = hold(s, pid, alice, MONDAY_10, clock).id
        assert get(s, first).status == "cancelled"
        assert get(s, first).cancel_reason == "hold_replaced"
    with db.transaction() as s:
        # Holding the same slot again simply replaces the hold.
        third = hold(s, pid, alice, MONDAY_10, clock).id
        assert get(s, second).status == "cancelled"
        assert get(s, third).status == "held"
        # Another patient's hold is not touched.
        hold(s, pid, bob, MONDAY_9, clock)
        assert get(s, third).status == "held"
    with db.transaction() as s:
        holds = s.scalars(
            select(Appointment).where(Appointment.patient_id == alice, Appointment.status == "held")
        ).all()
        assert [a.id for a in holds] == [third]


def test_a_failed_hold_keeps_the_previous_one(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        mine = hold(s, pid, alice, MONDAY_9, clock).id
        hold(s, pid, bob, MONDAY_10, clock)
    with db.transaction() as s:
        with pytest.raises(SlotUnavailable):
            hold(s, pid, alice, MONDAY_10, clock)
        assert get(s, mine).status == "held"
    with db.transaction() as s:
        assert get(s, mine).status == "held"


def test_reschedule_through_hold_and_confirm(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        old_id = book(
            s,
            practitioner=doctor(s, pid),
            patient_id=alice,
            start=MONDAY_9,
            now=clock.now(),
            channel="sms",
        ).id
    with db.transaction() as s:
        new_id = hold(s, pid, alice, at(2026, 4, 14, 11), clock).id
        new = confirm_hold(s, new_id, now=clock.now(), replaces_id=old_id)
        assert new.status == "booked"
        assert new.rescheduled_from_id == old_id
        old = get(s, old_id)
        assert (old.status, old.cancel_reason) == ("cancelled", "rescheduled")
    with db.transaction() as s:
        assert get(s, old_id).status == "cancelled"
        assert get(s, new_id).rescheduled_from_id == old_id
        assert MONDAY_9 in [x.start for x in free_slots(s, doctor(s, pid), now=clock.now())]


def test_reschedule_refuses_someone_elses_or_a_cancelled_appointment(
    db: Database, clock: FixedClock
) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        p = doctor(s, pid)
        bobs = book(
            s, practitioner=p, patient_id=bob, start=MONDAY_9, now=clock.now(), channel=None
        ).id
        new_id = hold(s, pid, alice, MONDAY_10, clock).id
    with db.transaction() as s:
        with pytest.raises(InvalidTransition, match="another patient"):
            confirm_hold(s, new_id, now=clock.now(), replaces_id=bobs)
        assert get(s, new_id).status == "held"
        assert get(s, bobs).status == "booked"
        with pytest.raises(AppointmentNotFound):
            confirm_hold(s, new_id, now=clock.now(), replaces_id=999_999)
        cancel(s, bobs, now=clock.now())
    with db.transaction() as s:
        bob_new = hold(s, pid, bob, at(2026, 4, 13, 11), clock).id
        with pytest.raises(InvalidTransition, match="cancelled"):
            confirm_hold(s, bob_new, now=clock.now(), replaces_id=bobs)


def test_confirm_refuses_what_is_not_held(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        booked = book(
            s,
            practitioner=doctor(s, pid),
            patient_id=alice,
            start=MONDAY_9,
            now=clock.now(),
            channel=None,
        ).id
        with pytest.raises(InvalidTransition, match="booked, not held"):
            confirm_hold(s, booked, now=clock.now())
        with pytest.raises(AppointmentNotFound):
            confirm_hold(s, 424242, now=clock.now())
        released = hold(s, pid, alice, MONDAY_10, clock).id
        cancel(s, released, now=clock.now(), reason="hold_released")
        with pytest.raises(InvalidTransition):
            confirm_hold(s, released, now=clock.now())


# -- cancel ------------------------------------------------------------------------


def test_cancel_and_cancel_twice(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        aid = book(
            s,
            practitioner=doctor(s, pid),
            patient_id=alice,
            start=MONDAY_9,
            now=clock.now(),
            channel=None,
        ).id
    with db.transaction() as s:
        cancelled = cancel(s, aid, now=clock.now())
        assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "patient")
        assert cancelled.updated_at == clock.now()
    with db.transaction() as s:
        with pytest.raises(InvalidTransition, match="already cancelled"):
            cancel(s, aid, now=clock.now(), reason="clinic")
        assert get(s, aid).cancel_reason == "patient"
        with pytest.raises(AppointmentNotFound):
            cancel(s, 999_999, now=clock.now())


def test_cancel_past_or_started_appointment_refused(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        aid = book(
            s,
            practitioner=doctor(s, pid),
            patient_id=alice,
            start=MONDAY_9,
            now=clock.now(),
            channel=None,
        ).id
    for later in (MONDAY_9, MONDAY_9 + timedelta(minutes=10), MONDAY_9 + timedelta(days=1)):
        with db.transaction() as s, pytest.raises(InvalidTransition, match="already started"):
            cancel(s, aid, now=later)
    with db.transaction() as s:
        assert get(s, aid).status == "booked"


# -- book ----------------------------------------------------------------------------


def test_book_by_the_rules(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        p = doctor(s, pid)
        a = book(
            s,
            practitioner=p,
            patient_id=alice,
            start=MONDAY_9,
            now=clock.now(),
            channel="telegram",
            visit_type="video",
        )
        assert (a.status, a.visit_type, a.channel) == ("booked", "video", "telegram")
        assert a.end_at == MONDAY_9 + timedelta(minutes=30)
        with pytest.raises(SlotUnavailable, match="already booked"):
            book(s, practitioner=p, patient_id=bob, start=MONDAY_9, now=clock.now(), channel=None)
        with pytest.raises(SlotUnavailable, match="not working"):
            book(
                s,
                practitioner=p,
                patient_id=bob,
                start=at(2026, 4, 13, 18),
                now=clock.now(),
                channel=None,
            )
        with pytest.raises(SchedulingError, match="staff booking"):
            book(
                s,
                practitioner=p,
                patient_id=bob,
                start=MONDAY_10,
                now=clock.now(),
                channel=None,
                end=MONDAY_10 + timedelta(hours=1),
            )


def test_visit_type_must_be_offered(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db, visit_types=["in_person"])
    with db.transaction() as s:
        p = doctor(s, pid)
        with pytest.raises(SchedulingError, match="does not offer video"):
            book(
                s,
                practitioner=p,
                patient_id=alice,
                start=MONDAY_9,
                now=clock.now(),
                channel=None,
                visit_type="video",
            )
        with pytest.raises(ValueError, match="visit_type"):
            book(
                s,
                practitioner=p,
                patient_id=alice,
                start=MONDAY_9,
                now=clock.now(),
                channel=None,
                visit_type="phone",
            )


def test_staff_book_outside_hours_but_never_overlapping(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, carol) = make_clinic(db, notice=24 * 60, after=30)
    saturday_night = at(2026, 4, 18, 20, 10)
    with db.transaction() as s:
        p = doctor(s, pid)
        # Outside hours, off the grid, too soon and with a custom length: staff may.
        a = book(
            s,
            practitioner=p,
            patient_id=alice,
            start=saturday_night,
            now=clock.now(),
            channel=None,
            enforce_rules=False,
            end=saturday_night + timedelta(minutes=50),
        )
        assert a.end_at == saturday_night + timedelta(minutes=50)
        soon = book(
            s,
            practitioner=p,
            patient_id=bob,
            start=at(2026, 4, 12, 8, 30),
            now=clock.now(),
            channel=None,
            enforce_rules=False,
        )
        assert soon.end_at - soon.start_at == timedelta(minutes=30)
        # Overlapping: refused with a reason, whoever asks.
        with pytest.raises(SlotUnavailable, match="already booked"):
            book(
                s,
                practitioner=p,
                patient_id=carol,
                start=saturday_night + timedelta(minutes=40),
                now=clock.now(),
                channel=None,
                enforce_rules=False,
            )
        # Buffers are a patient rule: staff may book right after.
        after = book(
            s,
            practitioner=p,
            patient_id=carol,
            start=saturday_night + timedelta(minutes=50),
            now=clock.now(),
            channel=None,
            enforce_rules=False,
        )
        assert after.status == "booked"
        with pytest.raises(SchedulingError, match="end after"):
            book(
                s,
                practitioner=p,
                patient_id=carol,
                start=saturday_night,
                now=clock.now(),
                channel=None,
                enforce_rules=False,
                end=saturday_night,
            )
        with pytest.raises(SchedulingError, match="at most 24 hours"):
            book(
                s,
                practitioner=p,
                patient_id=carol,
                start=at(2026, 5, 1),
                now=clock.now(),
                channel=None,
                enforce_rules=False,
                end=at(2026, 5, 2, 1),
            )
        with pytest.raises(SlotUnavailable, match="in the past"):
            book(
                s,
                practitioner=p,
                patient_id=carol,
                start=at(2026, 4, 11, 10),
                now=clock.now(),
                channel=None,
                enforce_rules=False,
            )


def test_staff_booking_over_an_expired_hold_releases_it(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        held = hold(s, pid, alice, MONDAY_9, clock).id
    clock.advance(timedelta(hours=1))
    with db.transaction() as s:
        staff = book(
            s,
            practitioner=doctor(s, pid),
            patient_id=bob,
            start=MONDAY_9,
            now=clock.now(),
            channel=None,
            enforce_rules=False,
            end=MONDAY_10,
        )
        assert staff.status == "booked"
        assert (get(s, held).status, get(s, held).cancel_reason) == ("cancelled", "hold_expired")


# -- release, upcoming -------------------------------------------------------------------


def test_release_expired_holds(db: Database, clock: FixedClock) -> None:
    pid, patients = make_clinic(db, patients=4)
    with db.transaction() as s:
        ids = [
            hold(s, pid, patient, MONDAY_9 + timedelta(hours=i), clock, minutes=5 * (i + 1)).id
            for i, patient in enumerate(patients[:3])
        ]
        book(
            s,
            practitioner=doctor(s, pid),
            patient_id=patients[3],
            start=at(2026, 4, 14, 9),
            now=clock.now(),
            channel=None,
        )
    clock.advance(timedelta(minutes=10))  # holds of 5 and 10 minutes have run out
    with db.transaction() as s:
        loaded = get(s, ids[0])  # a loaded copy is refreshed too
        assert release_expired_holds(s, now=clock.now()) == 2
        assert loaded.status == "cancelled"
    with db.transaction() as s:
        assert [get(s, i).status for i in ids] == ["cancelled", "cancelled", "held"]
        assert {get(s, i).cancel_reason for i in ids[:2]} == {"hold_expired"}
        assert release_expired_holds(s, now=clock.now()) == 0


def test_upcoming_appointments(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db)
    with db.transaction() as s:
        p = doctor(s, pid)
        later = book(
            s,
            practitioner=p,
            patient_id=alice,
            start=at(2026, 4, 15, 9),
            now=clock.now(),
            channel=None,
        ).id
        sooner = book(
            s, practitioner=p, patient_id=alice, start=MONDAY_10, now=clock.now(), channel=None
        ).id
        gone = book(
            s,
            practitioner=p,
            patient_id=alice,
            start=at(2026, 4, 16, 9),
            now=clock.now(),
            channel=None,
        ).id
        cancel(s, gone, now=clock.now())
        book(s, practitioner=p, patient_id=bob, start=MONDAY_9, now=clock.now(), channel=None)
        held = hold(s, pid, alice, at(2026, 4, 17, 9), clock).id
    with db.transaction() as s:
        found = upcoming_appointments(s, alice, now=clock.now())
        assert [a.id for a in found] == [sooner, later, held]
        clock.advance(timedelta(minutes=30))  # the hold has run out
        assert [a.id for a in upcoming_appointments(s, alice, now=clock.now())] == [sooner, later]
        # An appointment under way still counts; one that has ended does not.
        during = upcoming_appointments(s, alice, now=MONDAY_10 + timedelta(minutes=10))
        assert [a.id for a in during] == [sooner, later]
        after = upcoming_appointments(s, alice, now=MONDAY_10 + timedelta(minutes=30))
        assert [a.id for a in after] == [later]


# -- find_practitioners --------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "lang", "expected"),
    [
        ("ruiz", "en", ["Dr Ana Ruiz"]),
        ("Dr Ruiz", "en", ["Dr Ana Ruiz"]),
        ("dr okafor", "en", ["Dr Ben Okafor"]),
        ("Dr. Okafr", "en", ["Dr Ben Okafor"]),
        ("okafor", "es", ["Dr Ben Okafor"]),
        ("Ana", "en", ["Dr Ana Ruiz"]),
        ("carmen silvia", "en", ["Dr Carmen Silva"]),
        ("la doctora Silva", "es", ["Dr Carmen Silva"]),
        ("chen", "en", ["Dr David Chen"]),
        ("dermatologist", "en", ["Dr Ben Okafor"]),
        ("Dermatology", "en", ["Dr Ben Okafor"]),
        ("dermatolgist", "en", ["Dr Ben Okafor"]),
        ("skin doctor", "en", ["Dr Ben Okafor"]),
        ("dermatología", "es", ["Dr Ben Okafor"]),
        ("dermatologia", "es", ["Dr Ben Okafor"]),
        ("dermatólogo", "es", ["Dr Ben Okafor"]),
        ("pediatra", "es", ["Dr Carmen Silva"]),
        ("Pediatría", "es", ["Dr Carmen Silva"]),
        ("pediatrician", "en", ["Dr Carmen Silva"]),
        ("paediatrician", "en", ["Dr Carmen Silva"]),
        ("children's doctor", "en", ["Dr Carmen Silva"]),
        ("GP", "en", ["Dr Ana Ruiz"]),
        ("general", "en", ["Dr Ana Ruiz"]),
        ("general practice", "en", ["Dr Ana Ruiz"]),
        ("medicina general", "es", ["Dr Ana Ruiz"]),
        ("médico de cabecera", "es", ["Dr Ana Ruiz"]),
        ("cardiologist", "en", ["Dr David Chen"]),
        ("cardiólogo", "es", ["Dr David Chen"]),
        ("heart doctor", "en", ["Dr David Chen"]),
        ("I'd like to see a dermatologist", "en", ["Dr Ben Okafor"]),
        ("quiero una cita con el pediatra", "es", ["Dr Carmen Silva"]),
        ("derm", "en", ["Dr Ben Okafor"]),
        ("cardio", "en", ["Dr David Chen"]),
        ("peds", "en", ["Dr Carmen Silva"]),
        ("family doctor", "en", ["Dr Ana Ruiz"]),
        ("tuesday with Dr Ruiz", "en", ["Dr Ana Ruiz"]),
        ("book with okafor tomorrow", "en", ["Dr Ben Okafor"]),
        ("xyzzy", "en", []),
        ("yes", "en", []),
        ("help", "en", []),
        ("menu", "es", []),
        ("cancel my appointment", "en", []),
        ("mis citas", "es", []),
        ("I have a rash", "en", []),
        ("doctor", "en", []),
        ("tomorrow at 3", "en", []),
        ("mañana por la tarde", "es", []),
    ],
)
def test_find_practitioners(db: Database, query: str, lang: str, expected: list[str]) -> None:
    with db.transaction() as s:
        seed_demo(s, NY)
    with db.transaction() as s:
        assert [p.name for p in find_practitioners(s, query, lang)] == expected


def test_find_practitioners_active_only_and_blank_lists_everyone(db: Database) -> None:
    with db.transaction() as s:
        seed_demo(s, NY)
        okafor = s.scalars(select(Practitioner).where(Practitioner.name == "Dr Ben Okafor")).one()
        okafor.active = False
    with db.transaction() as s:
        assert find_practitioners(s, "okafor") == []
        assert find_practitioners(s, "dermatologist") == []
        assert [p.name for p in find_practitioners(s, "")] == [
            "Dr Ana Ruiz",
            "Dr Carmen Silva",
            "Dr David Chen",
        ]
        assert [p.name for p in find_practitioners(s, "  ")] == [
            "Dr Ana Ruiz",
            "Dr Carmen Silva",
            "Dr David Chen",
        ]


def test_inactive_practitioner_takes_no_holds(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        doctor(s, pid).active = False
    with db.transaction() as s, pytest.raises(SlotUnavailable, match="not taking bookings"):
        hold(s, pid, alice, MONDAY_9, clock)


def test_a_hold_whose_slot_has_started_cannot_be_confirmed(db: Database, clock: FixedClock) -> None:
    pid, (alice, *_) = make_clinic(db)
    with db.transaction() as s:
        held = hold(s, pid, alice, MONDAY_9, clock).id
    with db.transaction() as s, pytest.raises(HoldExpired, match="passed"):
        confirm_hold(s, held, now=MONDAY_9 + timedelta(minutes=5))
    with db.transaction() as s:
        assert get(s, held).status == "held"


def test_reasons_read_well(db: Database, clock: FixedClock) -> None:
    pid, (alice, bob, _) = make_clinic(db, after=10)
    with db.transaction() as s:
        hold(s, pid, alice, MONDAY_9, clock)
    with db.transaction() as s:
        with pytest.raises(SlotUnavailable) as taken:
            hold(s, pid, bob, MONDAY_9, clock)
        assert str(taken.value) == (
            "Dr Ana Ruiz is already booked at 2026-04-13 09:00 EDT "
            "(appointment 2026-04-13 09:00 EDT to 09:30 EDT)"
        )
        with pytest.raises(SlotUnavailable) as close:
            hold(s, pid, bob, at(2026, 4, 13, 9, 30), clock)
        assert str(close.value) == (
            "2026-04-13 09:30 EDT is too close to Dr Ana Ruiz's appointment at "
            "2026-04-13 09:00 EDT to 09:30 EDT (10 minutes are kept free between appointments)"
        )
        with pytest.raises(SlotUnavailable) as hours:
            hold(s, pid, bob, at(2026, 4, 13, 7), clock)
        assert str(hours.value) == "Dr Ana Ruiz is not working at 2026-04-13 07:00 EDT"
