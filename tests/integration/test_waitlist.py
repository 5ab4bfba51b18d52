"""The waitlist: "anything sooner?", freed slots offered, the first reply wins."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import scheduling, waitlist
from core.clock import FixedClock
from core.db import Database
from core.models import Appointment, Notification, Practitioner, WaitlistEntry
from core.patients import find_or_create_patient_by_phone
from flows.engine import FlowEngine
from tests.clinic import TZ, Clinic
from tests.dialogue import Chat

NY = ZoneInfo(TZ)
ANA, BEN, CAT, DAN = (f"+1555555020{i}" for i in range(1, 5))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


WED_10 = local(2026, 4, 15, 10, 0)
FRI_10 = local(2026, 4, 17, 10, 0)


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    return Clinic.open(db, clock)


def chat(clinic: Clinic, address: str, db: Database | None = None) -> Chat:
    return Chat(FlowEngine(db or clinic.db, clinic.settings, clinic.clock), address)


def offers_to(clinic: Clinic, address: str) -> list[str]:
    return [t for t in clinic.channels["sms"].texts(address) if "earlier time is free" in t]


def active(clinic: Clinic) -> list[Appointment]:
    with clinic.db.transaction() as session:
        return list(
            session.scalars(
                select(Appointment)
                .where(Appointment.status.in_(("booked", "confirmed")))
                .order_by(Appointment.start_at)
            )
        )


def test_anything_sooner_joins_and_a_freed_slot_moves_the_visit_earlier(clinic: Clinic) -> None:
    mine = clinic.book(ANA, FRI_10)
    theirs = clinic.book(BEN, WED_10)
    ana = chat(clinic, ANA)
    answer = ana.say("anything sooner?")
    assert "waitlist for Dr Ana Ruiz until Fri 17 Apr" in answer
    assert "15 minutes" in answer and "You keep your appointment on Fri 17 Apr, 10:00 AM" in answer

    ben = chat(clinic, BEN)
    ben.say("cancel my appointment")
    assert "cancelled" in ben.say("1")
    clinic.run()
    offer = offers_to(clinic, ANA)
    assert len(offer) == 1
    assert "Wed 15 Apr, 10:00 AM" in offer[0] and "Reply 1 within 15 minutes" in offer[0]

    answer = ana.say("1")
    assert "Changed: Dr Ana Ruiz, Wed 15 Apr, 10:00 AM" in answer
    assert clinic.appointment(mine).status == "cancelled"
    assert [(a.patient_id, a.start_at) for a in active(clinic)] == [
        (clinic.appointment(mine).patient_id, WED_10)
    ]
    assert clinic.appointment(theirs).status == "cancelled"


def waitlisted(clinic: Clinic, addresses: list[str]) -> None:
    """Patients on the waitlist for Dr Ruiz this week, joined in this order."""
    with clinic.db.transaction() as session:
        p = session.get(Practitioner, clinic.practitioner("Ruiz"))
        assert p is not None
        for i, address in enumerate(addresses):
            now = clinic.clock.now() + timedelta(seconds=i)
            patient = find_or_create_patient_by_phone(session, p.clinic_id, address, "sms", now=now)
            patient.name = f"Patient {i}"
            waitlist.join(
                session,
                clinic_id=p.clinic_id,
                patient_id=patient.id,
                channel="sms",
                address=address,
                practitioner=p,
                earliest=now,
                latest=now + timedelta(days=7),
                now=now,
            )


def free_wednesday(clinic: Clinic) -> None:
    freed = clinic.book(DAN, WED_10)
    with clinic.db.transaction() as session:
        scheduling.cancel(session, freed, now=clinic.clock.now(), reason="patient")
    clinic.run()


def test_three_offered_all_reply_at_once_one_gets_it(clinic: Clinic) -> None:
    patients = [ANA, BEN, CAT]
    waitlisted(clinic, patients)
    free_wednesday(clinic)
    assert all(len(offers_to(clinic, a)) == 1 for a in patients)

    databases = [Database(clinic.db.url) for _ in patients]
    chats = [chat(clinic, a, d) for a, d in zip(patients, databases, strict=True)]
    barrier = threading.Barrier(len(chats))

    def take(c: Chat) -> str:
        barrier.wait()
        return c.say("1")

    try:
        with ThreadPoolExecutor(len(chats)) as pool:
            answers = list(pool.map(take, chats))
    finally:
        for d in databases:
            d.dispose()
    winners = [a for a in answers if "Booked: Dr Ana Ruiz, Wed 15 Apr, 10:00 AM" in a]
    told = [a for a in answers if "just been taken" in a]
    assert len(winners) == 1 and len(told) == 2, answers
    assert [a.start_at for a in active(clinic)] == [WED_10]
    with clinic.db.transaction() as session:
        statuses = sorted(e.status for e in session.scalars(select(WaitlistEntry)))
    assert statuses == ["booked", "waiting", "waiting"]


def test_the_others_are_told_when_someone_takes_it(clinic: Clinic) -> None:
    waitlisted(clinic, [ANA, BEN])
    free_wednesday(clinic)
    assert "Booked" in chat(clinic, ANA).say("yes")
    clinic.run()
    gone = [t for t in clinic.channels["sms"].texts(BEN) if "has been taken" in t]
    assert len(gone) == 1 and "still on the waitlist" in gone[0]
    ben = chat(clinic, BEN)
    assert "just been taken" in ben.say("1")  # answering the offer anyway
    assert "What would you like to do?" in ben.say("1")  # nothing left to answer


def test_an_offer_answered_too_late_has_expired(clinic: Clinic) -> None:
    waitlisted(clinic, [ANA])
    free_wednesday(clinic)
    clinic.clock.advance(timedelta(minutes=16))
    assert "expired" in chat(clinic, ANA).say("1")
    assert active(clinic) == []


def test_the_next_in_line_is_offered_only_after_the_first_passes(clinic: Clinic) -> None:
    clinic.settings = clinic.settings.model_copy(update={"waitlist_offer_count": 1})
    waitlisted(clinic, [ANA, BEN])
    free_wednesday(clinic)
    assert offers_to(clinic, ANA) and not offers_to(clinic, BEN)
    assert "keep looking" in chat(clinic, ANA).say("no thanks")


def test_without_a_booking_anything_sooner_starts_a_booking(clinic: Clinic) -> None:
    answer = chat(clinic, ANA).say("is there anything sooner?")
    assert "first book a visit" in answer
    assert "Who would you like to see?" in answer


def test_a_held_slot_expiring_is_not_offered(clinic: Clinic) -> None:
    waitlisted(clinic, [ANA])
    with clinic.db.transaction() as session:
        p = session.get(Practitioner, clinic.practitioner("Ruiz"))
        assert p is not None
        patient = find_or_create_patient_by_phone(
            session, p.clinic_id, DAN, "sms", now=clinic.clock.now()
        )
        scheduling.hold_slot(
            session,
            practitioner=p,
            patient_id=patient.id,
            start=WED_10,
            now=clinic.clock.now(),
            hold_minutes=10,
            channel="sms",
        )
    clinic.clock.advance(timedelta(minutes=11))
    clinic.run()
    assert offers_to(clinic, ANA) == []
    with clinic.db.transaction() as session:
        assert session.scalars(select(Notification)).all() == []
