"""A prescription's whole journey through the Twilio fake: the doctor issues it
over the API, the patient proves who they are on WhatsApp, shares a location,
picks the second-nearest pharmacy; the pharmacy page takes the code; the
patient hears it is ready, then picked up. A stranger never sees it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bots.app import create_app
from core import pharmacies
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import Alert, Pharmacy, Prescription
from core.patients import find_or_create_patient_by_phone
from core.settings import Settings
from tests.e2e.test_sms_booking import PUBLIC_URL, SMS_FROM, WA_FROM, Patient
from tests.fakes import twilio_server
from tests.fakes.twilio_server import FakeTwilio

fake_twilio = twilio_server.fake_twilio

TOKEN = "doctor-api-token"
PHONE = "+15555550777"
HERE = (40.7128, -74.0060)  # lower Manhattan, among the demo pharmacies


@pytest.fixture
def app(db: Database, clock: FixedClock, fake_twilio: FakeTwilio) -> Iterator[TestClient]:
    with db.transaction() as session:
        seed_demo(session, "America/New_York")
        # Registered at the desk: on file, but this WhatsApp number never proved it.
        patient = find_or_create_patient_by_phone(session, 1, PHONE, "whatsapp", now=clock.now())
        patient.name, patient.date_of_birth = "Jane Roe", date(1975, 3, 4)
    settings = Settings(
        database_url=db.url,
        public_url=PUBLIC_URL,
        clinic_timezone="America/New_York",
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=fake_twilio.auth_token,
        twilio_api_base_url=fake_twilio.base_url,
        twilio_sms_from=SMS_FROM,
        twilio_whatsapp_from=WA_FROM,
        api_token=TOKEN,
        inbound_max_per_minute=1000,
    )
    application = create_app(settings, db=db, clock=clock, dispatch_interval_s=0.05)
    with TestClient(application) as client:
        client.headers["X-Test-Token"] = fake_twilio.auth_token
        yield client


def issue(client: TestClient) -> int:
    response = client.post(
        "/api/v1/prescriptions",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "patient_phone": PHONE,
            "practitioner_id": 1,
            "items": [
                {
                    "medicine": "Amoxicillin",
                    "strength": "500 mg",
                    "form": "capsule",
                    "dose": "1 capsule 3 times a day for 7 days",
                    "quantity": 21,
                    "refills": 1,
                }
            ],
        },
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def hidden(html: str, action: str) -> dict[str, str]:
    form = re.search(rf'<form[^>]* action="{action}"[^>]*>(.*?)</form>', html, re.S)
    assert form is not None, html
    return dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))


def test_issue_verify_locate_pick_and_dispense(
    app: TestClient, fake_twilio: FakeTwilio, db: Database
) -> None:
    jane = Patient(app, fake_twilio, "whatsapp", PHONE)
    before = len(fake_twilio.messages)
    prescription_id = issue(app)
    notice = jane.replies(before)
    assert "new prescription from Dr Ana Ruiz" in notice and "1. See it" in notice
    assert "Amoxicillin" not in notice  # minimum necessary until verified

    assert "date of birth" in jane.say("1")
    assert "doesn't match" in jane.say("01/01/1980")
    details = jane.say("03/04/1975")
    assert "Amoxicillin 500 mg capsule" in details and "Pickup code:" in details
    assert f"{PUBLIC_URL}/rx/" in details
    assert "Where are you?" in jane.say("1")  # choose a pharmacy near me

    params = jane.params("") | {"Latitude": str(HERE[0]), "Longitude": str(HERE[1])}
    before = len(fake_twilio.messages)
    assert jane.post(params).status_code == 200
    listed = jane.replies(before)
    with db.transaction() as session:
        every = session.scalars(select(Pharmacy)).all()
        by_distance = sorted(
            every, key=lambda p: pharmacies.haversine_km(*HERE, p.latitude, p.longitude)
        )
        second = by_distance[1].name
        assert [f.name for f in pharmacies.nearest(session, *HERE)] == [
            p.name for p in by_distance[:5]
        ]
    assert f"2. {second}" in listed and " km" in listed
    routed = jane.say("2")
    assert f"Sent to {second}" in routed
    with db.transaction() as session:
        p = session.get(Prescription, prescription_id)
        assert p is not None and p.status == "sent" and p.pharmacy is not None
        assert p.pharmacy.name == second
        code = p.pickup_code

    form = app.get("/pharmacy").text
    lookup = hidden(form, "/pharmacy") | {"code": code.lower()[:4] + " " + code.lower()[4:]}
    found = app.post("/pharmacy", data=lookup)
    assert found.status_code == 200 and "Amoxicillin" in found.text and "Jane Roe" in found.text
    before = len(fake_twilio.messages)
    ready = app.post("/pharmacy/ready", data=hidden(found.text, "/pharmacy/ready"))
    assert ready.status_code == 200
    assert f"ready for pickup at {second}" in jane.replies(before)
    before = len(fake_twilio.messages)
    dispensed = app.post("/pharmacy/dispense", data=hidden(ready.text, "/pharmacy/dispense"))
    assert dispensed.status_code == 200
    assert "picked up" in jane.replies(before)
    again = app.post(
        "/pharmacy", data=hidden(app.get("/pharmacy").text, "/pharmacy") | {"code": code}
    )
    assert again.status_code == 409  # a code works once


def test_a_new_number_claiming_to_be_the_patient_never_sees_it(
    app: TestClient, fake_twilio: FakeTwilio, db: Database
) -> None:
    issue(app)
    stranger = Patient(app, fake_twilio, "sms", "+15555550999")
    answer = stranger.say("my prescriptions")
    assert "date of birth" in answer
    for _ in range(2):
        assert "doesn't match" in stranger.say("03/04/1975")  # even the right one: not theirs
    locked = stranger.say("03/04/1975")
    assert "can't show records on this number" in locked
    assert "Amoxicillin" not in "\n".join(m["body"] for m in fake_twilio.messages)
    assert "can't show records" in stranger.say("my prescriptions")
    with db.transaction() as session:
        [alert] = session.scalars(select(Alert)).all()
        assert (alert.kind, alert.address) == ("identity_locked", "+15555550999")


def test_pharmacy_near_me_without_a_prescription(app: TestClient, fake_twilio: FakeTwilio) -> None:
    ana = Patient(app, fake_twilio, "sms", "+15555550888")
    assert "Where are you?" in ana.say("pharmacy near me")
    assert "somewhere-that-does-not-exist" in ana.say("somewhere-that-does-not-exist")
    listed = ana.say("10007")
    assert "1. " in listed and " km" in listed
    assert "Phone" in ana.say("1")
