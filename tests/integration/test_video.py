"""Video visits end to end: links and tokens in the database, the /v/ page in
each state, the dashboard's start-video and revoke, the scheduled link
notification, and the patient asking for the link in English and Spanish."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import jwt
import pytest
from sqlalchemy import select

from core import audit, scheduling, video
from core.clock import FixedClock
from core.db import Database
from core.models import Appointment, Notification, Patient, VideoLink
from flows.engine import FlowEngine
from tests.clinic import TZ
from tests.dialogue import Chat, verify_dialog
from tests.staff import StaffClient, StaffSite

NY = ZoneInfo(TZ)
ANA = "+15555550101"
LINK = re.compile(r"https?://[^\s]+/v/([0-9]+\.[A-Za-z0-9_-]+)")
SCRIPT = "<script>alert(1)</script>"


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY).astimezone(UTC)


# The clock starts on Tuesday 14 April 2026, 09:00 in New York; the visit is at 15:00.
START = local(2026, 4, 14, 15, 0)


@pytest.fixture
def site(db: Database, clock: FixedClock) -> StaffSite:
    return StaffSite.open(db, clock)


def book(site: StaffSite, at: datetime = START, *, video_visit: bool = True) -> int:
    return site.clinic.book(ANA, at, doctor="Ruiz", video=video_visit)


def token(site: StaffSite, appointment_id: int, role: video.Role = "patient") -> str:
    with site.db.transaction() as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment is not None
        link = video.link_for(session, appointment, role, site.clock.now())
        return video.token_of(link, site.clinic.settings.secret_key)


def resolve(site: StaffSite, value: object) -> VideoLink | None:
    with site.db.transaction() as session:
        return video.resolve(session, value, site.clinic.settings.secret_key)


def appointment(site: StaffSite, appointment_id: int) -> Appointment:
    return site.clinic.appointment(appointment_id)


def link_row(site: StaffSite, appointment_id: int, role: str = "patient") -> VideoLink:
    with site.db.transaction() as session:
        return session.scalars(
            select(VideoLink).where(
                VideoLink.appointment_id == appointment_id, VideoLink.role == role
            )
        ).one()


# -- tokens ----------------------------------------------------------------------------------


def test_a_token_resolves_to_its_link_and_forgeries_to_nothing(site: StaffSite) -> None:
    visit = book(site)
    good = token(site, visit)
    doctor = token(site, visit, "practitioner")
    found = resolve(site, good)
    assert found is not None and (found.appointment_id, found.role) == (visit, "patient")
    ident, signature = good.split(".")
    other_id = doctor.split(".")[0]
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for forged in (
        f"{other_id}.{signature}",  # another link's id with this signature
        f"{ident}.{flipped}",  # one character of the signature changed
        f"{ident}.{signature[:-1]}",  # truncated
        f"{int(ident) + 1000}.{signature}",  # no such link
        f"2147483648.{signature}",  # past an INTEGER key
        f"9999999999.{signature}",
        "garbage",
        "",
        "0." + signature,
        "x" * 10_000,
        good + "A",
        None,
    ):
        assert resolve(site, forged) is None, forged
    assert token(site, visit) == good  # the same link, the same token


def test_revoked_stays_dead_and_a_reissued_link_works(site: StaffSite) -> None:
    visit = book(site)
    old = token(site, visit)
    now = site.clock.now()
    with site.db.transaction() as session:
        assert video.revoke(session, visit, role="patient", now=now) == 1
    revoked = resolve(site, old)
    assert revoked is not None and revoked.revoked_at is not None
    with site.db.transaction() as session:
        found = video.resolve(session, old, site.clinic.settings.secret_key)
        assert found is not None and video.state(found, now, 15) == "revoked"
    assert token(site, visit) == old  # link_for does not revive it
    with site.db.transaction() as session:
        a = session.get(Appointment, visit)
        assert a is not None
        new_link = video.reissue(session, a, "patient", site.clinic.settings, now)
        new = video.token_of(new_link, site.clinic.settings.secret_key)
    assert new != old
    assert resolve(site, old) is None
    again = resolve(site, new)
    assert again is not None and again.revoked_at is None


# -- the /v/ page -------------------------------------------------------------------------


def page(site: StaffSite, value: str) -> tuple[int, str, dict[str, str]]:
    response = site.anonymous().get(f"/v/{value}")
    return response.status_code, response.text, dict(response.headers)


def private(headers: dict[str, str]) -> None:
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "no-referrer"
    assert "noindex" in headers["x-robots-tag"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_before_the_window_the_page_says_when_to_come_back(site: StaffSite) -> None:
    visit = book(site)
    status, text, headers = page(site, token(site, visit))
    assert status == 200
    assert "Your video visit with Dr Ana Ruiz starts at 3:00 PM." in text
    assert "This page opens at 2:45 PM. Come back then." in text
    assert "external_api.js" not in text and 'http-equiv="refresh"' not in text  # hours away
    private(headers)
    site.clock.advance(timedelta(hours=4))  # 13:00: it opens within two hours
    _status, soon, _headers = page(site, token(site, visit))
    assert 'http-equiv="refresh" content="60"' in soon
    assert link_row(site, visit).opened_at is None


def test_in_the_window_the_page_opens_the_jitsi_call(site: StaffSite) -> None:
    visit = book(site)
    value = token(site, visit)
    site.clock.set(START - timedelta(minutes=10))
    status, text, headers = page(site, value)
    assert status == 200
    assert '<script src="https://meet.jit.si/external_api.js" defer></script>' in text
    assert '<script src="/static/video.js" defer></script>' in text
    room = video.room_name(visit, site.clinic.settings.secret_key)
    assert f'data-room="{room}"' in text and 'data-domain="meet.jit.si"' in text
    assert 'data-name="Patient 0101"' in text and "data-jwt" not in text  # no app id set
    assert f'href="https://meet.jit.si/{room}"' in text  # the new-tab fallback
    policy = headers["content-security-policy"]
    assert "script-src 'self' https://meet.jit.si;" in policy
    assert "frame-src https://meet.jit.si;" in policy
    private(headers)
    # Opening is recorded; a GET is not joining (link previews fetch pages).
    assert link_row(site, visit).opened_at == site.clock.now()
    assert appointment(site, visit).checked_in_at is None


def test_the_patient_joining_checks_them_in(site: StaffSite) -> None:
    visit = book(site)
    value = token(site, visit)
    client = site.anonymous()
    assert client.post(f"/v/{value}/joined").status_code == 404  # before the window
    site.clock.set(START - timedelta(minutes=5))
    assert client.post(f"/v/{value}/joined").status_code == 204
    assert appointment(site, visit).checked_in_at == site.clock.now()
    assert client.post("/v/1.forgedforgedforgedforged/joined").status_code == 404
    # Checked in, the visit never becomes a no-show.
    site.clock.advance(timedelta(hours=1))
    site.clinic.tick()
    assert appointment(site, visit).status == "booked"


def test_the_doctor_joining_does_not_check_the_patient_in(site: StaffSite) -> None:
    visit = book(site)
    value = token(site, visit, "practitioner")
    site.clock.set(START)
    assert site.anonymous().post(f"/v/{value}/joined").status_code == 204
    assert appointment(site, visit).checked_in_at is None


def test_after_the_end_the_page_says_the_visit_ended(site: StaffSite) -> None:
    visit = book(site)
    value = token(site, visit)
    site.clock.set(START + timedelta(minutes=30))
    status, text, headers = page(site, value)
    assert status == 410 and "This visit has ended." in text
    assert "external_api.js" not in text
    private(headers)


def test_a_cancelled_visit_has_no_call(site: StaffSite) -> None:
    visit = book(site)
    value = token(site, visit)
    with site.db.transaction() as session:
        scheduling.cancel(session, visit, now=site.clock.now(), reason="patient")
    site.clock.set(START)
    status, text, _headers = page(site, value)
    assert status == 410 and "This visit was cancelled" in text
    assert "external_api.js" not in text


def test_a_forged_link_is_not_valid_in_english_and_spanish(site: StaffSite) -> None:
    visit = book(site)
    ident, signature = token(site, visit).split(".")
    for forged in (
        f"{ident}.{signature[::-1]}",
        "nonsense",
        "9" * 12 + "." + "a" * 22,
        "x" * 10_000,
    ):
        status, text, headers = page(site, forged)
        assert status == 404, forged
        assert "This video link is not valid." in text
        assert "Este enlace de video no es válido." in text
        private(headers)


def test_a_revoked_link_is_not_valid_in_the_patients_language(site: StaffSite) -> None:
    visit = book(site)
    value = token(site, visit)
    with site.db.transaction() as session:
        a = session.get(Appointment, visit)
        assert a is not None
        session.get(Patient, a.patient_id).language = "es"  # type: ignore[union-attr]
        video.revoke(session, visit, role=None, now=site.clock.now())
    site.clock.set(START)
    status, text, _headers = page(site, value)
    assert status == 404
    assert "Este enlace de video no es válido." in text and 'lang="es"' in text
    assert "This video link is not valid." not in text


def test_the_spanish_patients_early_page(site: StaffSite) -> None:
    visit = book(site)
    with site.db.transaction() as session:
        a = session.get(Appointment, visit)
        assert a is not None
        session.get(Patient, a.patient_id).language = "es"  # type: ignore[union-attr]
    _status, text, _headers = page(site, token(site, visit))
    assert "Su cita por video con Dr Ana Ruiz empieza a las 15:00." in text
    assert "Esta página se abre a las 14:45." in text


def test_jitsi_tokens_when_the_app_is_set(db: Database, clock: FixedClock) -> None:
    secret = "jitsi-app-secret-long-enough-for-hs256-signing"
    site = StaffSite.open(
        db,
        clock,
        jitsi_base_url="https://video.clinic.example",
        jitsi_app_id="telemed",
        jitsi_app_secret=secret,
    )
    visit = book(site)
    site.clock.set(START)
    for role, moderator, name in (
        ("patient", "false", "Patient 0101"),
        ("practitioner", "true", "Dr Ana Ruiz"),
    ):
        _status, text, headers = page(site, token(site, visit, role))  # type: ignore[arg-type]
        found = re.search(r'data-jwt="([^"]+)"', text)
        assert found is not None
        claims = jwt.decode(
            found.group(1),
            secret,
            algorithms=["HS256"],
            audience="jitsi",
            options={"verify_exp": False, "verify_nbf": False},
        )
        assert claims["iss"] == "telemed" and claims["sub"] == "video.clinic.example"
        assert claims["room"] == video.room_name(visit, site.clinic.settings.secret_key)
        assert claims["nbf"] == int((START - timedelta(minutes=15)).timestamp())
        assert claims["exp"] == int((START + timedelta(minutes=30)).timestamp())
        assert claims["context"]["user"]["moderator"] == moderator
        assert claims["context"]["user"]["name"] == name
        assert "https://video.clinic.example" in headers["content-security-policy"]


def test_twilio_video_page_carries_an_access_token(db: Database, clock: FixedClock) -> None:
    secret = "twilio-api-key-secret-long-enough-for-hs256"
    site = StaffSite.open(
        db,
        clock,
        video_provider="twilio",
        twilio_account_sid="AC" + "1" * 32,
        twilio_api_key_sid="SK" + "2" * 32,
        twilio_api_key_secret=secret,
    )
    visit = book(site)
    site.clock.set(START)
    status, text, headers = page(site, token(site, visit))
    assert status == 200 and 'data-provider="twilio"' in text
    assert "https://sdk.twilio.com/js/video/releases/" in text
    found = re.search(r'data-token="([^"]+)"', text)
    assert found is not None
    claims = jwt.decode(found.group(1), secret, algorithms=["HS256"], options={"verify_exp": False})
    room = video.room_name(visit, site.clinic.settings.secret_key)
    assert claims["grants"]["video"] == {"room": room}
    assert claims["grants"]["identity"] == f"patient-{appointment(site, visit).patient_id}"
    assert "script-src 'self' https://sdk.twilio.com;" in headers["content-security-policy"]
    assert "wss://*.twilio.com" in headers["content-security-policy"]


# -- the dashboard --------------------------------------------------------------------------


def test_a_doctor_starts_their_own_video_visit(site: StaffSite) -> None:
    visit = book(site)
    doctor = site.client("ruiz@clinic.test")
    response = doctor.get(f"/dashboard/appointments/{visit}/video")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location == f"/v/{token(site, visit, 'practitioner')}"
    site.clock.set(START)
    call = doctor.get(location)
    assert call.status_code == 200 and "external_api.js" in call.text
    assert 'data-name="Dr Ana Ruiz"' in call.text
    with site.db.transaction() as session:
        entries = audit.entries(session, entity="video_visit")
        assert [(e.user_email, e.action, e.entity_id) for e in entries] == [
            ("ruiz@clinic.test", "view", visit)
        ]


def test_who_may_start_a_video_visit(site: StaffSite) -> None:
    visit = book(site)
    in_person = book(site, START + timedelta(hours=1), video_visit=False)
    path = f"/dashboard/appointments/{visit}/video"
    assert site.client("okafor@clinic.test").get(path).status_code == 403
    assert site.client("staff@clinic.test").get(path).status_code == 303
    assert site.client("admin@clinic.test").get(path).status_code == 303
    anonymous = site.anonymous().get(path)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    doctor = site.client("ruiz@clinic.test")
    not_video = doctor.get(f"/dashboard/appointments/{in_person}/video")
    assert not_video.status_code == 409 and "not a video visit" in not_video.text
    assert doctor.get("/dashboard/appointments/999999/video").status_code == 404


def revoke(client: StaffClient, visit: int, **data: str) -> int:
    return int(client.post(f"/dashboard/appointments/{visit}/video/revoke", data=data).status_code)


def test_revoking_needs_the_csrf_token_and_the_right_user(site: StaffSite) -> None:
    visit = book(site)
    value = token(site, visit)
    doctor = site.client("ruiz@clinic.test")
    path = f"/dashboard/appointments/{visit}/video/revoke"
    assert doctor.post(path, data={}, csrf=False).status_code == 403
    assert doctor.post(path, data={"csrf_token": "wrong"}).status_code == 403
    assert revoke(site.client("okafor@clinic.test"), visit) == 403
    assert site.anonymous().post(path).status_code == 401
    assert page(site, value)[0] == 200  # still works
    assert revoke(doctor, visit) == 200
    assert page(site, value)[0] == 404
    with site.db.transaction() as session:
        entries = audit.entries(session, entity="video_link")
        assert [(e.user_email, e.action) for e in entries] == [("ruiz@clinic.test", "update")]


def test_revoke_and_resend_sends_the_patient_a_new_working_link(site: StaffSite) -> None:
    visit = book(site)
    site.clinic.run()  # plans the visit's reminders and its link notification
    old = token(site, visit)
    staff = site.client("staff@clinic.test")
    response = staff.post(f"/dashboard/appointments/{visit}/video/revoke", data={"resend": "1"})
    assert response.status_code == 200 and "A new link is on its way" in response.text
    new = token(site, visit)
    assert new != old and page(site, old)[0] == 404 and page(site, new)[0] == 200
    sent = site.clinic.run()
    texts = [reply.text for _channel, address, reply in sent if address == ANA]
    assert len(texts) == 1 and f"/v/{new}" in texts[0]
    assert "the link works from 2:45 PM" in texts[0]
    # The 10-minutes-before notification carries the new link too.
    site.clock.set(START - timedelta(minutes=10))
    later = [r.text for _c, a, r in site.clinic.run() if a == ANA and "Join here" in r.text]
    assert len(later) == 1 and f"/v/{new}" in later[0] and f"/v/{old}" not in later[0]


# -- the scheduled link notification ----------------------------------------------------------


def test_the_scheduled_notification_carries_the_patients_link(site: StaffSite) -> None:
    visit = book(site)
    site.clinic.run()
    site.clock.set(START - timedelta(minutes=10))
    sent = [r.text for _c, a, r in site.clinic.run() if a == ANA and "/v/" in r.text]
    assert len(sent) == 1
    assert sent[0].startswith("Your video visit with Dr Ana Ruiz starts at 3:00 PM. Join here: ")
    found = LINK.search(sent[0])
    assert found is not None and found.group(0).startswith("http://127.0.0.1:8000/v/")
    link = resolve(site, found.group(1))
    assert link is not None and (link.appointment_id, link.role) == (visit, "patient")


def test_a_revoked_link_is_not_sent(site: StaffSite) -> None:
    visit = book(site)
    site.clinic.run()
    with site.db.transaction() as session:
        video.revoke(session, visit, role="patient", now=site.clock.now())
    site.clock.set(START - timedelta(minutes=10))
    assert not [r for _c, _a, r in site.clinic.run() if "/v/" in r.text]
    with site.db.transaction() as session:
        rows = session.scalars(
            select(Notification).where(
                Notification.appointment_id == visit, Notification.kind == "video_link"
            )
        ).all()
        assert [n.status for n in rows] == ["queued"]  # queued, then not written


# -- the patient asks for the link ----------------------------------------------------------


def chat(site: StaffSite) -> Chat:
    return Chat(FlowEngine(site.db, site.clinic.settings, site.clock), ANA, "sms")


def test_the_patient_asks_for_the_link_in_english(site: StaffSite) -> None:
    c = chat(site)
    verify_dialog(
        c,
        [
            ("send me the link", ["You have no video visit coming up.", "What would you like"]),
        ],
    )
    visit = book(site)
    verify_dialog(
        c,
        [
            (
                "link",
                [
                    "Your video visit with Dr Ana Ruiz is at 3:00 PM;"
                    " the link works from 2:45 PM: http://127.0.0.1:8000/v/",
                ],
            ),
        ],
    )
    found = LINK.search(c.transcript[-1])
    assert found is not None and found.group(1) == token(site, visit)
    site.clock.set(START - timedelta(minutes=5))
    verify_dialog(c, [("video link", ["starts at 3:00 PM. Join here: http", "/v/"])])
    with site.db.transaction() as session:
        video.revoke(session, visit, role="patient", now=site.clock.now())
    verify_dialog(c, [("Link?", ["was withdrawn", "!/v/"])])


def test_the_patient_asks_for_the_link_in_spanish(site: StaffSite) -> None:
    book(site, local(2026, 4, 16, 11, 0))  # Thursday
    c = chat(site)
    verify_dialog(
        c,
        [
            (
                "hola, me manda el enlace de la videollamada?",
                [
                    "Su cita por video con Dr Ana Ruiz es el jue 16 de abr, 11:00.",
                    "El enlace funciona desde las 10:45 de ese día: http://127.0.0.1:8000/v/",
                ],
            ),
            ("enlace", ["El enlace funciona desde las 10:45"]),
        ],
    )


def test_link_mid_booking_answers_with_the_link(site: StaffSite) -> None:
    book(site)
    c = chat(site)
    c.say("hi")
    c.say(c.option_number("book"))
    verify_dialog(c, [("link", ["the link works from 2:45 PM", "/v/"])])
