"""The doctors' prescription form, its confirmation page and the refill
queue: who may use them, per-field messages for bad and hostile input, and a
prescription issued from the form reaching the patient on their channel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import prescriptions as rx
from core.clock import FixedClock
from core.db import Database
from core.models import Appointment, AuditEntry, Prescription, RefillRequest
from tests.clinic import TZ
from tests.staff import StaffSite

NY = ZoneInfo(TZ)
PHONE = "+15555550131"  # Dr Ruiz's patient
OTHER = "+15555550132"  # Dr Okafor's patient
SCRIPT = "<script>alert(1)</script>"
ITEM = {
    "medicine": "Amoxicillin",
    "strength": "500 mg",
    "form": "capsule",
    "dose": "1 capsule 3 times a day for 7 days",
    "quantity": "21",
    "refills": "1",
}


@dataclass
class Env:
    site: StaffSite
    appointment_id: int
    patient_id: int
    other_patient_id: int
    ruiz: int
    okafor: int


@pytest.fixture
def env(db: Database, clock: FixedClock) -> Env:
    site = StaffSite.open(db, clock)
    appointment_id = site.clinic.book(PHONE, datetime(2026, 4, 15, 10, tzinfo=NY), doctor="Ruiz")
    other_id = site.clinic.book(OTHER, datetime(2026, 4, 15, 11, tzinfo=NY), doctor="Okafor")
    with db.transaction() as session:
        mine = session.get(Appointment, appointment_id)
        theirs = session.get(Appointment, other_id)
        assert mine is not None and theirs is not None
        patient_id, other_patient_id = mine.patient_id, theirs.patient_id
    return Env(
        site,
        appointment_id,
        patient_id,
        other_patient_id,
        site.clinic.practitioner("Ruiz"),
        site.clinic.practitioner("Okafor"),
    )


def form(patient_id: int, *rows: dict[str, str], **extra: str) -> dict[str, object]:
    data: dict[str, object] = {"patient_id": str(patient_id), "expires_days": "30", **extra}
    for name in ITEM:
        data[name] = [row.get(name, "") for row in rows]
    return data


def prescriptions(env: Env) -> list[Prescription]:
    with env.site.db.transaction() as session:
        return list(session.scalars(select(Prescription).order_by(Prescription.id)).unique().all())


def last_field_before(html: str, message: str) -> str:
    """The name of the last form field before ``message`` in the page."""
    assert message in html, html[-3000:]
    names: list[str] = re.findall(r'name="([^"]+)"', html.split(message)[0])
    return names[-1]


def audit(env: Env, entity: str, action: str) -> list[AuditEntry]:
    with env.site.db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity == entity, AuditEntry.action == action)
                .order_by(AuditEntry.id)
            )
        )


# -- access -----------------------------------------------------------------------


def test_each_role_on_each_route(env: Env) -> None:
    with env.site.db.transaction() as session:
        done = rx.issue(
            session,
            practitioner_id=env.ruiz,
            patient_id=env.patient_id,
            items=[{"medicine": "Ibuprofen", "dose": "as needed", "quantity": 10}],
            now=env.site.clock.now(),
        )
        prescription_id = done.id
    new = f"/dashboard/prescriptions/new?patient_id={env.patient_id}"
    # who -> (form, issue, confirmation page, refill queue)
    expected = {
        "admin@clinic.test": (200, 303, 200, 200),
        "ruiz@clinic.test": (200, 303, 200, 200),
        "okafor@clinic.test": (403, 403, 403, 200),
        "staff@clinic.test": (403, 403, 403, 403),
        None: (303, 401, 303, 303),
    }
    for who, codes in expected.items():
        client = env.site.client(who)
        data = form(env.patient_id, ITEM, practitioner_id=str(env.ruiz))
        got = (
            client.get(new).status_code,
            client.post("/dashboard/prescriptions", data=data).status_code,
            client.get(f"/dashboard/prescriptions/{prescription_id}").status_code,
            client.get("/dashboard/refills").status_code,
        )
        assert got == codes, who
    assert (
        env.site.anonymous()
        .get(new)
        .headers["location"]
        .startswith("/login?next=%2Fdashboard%2Fprescriptions%2Fnew")
    )
    assert len(prescriptions(env)) == 3  # the one above, then admin's and Dr Ruiz's


def test_csrf_missing_or_wrong_is_refused(env: Env) -> None:
    client = env.site.client("ruiz@clinic.test")
    data = form(env.patient_id, ITEM)
    assert client.post("/dashboard/prescriptions", data=data, csrf=False).status_code == 403
    wrong = {**data, "csrf_token": "not-the-token"}
    assert client.post("/dashboard/prescriptions", data=wrong).status_code == 403
    assert prescriptions(env) == []


def test_a_doctor_cannot_prescribe_for_another_doctors_patient(env: Env) -> None:
    ruiz = env.site.client("ruiz@clinic.test")
    assert (
        ruiz.get(f"/dashboard/prescriptions/new?patient_id={env.other_patient_id}").status_code
        == 403
    )
    # Nor through an appointment that is not theirs, nor a patient that does not exist.
    with env.site.db.transaction() as session:
        other_appointment = session.scalars(
            select(Appointment.id).where(Appointment.patient_id == env.other_patient_id)
        ).one()
    assert (
        ruiz.get(f"/dashboard/prescriptions/new?appointment_id={other_appointment}").status_code
        == 403
    )
    assert ruiz.get("/dashboard/prescriptions/new?patient_id=99999").status_code == 403
    refused = ruiz.post("/dashboard/prescriptions", data=form(env.other_patient_id, ITEM))
    assert refused.status_code == 403
    assert "only for your own patients" in refused.text
    assert prescriptions(env) == []
    # The form offers Dr Ruiz's own patients only.
    page = ruiz.get("/dashboard/prescriptions/new")
    assert page.status_code == 200
    assert f'<option value="{env.patient_id}">' in page.text
    assert f'<option value="{env.other_patient_id}">' not in page.text


def test_a_doctor_always_prescribes_as_themselves(env: Env) -> None:
    ruiz = env.site.client("ruiz@clinic.test")
    done = ruiz.post(
        "/dashboard/prescriptions",
        data=form(env.patient_id, ITEM, practitioner_id=str(env.okafor)),
    )
    assert done.status_code == 303
    [issued] = prescriptions(env)
    assert issued.practitioner_id == env.ruiz


def test_an_admin_chooses_the_prescriber(env: Env) -> None:
    admin = env.site.client("admin@clinic.test")
    page = admin.post("/dashboard/prescriptions", data=form(env.patient_id, ITEM))
    assert page.status_code == 422
    assert "Choose the prescriber." in page.text
    done = admin.post(
        "/dashboard/prescriptions", data=form(env.patient_id, ITEM, practitioner_id=str(env.okafor))
    )
    assert done.status_code == 303
    [issued] = prescriptions(env)
    assert issued.practitioner_id == env.okafor
    assert admin.get("/dashboard/prescriptions/new?patient_id=99999").status_code == 404


# -- issuing ----------------------------------------------------------------------


def test_a_prescription_from_the_form_reaches_the_patient(env: Env) -> None:
    ruiz = env.site.client("ruiz@clinic.test")
    page = ruiz.get(f"/dashboard/prescriptions/new?appointment_id={env.appointment_id}")
    assert page.status_code == 200
    assert "Patient 0131" in page.text  # prefilled from the appointment
    assert f'name="appointment_id" value="{env.appointment_id}"' in page.text
    assert "Dr Ana Ruiz" in page.text
    second = {"medicine": "Paracetamol", "dose": "1 tablet when needed", "quantity": "10"}
    done = ruiz.post(
        "/dashboard/prescriptions",
        data=form(
            env.patient_id,
            ITEM,
            {},  # a blank row is ignored
            second,
            appointment_id=str(env.appointment_id),
            notes="Take with food",
            expires_days="14",
        ),
    )
    assert done.status_code == 303
    [issued] = prescriptions(env)
    assert done.headers["location"] == f"/dashboard/prescriptions/{issued.id}"
    with env.site.db.transaction() as session:
        stored = rx.get(session, issued.id)
        assert [(i.medicine, i.quantity, i.refills) for i in stored.items] == [
            ("Amoxicillin", 21, 1),
            ("Paracetamol", 10, 0),
        ]
        assert stored.appointment_id == env.appointment_id
        assert stored.notes == "Take with food"
        assert (stored.expires_at - stored.issued_at).days == 14
        code = stored.pickup_code

    shown = ruiz.get(done.headers["location"])
    assert shown.status_code == 200
    assert "Amoxicillin 500 mg capsule" in shown.text and "Paracetamol" in shown.text
    assert "By SMS: waiting to be sent." in shown.text
    assert code not in shown.text and rx.format_code(code) not in shown.text

    assert env.site.clinic.dispatch() == 1
    texts = env.site.clinic.channels["sms"].texts(PHONE)
    assert texts[-1] == "You have a new prescription from Dr Ana Ruiz."
    assert "Amoxicillin" not in " ".join(texts)
    assert "By SMS: sent." in ruiz.get(done.headers["location"]).text

    [created] = audit(env, "prescription", "create")
    assert (created.entity_id, created.patient_id) == (issued.id, env.patient_id)
    assert created.user_email == "ruiz@clinic.test"
    views = audit(env, "prescription", "view")
    assert len(views) == 2 and {v.patient_id for v in views} == {env.patient_id}
    assert audit(env, "patient", "view")[0].patient_id == env.patient_id


def test_a_patient_with_nowhere_to_write_is_shown_so(env: Env) -> None:
    from core.models import ChannelIdentity

    with env.site.db.transaction() as session:
        for identity in session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.patient_id == env.patient_id)
        ):
            identity.patient_id = None  # registered at the desk, never wrote to us
    ruiz = env.site.client("ruiz@clinic.test")
    done = ruiz.post("/dashboard/prescriptions", data=form(env.patient_id, ITEM))
    assert done.status_code == 303
    assert "Not sent: the patient has no channel" in ruiz.get(done.headers["location"]).text


BAD_ROWS = [
    ({**ITEM, "medicine": ""}, "medicine", "Enter the medicine."),
    ({**ITEM, "dose": "   "}, "dose", "Enter the dose instructions."),
    ({**ITEM, "quantity": ""}, "quantity", "Enter the quantity."),
    ({**ITEM, "quantity": "ten"}, "quantity", "Enter a whole number."),
    ({**ITEM, "quantity": "2.5"}, "quantity", "Enter a whole number."),
    ({**ITEM, "quantity": "0"}, "quantity", "At least 1."),
    ({**ITEM, "quantity": "10001"}, "quantity", f"At most {rx.MAX_QUANTITY}."),
    ({**ITEM, "refills": "-1"}, "refills", "At least 0."),
    ({**ITEM, "refills": "99"}, "refills", f"At most {rx.MAX_REFILLS}."),
    ({**ITEM, "medicine": "A" * 10_000}, "medicine", "At most 200 characters."),
    ({**ITEM, "dose": "d" * 10_000}, "dose", "At most 300 characters."),
    ({**ITEM, "strength": "5" * 100}, "strength", "At most 64 characters."),
    ({**ITEM, "medicine": SCRIPT}, "medicine", "Plain text only"),
    ({**ITEM, "form": "<b>tab</b>"}, "form", "Plain text only"),
    ({**ITEM, "dose": "1 &lt; 2"}, "dose", "Plain text only"),
]


BAD_OTHER = [
    ({"expires_days": "0"}, "expires_days", "At least 1."),
    ({"expires_days": "366"}, "expires_days", f"At most {rx.MAX_EXPIRES_DAYS}."),
    ({"expires_days": "soon"}, "expires_days", "Enter a whole number."),
    ({"notes": "n" * 10_000}, "notes", "At most 2000 characters."),
    ({"notes": SCRIPT}, "notes", "Plain text only"),
]


def test_bad_items_get_a_message_by_the_field(env: Env) -> None:
    # One site for all the cases: each is a separate POST that must issue nothing.
    ruiz = env.site.client("ruiz@clinic.test")
    for row, field, message in BAD_ROWS:
        page = ruiz.post("/dashboard/prescriptions", data=form(env.patient_id, ITEM, row))
        assert page.status_code == 422, (field, message)
        assert "Some fields need fixing; nothing was issued." in page.text
        # The message sits under the field it is about, in the second row.
        assert last_field_before(page.text, message) == field, message
        assert page.text.split(message)[0].count('name="medicine"') == 2, message
        # What was typed is kept, escaped.
        assert 'value="Amoxicillin"' in page.text
        assert SCRIPT not in page.text
        assert "built-in method" not in page.text
        if row["medicine"] == SCRIPT:
            assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text
    assert prescriptions(env) == []


def test_bad_expiry_and_notes_get_messages(env: Env) -> None:
    ruiz = env.site.client("ruiz@clinic.test")
    for extra, field, message in BAD_OTHER:
        page = ruiz.post("/dashboard/prescriptions", data=form(env.patient_id, ITEM, **extra))
        assert page.status_code == 422, message
        assert last_field_before(page.text, message) == field, message
        assert SCRIPT not in page.text
        if extra.get("notes") == SCRIPT:
            assert "&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in page.text
    assert prescriptions(env) == []


def test_no_medicine_no_patient_and_too_many_rows(env: Env) -> None:
    ruiz = env.site.client("ruiz@clinic.test")
    empty = ruiz.post("/dashboard/prescriptions", data=form(env.patient_id, {}))
    assert empty.status_code == 422 and "Add at least one medicine." in empty.text
    nobody = ruiz.post(
        "/dashboard/prescriptions", data={**form(env.patient_id, ITEM), "patient_id": ""}
    )
    assert nobody.status_code == 422 and "Choose the patient." in nobody.text
    many = ruiz.post(
        "/dashboard/prescriptions", data=form(env.patient_id, *[ITEM] * (rx.MAX_ITEMS + 1))
    )
    assert many.status_code == 422
    assert f"At most {rx.MAX_ITEMS} medicines on one prescription." in many.text
    assert prescriptions(env) == []


# -- refills ----------------------------------------------------------------------


def test_the_prescriber_answers_refills_from_the_queue(env: Env) -> None:
    now = env.site.clock.now()
    with env.site.db.transaction() as session:
        mine = rx.issue(
            session,
            practitioner_id=env.ruiz,
            patient_id=env.patient_id,
            items=[{**ITEM, "quantity": 21, "refills": 2}],
            now=now,
        )
        theirs = rx.issue(
            session,
            practitioner_id=env.okafor,
            patient_id=env.other_patient_id,
            items=[{"medicine": "Cream", "dose": "twice a day", "quantity": 1, "refills": 1}],
            now=now,
        )
        mine_refill = rx.request_refill(session, mine, "sms", PHONE, now, renew=True).id
        theirs_refill = rx.request_refill(session, theirs, "sms", OTHER, now, renew=True).id
    ruiz = env.site.client("ruiz@clinic.test")
    queue = ruiz.get("/dashboard/refills").text
    assert "Amoxicillin 500 mg capsule" in queue and "Cream" not in queue
    admin_queue = env.site.client("admin@clinic.test").get("/dashboard/refills").text
    assert "Amoxicillin" in admin_queue and "Cream" in admin_queue

    refused = ruiz.post(f"/dashboard/refills/{theirs_refill}/answer", data={"decision": "approve"})
    assert refused.status_code == 403
    assert (
        ruiz.post(
            f"/dashboard/refills/{mine_refill}/answer", data={"decision": "maybe"}
        ).status_code
        == 422
    )
    done = ruiz.post(
        f"/dashboard/refills/{mine_refill}/answer", data={"decision": "approve", "note": "ok"}
    )
    assert done.status_code == 303
    assert "Refill approved" in ruiz.get(done.headers["location"]).text
    again = ruiz.post(f"/dashboard/refills/{mine_refill}/answer", data={"decision": "deny"})
    assert again.status_code == 409 and "already approved" in again.text
    with env.site.db.transaction() as session:
        states = {r.id: r.status for r in session.scalars(select(RefillRequest))}
    assert states == {mine_refill: "approved", theirs_refill: "requested"}
    env.site.clinic.dispatch()
    assert (
        "Dr Ana Ruiz approved your refill request"
        in env.site.clinic.channels["sms"].texts(PHONE)[-1]
    )
    [answered] = audit(env, "refill", "update")
    assert (answered.entity_id, answered.patient_id) == (mine_refill, env.patient_id)
