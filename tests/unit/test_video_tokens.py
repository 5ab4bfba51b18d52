"""Video links without a database: token shape, the window, link states,
provider tokens decoded with PyJWT, the "link" words, the settings rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from core import video
from core.models import Appointment, Clinic, Patient, Practitioner, VideoLink
from core.settings import Settings, SettingsError, load_settings
from flows.video import asks_for_video_link
from web.video import twilio_token

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
START = datetime(2026, 4, 14, 19, 0, tzinfo=UTC)  # 3:00 PM in New York
END = START + timedelta(minutes=30)


def visit(status: str = "booked") -> Appointment:
    clinic = Clinic(id=1, name="Riverside", timezone="America/New_York")
    p = Practitioner(id=2, clinic_id=1, name="Dr Ana Ruiz", clinic=clinic)
    return Appointment(
        id=7,
        clinic_id=1,
        practitioner_id=2,
        patient_id=3,
        start_at=START,
        end_at=END,
        status=status,
        visit_type="video",
        practitioner=p,
        patient=Patient(id=3, clinic_id=1, name="Maria"),
    )


def link(role: str = "patient", nonce: str = "n" * 22, **kw: object) -> VideoLink:
    return VideoLink(id=41, appointment_id=7, role=role, nonce=nonce, appointment=visit(), **kw)


# -- tokens ------------------------------------------------------------------------------


def test_token_is_id_dot_signature_and_deterministic() -> None:
    token = video.token_of(link(), SECRET)
    ident, _, signature = token.partition(".")
    assert ident == "41" and len(signature) == video.SIGNATURE_CHARS
    assert video.token_of(link(), SECRET) == token  # can be written again at send time
    assert video._TOKEN.match(token)


def test_token_changes_with_nonce_role_and_secret() -> None:
    base = video.token_of(link(), SECRET)
    assert video.token_of(link(nonce="m" * 22), SECRET) != base
    assert video.token_of(link(role="practitioner"), SECRET) != base
    assert video.token_of(link(), SECRET + "x") != base


# -- when a link works -----------------------------------------------------------------------


def test_window_opens_early_and_closes_at_the_end() -> None:
    opens, closes = video.window(visit(), 15)
    assert opens == START - timedelta(minutes=15) and closes == END


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (START - timedelta(minutes=16), "early"),
        (START - timedelta(minutes=15), "open"),
        (START + timedelta(minutes=29), "open"),
        (END, "ended"),
        (END + timedelta(days=1), "ended"),
    ],
)
def test_state_by_time(now: datetime, expected: str) -> None:
    assert video.state(link(), now, 15) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [("cancelled", "cancelled"), ("no_show", "cancelled"), ("completed", "ended")],
)
def test_state_by_appointment_status(status: str, expected: str) -> None:
    row = link()
    row.appointment = visit(status)
    assert video.state(row, START, 15) == expected


def test_revoked_wins_over_everything() -> None:
    assert video.state(link(revoked_at=START - timedelta(days=1)), START, 15) == "revoked"


def test_room_names_are_stable_and_not_guessable() -> None:
    room = video.room_name(7, SECRET)
    assert room == video.room_name(7, SECRET)
    assert room != video.room_name(8, SECRET) and room != video.room_name(7, "other")
    assert room.startswith("telemed-") and len(room.removeprefix("telemed-")) == 24


# -- provider tokens ----------------------------------------------------------------------


def test_jitsi_jwt_claims_per_the_token_spec() -> None:
    opens, closes = video.window(visit(), 15)
    token = video.jitsi_jwt(
        app_id="telemed-app",
        app_secret=SECRET,
        base_url="https://Meet.Example.org",
        room="telemed-abc",
        user_id="practitioner-2",
        name="Dr Ana Ruiz",
        email="ruiz@clinic.test",
        moderator=True,
        not_before=opens,
        expires=closes,
    )
    claims = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        audience="jitsi",
        options={"verify_exp": False, "verify_nbf": False},  # the clock is fixed in 2026
    )
    assert claims["iss"] == "telemed-app"
    assert claims["sub"] == "meet.example.org"
    assert claims["room"] == "telemed-abc"
    assert claims["nbf"] == int(opens.timestamp()) and claims["exp"] == int(closes.timestamp())
    assert claims["context"]["user"] == {
        "id": "practitioner-2",
        "name": "Dr Ana Ruiz",
        "email": "ruiz@clinic.test",
        "moderator": "true",  # the spec: every user field is a string
    }
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "wrong-" + SECRET, algorithms=["HS256"], audience="jitsi")


def test_jitsi_jwt_for_a_patient_on_a_tenant() -> None:
    token = video.jitsi_jwt(
        app_id="a",
        app_secret=SECRET,
        base_url="https://8x8.vc/My-Tenant",
        room="telemed-abc",
        user_id="patient-3",
        name="Maria",
        email=None,
        moderator=False,
        not_before=START,
        expires=END,
    )
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], audience="jitsi", options={"verify_exp": False}
    )
    assert claims["sub"] == "my-tenant"
    assert claims["context"]["user"] == {"id": "patient-3", "name": "Maria", "moderator": "false"}
    assert video.jitsi_room_path("https://8x8.vc/My-Tenant", "r") == "My-Tenant/r"
    assert video.jitsi_room_path("https://meet.jit.si", "r") == "r"


def test_twilio_token_grants_the_room_to_the_identity() -> None:
    settings = Settings(
        video_provider="twilio",
        twilio_account_sid="AC" + "1" * 32,
        twilio_api_key_sid="SK" + "2" * 32,
        twilio_api_key_secret=SECRET,
    )
    token = twilio_token(
        settings, identity="patient-3", room="telemed-abc", not_before=START, expires=END
    )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["grants"]["identity"] == "patient-3"
    assert claims["grants"]["video"] == {"room": "telemed-abc"}
    assert claims["iss"] == "SK" + "2" * 32 and claims["sub"] == "AC" + "1" * 32
    assert claims["exp"] == int(END.timestamp()) and claims["nbf"] == int(START.timestamp())


def test_twilio_provider_without_its_key_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_VIDEO_PROVIDER", "twilio")
    monkeypatch.setenv("TELEMED_TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "TELEMED_TWILIO_API_KEY_SID" in str(err.value)
    assert "TELEMED_TWILIO_API_KEY_SECRET" in str(err.value)
    assert "TELEMED_TWILIO_ACCOUNT_SID" not in str(err.value)


def test_a_jitsi_app_id_without_its_secret_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEMED_JITSI_APP_ID", "telemed")
    with pytest.raises(SettingsError, match="TELEMED_JITSI_APP_SECRET"):
        load_settings()


# -- what the patient is told -------------------------------------------------------------


def test_link_text_before_and_in_the_window() -> None:
    tz = "America/New_York"
    url = "https://clinic.example/v/41.x"
    early = video.link_text("en", tz, visit(), url, START - timedelta(hours=2), 15)
    assert early == (
        "Your video visit with Dr Ana Ruiz is at 3:00 PM; the link works from 2:45 PM: " + url
    )
    other_day = video.link_text("es", tz, visit(), url, START - timedelta(days=2), 15)
    assert "mar 14 de abr, 15:00" in other_day and "desde las 14:45" in other_day
    open_ = video.link_text("en", tz, visit(), url, START - timedelta(minutes=10), 15)
    assert open_ == f"Your video visit with Dr Ana Ruiz starts at 3:00 PM. Join here: {url}"


@pytest.mark.parametrize(
    "text",
    [
        "link",
        "LINK",
        "video link",
        "send me the link",
        "Link?",
        "enlace",
        "el enlace de la videollamada",
        "mándame el enlace por favor",
        "can you send me the link for my video visit tomorrow",
        "join the call",
    ],
)
def test_link_requests(text: str) -> None:
    assert asks_for_video_link(text)


@pytest.mark.parametrize(
    "text",
    [
        "book",
        "videollamada",  # booking a video visit, not its link
        "I have a question about the link between my pills and my headaches",
        "blinking lights in my eye",
        "linked",
        "cancel my appointment",
    ],
)
def test_not_link_requests(text: str) -> None:
    assert not asks_for_video_link(text)
