"""Prescriptions over HTTP: the REST API (token, issue, read, FHIR, refills),
the pharmacy's pickup page and the patient's printable page."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from bots.app import create_app
from core import prescriptions as rx
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.messages import Reply
from core.models import OutboxMessage, Pharmacy, Practitioner
from core.patients import find_or_create_patient_by_phone
from core.settings import Settings

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+15555550123"
BODY: dict[str, Any] = {
    "patient_phone": PHONE,
    "items": [
        {
            "medicine": "Amoxicillin",
            "strength": "500 mg",
            "form": "capsule",
            "dose": "1 capsule 3 times a day for 7 days",
            "quantity": 21,
        },
        {
            "medicine": "Ibuprofen",
            "strength": "400 mg",
            "form": "tablet",
            "dose": "1 tablet every 8 hours if needed",
            "quantity": 20,
            "refills": 1,
        },
    ],
    "expires_days": 30,
}


class Env:
    def __init__(self, db: Database, clock: FixedClock, token: str | None = TOKEN) -> None:
        self.db, self.clock = db, clock
        with db.transaction() as session:
            clinic = seed_demo(session, "America/New_York")
            self.doctor_id = session.scalars(
                select(Practitioner.id).where(Practitioner.name.contains("Ruiz"))
            ).one()
            patient = find_or_create_patient_by_phone(
                session, clinic.id, PHONE, "sms", now=clock.now()
            )
            patient.name = "Maria <b>Lopez</b>"
            patient.date_of_birth = date(1980, 12, 31)
            self.patient_id = patient.id
            pharmacy = Pharmacy(
                source="csv",
                ref="api-1",
                name="Main Street Pharmacy",
                latitude=40.7,
                longitude=-74.0,
                cell=1,
                active=True,
                updated_at=clock.now(),
            )
            session.add(pharmacy)
            session.flush()
            self.pharmacy_id = pharmacy.id
        settings = Settings(
            database_url=db.url,
            clinic_timezone="America/New_York",
            api_token=token,
            secret_key="test-secret",
        )
        app = create_app(settings, db=db, clock=clock, role="web")
        self.client = TestClient(app, raise_server_exceptions=False)

    def issue(self, **change: Any) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/prescriptions",
            json={**BODY, "practitioner_id": self.doctor_id, **change},
            headers=AUTH,
        )
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def prescription(self, pid: int) -> tuple[str, str, str]:
        with self.db.transaction() as session:
            p = rx.get(session, pid)
            return p.status, p.pickup_code, p.page_token

    def outbox(self) -> list[Reply]:
        with self.db.transaction() as session:
            rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            return [Reply.from_json(r.payload) for r in rows]

    def lookup(self, code: str) -> Any:
        form = self.client.get("/pharmacy").text
        token = re.search(r'name="token" value="([^"]+)"', form)
        assert token is not None
        return self.client.post("/pharmacy", data={"code": code, "token": token.group(1)})


@pytest.fixture
def env(db: Database, clock: FixedClock) -> Env:
    return Env(db, clock)


def hidden(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action``."""
    match = re.search(rf'<form method="post" action="{action}">(.*?)</form>', html, re.S)
    assert match is not None, action
    return dict(re.findall(r'name="(\w+)" value="([^"]*)"', match.group(1)))


# -- REST API -------------------------------------------------------------------------


