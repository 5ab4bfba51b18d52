"""The REST API (/api/v1) with token authentication: each role against each
route (a table), a doctor's scope, bookings, bad input and the audit log."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from core import users
from core.clock import FixedClock
from core.db import Database
from core.models import ApiToken, AuditEntry, QuestionMessage, QuestionThread, User
from tests.staff import StaffSite

LEGACY = "legacy-integration-token"
ROLES = ("anonymous", "admin", "staff", "ruiz", "okafor", "legacy")
EMAILS = {
    "admin": "admin@clinic.test",
    "staff": "staff@clinic.test",
    "ruiz": "ruiz@clinic.test",
    "okafor": "okafor@clinic.test",
}
RUIZ_PHONE, OKAFOR_PHONE = "+15555550101", "+15555550102"


@dataclass
class Api:
    site: StaffSite
    http: TestClient
    tokens: dict[str, str]
    ruiz: int  # practitioner ids
    okafor: int
    ruiz_appointment: int
    okafor_appointment: int
    ruiz_patient: int
    okafor_patient: int
    ruiz_thread: int
    okafor_thread: int
    _next: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def now(self) -> datetime:
        return self.site.clock.now()

    def headers(self, role: str) -> dict[str, str]:
        token = self.tokens.get(role)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, role: str, method: str, url: str, **kwargs: Any) -> Response:
        return self.http.request(method, url, headers=self.headers(role), **kwargs)

    def n(self) -> int:
        return next(self._next)

    def fresh_appointment(self) -> int:
        """A 5-minute appointment of Dr Ruiz starting within the hour, each
        one later than the last: cancel, check in and complete all accept it."""
        start = self.now + timedelta(minutes=5 * self.n())
        with self.site.db.transaction() as session:
            from core import scheduling
            from core.models import Practitioner

            p = session.get(Practitioner, self.ruiz)
            assert p is not None
            return scheduling.book(
                session,
                practitioner=p,
                patient_id=self.ruiz_patient,
                start=start,
                end=start + timedelta(minutes=5),
                now=self.now,
                channel="sms",
                enforce_rules=False,
            ).id

    def audit(self, **where: Any) -> list[AuditEntry]:
        with self.site.db.transaction() as session:
            query = select(AuditEntry).order_by(AuditEntry.id)
            for name, value in where.items():
                query = query.where(getattr(AuditEntry, name) == value)
            return list(session.scalars(query))


def _thread(db: Database, clock: FixedClock, patient_id: int, practitioner_id: int) -> int:
    now = clock.now()
    with db.transaction() as session:
        thread = QuestionThread(
            clinic_id=1,
            patient_id=patient_id,
            practitioner_id=practitioner_id,
            channel="sms",
            address=RUIZ_PHONE if practitioner_id == 1 else OKAFOR_PHONE,
            status="open",
            due_at=now + timedelta(days=1),
            created_at=now,
            updated_at=now,
        )
        thread.messages.append(
            QuestionMessage(author="patient", body="Is a rash normal?", created_at=now)
        )
        session.add(thread)
        session.flush()
        return thread.id


@pytest.fixture
def api(db: Database, clock: FixedClock) -> Api:
    site = StaffSite.open(db, clock, api_token=LEGACY)
    tokens = {"legacy": LEGACY}
    with db.transaction() as session:
        for role, email in EMAILS.items():
            user = session.scalars(select(User).where(User.email == email)).one()
            tokens[role] = users.issue_api_token(session, user, label=role, now=clock.now())
    tomorrow = datetime(2026, 4, 15, 14, 0, tzinfo=UTC)  # 10:00 in New York
    ruiz_appointment = site.clinic.book(RUIZ_PHONE, tomorrow, doctor="Ruiz")
    okafor_appointment = site.clinic.book(OKAFOR_PHONE, tomorrow, doctor="Okafor")
    ruiz_patient = site.clinic.appointment(ruiz_appointment).patient_id
    okafor_patient = site.clinic.appointment(okafor_appointment).patient_id
    ruiz, okafor = site.clinic.practitioner("Ruiz"), site.clinic.practitioner("Okafor")
    return Api(
        site=site,
        http=TestClient(site.app, raise_server_exceptions=False),
        tokens=tokens,
        ruiz=ruiz,
        okafor=okafor,
        ruiz_appointment=ruiz_appointment,
        okafor_appointment=okafor_appointment,
        ruiz_patient=ruiz_patient,
        okafor_patient=okafor_patient,
        ruiz_thread=_thread(db, clock, ruiz_patient, ruiz),
        okafor_thread=_thread(db, clock, okafor_patient, okafor),
    )


# -- who may call what ------------------------------------------------------------------

Target = Callable[[Api], tuple[str, str, dict[str, Any] | None]]


def _booking(a: Api) -> tuple[str, str, dict[str, Any]]:
    start = datetime(2026, 4, 16, 14, 0, tzinfo=UTC) + timedelta(hours=a.n())
    body = {
        "practitioner_id": a.okafor,
        "patient_phone": "+15555550199",
        "start": start.isoformat(),
    }
    return "POST", "/api/v1/appointments", body


def _time_off(a: Api) -> tuple[str, str, dict[str, Any]]:
    day = date(2026, 5, 1) + timedelta(days=a.n())
    body = {"start": day.isoformat(), "end": day.isoformat(), "reason": "course"}
    return "POST", f"/api/v1/practitioners/{a.ruiz}/time-off", body


def _remove_time_off(a: Api) -> tuple[str, str, None]:
    _, url, body = _time_off(a)
    added = a.call("admin", "POST", url, json=body).json()
    return "DELETE", f"{url}/{added['exceptions'][-1]['id']}", None


def _prescription(a: Api) -> tuple[str, str, dict[str, Any]]:
    item = {"medicine": "Amoxicillin", "dose": "1 capsule 3 times a day", "quantity": 21}
    body = {"practitioner_id": a.ruiz, "patient_id": a.ruiz_patient, "items": [item]}
    return "POST", "/api/v1/prescriptions", body


def _a_prescription(a: Api) -> tuple[str, str, None]:
    _, url, body = _prescription(a)
    made = a.call("admin", "POST", url, json=body).json()
    return "GET", f"/api/v1/prescriptions/{made['id']}", None


def _change(action: str) -> Target:
    return lambda a: ("POST", f"/api/v1/appointments/{a.fresh_appointment()}/{action}", None)


PUBLIC = dict.fromkeys(ROLES, 200)
ANY_TOKEN = {**PUBLIC, "anonymous": 401}
RUIZ_OWN = {**ANY_TOKEN, "okafor": 403}
HOURS = {"weekly_hours": [{"weekday": 0, "start": "09:00", "end": "17:00"}]}

TABLE: list[tuple[str, Target, dict[str, int]]] = [
    ("practitioners", lambda a: ("GET", "/api/v1/practitioners", None), PUBLIC),
    ("slots", lambda a: ("GET", f"/api/v1/slots?practitioner_id={a.ruiz}", None), PUBLIC),
    ("appointments", lambda a: ("GET", "/api/v1/appointments", None), ANY_TOKEN),
    (
        "appointment",
        lambda a: ("GET", f"/api/v1/appointments/{a.ruiz_appointment}", None),
        RUIZ_OWN,
    ),
    (
        "book",
        _booking,
        {"anonymous": 401, "admin": 201, "staff": 201, "ruiz": 403, "okafor": 403, "legacy": 201},
    ),
    ("cancel", _change("cancel"), RUIZ_OWN),
    ("check-in", _change("check-in"), RUIZ_OWN),
    ("complete", _change("complete"), RUIZ_OWN),
    ("patients", lambda a: ("GET", "/api/v1/patients", None), ANY_TOKEN),
    ("patient", lambda a: ("GET", f"/api/v1/patients/{a.ruiz_patient}", None), RUIZ_OWN),
    (
        "availability",
        lambda a: ("GET", f"/api/v1/practitioners/{a.ruiz}/availability", None),
        RUIZ_OWN,
    ),
    (
        "set availability",
        lambda a: ("PUT", f"/api/v1/practitioners/{a.ruiz}/availability", HOURS),
        RUIZ_OWN,
    ),
    (
        "add time off",
        _time_off,
        {**RUIZ_OWN, **dict.fromkeys(("admin", "staff", "ruiz", "legacy"), 201)},
    ),
    ("remove time off", _remove_time_off, RUIZ_OWN),
    ("questions", lambda a: ("GET", "/api/v1/questions", None), ANY_TOKEN),
    ("question", lambda a: ("GET", f"/api/v1/questions/{a.ruiz_thread}", None), RUIZ_OWN),
    (
        "reply",
        lambda a: (
            "POST",
            f"/api/v1/questions/{a.ruiz_thread}/reply",
            {"body": "It is usually harmless; come in if it spreads."},
        ),
        {**RUIZ_OWN, "legacy": 403},
    ),
    (
        "prescribe",
        _prescription,
        {"anonymous": 401, "admin": 201, "staff": 403, "ruiz": 201, "okafor": 403, "legacy": 201},
    ),
    ("prescription", _a_prescription, RUIZ_OWN),
    ("refills", lambda a: ("GET", "/api/v1/refills", None), ANY_TOKEN),
]


@pytest.mark.parametrize(("route", "target", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_each_role_against_each_route(
    api: Api, route: str, target: Target, expected: dict[str, int]
) -> None:
    got: dict[str, int] = {}
    for role in ROLES:
        method, url, body = target(api)
        response = api.call(role, method, url, json=body)
        got[role] = response.status_code
        if response.status_code == 401:
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["detail"]
        if response.status_code == 403:
            assert response.json()["detail"]
    assert got == expected


# -- tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Bearer nope",
        "Basic " + LEGACY,
        "Bearer " + "x" * 5000,
        "Bearer tm_" + "A" * 43,
    ],
)
def test_missing_or_unknown_tokens_are_401_with_a_reason(api: Api, header: str) -> None:
    response = api.http.get("/api/v1/patients", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


def test_a_revoked_token_or_a_disabled_user_is_401(api: Api) -> None:
    assert api.call("staff", "GET", "/api/v1/patients").status_code == 200
    with api.site.db.transaction() as session:
        token = session.scalars(select(ApiToken).where(ApiToken.label == "staff")).one()
        token.revoked_at = api.now
    assert api.call("staff", "GET", "/api/v1/patients").status_code == 401

    assert api.call("ruiz", "GET", "/api/v1/patients").status_code == 200
    with api.site.db.transaction() as session:
        doctor = session.scalars(select(User).where(User.email == EMAILS["ruiz"])).one()
        doctor.active = False
    assert api.call("ruiz", "GET", "/api/v1/patients").status_code == 401


def test_a_token_records_when_it_was_last_used(api: Api) -> None:
    api.call("okafor", "GET", "/api/v1/patients")
    with api.site.db.transaction() as session:
        token = session.scalars(select(ApiToken).where(ApiToken.label == "okafor")).one()
        assert token.last_used_at == api.now


# -- a doctor's scope ------------------------------------------------------------------


def test_a_doctor_sees_only_their_own_appointments_and_patients(api: Api) -> None:
    rows = api.call("ruiz", "GET", "/api/v1/appointments", params={"day": "2026-04-15"}).json()
    assert [r["id"] for r in rows] == [api.ruiz_appointment]
    everyone = api.call("staff", "GET", "/api/v1/appointments", params={"day": "2026-04-15"})
    assert {r["id"] for r in everyone.json()} == {api.ruiz_appointment, api.okafor_appointment}

    other = api.call("ruiz", "GET", "/api/v1/appointments", params={"practitioner_id": api.okafor})
    assert other.status_code == 403

    patients = api.call("ruiz", "GET", "/api/v1/patients").json()
    assert [p["id"] for p in patients] == [api.ruiz_patient]
    assert {p["id"] for p in api.call("admin", "GET", "/api/v1/patients").json()} == {
        api.ruiz_patient,
        api.okafor_patient,
    }
    assert api.call("ruiz", "GET", f"/api/v1/patients/{api.okafor_patient}").status_code == 403


def test_a_doctor_sees_only_their_own_questions(api: Api) -> None:
    mine = api.call("ruiz", "GET", "/api/v1/questions").json()
    assert [t["id"] for t in mine] == [api.ruiz_thread]
    everyone = api.call("staff", "GET", "/api/v1/questions").json()
    assert {t["id"] for t in everyone} == {api.ruiz_thread, api.okafor_thread}


def test_a_doctor_prescribes_only_as_themselves_for_their_patients(api: Api) -> None:
    _, url, body = _prescription(api)
    as_other = api.call("ruiz", "POST", url, json={**body, "practitioner_id": api.okafor})
    assert as_other.status_code == 403
    other_patient = {**body, "practitioner_id": api.okafor, "patient_id": api.ruiz_patient}
    assert api.call("okafor", "POST", url, json=other_patient).status_code == 403
    # by phone: a stranger's number does not make them the doctor's patient
    stranger = {**body, "patient_id": None, "patient_phone": "+15555550177"}
    assert api.call("ruiz", "POST", url, json=stranger).status_code == 403
    assert api.call("ruiz", "GET", "/api/v1/patients", params={"q": "0177"}).json() == []
    assert api.call("staff", "GET", "/api/v1/patients", params={"q": "0177"}).json() == []


def test_the_date_of_birth_goes_to_doctors_and_admins_only(api: Api) -> None:
    url = f"/api/v1/patients/{api.ruiz_patient}"
    assert api.call("ruiz", "GET", url).json()["date_of_birth"] == "1980-01-01"
    assert api.call("admin", "GET", url).json()["date_of_birth"] == "1980-01-01"
    record = api.call("staff", "GET", url).json()
    assert record["date_of_birth"] is None
    assert record["identities"] == [
        {
            "channel": "sms",
            "address": RUIZ_PHONE,
            "language": None,
            "verified_at": None,
            "opted_out_at": None,
            "consents": {},
            "last_inbound_at": None,
        }
    ]
    assert [a["id"] for a in record["appointments"]] == [api.ruiz_appointment]


def test_patient_search(api: Api) -> None:
    found = api.call("staff", "GET", "/api/v1/patients", params={"q": RUIZ_PHONE[-4:]}).json()
    assert [p["id"] for p in found] == [api.ruiz_patient]
    by_name = api.call("staff", "GET", "/api/v1/patients", params={"q": "patient 0102"}).json()
    assert [p["id"] for p in by_name] == [api.okafor_patient]
    assert api.call("staff", "GET", "/api/v1/patients", params={"q": "%"}).json() == []


# -- appointments ----------------------------------------------------------------------


def test_booking_over_the_api_shows_in_the_listing(api: Api) -> None:
    body = {
        "practitioner_id": api.okafor,
        "patient_phone": "(555) 555-0150",
        "start": "2026-04-17T08:00:00",  # no offset: the clinic's zone (New York)
        "channel": "whatsapp",
        "visit_type": "video",
    }
    booked = api.call("staff", "POST", "/api/v1/appointments", json=body)
    assert booked.status_code == 201, booked.text
    made = booked.json()
    assert made["start"] == "2026-04-17T08:00:00-04:00"  # before hours: staff may overbook
    assert made["status"] == "booked"

    listed = api.call("admin", "GET", "/api/v1/appointments", params={"day": "2026-04-17"}).json()
    assert len(listed) == 1
    row = listed[0]
    # a superset of `telemed appointments --json`
    assert {"id", "status", "start", "practitioner", "patient_phone", "channel"} <= set(row)
    assert row["id"] == made["id"]
    assert row["practitioner"] == "Dr Ben Okafor"
    assert row["patient_phone"] == "+15555550150"
    assert row["channel"] == "whatsapp"
    assert row["visit_type"] == "video"
    assert api.audit(action="create", entity="appointment")[-1].entity_id == made["id"]


def test_an_overlapping_booking_is_409_with_the_reason(api: Api) -> None:
    body = {
        "practitioner_id": api.ruiz,
        "patient_id": api.okafor_patient,
        "start": "2026-04-15T10:15:00-04:00",  # Dr Ruiz is booked 10:00-10:30
    }
    response = api.call("staff", "POST", "/api/v1/appointments", json=body)
    assert response.status_code == 409
    assert "already booked" in response.json()["detail"]


def test_state_errors_are_409(api: Api) -> None:
    url = f"/api/v1/appointments/{api.ruiz_appointment}"
    assert api.call("staff", "POST", url + "/cancel").json()["status"] == "cancelled"
    again = api.call("staff", "POST", url + "/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]
    assert api.call("staff", "POST", url + "/check-in").status_code == 409
    assert api.call("staff", "POST", url + "/complete").status_code == 409
    later = api.call("staff", "POST", f"/api/v1/appointments/{api.okafor_appointment}/complete")
    assert later.status_code == 409  # tomorrow's visit has not started


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"practitioner_id": 2, "start": "2026-04-16T10:00:00-04:00"},  # no patient
        {
            "practitioner_id": 2,
            "patient_id": 1,
            "patient_phone": "+15555550150",
            "start": "2026-04-16T10:00:00-04:00",
        },
        {"practitioner_id": 2, "patient_phone": "not a phone", "start": "2026-04-16T10:00"},
        {"practitioner_id": 2, "patient_phone": "+15555550150", "start": "tomorrow"},
        {"practitioner_id": 2, "patient_phone": "+15555550150", "start": "2026-02-30T10:00"},
        {"practitioner_id": 2, "patient_phone": "+15555550150", "start": "0001-01-01T00:00+05:00"},
        {"practitioner_id": 999, "patient_phone": "+15555550150", "start": "2026-04-16T10:00"},
        {"practitioner_id": 2, "patient_id": 999, "start": "2026-04-16T10:00"},
        {"practitioner_id": 0, "patient_phone": "+15555550150", "start": "2026-04-16T10:00"},
        {
            "practitioner_id": 2,
            "patient_phone": "+15555550150",
            "start": "2026-04-16T10:00",
            "x": 1,
        },
        {"practitioner_id": 2, "patient_phone": "+1555" * 20, "start": "2026-04-16T10:00"},
        {
            "practitioner_id": 2,
            "patient_phone": "+15555550150",
            "start": "2026-04-16T10:00",
            "channel": "pigeon",
        },
        {"practitioner_id": "<script>", "patient_phone": "+15555550150", "start": "2026-04-16"},
    ],
)
def test_malformed_bookings_are_422(api: Api, body: dict[str, Any]) -> None:
    response = api.call("staff", "POST", "/api/v1/appointments", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = api.http.post(
        "/api/v1/appointments",
        content=b"<xml/>",
        headers={**api.headers("staff"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/appointments/0",
        "/api/v1/appointments/-1",
        "/api/v1/appointments/2147483648",
        "/api/v1/appointments/abc",
        "/api/v1/patients/0",
        "/api/v1/patients/99999999999999999999",
        "/api/v1/questions/0",
        "/api/v1/practitioners/0/availability",
        "/api/v1/appointments?day=2026-13-01",
        "/api/v1/appointments?limit=0",
        "/api/v1/patients?limit=100000",
        "/api/v1/patients?q=" + "x" * 101,
        "/api/v1/questions?status=lost",
    ],
)
def test_out_of_range_ids_and_params_are_422(api: Api, url: str) -> None:
    assert api.call("admin", "GET", url).status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/appointments/999",
        "/api/v1/patients/999",
        "/api/v1/questions/999",
        "/api/v1/practitioners/999/availability",
        "/api/v1/prescriptions/999",
    ],
)
def test_unknown_ids_are_404(api: Api, url: str) -> None:
    response = api.call("admin", "GET", url)
    assert response.status_code == 404
    assert "999" in response.json()["detail"]


# -- availability -------------------------------------------------------------------------


def test_new_weekly_hours_change_the_slots(api: Api) -> None:
    # Dr Okafor works Monday to Thursday; open Saturday 18 April (weekday 5) instead.
    url = f"/api/v1/practitioners/{api.okafor}/availability"
    params = {"practitioner_id": api.okafor, "start": "2026-04-18", "end": "2026-04-19"}
    assert api.http.get("/api/v1/slots", params=params).json() == []
    hours = {"weekly_hours": [{"weekday": 5, "start": "10:00", "end": "11:00"}]}
    done = api.call("okafor", "PUT", url, json=hours)
    assert done.status_code == 200, done.text
    assert [(h["weekday"], h["start"], h["end"]) for h in done.json()["weekly_hours"]] == [
        (5, "10:00", "11:00")
    ]
    assert done.json()["appointments_outside_hours"] == 1  # Wednesday's visit stays booked
    slots = api.http.get("/api/v1/slots", params=params).json()
    assert [s["start"] for s in slots] == [
        "2026-04-18T10:00:00-04:00",
        "2026-04-18T10:20:00-04:00",
        "2026-04-18T10:40:00-04:00",
    ]
    assert api.audit(entity="availability")[-1].source == "api"


@pytest.mark.parametrize(
    ("hours", "reason"),
    [
        (
            [
                {"weekday": 0, "start": "09:00", "end": "12:00"},
                {"weekday": 0, "start": "11:00", "end": "13:00"},
            ],
            "weekly_hours[1] (Monday): Overlaps",
        ),
        (
            [{"weekday": 1, "start": "17:00", "end": "09:00"}],
            "weekly_hours[0] (Tuesday): The end must be after",
        ),
        ([{"weekday": 2, "start": "25:00", "end": "26:00"}], "Start: Not a time"),
        ([{"weekday": 2, "start": "<b>9</b>", "end": "10:00"}], "Start: Not a time"),
    ],
)
def test_bad_weekly_hours_are_422_with_the_reason(
    api: Api, hours: list[dict[str, Any]], reason: str
) -> None:
    url = f"/api/v1/practitioners/{api.ruiz}/availability"
    response = api.call("staff", "PUT", url, json={"weekly_hours": hours})
    assert response.status_code == 422
    assert reason in response.json()["detail"]
    kept = api.call("staff", "GET", url).json()["weekly_hours"]
    assert len(kept) == 10  # Dr Ruiz's two ranges on five weekdays are untouched


@pytest.mark.parametrize(
    "body",
    [
        {"weekly_hours": [{"weekday": 7, "start": "09:00", "end": "10:00"}]},
        {"weekly_hours": [{"weekday": 0, "start": 9, "end": "10:00"}]},
        {"weekly_hours": [{"weekday": 0, "start": "09:00"}]},
        {"weekly_hours": "all day"},
        {"hours": []},
    ],
)
def test_malformed_availability_bodies_are_422(api: Api, body: dict[str, Any]) -> None:
    url = f"/api/v1/practitioners/{api.ruiz}/availability"
    assert api.call("admin", "PUT", url, json=body).status_code == 422


def test_time_off_with_bad_dates_is_422(api: Api) -> None:
    url = f"/api/v1/practitioners/{api.ruiz}/time-off"
    response = api.call("staff", "POST", url, json={"start": "2026-05-02", "end": "2026-05-01"})
    assert response.status_code == 422
    assert "after the start" in response.json()["detail"]


# -- questions --------------------------------------------------------------------------------


def test_a_thread_and_a_reply(api: Api) -> None:
    url = f"/api/v1/questions/{api.ruiz_thread}"
    thread = api.call("ruiz", "GET", url).json()
    assert [m["author"] for m in thread["messages"]] == ["patient"]
    assert thread["messages"][0]["body"] == "Is a rash normal?"
    sent = api.call("ruiz", "POST", url + "/reply", json={"body": "Send me a photo, please."})
    assert sent.status_code == 200, sent.text
    after = api.call("ruiz", "GET", url).json()
    assert [m["author"] for m in after["messages"]] == ["patient", "doctor"]
    assert after["status"] == "answered"


@pytest.mark.parametrize(
    "body", [{}, {"body": ""}, {"body": "   "}, {"body": "x" * 5001}, {"text": "hi"}]
)
def test_bad_replies_are_422(api: Api, body: dict[str, Any]) -> None:
    url = f"/api/v1/questions/{api.ruiz_thread}/reply"
    assert api.call("ruiz", "POST", url, json=body).status_code == 422


# -- audit ----------------------------------------------------------------------------------


def test_every_read_of_patient_data_is_audited(api: Api) -> None:
    reads = [
        f"/api/v1/patients/{api.ruiz_patient}",
        "/api/v1/patients",
        f"/api/v1/appointments/{api.ruiz_appointment}",
        "/api/v1/appointments",
        f"/api/v1/questions/{api.ruiz_thread}",
        "/api/v1/questions",
    ]
    for url in reads:
        before = len(api.audit())
        assert api.call("ruiz", "GET", url).status_code == 200, url
        entries = api.audit()[before:]
        assert len(entries) == 1, url
        entry = entries[0]
        assert (entry.action, entry.source, entry.ip) == ("view", "api", "testclient"), url
        assert entry.user_email == EMAILS["ruiz"]

    record = api.audit(entity="patient", patient_id=api.ruiz_patient)
    assert record and record[-1].entity_id == api.ruiz_patient
    # The legacy integration has no user row: the entry says so instead.
    before = len(api.audit())
    api.call("legacy", "GET", f"/api/v1/patients/{api.ruiz_patient}")
    legacy = api.audit()[before]
    assert legacy.user_id is None and legacy.detail == {"via": "TELEMED_API_TOKEN"}
    # A refused read leaves nothing to audit.
    before = len(api.audit())
    api.call("okafor", "GET", f"/api/v1/patients/{api.ruiz_patient}")
    assert len(api.audit()) == before


def test_public_routes_write_no_audit_entries(api: Api) -> None:
    before = len(api.audit())
    api.http.get("/api/v1/practitioners")
    api.http.get("/api/v1/slots", params={"practitioner_id": api.ruiz})
    assert len(api.audit()) == before


# -- OpenAPI ------------------------------------------------------------------------------


def test_openapi_documents_every_route_and_the_bearer_scheme(api: Api) -> None:
    spec = api.http.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    expected = {
        ("get", "/api/v1/appointments"),
        ("post", "/api/v1/appointments"),
        ("get", "/api/v1/appointments/{appointment_id}"),
        ("post", "/api/v1/appointments/{appointment_id}/cancel"),
        ("post", "/api/v1/appointments/{appointment_id}/check-in"),
        ("post", "/api/v1/appointments/{appointment_id}/complete"),
        ("get", "/api/v1/patients"),
        ("get", "/api/v1/patients/{patient_id}"),
        ("get", "/api/v1/practitioners/{practitioner_id}/availability"),
        ("put", "/api/v1/practitioners/{practitioner_id}/availability"),
        ("post", "/api/v1/practitioners/{practitioner_id}/time-off"),
        ("delete", "/api/v1/practitioners/{practitioner_id}/time-off/{exception_id}"),
        ("get", "/api/v1/questions"),
        ("get", "/api/v1/questions/{thread_id}"),
        ("post", "/api/v1/questions/{thread_id}/reply"),
        ("post", "/api/v1/prescriptions"),
        ("get", "/api/v1/prescriptions/{prescription_id}"),
        ("get", "/api/v1/refills"),
    }
    paths = spec["paths"]
    for method, path in expected:
        operation = paths[path][method]
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        assert {"401", "403"} <= set(operation["responses"]), (method, path)
        assert operation.get("description") or operation.get("summary"), (method, path)
    for public in ("/api/v1/practitioners", "/api/v1/slots"):
        assert "security" not in paths[public]["get"]
    assert set(spec["components"]["schemas"]["Problem"]["properties"]) == {"detail"}
