"""Prescriptions and pharmacies in the chat: bad places, ambiguous towns,
refills asked and answered, closed prescriptions explained."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from core import pharmacies, prescriptions
from core.clock import FixedClock
from core.db import Database
from core.messages import InboundMessage, Location
from core.models import Pharmacy
from core.patients import find_or_create_patient_by_phone
from flows.engine import FlowEngine
from tests.clinic import Clinic
from tests.dialogue import Chat, render

PHONE = "+15555550611"
DOB = "03/04/1975"


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    clinic = Clinic.open(db, clock)
    with db.transaction() as session:
        patient = find_or_create_patient_by_phone(session, 1, PHONE, "sms", now=clock.now())
        patient.name, patient.date_of_birth = "Jane Roe", date(1975, 3, 4)
    return clinic


def chat(clinic: Clinic, address: str = PHONE) -> Chat:
    return Chat(FlowEngine(clinic.db, clinic.settings, clinic.clock), address)


def issued(clinic: Clinic, *, refills: int = 1) -> int:
    with clinic.db.transaction() as session:
        p = prescriptions.issue(
            session,
            practitioner_id=1,
            patient_id=1,
            items=[
                {
                    "medicine": "Lisinopril",
                    "strength": "10 mg",
                    "form": "tablet",
                    "dose": "1 tablet daily",
                    "quantity": 30,
                    "refills": refills,
                }
            ],
            now=clinic.clock.now(),
        )
        prescriptions.patient_notice(session, p, "issued", clinic.clock.now())
        return p.id


def share(c: Chat, lat: float, lon: float) -> str:
    msg = InboundMessage(
        "sms", c.address, "", uuid.uuid4().hex, location=Location(latitude=lat, longitude=lon)
    )
    c.last = c.engine.handle(msg)
    return render(c.last.replies)


def test_a_location_in_the_sea_is_answered_and_another_place_works(clinic: Clinic) -> None:
    c = chat(clinic)
    assert "Where are you?" in c.say("pharmacy near me")
    assert "no pharmacy I know of within 25 km" in share(c, 38.0, -50.0)  # mid-Atlantic
    assert "Pharmacies nearest you" in share(c, 40.7128, -74.0060)


def test_a_town_shared_by_two_places_asks_which(clinic: Clinic) -> None:
    with clinic.db.transaction() as session:
        pharmacies.upsert(
            session,
            [
                pharmacies.Record(
                    source="test",
                    ref=f"springfield-{i}",
                    name=f"Springfield Pharmacy {i}",
                    address="1 Main Street",
                    postcode=postcode,
                    city="Springfield",
                    country="US",
                    phone=None,
                    opening_hours="24/7",
                    latitude=lat,
                    longitude=lon,
                    cell=pharmacies.cell_of(lat, lon),
                )
                for i, (postcode, lat, lon) in enumerate(
                    [("62701", 39.80, -89.65), ("01103", 42.10, -72.59)]
                )
            ],
            now=clinic.clock.now(),
        )
    c = chat(clinic)
    c.say("pharmacy near me")
    answer = c.say("springfield")
    assert "more than one place" in answer
    assert "Springfield (62701)" in answer and "Springfield (01103)" in answer
    assert "Springfield Pharmacy 0" in c.say(c.option_number("62701"))


def test_a_refill_goes_to_the_prescriber_and_the_answer_comes_back(clinic: Clinic) -> None:
    prescription_id = issued(clinic)
    with clinic.db.transaction() as session:
        pharmacy = session.query(Pharmacy).first()
        assert pharmacy is not None
        prescriptions.route_to_pharmacy(session, prescription_id, pharmacy.id, clinic.clock.now())
    c = chat(clinic)
    assert "date of birth" in c.say("I need a refill of my medicine")
    assert "request is with Dr Ana Ruiz" in c.say(DOB)
    with clinic.db.transaction() as session:
        [request] = prescriptions.refill_queue(session, practitioner_id=1)
        answer = prescriptions.answer_refill(
            session, request.id, True, "OK for one more month", clinic.clock.now()
        )
        assert answer.renewal is not None
        prescriptions.patient_notice(
            session, answer.renewal, "refill_approved", clinic.clock.now(), refill=answer.refill
        )
    clinic.dispatch()
    told = clinic.channels["sms"].texts(PHONE)[-1]
    assert "approved your refill request: OK for one more month" in told
    # The renewal is the one to refill next; the original was refilled already.
    listed = c.say("refill")
    assert "1. From Dr Ana Ruiz" in listed and "2. From Dr Ana Ruiz" in listed
    assert "already refilled" in c.say("2")


def test_an_expired_prescription_is_explained(clinic: Clinic) -> None:
    issued(clinic)
    clinic.clock.advance(timedelta(days=31))
    c = chat(clinic)
    c.say("my prescriptions")
    assert "no open prescriptions" in c.say(DOB)  # an expired one is not open
    answer = c.say("refill")
    assert "expired" in answer and "1. Ask the doctor" in answer
    assert "request is with Dr Ana Ruiz" in c.say("1")
    with clinic.db.transaction() as session:
        [request] = prescriptions.refill_queue(session, practitioner_id=1)
        renewal = prescriptions.answer_refill(session, request.id, True, None, clinic.clock.now())
        assert renewal.renewal is not None
        assert [i.medicine for i in renewal.renewal.items] == ["Lisinopril"]
        assert prescriptions.effective_status(renewal.renewal, clinic.clock.now()) == "issued"


def test_see_it_answers_the_notice_and_shows_details_after_verification(clinic: Clinic) -> None:
    issued(clinic)
    c = chat(clinic)
    assert "date of birth" in c.say("See it")
    details = c.say(DOB)
    assert "Lisinopril 10 mg tablet: 1 tablet daily (quantity 30)" in details
    assert "1. Choose a pharmacy near me" in details
    # Verified now: another look needs no date of birth.
    assert "Lisinopril" in c.say("my prescriptions")


def test_without_a_date_of_birth_on_file_a_code_to_the_number_verifies(
    clinic: Clinic,
) -> None:
    with clinic.db.transaction() as session:
        patient = find_or_create_patient_by_phone(
            session, 1, "+15555550612", "sms", now=clinic.clock.now()
        )
        patient_id = patient.id
        p = prescriptions.issue(
            session,
            practitioner_id=1,
            patient_id=patient_id,
            items=[{"medicine": "Cetirizine", "dose": "1 daily", "quantity": 10}],
            now=clinic.clock.now(),
        )
        prescriptions.patient_notice(session, p, "issued", clinic.clock.now())
    c = chat(clinic, "+15555550612")
    assert "6-digit code to the number on file ending in 12" in c.say("1")
    clinic.dispatch()
    [text] = [t for t in clinic.channels["sms"].texts("+15555550612") if "your code is" in t]
    code = text.split("your code is ")[1][:6]
    assert "isn't right" in c.say("000000" if code != "000000" else "111111")
    assert "Cetirizine" in c.say(code)


def test_three_wrong_codes_lock(clinic: Clinic) -> None:
    with clinic.db.transaction() as session:
        find_or_create_patient_by_phone(session, 1, "+15555550613", "sms", now=clinic.clock.now())
    c = chat(clinic, "+15555550613")
    assert "6-digit code" in c.say("my prescriptions")
    c.say("123")
    c.say("456")
    assert "can't show records on this number" in c.say("789")
