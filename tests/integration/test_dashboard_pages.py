"""The dashboard's core pages through the real app and database: the day's
schedule per role, the appointment buttons (with and without HTMX), patients,
reports, the audit log, and hostile input.

The clock starts on Tuesday 14 April 2026, 09:00 in New York (the clinic's zone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from core import audit
from core.clock import FixedClock
from core.db import Database
from core.models import (
    Alert,
    Appointment,
    AuditEntry,
    ChannelIdentity,
    InboundLog,
    IntakeResponse,
    OutboxMessage,
    Patient,
)
from tests.clinic import TZ
from tests.staff import StaffSite
from web import charts

NY = ZoneInfo(TZ)
ANA, BEN, CARL = "+15555550101", "+15555550102", "+15555550103"
HOSTILE = "<script>alert(1)</script>"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture
def site(db: Database, clock: FixedClock) -> StaffSite:
    return StaffSite.open(db, clock)


def name_patient(site: StaffSite, appointment_id: int, name: str) -> int:
    with site.db.transaction() as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment is not None
        session.execute(
            update(Patient).where(Patient.id == appointment.patient_id).values(name=name)
        )
        return appointment.patient_id


def audit_rows(site: StaffSite, **where: object) -> list[AuditEntry]:
    with site.db.transaction() as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEntry, key) == value)
        return list(session.scalars(query))


def row_of(page: str, appointment_id: int) -> str:
    found = re.search(rf'<tr id="appointment-{appointment_id}".*?</tr>', page, re.S)
    assert found is not None, f"appointment {appointment_id} not on the page"
    return found.group(0)


# -- access ------------------------------------------------------------------------

PAGES = [
    "/dashboard",
    "/dashboard?day=2026-04-15",
    "/dashboard/appointments/1",
    "/dashboard/patients",
    "/dashboard/patients/1",
    "/dashboard/reports",
    "/dashboard/audit",
]


def test_anonymous_visitors_are_sent_to_login(site: StaffSite) -> None:
    site.clinic.book(ANA, local(2026, 4, 14, 10, 0))
    anonymous = site.anonymous()
    for path in PAGES:
        page = anonymous.get(path)
        assert page.status_code == 303, path
        assert page.headers["location"].startswith("/login?next=%2Fdashboard"), path
    # A button pressed by nobody changes nothing.
    done = anonymous.post("/dashboard/appointments/1/check-in", data={})
    assert done.status_code == 401
    assert site.clinic.appointment(1).checked_in_at is None


def test_day_view_shows_each_role_what_is_theirs(site: StaffSite) -> None:
    ruiz = site.clinic.book(ANA, local(2026, 4, 14, 10, 0), doctor="Ruiz")
    okafor = site.clinic.book(BEN, local(2026, 4, 14, 11, 0), doctor="Okafor")
    tomorrow = site.clinic.book(CARL, local(2026, 4, 15, 9, 0), doctor="Ruiz")
    name_patient(site, ruiz, "Alma Ruiz-Patient")
    name_patient(site, okafor, "Bruno Okafor-Patient")
    for email in ("admin@clinic.test", "staff@clinic.test"):
        page = site.client(email).get("/dashboard")
        assert page.status_code == 200
        assert "Alma Ruiz-Patient" in page.text and "Bruno Okafor-Patient" in page.text
        assert f'id="appointment-{tomorrow}"' not in page.text
        assert "10:00–10:30" in row_of(page.text, ruiz)  # the clinic's zone, not UTC

    doctor = site.client("ruiz@clinic.test")
    page = doctor.get("/dashboard")
    assert "Alma Ruiz-Patient" in page.text
    assert "Bruno Okafor-Patient" not in page.text and "Dr Ben Okafor" not in page.text
    okafor_id = site.clinic.practitioner("Okafor")
    assert doctor.get(f"/dashboard?practitioner={okafor_id}").status_code == 403

    staff = site.client("staff@clinic.test")
    only_ruiz = staff.get(f"/dashboard?practitioner={site.clinic.practitioner('Ruiz')}")
    assert "Alma Ruiz-Patient" in only_ruiz.text and "Bruno Okafor-Patient" not in only_ruiz.text
    assert staff.get("/dashboard?practitioner=99999").status_code == 404

    next_day = staff.get("/dashboard?day=2026-04-15")
    assert f'id="appointment-{tomorrow}"' in next_day.text
    assert f'id="appointment-{ruiz}"' not in next_day.text
    assert 'href="/dashboard?day=2026-04-14" rel="prev"' in next_day.text
    assert 'href="/dashboard?day=2026-04-16" rel="next"' in next_day.text


def test_bad_day_practitioner_and_weeks_get_a_message(site: StaffSite) -> None:
    staff = site.client("staff@clinic.test")
    for day in ("2026-13-01", "tomorrow", HOSTILE, "9999-12-31", "x" * 10_000, "2026-4-1"):
        page = staff.get("/dashboard", params={"day": day})
        assert page.status_code == 422, day
        assert "must be a date" in page.text or "out of range" in page.text
        assert HOSTILE not in page.text
    for value in ("abc", "-1", "0", "99999999999999999999"):
        page = staff.get("/dashboard", params={"practitioner": value})
        assert page.status_code == 422, value
        assert "practitioner" in page.text
    for weeks in ("0", "53", "abc", "1.5", "9" * 10_000, HOSTILE):
        page = staff.get("/dashboard/reports", params={"weeks": weeks})
        assert page.status_code == 422, weeks[:20]
        assert "weeks must be a whole number from 1 to 52" in page.text
        assert HOSTILE not in page.text


def test_the_day_view_shows_intake_triage_and_summary(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, local(2026, 4, 14, 10, 0))
    with site.db.transaction() as session:
        appointment = session.get(Appointment, ident)
        assert appointment is not None
        session.add(
            IntakeResponse(
                appointment_id=ident,
                patient_id=appointment.patient_id,
                questionnaire="general-intake",
                status="completed",
                answers={"reason": "cough"},
                triage_level="urgent",
                triage_rules=["fever_high"],
                summary="Triage: URGENT (same day) (fever_high)\nReason for visit: cough",
                started_at=site.clock.now(),
                updated_at=site.clock.now(),
            )
        )
    row = row_of(site.client("ruiz@clinic.test").get("/dashboard").text, ident)
    assert '<span class="badge urgent">urgent</span>' in row
    assert "Reason for visit: cough" in row and "Triage:" not in row


# -- the buttons -----------------------------------------------------------------


def test_check_in_complete_and_cancel_with_csrf_and_audit(site: StaffSite) -> None:
    now_visit = site.clinic.book(ANA, local(2026, 4, 14, 9, 0))
    later = site.clinic.book(BEN, local(2026, 4, 14, 15, 0))
    staff = site.client("staff@clinic.test")

    # Without the CSRF token (or with a wrong one): 403 and nothing changes.
    path = f"/dashboard/appointments/{now_visit}/check-in"
    assert staff.post(path, data={}, csrf=False).status_code == 403
    assert staff.post(path, data={"csrf_token": "forged"}).status_code == 403
    assert site.clinic.appointment(now_visit).checked_in_at is None

    done = staff.post(path, data={"next": "/dashboard"})
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"
    assert site.clinic.appointment(now_visit).checked_in_at == site.clock.now()
    # Checked in: the day view offers no check-in or no-show any more.
    row = row_of(staff.get("/dashboard").text, now_visit)
    assert "/check-in" not in row and "/no-show" not in row and "/complete" in row

    # With HTMX the answer is the row itself, to swap in place.
    swapped = staff.post(
        f"/dashboard/appointments/{now_visit}/complete",
        data={"view": "row", "next": "/dashboard"},
        headers={"HX-Request": "true"},
    )
    assert swapped.status_code == 200
    assert swapped.text.lstrip().startswith(f'<tr id="appointment-{now_visit}"')
    assert swapped.headers["HX-Retarget"] == f"#appointment-{now_visit}"
    assert swapped.headers["HX-Reswap"] == "outerHTML"
    assert "completed" in swapped.text
    assert site.clinic.appointment(now_visit).status == "completed"

    # An evil "next" never leads off the site.
    done = staff.post(
        f"/dashboard/appointments/{later}/cancel", data={"next": "https://evil.example/x"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"
    assert site.clinic.appointment(later).status == "cancelled"

    updates = audit_rows(site, action="update", entity="appointment")
    assert [(e.entity_id, e.detail["action"], e.user_email) for e in updates] == [
        (now_visit, "check_in", "staff@clinic.test"),
        (now_visit, "complete", "staff@clinic.test"),
        (later, "cancel", "staff@clinic.test"),
    ]


def test_a_button_that_no_longer_applies_says_why(site: StaffSite) -> None:
    future = site.clinic.book(ANA, local(2026, 4, 14, 16, 0))
    staff = site.client("staff@clinic.test")
    # Not started: no no-show yet, and not completed hours early.
    for action, reason in (("no-show", "has not started yet"), ("complete", "not started yet")):
        page = staff.post(f"/dashboard/appointments/{future}/{action}", data={})
        assert page.status_code == 409, action
        assert reason in page.text
    staff.post(f"/dashboard/appointments/{future}/cancel", data={})
    page = staff.post(f"/dashboard/appointments/{future}/check-in", data={})
    assert page.status_code == 409 and "is cancelled" in page.text
    # With HTMX the row carries the message (HTMX swaps nothing on an error status).
    row = staff.post(
        f"/dashboard/appointments/{future}/cancel",
        data={"view": "row"},
        headers={"HX-Request": "true"},
    )
    assert row.status_code == 200 and "already cancelled" in row.text
    assert audit_rows(site, action="update", entity="appointment")[-1].detail == {
        "action": "cancel"
    }
    assert len(audit_rows(site, action="update", entity="appointment")) == 1
    for bad in ("abc", "0", "99999999999", "-3", "1e3", "4294967296"):
        assert staff.post(f"/dashboard/appointments/{bad}/check-in", data={}).status_code == 404
        assert staff.get(f"/dashboard/appointments/{bad}").status_code == 404
    assert staff.post("/dashboard/appointments/999/check-in", data={}).status_code == 404


def test_the_appointment_page(site: StaffSite) -> None:
    video = site.clinic.book(ANA, local(2026, 4, 16, 10, 0), video=True)
    site.clinic.tick()  # plans its reminders and the video link
    doctor = site.client("ruiz@clinic.test")
    page = doctor.get(f"/dashboard/appointments/{video}").text
    assert "Thursday 16 April 2026, 10:00–10:30" in page  # the clinic's zone
    assert f'href="/dashboard/appointments/{video}/video">Start video visit' in page
    assert f'href="/dashboard/prescriptions/new?appointment_id={video}"' in page
    assert "reminder" in page and "video link" in page and "planned" in page
    for action in ("check-in", "cancel"):
        assert f'action="/dashboard/appointments/{video}/{action}"' in page
    assert f"/dashboard/appointments/{video}/no-show" not in page  # not started
    # Staff do not prescribe; an in-person visit has no video.
    other = site.clinic.book(BEN, local(2026, 4, 16, 11, 0))
    page = site.client("staff@clinic.test").get(f"/dashboard/appointments/{other}").text
    assert "Write a prescription" not in page and "Start video visit" not in page


def test_check_in_prevents_the_no_show(site: StaffSite) -> None:
    came = site.clinic.book(ANA, local(2026, 4, 14, 9, 30))
    missed = site.clinic.book(BEN, local(2026, 4, 14, 9, 30), doctor="Okafor")
    site.clock.set(local(2026, 4, 14, 9, 35))
    staff = site.client("staff@clinic.test")
    assert staff.post(f"/dashboard/appointments/{came}/check-in", data={}).status_code == 303
    site.clock.set(local(2026, 4, 14, 10, 15))  # past the 30-minute grace
    site.clinic.tick()
    assert site.clinic.appointment(came).status == "booked"
    assert site.clinic.appointment(missed).status == "no_show"


def test_marking_a_no_show_by_hand_plans_the_same_follow_up(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, local(2026, 4, 14, 9, 0))
    site.clock.set(local(2026, 4, 14, 9, 10))  # started, still within the grace
    staff = site.client("staff@clinic.test")
    assert staff.post(f"/dashboard/appointments/{ident}/no-show", data={}).status_code == 303
    assert site.clinic.appointment(ident).status == "no_show"
    follow_ups = [n for n in site.clinic.notifications(ident) if n.kind == "no_show"]
    assert [(n.address, n.status) for n in follow_ups] == [(ANA, "planned")]
    # The tick does not mark or plan it again.
    site.clock.set(local(2026, 4, 14, 10, 0))
    site.clinic.tick()
    assert len([n for n in site.clinic.notifications(ident) if n.kind == "no_show"]) == 1


def test_a_doctor_cannot_touch_another_doctors_appointment_or_patient(site: StaffSite) -> None:
    own = site.clinic.book(ANA, local(2026, 4, 14, 9, 0), doctor="Ruiz")
    other = site.clinic.book(BEN, local(2026, 4, 14, 9, 0), doctor="Okafor")
    own_patient = site.clinic.appointment(own).patient_id
    other_patient = site.clinic.appointment(other).patient_id
    doctor = site.client("ruiz@clinic.test")
    assert doctor.get(f"/dashboard/appointments/{own}").status_code == 200
    assert doctor.get(f"/dashboard/patients/{own_patient}").status_code == 200
    assert doctor.get(f"/dashboard/appointments/{other}").status_code == 403
    assert doctor.get(f"/dashboard/patients/{other_patient}").status_code == 403
    for action in ("check-in", "complete", "no-show", "cancel"):
        page = doctor.post(f"/dashboard/appointments/{other}/{action}", data={})
        assert page.status_code == 403, action
    assert site.clinic.appointment(other).status == "booked"
    assert site.clinic.appointment(other).checked_in_at is None
    # Their own: fine.
    assert doctor.post(f"/dashboard/appointments/{own}/check-in", data={}).status_code == 303
    # Searching finds their own patients only.
    listing = doctor.get("/dashboard/patients", params={"q": "Patient"})
    assert f'href="/dashboard/patients/{own_patient}"' in listing.text
    assert f'href="/dashboard/patients/{other_patient}"' not in listing.text
    assert audit_rows(site, entity="patient", patient_id=other_patient) == []


# -- alerts --------------------------------------------------------------------------


def add_alert(site: StaffSite, appointment_id: int) -> int:
    with site.db.transaction() as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment is not None
        alert = Alert(
            clinic_id=appointment.clinic_id,
            kind="red_flag",
            level="emergency",
            patient_id=appointment.patient_id,
            channel="sms",
            address="+15555550000",
            rules=["chest_pain"],
            text="chest pain and cannot breathe",
            created_at=site.clock.now(),
        )
        session.add(alert)
        session.flush()
        return alert.id


def test_open_alerts_on_top_and_acknowledged(site: StaffSite) -> None:
    ruiz_alert = add_alert(site, site.clinic.book(ANA, local(2026, 4, 14, 11, 0)))
    okafor_alert = add_alert(
        site, site.clinic.book(BEN, local(2026, 4, 14, 11, 0), doctor="Okafor")
    )
    staff = site.client("staff@clinic.test")
    page = staff.get("/dashboard").text
    assert page.index(f'id="alert-{ruiz_alert}"') < page.index("<table")
    assert f'id="alert-{okafor_alert}"' in page and "chest_pain" in page
    assert "cannot breathe" not in page  # the message itself is on the patient's record

    doctor = site.client("ruiz@clinic.test")
    page = doctor.get("/dashboard").text
    assert f'id="alert-{ruiz_alert}"' in page and f'id="alert-{okafor_alert}"' not in page
    assert doctor.post(f"/dashboard/alerts/{okafor_alert}/ack", data={}).status_code == 403
    assert (
        staff.post(f"/dashboard/alerts/{okafor_alert}/ack", data={}, csrf=False).status_code == 403
    )

    done = doctor.post(f"/dashboard/alerts/{ruiz_alert}/ack", data={"next": "/dashboard"})
    assert done.status_code == 303
    htmx = staff.post(
        f"/dashboard/alerts/{okafor_alert}/ack", data={}, headers={"HX-Request": "true"}
    )
    assert htmx.status_code == 200 and htmx.text == ""
    with site.db.transaction() as session:
        states = {row.id: row.status for row in session.scalars(select(Alert))}
    assert states == {ruiz_alert: "acknowledged", okafor_alert: "acknowledged"}
    assert 'id="alert-' not in staff.get("/dashboard").text
    assert staff.post("/dashboard/alerts/abc/ack", data={}).status_code == 404
    assert staff.post("/dashboard/alerts/424242/ack", data={}).status_code == 404
    assert [e.entity_id for e in audit_rows(site, action="update", entity="alert")] == [
        ruiz_alert,
        okafor_alert,
    ]


# -- the record, the audit of views, hostile text --------------------------------------


def test_views_of_patient_data_are_audited(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, local(2026, 4, 14, 10, 0))
    patient_id = site.clinic.appointment(ident).patient_id
    doctor = site.client("ruiz@clinic.test")  # logging in opened the day view once
    before = len(audit_rows(site))
    doctor.get("/dashboard?day=2026-04-14")
    doctor.get(f"/dashboard/appointments/{ident}")
    doctor.get(f"/dashboard/patients/{patient_id}")
    views = audit_rows(site)[before:]
    assert all(e.action == "view" and e.user_email == "ruiz@clinic.test" for e in views)
    assert [(e.entity, e.entity_id, e.patient_id) for e in views] == [
        ("schedule", None, None),
        ("appointment", ident, patient_id),
        ("patient", patient_id, patient_id),
    ]
    assert views[0].detail == {"day": "2026-04-14", "practitioner": None}
    assert all(e.ip and e.source == "web" for e in views)


def test_the_patient_record(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, local(2026, 4, 14, 10, 0))
    patient_id = site.clinic.appointment(ident).patient_id
    now = site.clock.now()
    with site.db.transaction() as session:
        identity = session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.address == ANA)
        ).one()
        identity.consents = {"marketing": True}
        identity.verified_at = now
        session.add(
            InboundLog(
                channel="sms",
                provider_message_id="SM1",
                address=ANA,
                body="Can I bring my <b>son</b>?",
                received_at=now - timedelta(minutes=5),
            )
        )
        session.add(
            OutboxMessage(
                channel="sms",
                address=ANA,
                payload={"text": "Of course.", "options": [], "purpose": "reply"},
                next_attempt_at=now,
                created_at=now - timedelta(minutes=4),
                status="delivered",
            )
        )
    page = site.client("staff@clinic.test").get(f"/dashboard/patients/{patient_id}")
    assert page.status_code == 200
    text = page.text
    assert ANA in text and "marketing: yes" in text and "reminder: yes" in text
    assert "Can I bring my &lt;b&gt;son&lt;/b&gt;?" in text and "<b>son</b>" not in text
    assert text.index("Of course.") < text.index("Can I bring")  # newest first
    assert f'href="/dashboard/appointments/{ident}"' in text
    assert site.client("staff@clinic.test").get("/dashboard/patients/99999").status_code == 404


def test_hostile_text_is_escaped_everywhere(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, local(2026, 4, 14, 10, 0))
    patient_id = name_patient(site, ident, HOSTILE)
    add_alert(site, ident)
    admin = site.client("admin@clinic.test")
    for path in (
        "/dashboard",
        f"/dashboard/appointments/{ident}",
        f"/dashboard/patients/{patient_id}",
        "/dashboard/patients?q=%3Cscript",
    ):
        page = admin.get(path)
        assert page.status_code == 200, path
        assert HOSTILE not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
    # Hostile searches: found nothing or the patient, never an error or raw HTML.
    for q in (HOSTILE, "x" * 10_000, "%_%", "'; DROP TABLE patients; --", "555 0101"):
        page = admin.get("/dashboard/patients", params={"q": q})
        assert page.status_code == 200
        assert HOSTILE not in page.text
    assert (
        f'href="/dashboard/patients/{patient_id}"'
        in admin.get("/dashboard/patients", params={"q": "555 0101"}).text
    )
    for bad in ("abc", "0", "99999999999", "%3Cscript%3E"):
        assert admin.get(f"/dashboard/patients/{bad}").status_code == 404


# -- reports and the audit log ------------------------------------------------------------


def test_reports_draw_svg_charts(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, local(2026, 4, 14, 9, 0))
    site.clock.set(local(2026, 4, 14, 10, 0))
    site.clinic.tick()  # a no-show this week
    assert site.clinic.appointment(ident).status == "no_show"
    page = site.client("ruiz@clinic.test").get("/dashboard/reports?weeks=4")
    assert page.status_code == 200
    charts = re.findall(r"<svg .*?</svg>", page.text, re.S)
    assert len(charts) == 2
    for chart in charts:
        assert 'role="img"' in chart and "<title id=" in chart and "<desc" in chart
    assert "No-show rate by week, last 4 weeks" in charts[0]
    assert "13 Apr: No-show rate 100%" in charts[0]  # the week of Monday 13 April
    assert "Reminders sent and answered" in charts[1]
    assert page.text.count("<tr><td>2026-") == 4
    assert "100.0%" in page.text


def test_charts_escape_their_text_and_skip_missing_values() -> None:
    chart = charts.bar_chart(
        "c<1>",
        f"Title {HOSTILE}",
        ["w1", HOSTILE, "w3"],
        [charts.Series(HOSTILE, [3, None, 12]), charts.Series("B", [1, 2, 0])],
        whole=True,
    )
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    assert chart.count("<rect ") == 2 + 5  # legend squares, and one bar per value
    line = charts.line_chart(
        "l", "Rate", ["a", "b", "c", "d"], [charts.Series("r", [0.5, None, 0.1, 0.2])]
    )
    assert line.count("<circle") == 3 and line.count("<polyline") == 1  # the gap breaks it


def test_the_audit_log_is_for_admins_with_filters(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, local(2026, 4, 14, 10, 0))
    patient_id = site.clinic.appointment(ident).patient_id
    for email in ("staff@clinic.test", "ruiz@clinic.test"):
        assert site.client(email).get("/dashboard/audit").status_code == 403
    doctor = site.client("ruiz@clinic.test")
    doctor.get(f"/dashboard/patients/{patient_id}")
    admin = site.client("admin@clinic.test")
    admin.get("/dashboard")

    def shown(**params: str) -> list[str]:
        page = admin.get("/dashboard/audit", params=params)
        assert page.status_code == 200
        rows = re.findall(r"<tr><td>.*?</tr>", page.text, re.S)
        return [re.sub(r"<[^>]+>", " ", r) for r in rows]

    everything = shown()
    assert any("ruiz@clinic.test" in r and " patient #" in r for r in everything)
    assert all("ruiz@clinic.test" in r for r in shown(user="RUIZ@clinic.test"))
    # Two logins (each opened the day view) and the patient.
    assert len(shown(user="ruiz@clinic.test", action="view")) == 3
    assert len(shown(user="ruiz@clinic.test", action="login")) == 2
    only = shown(patient=str(patient_id))
    assert len(only) == 1 and "ruiz@clinic.test" in only[0]
    assert all(" schedule" in r for r in shown(entity="schedule"))
    assert len(shown(**{"from": "2026-04-14", "to": "2026-04-14"})) == len(everything)
    assert shown(**{"from": "2026-04-15"}) == []
    for params, message in (
        ({"from": "14/04/2026"}, "From must be a date"),
        ({"to": HOSTILE}, "To must be a date"),
        ({"from": "2026-04-15", "to": "2026-04-14"}, "To must not be before From"),
        ({"patient": "abc"}, "patient&#39;s number"),
        ({"action": "drop"}, "The action must be one of"),
        ({"page": "0"}, "The page must be"),
        ({"from": "9999-12-31"}, "out of range"),
    ):
        page = admin.get("/dashboard/audit", params=params)
        assert page.status_code == 422, params
        assert message in page.text, params
        assert HOSTILE not in page.text


def test_the_audit_log_pages_by_200(site: StaffSite) -> None:
    with site.db.transaction() as session:
        for n in range(205):
            audit.record(
                session,
                user=None,
                action="view",
                entity="patients",
                now=site.clock.now() - timedelta(minutes=n),
            )
    admin = site.client("admin@clinic.test")
    first = admin.get("/dashboard/audit", params={"entity": "patients"})
    assert first.text.count("<tr><td>") == 200
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    second = admin.get("/dashboard/audit", params={"entity": "patients", "page": "2"})
    assert second.text.count("<tr><td>") == 5
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
