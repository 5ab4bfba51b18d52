"""The care team's day in a real browser: a doctor sees today's schedule,
answers a patient's question (the patient's SMS reaches the fake Twilio),
writes a prescription and starts a video visit; a staff user adds Saturday
hours and the patient's booking chat offers them. Every patient-data page
the browser opened is in the audit log. Screenshots: test-artifacts/."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from core.models import AuditEntry, Prescription, QuestionThread
from tests.browser.conftest import SMS_FROM, Live, shot

NY = ZoneInfo("America/New_York")
PATIENT = "+15555550123"


def texts(live: Live, number: str) -> list[str]:
    return [m["body"] for m in live.fake.messages if m["to"] == number]


def patient_says(live: Live, text: str, number: str = PATIENT) -> list[str]:
    """An SMS from the patient through the signed Twilio webhook; what came back."""
    before = len(texts(live, number))
    url = live.base_url + "/webhooks/twilio/sms"
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": live.fake.account_sid,
        "From": number,
        "To": SMS_FROM,
        "Body": text,
        "NumMedia": "0",
    }
    signature = RequestValidator(live.fake.auth_token).compute_signature(url, params)
    answer = httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert answer.status_code == 200, answer.text
    live.dispatch()
    return texts(live, number)[before:]


def test_a_doctors_day(page: Any, live: Live, request: pytest.FixtureRequest) -> None:
    # Tuesday 14 April 2026, 09:00 in New York (the clock of every test).
    video = live.site.clinic.book(PATIENT, datetime(2026, 4, 14, 9, 10, tzinfo=NY), video=True)
    live.site.clinic.book("+15555550188", datetime(2026, 4, 14, 11, 0, tzinfo=NY))
    asked = patient_says(live, "I have a question for Dr Ruiz: can I take ibuprofen with my pills?")
    assert any("Dr Ana Ruiz" in t for t in asked), asked

    live.login(page, "ruiz@clinic.test")
    schedule = page.locator("main")
    assert "Dr Ana Ruiz" in schedule.inner_text()
    assert page.locator(f"#appointment-{video}").count() == 1
    assert "Patient 0123" in page.locator(f"#appointment-{video}").inner_text()
    shot(page, request, "1-schedule")

    page.click("header nav >> text=Questions")
    page.wait_for_url("**/dashboard/inbox**")
    page.click("text=Patient 0123")
    assert "ibuprofen" in page.locator("main").inner_text()
    page.fill("textarea[name=body]", "Yes, for a few days; take it with food.")
    page.click("button:has-text('Send answer')")
    page.wait_for_selector("text=Yes, for a few days; take it with food.")
    shot(page, request, "2-answered")
    live.dispatch()
    assert any("take it with food" in t for t in texts(live, PATIENT)), texts(live, PATIENT)
    with live.db.transaction() as session:
        thread = session.scalars(select(QuestionThread)).one()
        assert thread.status == "answered"

    page.goto(f"/dashboard/appointments/{video}")
    page.click("text=Write a prescription")
    page.wait_for_url("**/dashboard/prescriptions/new**")
    page.fill("input[name=medicine]", "Ibuprofen")
    page.fill("input[name=strength]", "200 mg")
    page.fill("input[name=dose]", "1 tablet every 8 hours with food")
    page.fill("input[name=quantity]", "15")
    page.click("button:has-text('Issue prescription')")
    page.wait_for_url(re.compile(r".*/dashboard/prescriptions/\d+$"))
    assert "Ibuprofen" in page.locator("main").inner_text()
    shot(page, request, "3-prescription")
    live.dispatch()
    assert any("prescription" in t.lower() for t in texts(live, PATIENT))
    with live.db.transaction() as session:
        issued = session.scalars(select(Prescription)).one()
        assert issued.appointment_id == video

    page.goto(f"/dashboard/appointments/{video}")
    page.click("text=Start video visit")
    page.wait_for_url(re.compile(r".*/v/\d+\.[\w-]+$"))
    assert page.locator("#call").count() == 1
    shot(page, request, "4-video")

    with live.db.transaction() as session:
        seen = {
            (e.entity, e.action)
            for e in session.scalars(
                select(AuditEntry).where(
                    AuditEntry.user_id == live.site.user_ids["ruiz@clinic.test"]
                )
            )
        }
    for entry in (
        ("schedule", "view"),
        ("question", "view"),
        ("question", "create"),
        ("appointment", "view"),
        ("prescription", "create"),
        ("prescription", "view"),
    ):
        assert entry in seen, (entry, sorted(seen))
    assert ("video_visit", "view") in seen, sorted(seen)


def test_staff_adds_saturday_hours_and_patients_can_book_them(
    page: Any, live: Live, request: pytest.FixtureRequest
) -> None:
    before = patient_says(live, "book with Dr Ruiz on Saturday")
    assert not any("Sat 18 Apr" in t and "9:00 AM" in t for t in before), before

    live.login(page, "staff@clinic.test")
    page.click("header nav >> text=Availability")
    page.click("tr:has-text('Dr Ana Ruiz') >> text=Edit")
    page.wait_for_url(re.compile(r".*/dashboard/availability/\d+$"))
    saturday = page.locator("#avail-day-5")
    if saturday.locator("input").count() == 0:
        page.locator("tr:has(#avail-day-5) button:has-text('Add a range')").click()
        saturday.locator("input").first.wait_for()
    saturday.locator("input[name=day5_start]").last.fill("09:00")
    saturday.locator("input[name=day5_end]").last.fill("12:00")
    page.click("button:has-text('Save weekly hours')")
    page.wait_for_selector("[role=status], .notice")
    shot(page, request, "saturday-hours")

    patient_says(live, "menu")
    after = patient_says(live, "book with Dr Ruiz on Saturday")
    assert any("Sat 18 Apr" in t and "9:00 AM" in t for t in after), after
