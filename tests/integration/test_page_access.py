"""Who may open what: every dashboard page and form, for each role, in one table.

Columns: anonymous, admin, staff, the patient's own doctor (Dr Ruiz), another
doctor (Dr Okafor). The REST API's table is in test_api_v1.py.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core import prescriptions as rx
from core import questions
from core.clock import FixedClock
from core.db import Database
from core.models import Appointment, QuestionThread
from tests.staff import StaffClient, StaffSite

NY = ZoneInfo("America/New_York")
WHO = (None, "admin@clinic.test", "staff@clinic.test", "ruiz@clinic.test", "okafor@clinic.test")
LOGIN = 303  # anonymous GET: sent to /login
OK, REDIRECT, FORBIDDEN = 200, 303, 403

# (path, expected per column of WHO); {A} appointment, {P} patient, {R} practitioner,
# {T} question thread, {X} prescription, all Dr Ruiz's.
PAGES = [
    ("/dashboard", (LOGIN, OK, OK, OK, OK)),
    ("/dashboard/appointments/{A}", (LOGIN, OK, OK, OK, FORBIDDEN)),
    ("/dashboard/appointments/{A}/video", (LOGIN, REDIRECT, REDIRECT, REDIRECT, FORBIDDEN)),
    ("/dashboard/audit", (LOGIN, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN)),
    ("/dashboard/availability", (LOGIN, OK, OK, OK, OK)),
    ("/dashboard/availability/{R}", (LOGIN, OK, OK, OK, FORBIDDEN)),
    ("/dashboard/inbox", (LOGIN, OK, OK, OK, OK)),
    ("/dashboard/inbox/{T}", (LOGIN, OK, OK, OK, FORBIDDEN)),
    ("/dashboard/patients", (LOGIN, OK, OK, OK, OK)),
    ("/dashboard/patients/{P}", (LOGIN, OK, OK, OK, FORBIDDEN)),
    ("/dashboard/prescriptions/new", (LOGIN, OK, FORBIDDEN, OK, OK)),
    ("/dashboard/prescriptions/new?patient_id={P}", (LOGIN, OK, FORBIDDEN, OK, FORBIDDEN)),
    ("/dashboard/prescriptions/{X}", (LOGIN, OK, FORBIDDEN, OK, FORBIDDEN)),
    ("/dashboard/refills", (LOGIN, OK, FORBIDDEN, OK, OK)),
    ("/dashboard/reports", (LOGIN, OK, OK, OK, OK)),
    ("/dashboard/telegram", (LOGIN, OK, OK, OK, OK)),
]

FORMS = [
    "/dashboard/appointments/{A}/check-in",
    "/dashboard/appointments/{A}/video/revoke",
    "/dashboard/availability/{R}/hours",
    "/dashboard/availability/{R}/time-off",
    "/dashboard/inbox/{T}/reply",
    "/dashboard/inbox/{T}/close",
    "/dashboard/prescriptions",
    "/dashboard/alerts/1/ack",
    "/dashboard/refills/1/answer",
    "/dashboard/telegram",
    "/logout",
]
# With a valid CSRF token, another doctor still may not touch Dr Ruiz's things.
OTHER_DOCTORS_FORMS = [
    "/dashboard/appointments/{A}/check-in",
    "/dashboard/appointments/{A}/video/revoke",
    "/dashboard/availability/{R}/hours",
    "/dashboard/availability/{R}/time-off",
    "/dashboard/inbox/{T}/reply",
    "/dashboard/inbox/{T}/close",
]


@pytest.fixture
def world(db: Database, clock: FixedClock) -> tuple[StaffSite, dict[str, int]]:
    site = StaffSite.open(db, clock)
    appointment = site.clinic.book(
        "+15555550123", datetime(2026, 4, 14, 9, 10, tzinfo=NY), video=True
    )
    with db.transaction() as session:
        a = session.get(Appointment, appointment)
        assert a is not None
        thread = questions.open_thread(
            session,
            patient_id=a.patient_id,
            practitioner_id=a.practitioner_id,
            channel="sms",
            address="+15555550123",
            body="Is it contagious?",
            media=[],
            inbound_id=None,
            now=clock.now(),
            settings=site.clinic.settings,
        )
        prescription = rx.issue(
            session,
            practitioner_id=a.practitioner_id,
            patient_id=a.patient_id,
            items=[{"medicine": "Ibuprofen", "dose": "1 daily", "quantity": 10}],
            now=clock.now(),
            appointment_id=a.id,
        )
        ids = {
            "A": a.id,
            "P": a.patient_id,
            "R": a.practitioner_id,
            "T": thread.id,
            "X": prescription.id,
        }
    return site, ids


def _clients(site: StaffSite) -> list[StaffClient]:
    return [site.client(email) for email in WHO]


def test_every_page_for_every_role(world: tuple[StaffSite, dict[str, int]]) -> None:
    site, ids = world
    clients = _clients(site)
    seen = {
        path: tuple(c.get(path.format(**ids)).status_code for c in clients) for path, _ in PAGES
    }
    assert seen == dict(PAGES)
    anonymous = clients[0].get(PAGES[1][0].format(**ids))
    assert anonymous.headers["location"].startswith("/login?next=%2Fdashboard%2Fappointments")


def test_every_form_needs_the_csrf_token(world: tuple[StaffSite, dict[str, int]]) -> None:
    site, ids = world
    clients = _clients(site)
    for path in FORMS:
        url = path.format(**ids)
        assert clients[0].post(url, data={"body": "x"}, csrf=False).status_code == 401, url
        for client in clients[1:]:
            assert client.post(url, data={"body": "x"}, csrf=False).status_code == 403, url
            forged = client.post(url, data={"body": "x", "csrf_token": "forged"})
            assert forged.status_code == 403, url
            header = client.post(url, data={"body": "x"}, csrf=False, headers={"X-CSRF-Token": "x"})
            assert header.status_code == 403, url


def test_another_doctor_is_refused_even_with_a_valid_token(
    world: tuple[StaffSite, dict[str, int]],
) -> None:
    site, ids = world
    okafor = site.client("okafor@clinic.test")
    for path in OTHER_DOCTORS_FORMS:
        answer = okafor.post(path.format(**ids), data={"body": "I am not their doctor"})
        assert answer.status_code == 403, path
    with site.db.transaction() as session:
        thread = session.get(QuestionThread, ids["T"])
        assert thread is not None and thread.status == "open" and len(thread.messages) == 1
