"""Prescriptions in core: issue, pickup codes, dispense once, expiry,
cancellation, refills, patient notices, FHIR export and the code rate limit
(both backends)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from sqlalchemy import func, select

from core import prescriptions as rx
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.messages import Reply
from core.models import (
    CodeAttempt,
    OutboxMessage,
    Pharmacy,
    Practitioner,
    RefillRequest,
)
from core.patients import find_or_create_patient_by_phone

PHONE = "+15555550123"
ITEMS: list[dict[str, Any]] = [
    {
        "medicine": "Amoxicillin",
        "strength": "500 mg",
        "form": "capsule",
        "dose": "1 capsule 3 times a day for 7 days",
        "quantity": 21,
        "refills": 0,
    },
    {
        "medicine": "Ibuprofen",
        "strength": "400 mg",
        "form": "tablet",
        "dose": "1 tablet every 8 hours with food if needed",
        "quantity": 20,
        "refills": 2,
    },
]


class World:
    def __init__(self, db: Database, clock: FixedClock) -> None:
        self.db = db
        self.clock = clock
        with db.transaction() as session:
            clinic = seed_demo(session, "America/New_York")
            doctor = session.scalars(
                select(Practitioner).where(Practitioner.name.contains("Ruiz"))
            ).one()
            patient = find_or_create_patient_by_phone(
                session, clinic.id, PHONE, "sms", now=clock.now()
            )
            patient.name = "Maria Lopez"
            patient.date_of_birth = date(1980, 12, 31)
            pharmacy = Pharmacy(
                source="csv",
                ref="1",
                name="Main Street Pharmacy",
                latitude=40.7,
                longitude=-74.0,
                cell=1,
                active=True,
                updated_at=clock.now(),
            )
            session.add(pharmacy)
            session.flush()
            self.doctor_id, self.patient_id, self.pharmacy_id = doctor.id, patient.id, pharmacy.id

    def issue(self, items: list[dict[str, Any]] | None = None, **kw: Any) -> int:
        with self.db.transaction() as session:
            p = rx.issue(
                session,
                practitioner_id=self.doctor_id,
                patient_id=self.patient_id,
                items=ITEMS if items is None else items,
                now=self.clock.now(),
                **kw,
            )
            return p.id

    def code(self, prescription_id: int) -> str:
        with self.db.transaction() as session:
            return rx.get(session, prescription_id).pickup_code

    def status(self, prescription_id: int) -> str:
        with self.db.transaction() as session:
            return rx.get(session, prescription_id).status

    def outbox(self) -> list[tuple[str, str, Reply]]:
        with self.db.transaction() as session:
            rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            return [(r.channel, r.address, Reply.from_json(r.payload)) for r in rows]


@pytest.fixture
def w(db: Database, clock: FixedClock) -> World:
    return World(db, clock)


# -- issuing and codes ----------------------------------------------------------------


def test_issue_stores_items_code_token_and_expiry(w: World) -> None:
    pid = w.issue(notes="Finish the antibiotic.")
    with w.db.transaction() as session:
        p = rx.get(session, pid)
        assert p.status == "issued"
        assert p.clinic_id == session.get(Practitioner, w.doctor_id).clinic_id  # type: ignore[union-attr]
        assert [i.medicine for i in p.items] == ["Amoxicillin", "Ibuprofen"]
        assert rx.item_label(p.items[0]) == "Amoxicillin 500 mg capsule"
        assert p.expires_at == w.clock.now() + timedelta(days=30)
        assert len(p.pickup_code) == 8
        assert set(p.pickup_code) <= set(rx.CODE_ALPHABET)
        assert not set(p.pickup_code) & set("0O1IL")
        assert len(p.page_token) >= 32
        assert rx.refills_left(p) == 2


def test_codes_are_unique_and_a_collision_draws_again(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = w.issue()
    taken = w.code(first)
    draws = iter([taken, taken, "ABCDEF23"])
    monkeypatch.setattr(rx, "new_code", lambda: next(draws))
    second = w.issue()
    assert w.code(second) == "ABCDEF23"


def test_a_concurrent_collision_is_caught_by_the_unique_key(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = w.issue()
    taken = w.code(first)
    draws = iter([taken, "ABCDEF23"])
    monkeypatch.setattr(rx, "new_code", lambda: next(draws))
    monkeypatch.setattr(rx, "_code_taken", lambda session, code: False)  # the race
    second = w.issue()
    assert w.code(second) == "ABCDEF23"
    with w.db.transaction() as session:
        assert len(rx.get(session, second).items) == 2


def test_many_codes_are_distinct(w: World) -> None:
    codes = {rx.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(rx.looks_like_code(c) for c in codes)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("ab cd-ef 23", "ABCDEF23"), (" ABCD-EF23 ", "ABCDEF23"), ("abcd\u2013ef23", "ABCDEF23")],
)
def test_normalize_code(typed: str, expected: str) -> None:
    assert rx.normalize_code(typed) == expected


def test_a_code_typed_with_spaces_and_lower_case_is_accepted(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rx, "new_code", lambda: "ABCDEF23")
    pid = w.issue()
    with w.db.transaction() as session:
        assert rx.find_by_code(session, "ab cd-ef 23", w.clock.now()).id == pid
        assert rx.format_code("ABCDEF23") == "ABCD-EF23"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"items": []}, "at least one item"),
        ({"items": [{**ITEMS[0], "quantity": 0}]}, "quantity"),
        ({"items": [{**ITEMS[0], "refills": 99}]}, "refills"),
        ({"items": [{**ITEMS[0], "medicine": "  "}]}, "medicine is required"),
        ({"items": [{**ITEMS[0], "dose": "x" * 301}]}, "dose is longer"),
        ({"expires_days": 0}, "expires_days"),
        ({"practitioner_id": 9999}, "unknown practitioner"),
        ({"patient_id": 9999}, "unknown patient"),
        ({"appointment_id": 9999}, "appointment"),
    ],
)
def test_bad_input_is_refused_with_the_reason(
    w: World, change: dict[str, Any], reason: str
) -> None:
    values: dict[str, Any] = {
        "practitioner_id": w.doctor_id,
        "patient_id": w.patient_id,
        "items": ITEMS,
        **change,
    }
    with pytest.raises(rx.PrescriptionError, match=reason), w.db.transaction() as session:
        rx.issue(session, now=w.clock.now(), **values)


# -- pickup ---------------------------------------------------------------------------


def test_find_by_code_errors(w: World) -> None:
    now = w.clock.now()
    with w.db.transaction() as session:
        with pytest.raises(rx.CodeUnknown):
            rx.find_by_code(session, "ZZZZ-ZZZZ", now)
        with pytest.raises(rx.CodeUnknown):
            rx.find_by_code(session, "hello", now)
        with pytest.raises(rx.CodeUnknown):
            rx.find_by_code(session, "", now)


def test_route_ready_dispense_once(w: World) -> None:
    pid = w.issue()
    code = w.code(pid)
    now = w.clock.now()
    with w.db.transaction() as session:
        p = rx.route_to_pharmacy(session, pid, w.pharmacy_id, now)
        assert (p.status, p.pharmacy_id, p.sent_at) == ("sent", w.pharmacy_id, now)
        p = rx.mark_ready(session, pid, now)
        assert p.status == "ready"
        with pytest.raises(rx.InvalidTransition):
            rx.route_to_pharmacy(session, pid, w.pharmacy_id, now)
    with w.db.transaction() as session:
        p = rx.dispense(session, pid, now)
        assert (p.status, p.dispensed_at) == ("dispensed", now)
    with w.db.transaction() as session:
        with pytest.raises(rx.CodeUsed) as used:
            rx.find_by_code(session, code, now)
        assert used.value.prescription is not None and used.value.prescription.id == pid
        with pytest.raises(rx.CodeUsed):
            rx.dispense(session, pid, now)
        with pytest.raises(rx.InvalidTransition):
            rx.cancel(session, pid, now)


def test_a_walk_in_can_be_dispensed_without_routing(w: World) -> None:
    pid = w.issue()
    with w.db.transaction() as session:
        assert rx.dispense(session, pid, w.clock.now()).status == "dispensed"


def test_unknown_pharmacy_is_refused(w: World) -> None:
    pid = w.issue()
    with pytest.raises(rx.PrescriptionError, match="pharmacy"), w.db.transaction() as session:
        rx.route_to_pharmacy(session, pid, 9999, w.clock.now())


def test_expired_prescription(w: World) -> None:
    pid = w.issue(expires_days=7)
    code = w.code(pid)
    later = w.clock.now() + timedelta(days=7)
    with w.db.transaction() as session:
        # Expired by its date before the tick job ran.
        with pytest.raises(rx.PrescriptionExpired):
            rx.find_by_code(session, code, later)
        with pytest.raises(rx.PrescriptionExpired):
            rx.dispense(session, pid, later)
        with pytest.raises(rx.PrescriptionExpired):
            rx.route_to_pharmacy(session, pid, w.pharmacy_id, later)
        assert rx.effective_status(rx.get(session, pid), later) == "expired"
    other = w.issue(expires_days=30)
    with w.db.transaction() as session:
        assert rx.expire_overdue(session, later) == 1
    assert w.status(pid) == "expired"
    assert w.status(other) == "issued"
    with w.db.transaction() as session, pytest.raises(rx.PrescriptionExpired):
        rx.find_by_code(session, code, w.clock.now())


def test_cancelled_prescription(w: World) -> None:
    pid = w.issue()
    code = w.code(pid)
    now = w.clock.now()
    with w.db.transaction() as session:
        p = rx.cancel(session, pid, now)
        assert (p.status, p.cancelled_at) == ("cancelled", now)
    with w.db.transaction() as session:
        with pytest.raises(rx.PrescriptionCancelled):
            rx.find_by_code(session, code, now)
        with pytest.raises(rx.PrescriptionCancelled):
            rx.dispense(session, pid, now)
        with pytest.raises(rx.RefillRefused) as refused:
            rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        assert refused.value.reason == "cancelled"
        with pytest.raises(rx.InvalidTransition):
            rx.cancel(session, pid, now)


# -- rate limit -----------------------------------------------------------------------


def test_wrong_codes_are_rate_limited(w: World) -> None:
    pid = w.issue()
    code = w.code(pid)
    now = w.clock.now()
    for _ in range(rx.RATE_MAX_FAILURES):
        with w.db.transaction() as session, pytest.raises(rx.CodeUnknown):
            rx.lookup_code(session, "10.0.0.1", "ZZZZZZZZ", now)
        w.clock.advance(timedelta(minutes=1))
    now = w.clock.now()
    with w.db.transaction() as session:
        with pytest.raises(rx.TooManyAttempts) as limited:
            rx.lookup_code(session, "10.0.0.1", code, now)  # even the right code
        # The first failure (5 minutes ago) leaves the 15-minute window in 10.
        assert limited.value.minutes == 10
        # Another source is not limited, and a used/expired code is not a failure.
        assert rx.lookup_code(session, "10.0.0.2", code, now).id == pid
        assert rx.failures_recent(session, "10.0.0.2", now, rx.RATE_WINDOW) == 0
    w.clock.advance(timedelta(minutes=10))
    with w.db.transaction() as session:
        assert rx.lookup_code(session, "10.0.0.1", code, w.clock.now()).id == pid
    # Old attempts are pruned by the tick job after a day.
    with w.db.transaction() as session:
        rx.expire_overdue(session, w.clock.now() + timedelta(days=2))
        assert session.scalar(select(func.count()).select_from(CodeAttempt)) == 0


# -- refills --------------------------------------------------------------------------


def test_refill_rules_and_answer(w: World) -> None:
    pid = w.issue(items=[ITEMS[1]])
    first_code = w.code(pid)
    now = w.clock.now()
    with w.db.transaction() as session:
        p = rx.get(session, pid)
        with pytest.raises(rx.RefillRefused) as refused:
            rx.request_refill(session, p, "sms", PHONE, now)
        assert refused.value.reason == "not_active"  # not at a pharmacy yet
        rx.route_to_pharmacy(session, pid, w.pharmacy_id, now)
        rx.dispense(session, pid, now)
    with w.db.transaction() as session:
        refill = rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        assert (refill.status, refill.practitioner_id) == ("requested", w.doctor_id)
        with pytest.raises(rx.RefillRefused) as refused:
            rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        assert refused.value.reason == "pending"
        queue = rx.refill_queue(session, practitioner_id=w.doctor_id)
        assert [r.id for r in queue] == [refill.id]
        refill_id = refill.id
    with w.db.transaction() as session:
        answer = rx.answer_refill(session, refill_id, True, "Take with food", now)
        assert answer.refill.status == "approved" and answer.refill.answered_at == now
        renewal = answer.renewal
        assert renewal is not None and renewal.id != pid
        assert (renewal.status, renewal.pharmacy_id) == ("sent", w.pharmacy_id)
        assert renewal.pickup_code != first_code
        assert [i.refills for i in renewal.items] == [1]
        assert renewal.expires_at - renewal.issued_at == timedelta(days=30)
        renewal_id = renewal.id
        with pytest.raises(rx.RefillAnswered):
            rx.answer_refill(session, refill_id, False, None, now)
        with pytest.raises(rx.RefillRefused) as refused:
            rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        assert refused.value.reason == "refilled"
        assert rx.refill_queue(session) == []
    # The last refill: the renewal of the renewal has none left.
    with w.db.transaction() as session:
        rx.dispense(session, renewal_id, now)
        r2 = rx.request_refill(session, rx.get(session, renewal_id), "sms", PHONE, now)
        last = rx.answer_refill(session, r2.id, True, None, now).renewal
        assert last is not None and rx.refills_left(last) == 0
        rx.dispense(session, last.id, now)
        with pytest.raises(rx.RefillRefused) as refused:
            rx.request_refill(session, last, "sms", PHONE, now)
        assert refused.value.reason == "no_refills"


def test_refill_of_an_expired_prescription_is_explained(w: World) -> None:
    pid = w.issue(items=[ITEMS[1]], expires_days=10)
    with w.db.transaction() as session:
        rx.route_to_pharmacy(session, pid, w.pharmacy_id, w.clock.now())
    with w.db.transaction() as session:
        with pytest.raises(rx.RefillRefused) as refused:
            rx.request_refill(
                session, rx.get(session, pid), "sms", PHONE, w.clock.now() + timedelta(days=11)
            )
        assert refused.value.reason == "expired"


def test_a_denied_refill_can_be_asked_again(w: World) -> None:
    pid = w.issue(items=[ITEMS[1]])
    now = w.clock.now()
    with w.db.transaction() as session:
        rx.route_to_pharmacy(session, pid, w.pharmacy_id, now)
        refill = rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        answer = rx.answer_refill(session, refill.id, False, "Book a visit first", now)
        assert (answer.refill.status, answer.renewal) == ("denied", None)
        again = rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        assert session.get(RefillRequest, again.id) is not None


# -- messages to the patient ----------------------------------------------------------


def test_notices_name_no_medicine(w: World) -> None:
    pid = w.issue(items=[ITEMS[1]])
    now = w.clock.now()
    with w.db.transaction() as session:
        p = rx.get(session, pid)
        issued = rx.patient_notice(session, p, "issued", now)
        assert issued is not None
        assert issued.text == "You have a new prescription from Dr Ana Ruiz."
        assert [o.value for o in issued.options] == [rx.SEE_IT]
        rx.route_to_pharmacy(session, pid, w.pharmacy_id, now)
        rx.mark_ready(session, pid, now)
        rx.patient_notice(session, rx.get(session, pid), "ready_for_pickup", now)
        rx.dispense(session, pid, now)
        rx.patient_notice(session, rx.get(session, pid), "dispensed", now)
        refill = rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        answer = rx.answer_refill(session, refill.id, False, "Ibuprofen again? Book a visit", now)
        rx.patient_notice(session, p, "refill_denied", now, refill=answer.refill)
    sent = w.outbox()
    assert [(c, a) for c, a, _ in sent] == [("sms", PHONE)] * 4
    texts = [r.text for _, _, r in sent]
    assert "ready for pickup at Main Street Pharmacy" in texts[1]
    assert "picked up" in texts[2]
    assert "could not approve" in texts[3]
    assert all(r.purpose == "clinical" for _, _, r in sent)
    for text in texts:
        assert "Ibuprofen" not in text and "Amoxicillin" not in text, text


def test_refill_note_goes_only_to_a_verified_identity(w: World) -> None:
    from core.models import ChannelIdentity

    pid = w.issue(items=[ITEMS[1]])
    now = w.clock.now()
    with w.db.transaction() as session:
        identity = session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.address == PHONE)
        ).one()
        identity.verified_at = now
        identity.language = "es"
        rx.route_to_pharmacy(session, pid, w.pharmacy_id, now)
        refill = rx.request_refill(session, rx.get(session, pid), "sms", PHONE, now)
        answer = rx.answer_refill(session, refill.id, True, "Con comida.", now)
        assert answer.renewal is not None
        rx.patient_notice(session, answer.renewal, "refill_approved", now, refill=answer.refill)
    ((_, _, reply),) = w.outbox()
    assert reply.text == "Dr Ana Ruiz aprobó su solicitud de repetición: Con comida."


def test_no_identity_no_notice(w: World, db: Database) -> None:
    from core.models import Patient

    with db.transaction() as session:
        patient = Patient(clinic_id=1, name="Nobody")
        session.add(patient)
        session.flush()
        p = rx.issue(
            session,
            practitioner_id=w.doctor_id,
            patient_id=patient.id,
            items=ITEMS,
            now=w.clock.now(),
        )
        assert rx.patient_notice(session, p, "issued", w.clock.now()) is None


def test_describe_for_a_verified_patient(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rx, "new_code", lambda: "ABCDEF23")
    pid = w.issue()
    with w.db.transaction() as session:
        lines = rx.describe(rx.get(session, pid), "en", "America/New_York")
        assert lines == [
            "Amoxicillin 500 mg capsule: 1 capsule 3 times a day for 7 days (quantity 21)",
            "Ibuprofen 400 mg tablet: 1 tablet every 8 hours with food if needed (quantity 20)",
            "Pickup code: ABCD-EF23",
            "Valid until 14 May 2026.",
        ]
        assert rx.page_url("https://x.test/", rx.get(session, pid)).startswith("https://x.test/rx/")


# -- FHIR -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["issued", "dispensed", "cancelled", "expired"])
def test_fhir_medication_requests_validate(w: World, status: str) -> None:
    pid = w.issue(notes="Finish the antibiotic.")
    now = w.clock.now()
    with w.db.transaction() as session:
        rx.route_to_pharmacy(session, pid, w.pharmacy_id, now)
        if status == "dispensed":
            rx.dispense(session, pid, now)
        elif status == "cancelled":
            rx.cancel(session, pid, now)
        elif status == "expired":
            rx.expire_overdue(session, now + timedelta(days=31))
    with w.db.transaction() as session:
        p = rx.get(session, pid)
        resources = rx.medication_requests_json(p)
        bundle = rx.bundle_json(p)
        code = p.pickup_code
    assert len(resources) == 2
    for resource in resources:
        MedicationRequest.model_validate(resource)
    Bundle.model_validate(bundle)
    first, second = resources
    assert first["status"] == rx.FHIR_STATUS[status]
    assert first["intent"] == "order"
    assert first["medicationCodeableConcept"] == {"text": "Amoxicillin 500 mg capsule"}
    assert first["subject"] == {"reference": f"Patient/{w.patient_id}"}
    assert first["requester"]["reference"] == f"Practitioner/{w.doctor_id}"
    assert first["authoredOn"] == "2026-04-14T13:00:00Z"
    assert first["dosageInstruction"] == [{"text": "1 capsule 3 times a day for 7 days"}]
    request = second["dispenseRequest"]
    assert request["quantity"] == {"value": 20, "unit": "tablet"}
    assert request["numberOfRepeatsAllowed"] == 2
    assert request["validityPeriod"] == {
        "start": "2026-04-14T13:00:00Z",
        "end": "2026-05-14T13:00:00Z",
    }
    assert first["groupIdentifier"]["value"] == str(pid)
    assert code not in str(bundle)  # the pickup code is a secret
