"""The clinic cancels a visit (dashboard, API or CLI): the patient is told,
in their language, on the channel they booked on, and the slot is freed."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import users
from core.cancellations import cancel_for_clinic
from core.clock import FixedClock
from core.db import Database
from core.models import Appointment, ChannelIdentity, User
from core.scheduling import InvalidTransition
from tests.staff import StaffSite

NY = ZoneInfo("America/New_York")
ANA = "+15555550123"


@pytest.fixture
def site(db: Database, clock: FixedClock) -> StaffSite:
    return StaffSite.open(db, clock)


def test_cancelling_from_the_dashboard_tells_the_patient(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, datetime(2026, 4, 15, 10, 0, tzinfo=NY))
    staff = site.client("staff@clinic.test")
    answer = staff.post(f"/dashboard/appointments/{ident}/cancel")
    assert answer.status_code == 303
    site.clinic.dispatch()
    (text,) = site.clinic.channels["sms"].texts(ANA)
    assert "we had to cancel your visit with Dr Ana Ruiz on Wed 15 Apr, 10:00 AM" in text
    assert "Reply BOOK" in text and "Reply CANCEL" not in text
    assert site.clinic.appointment(ident).cancel_reason == "clinic"
    # Twice is an explained refusal, and nothing more is sent.
    again = staff.post(f"/dashboard/appointments/{ident}/cancel")
    assert again.status_code in (303, 409)
    site.clinic.dispatch()
    assert len(site.clinic.channels["sms"].texts(ANA)) == 1


def test_in_spanish_and_on_the_booking_channel(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, datetime(2026, 4, 15, 10, 0, tzinfo=NY), channel="whatsapp")
    with site.db.transaction() as session:
        for identity in session.scalars(select(ChannelIdentity)):
            identity.language = "es"
            # Wrote in lately: inside WhatsApp's 24 hours, so no SMS fallback.
            identity.last_inbound_at = site.clock.now()
    with site.db.transaction() as session:
        cancel_for_clinic(session, ident, now=site.clock.now())
    site.clinic.dispatch()
    assert site.clinic.channels["sms"].texts(ANA) == []
    (text,) = site.clinic.channels["whatsapp"].texts(ANA)
    assert "hemos tenido que anular su cita con Dr Ana Ruiz" in text
    assert "Responda MENU" in text


def test_through_the_api(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, datetime(2026, 4, 15, 10, 0, tzinfo=NY))
    with site.db.transaction() as session:
        user = session.get(User, site.user_ids["staff@clinic.test"])
        assert user is not None
        token = users.issue_api_token(session, user, label="test", now=site.clock.now())
    api = site.anonymous()
    done = api.post(
        f"/api/v1/appointments/{ident}/cancel", headers={"Authorization": f"Bearer {token}"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"
    site.clinic.dispatch()
    assert any("had to cancel" in t for t in site.clinic.channels["sms"].texts(ANA))


def test_a_started_visit_cannot_be_cancelled(site: StaffSite) -> None:
    ident = site.clinic.book(ANA, datetime(2026, 4, 14, 9, 30, tzinfo=NY))
    site.clock.advance(timedelta(minutes=31))  # the visit has started
    with pytest.raises(InvalidTransition), site.db.transaction() as session:
        cancel_for_clinic(session, ident, now=site.clock.now())
    with site.db.transaction() as session:
        assert session.get(Appointment, ident).status == "booked"  # type: ignore[union-attr]
