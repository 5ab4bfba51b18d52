"""Date-of-birth checks: right answer verifies; three wrong ones lock and alert."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from core import verification
from core.clock import FixedClock
from core.db import Database
from core.models import Alert, ChannelIdentity
from core.patients import find_or_create_patient_by_phone, get_or_create_identity
from tests.clinic import Clinic

DOB = date(1980, 1, 1)  # what tests.clinic.Clinic.book registers


def identity(db: Database, clock: FixedClock, channel: str, address: str) -> int:
    with db.transaction() as session:
        return get_or_create_identity(session, channel, address, now=clock.now()).id


def check(db: Database, clock: FixedClock, identity_id: int, given: date) -> verification.Check:
    with db.transaction() as session:
        found = session.get(ChannelIdentity, identity_id)
        assert found is not None
        return verification.check_dob(session, found, given, clinic_id=1, now=clock.now())


def test_the_right_date_verifies_and_resets_failures(db: Database, clock: FixedClock) -> None:
    clinic = Clinic.open(db, clock)
    clinic.book("+15555550401", clinic.clock.now().replace(hour=20))
    who = identity(db, clock, "sms", "+15555550401")
    assert check(db, clock, who, date(1980, 1, 2)) == verification.Check(False, tries_left=2)
    assert check(db, clock, who, DOB).ok
    with db.transaction() as session:
        found = session.get(ChannelIdentity, who)
        assert found is not None
        assert verification.is_verified(found) and found.verify_failures == 0


def test_three_wrong_dates_lock_this_identity_only_and_alert(
    db: Database, clock: FixedClock
) -> None:
    clinic = Clinic.open(db, clock)
    clinic.book("+15555550402", clinic.clock.now().replace(hour=20))
    with db.transaction() as session:
        patient = find_or_create_patient_by_phone(
            session, 1, "+15555550402", "sms", now=clock.now()
        )
        other = get_or_create_identity(session, "telegram", "777", now=clock.now())
        other.patient_id = patient.id  # the same patient on Telegram
        other_id = other.id
    who = identity(db, clock, "sms", "+15555550402")
    for left in (2, 1):
        assert check(db, clock, who, date(1999, 9, 9)).tries_left == left
    assert check(db, clock, who, date(1999, 9, 9)).locked
    assert check(db, clock, who, DOB).locked  # even the right date, once locked
    assert check(db, clock, other_id, DOB).ok  # the Telegram identity is not locked
    with db.transaction() as session:
        [alert] = session.scalars(select(Alert)).all()
        assert (alert.kind, alert.level, alert.address, alert.text) == (
            "identity_locked",
            "urgent",
            "+15555550402",
            "",
        )


def test_a_new_number_never_verifies_as_someone_else(db: Database, clock: FixedClock) -> None:
    clinic = Clinic.open(db, clock)
    clinic.book("+15555550403", clinic.clock.now().replace(hour=20))
    stranger = identity(db, clock, "sms", "+15555550499")
    assert not check(db, clock, stranger, DOB).ok  # no patient behind it: nothing matches