def test_without_a_configured_token_the_legacy_token_is_refused(
    db: Database, clock: FixedClock
) -> None:
    # Users' own tokens (telemed users token) now work without TELEMED_API_TOKEN,
    # so an unset setting is no longer "not configured" (503): any other token is 401.
    env = Env(db, clock, token=None)
    response = env.client.post(
        "/api/v1/prescriptions", json={**BODY, "practitioner_id": env.doctor_id}, headers=AUTH
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert env.client.get("/api/v1/refills", headers=AUTH).status_code == 401
    assert env.outbox() == []


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_a_missing_or_wrong_token_is_401(env: Env, headers: dict[str, str]) -> None:
    response = env.client.post(
        "/api/v1/prescriptions", json={**BODY, "practitioner_id": env.doctor_id}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert env.client.get("/api/v1/prescriptions/1", headers=headers).status_code == 401
    assert env.outbox() == []


def test_issue_notifies_the_patient_without_naming_the_medicine(env: Env) -> None:
    data = env.issue()
    assert data["status"] == "issued"
    assert data["patient_id"] == env.patient_id
    assert data["notified"] is True
    assert data["refills_left"] == 1
    assert "pickup_code" not in data and "page_token" not in data
    assert data["issued_at"] == "2026-04-14T09:00:00-04:00"
    (notice,) = env.outbox()
    assert notice.text == "You have a new prescription from Dr Ana Ruiz."
    assert notice.purpose == "clinical"
    assert [o.value for o in notice.options] == [rx.SEE_IT]
    for word in ("Amoxicillin", "Ibuprofen", "mg"):
        assert word not in notice.text

    got = env.client.get(f"/api/v1/prescriptions/{data['id']}", headers=AUTH)
    assert got.status_code == 200
    assert [i["medicine"] for i in got.json()["items"]] == ["Amoxicillin", "Ibuprofen"]
    assert env.client.get("/api/v1/prescriptions/999", headers=AUTH).status_code == 404

    fhir = env.client.get(f"/api/v1/prescriptions/{data['id']}/fhir", headers=AUTH)
    assert fhir.status_code == 200
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(fhir.json())
    assert bundle.entry is not None and len(bundle.entry) == 2


def test_issue_by_patient_id_and_a_new_phone(env: Env) -> None:
    assert env.issue(patient_phone=None, patient_id=env.patient_id)["patient_id"] == env.patient_id
    other = env.issue(patient_phone="+1 555 555 0199")
    assert other["patient_id"] != env.patient_id


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"items": []}, "items"),
        ({"items": [{"medicine": "X", "dose": "d", "quantity": 0}]}, "quantity"),
        ({"items": [{"medicine": "", "dose": "d", "quantity": 1}]}, "medicine"),
        ({"items": [{"medicine": "X", "dose": "d", "quantity": 1, "colour": "red"}]}, "colour"),
        ({"patient_id": 1}, "exactly one"),
        ({"patient_phone": None}, "exactly one"),
        ({"patient_phone": "not a phone"}, "patient_phone"),
        ({"practitioner_id": 9999}, "unknown practitioner"),
        ({"practitioner_id": "abc"}, "practitioner_id"),
        ({"patient_phone": None, "patient_id": 9999}, "unknown patient"),
        ({"expires_days": 0}, "expires_days"),
        ({"appointment_id": 12345}, "appointment"),
    ],
)
def test_bad_bodies_are_422_with_the_reason(
    env: Env, change: dict[str, Any], fragment: str
) -> None:
    body = {**BODY, "practitioner_id": env.doctor_id, **change}
    response = env.client.post("/api/v1/prescriptions", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert fragment in response.text
    assert env.outbox() == []


def test_not_json_is_422(env: Env) -> None:
    response = env.client.post(
        "/api/v1/prescriptions",
        content=b"{nope",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


def test_cancel_over_the_api(env: Env) -> None:
    pid = env.issue()["id"]
    response = env.client.post(f"/api/v1/prescriptions/{pid}/cancel", headers=AUTH)
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    again = env.client.post(f"/api/v1/prescriptions/{pid}/cancel", headers=AUTH)
    assert again.status_code == 409


def test_refill_queue_and_answer(env: Env) -> None:
    pid = env.issue()["id"]
    with env.db.transaction() as session:
        rx.route_to_pharmacy(session, pid, env.pharmacy_id, env.clock.now())
        rx.dispense(session, pid, env.clock.now())
        refill_id = rx.request_refill(
            session, rx.get(session, pid), "sms", PHONE, env.clock.now()
        ).id
    queue = env.client.get(
        "/api/v1/refills",
        params={"status": "requested", "practitioner_id": env.doctor_id},
        headers=AUTH,
    )
    assert queue.status_code == 200
    assert [r["id"] for r in queue.json()] == [refill_id]
    assert env.client.get("/api/v1/refills?status=maybe", headers=AUTH).status_code == 422

    answer = env.client.post(
        f"/api/v1/refills/{refill_id}/answer",
        json={"approve": True, "note": "Ibuprofen with food"},
        headers=AUTH,
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["status"] == "approved" and data["renewal_id"] != pid
    renewal = env.client.get(f"/api/v1/prescriptions/{data['renewal_id']}", headers=AUTH).json()
    assert [i["medicine"] for i in renewal["items"]] == ["Ibuprofen"]
    assert renewal["status"] == "sent"
    last = env.outbox()[-1]
    # Not verified: the note (which names the medicine) is not sent.
    assert last.text == "Dr Ana Ruiz approved your refill request."
    again = env.client.post(
        f"/api/v1/refills/{refill_id}/answer", json={"approve": False}, headers=AUTH
    )
    assert again.status_code == 409
    missing = env.client.post("/api/v1/refills/999/answer", json={"approve": True}, headers=AUTH)
    assert missing.status_code == 404
    assert env.client.get("/api/v1/refills", headers=AUTH).json() == []


# -- the pharmacy page ----------------------------------------------------------------


def test_pharmacy_pickup_flow(env: Env) -> None:
    pid = env.issue()["id"]
    _, code, _ = env.prescription(pid)
    with env.db.transaction() as session:
        rx.route_to_pharmacy(session, pid, env.pharmacy_id, env.clock.now())

    form = env.client.get("/pharmacy")
    assert form.status_code == 200
    assert 'name="code"' in form.text
    assert form.headers["cache-control"] == "no-store"

    wrong = env.lookup("ZZZZ-ZZZZ")
    assert wrong.status_code == 404
    assert "No prescription has that code" in wrong.text

    typed = f"{code[:4].lower()} {code[4:].lower()}"  # spaces and lower case are fine
    found = env.lookup(typed)
    assert found.status_code == 200
    page = found.text
    assert "Amoxicillin 500 mg capsule" in page and "1 capsule 3 times a day" in page
    assert "Maria &lt;b&gt;Lopez&lt;/b&gt;" in page  # escaped
    assert "31 Dec 1980" in page
    assert "Dr Ana Ruiz" in page
    assert "Sent to a pharmacy" in page

    ready = env.client.post("/pharmacy/ready", data=hidden(page, "/pharmacy/ready"))
    assert ready.status_code == 200, ready.text
    assert "Marked ready for pickup" in ready.text
    assert env.prescription(pid)[0] == "ready"
    # The dispense form shown before "ready" was for status "sent": stale now.
    stale = env.client.post("/pharmacy/dispense", data=hidden(page, "/pharmacy/dispense"))
    assert stale.status_code == 409
    assert env.prescription(pid)[0] == "ready"

    dispense_form = hidden(ready.text, "/pharmacy/dispense")
    done = env.client.post("/pharmacy/dispense", data=dispense_form)
    assert done.status_code == 200
    assert "Marked dispensed" in done.text
    assert env.prescription(pid)[0] == "dispensed"
    texts = [r.text for r in env.outbox()]
    assert texts[-2] == (
        "Your prescription is ready for pickup at Main Street Pharmacy. Bring your pickup code."
    )
    assert texts[-1].startswith("Your prescription has been picked up.")

    twice = env.client.post("/pharmacy/dispense", data=dispense_form)
    assert twice.status_code == 409
    assert "already dispensed" in twice.text
    assert len(env.outbox()) == 3  # nobody told twice

    used = env.lookup(code)
    assert used.status_code == 409 and "already dispensed" in used.text


def test_a_forged_or_expired_form_is_refused(env: Env) -> None:
    pid = env.issue()["id"]
    _, code, _ = env.prescription(pid)
    found = env.lookup(code)
    fields = hidden(found.text, "/pharmacy/dispense")
    forged = env.client.post("/pharmacy/dispense", data={**fields, "token": "9999999999.abc"})
    assert forged.status_code == 400
    other = env.client.post("/pharmacy/dispense", data={**fields, "prescription_id": "999"})
    assert other.status_code == 400
    no_token = env.client.post("/pharmacy", data={"code": code})
    assert no_token.status_code == 400
    assert env.prescription(pid)[0] == "issued"


def test_cancelled_and_expired_codes_are_explained(env: Env) -> None:
    cancelled = env.issue()["id"]
    expiring = env.issue(expires_days=1)["id"]
    with env.db.transaction() as session:
        rx.cancel(session, cancelled, env.clock.now())
    response = env.lookup(env.prescription(cancelled)[1])
    assert response.status_code == 409 and "cancelled by the prescriber" in response.text
    assert "Amoxicillin" not in response.text
    env.clock.advance(timedelta(days=2))
    response = env.lookup(env.prescription(expiring)[1])
    assert response.status_code == 409 and "expired" in response.text


def test_too_many_wrong_codes_answer_429(env: Env) -> None:
    pid = env.issue()["id"]
    for _ in range(5):
        assert env.lookup("ZZZZZZZZ").status_code == 404
    limited = env.lookup(env.prescription(pid)[1])
    assert limited.status_code == 429
    assert "Try again in 15 minutes" in limited.text
    assert limited.headers["retry-after"] == "900"
    env.clock.advance(timedelta(minutes=16))
    assert env.lookup(env.prescription(pid)[1]).status_code == 200


# -- the patient's page ---------------------------------------------------------------


def test_patient_page_shows_items_code_and_qr(env: Env) -> None:
    pid = env.issue()["id"]
    _, code, token = env.prescription(pid)
    page = env.client.get(f"/rx/{token}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Amoxicillin 500 mg capsule" in page.text
    assert rx.format_code(code) in page.text
    assert "<svg" in page.text and 'class="segno"' in page.text
    assert "Prescribed by Dr Ana Ruiz, Riverside Family Clinic" in page.text
    assert "Valid until: 14 May 2026" in page.text
    assert env.client.get("/rx/not-a-token").status_code == 404

    with env.db.transaction() as session:
        rx.dispense(session, pid, env.clock.now())
    used = env.client.get(f"/rx/{token}")
    assert used.status_code == 200
    assert "<svg" not in used.text and rx.format_code(code) not in used.text
    assert "its code has been used" in used.text


def test_patient_page_in_spanish(env: Env) -> None:
    from core.models import ChannelIdentity

    pid = env.issue()["id"]
    with env.db.transaction() as session:
        identity = session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.address == PHONE)
        ).one()
        identity.language = "es"
    page = env.client.get(f"/rx/{env.prescription(pid)[2]}")
    assert '<html lang="es">' in page.text
    assert "Código de retiro" in page.text and "Recetada por Dr Ana Ruiz" in page.text
