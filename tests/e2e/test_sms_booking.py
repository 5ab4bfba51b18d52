"""A whole booking over SMS and WhatsApp: signed Twilio webhooks into the running
app, replies out through the dispatcher and the real Twilio SDK to the fake."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bots.app import create_app
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import Appointment, InboundLog, OutboxMessage
from core.settings import Settings
from tests.clinic import outbox_idle
from tests.fakes import twilio_server
from tests.fakes.twilio_server import FakeTwilio

fake_twilio = twilio_server.fake_twilio

PUBLIC_URL = "https://clinic.example.com"
SMS_FROM = "+15005550006"
WA_FROM = "+14155238886"


@pytest.fixture
def app(db: Database, clock: FixedClock, fake_twilio: FakeTwilio) -> Iterator[TestClient]:
    with db.transaction() as session:
        seed_demo(session, "America/New_York")
    settings = Settings(
        database_url=db.url,
        public_url=PUBLIC_URL,
        clinic_timezone="America/New_York",
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=fake_twilio.auth_token,
        twilio_api_base_url=fake_twilio.base_url,
        twilio_sms_from=SMS_FROM,
        twilio_whatsapp_from=WA_FROM,
        sms_rate_per_second=100,  # a US long code's 1/s would only slow the test down
    )
    application = create_app(settings, db=db, clock=clock, dispatch_interval_s=0.05)
    with TestClient(application) as client:
        client.headers["X-Test-Token"] = fake_twilio.auth_token
        yield client


class Patient:
    def __init__(self, client: TestClient, fake: FakeTwilio, channel: str, number: str) -> None:
        self.client, self.fake, self.channel, self.number = client, fake, channel, number

    def post(self, params: dict[str, str], *, signature: str | None = None) -> Any:
        path = f"/webhooks/twilio/{self.channel}"
        token = self.client.headers["X-Test-Token"]
        signed = RequestValidator(token).compute_signature(PUBLIC_URL + path, params)
        return self.client.post(
            path,
            data=params,
            headers={"X-Twilio-Signature": signature if signature is not None else signed},
        )

    def params(self, text: str, sid: str | None = None) -> dict[str, str]:
        prefix = "whatsapp:" if self.channel == "whatsapp" else ""
        params = {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": self.fake.account_sid,
            "From": prefix + self.number,
            "To": prefix + (WA_FROM if self.channel == "whatsapp" else SMS_FROM),
            "Body": text,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
            "FromCountry": "US",
        }
        if self.channel == "whatsapp":
            params |= {"ProfileName": "Maria", "WaId": self.number.lstrip("+")}
        return params

    def _outbox_idle(self) -> bool:
        return outbox_idle(self.client.app.state.db)  # type: ignore[attr-defined]

    def say(self, text: str, sid: str | None = None) -> str:
        before = len(self.fake.messages)
        response = self.post(self.params(text, sid))
        assert response.status_code == 200, response.text
        assert "<Response></Response>" in response.text
        return self.replies(before)

    def replies(self, before: int, wait_s: float = 5.0) -> str:
        """What the fake received for this patient after ``before``, once it stops
        growing; "" once the outbox has nothing left to send and nothing came."""
        deadline = time.monotonic() + wait_s
        seen, idle = -1, 0
        while time.monotonic() < deadline:
            mine = [m for m in self.fake.messages[before:] if m["to"].endswith(self.number)]
            if mine and len(mine) == seen:
                return "\n".join(m["body"] for m in mine)
            idle = idle + 1 if not mine and self._outbox_idle() else 0
            if idle >= 3:
                return ""
            seen = len(mine)
            time.sleep(0.1)
        return "\n".join(
            m["body"] for m in self.fake.messages[before:] if m["to"].endswith(self.number)
        )


def test_full_booking_over_sms_in_english(
    app: TestClient, fake_twilio: FakeTwilio, db: Database
) -> None:
    ana = Patient(app, fake_twilio, "sms", "+15555550123")
    assert "1. Book a visit" in ana.say("hi")
    assert "Dr Ben Okafor (Dermatology)" in ana.say("1")
    assert "1. Tue 14 Apr" in ana.say("dermatology")
    assert "Free times on Wed 15 Apr" in ana.say("tomorrow morning")
    assert "full name" in ana.say("1")
    assert "date of birth" in ana.say("Maria Lopez")
    assert "Shall I book it?" in ana.say("12/31/1980")
    assert "Booked: Dr Ben Okafor, Wed 15 Apr, 10:00 AM" in ana.say("1")
    sent = [m for m in fake_twilio.messages if m["to"] == "+15555550123"]
    assert all(m["from"] == SMS_FROM for m in sent)
    assert all(m["status_callback"] == PUBLIC_URL + "/webhooks/twilio/status" for m in sent)
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 1


def test_full_booking_over_whatsapp_in_spanish(app: TestClient, fake_twilio: FakeTwilio) -> None:
    maria = Patient(app, fake_twilio, "whatsapp", "+34600111222")
    assert "1. Pedir una cita" in maria.say("hola")
    assert "Dr Carmen Silva" in maria.say("1")
    assert "Horas libres" in maria.say("pediatría mañana por la tarde")
    assert "nombre completo" in maria.say("2")
    assert "fecha de nacimiento" in maria.say("María Pérez")
    assert "¿La reservo?" in maria.say("31/12/1980")
    assert "Cita reservada: Dr Carmen Silva" in maria.say("sí")
    sent = [m for m in fake_twilio.messages if m["to"] == "whatsapp:+34600111222"]
    assert sent and all(m["from"] == "whatsapp:" + WA_FROM for m in sent)


def test_bad_signature_is_403_and_stores_nothing(
    app: TestClient, fake_twilio: FakeTwilio, db: Database
) -> None:
    ana = Patient(app, fake_twilio, "sms", "+15555550123")
    assert ana.post(ana.params("hi"), signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    params = ana.params("hi")
    other_url = RequestValidator(fake_twilio.auth_token).compute_signature(
        "https://evil.example.com/webhooks/twilio/sms", params
    )
    assert ana.post(params, signature=other_url).status_code == 403
    time.sleep(0.2)
    assert fake_twilio.messages == []
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(InboundLog)) == 0


def test_the_same_message_sid_twice_is_answered_once(
    app: TestClient, fake_twilio: FakeTwilio
) -> None:
    ana = Patient(app, fake_twilio, "sms", "+15555550123")
    sid = "SM" + uuid.uuid4().hex
    assert "Book a visit" in ana.say("hi", sid=sid)
    assert ana.say("hi", sid=sid) == ""
    assert len(fake_twilio.messages) == 1


def test_status_callbacks_update_the_outbox(
    app: TestClient, fake_twilio: FakeTwilio, db: Database
) -> None:

    ana = Patient(app, fake_twilio, "sms", "+15555550123")
    ana.say("hi")
    sid = fake_twilio.messages[-1]["sid"]
    for status in ("delivered", "sent"):  # out of order: delivered stays
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": fake_twilio.account_sid}
        path = "/webhooks/twilio/status"
        signature = RequestValidator(fake_twilio.auth_token).compute_signature(
            PUBLIC_URL + path, params
        )
        assert (
            app.post(path, data=params, headers={"X-Twilio-Signature": signature}).status_code
            == 200
        )
    with db.transaction() as session:
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.provider_message_id == sid)
        ).one()
        assert row.status == "delivered"


def test_stop_then_anything_sends_only_the_confirmation_and_21610_marks(
    app: TestClient, fake_twilio: FakeTwilio
) -> None:
    ana = Patient(app, fake_twilio, "sms", "+15555550123")
    assert "unsubscribed" in ana.say("STOP")
    assert ana.say("book") == ""
    assert "subscribed again" in ana.say("START")
    ben = Patient(app, fake_twilio, "sms", "+15555550124")
    fake_twilio.fail_next(21610)
    ben.say("hi")  # the provider refuses: Ben had opted out at the carrier
    time.sleep(0.3)
    assert ben.say("book") == ""  # nothing more is sent to him


def test_full_booking_over_sms_in_spanish(app: TestClient, fake_twilio: FakeTwilio) -> None:
    luis = Patient(app, fake_twilio, "sms", "+15555550177")
    assert "¿Qué desea hacer?" in luis.say("hola")
    assert "¿Con quién desea la cita?" in luis.say("1")
    assert "Horas libres el jue 16 de abr" in luis.say("medicina general el jueves por la tarde")
    assert "nombre completo" in luis.say("1")
    assert "fecha de nacimiento" in luis.say("Luis Martínez")
    assert "¿La reservo?" in luis.say("5/11/1975")
    assert "Cita reservada: Dr Ana Ruiz, jue 16 de abr" in luis.say("1")


def test_full_booking_over_whatsapp_in_english(app: TestClient, fake_twilio: FakeTwilio) -> None:
    tom = Patient(app, fake_twilio, "whatsapp", "+447700900123")
    assert "1. Book a visit" in tom.say("hello")
    assert "When would you like to see Dr David Chen" in tom.say("book with the cardiologist")
    assert "Free times on Fri 17 Apr" in tom.say("friday")
    assert "full name" in tom.say("2")
    assert "date of birth" in tom.say("Tom Baker")
    assert "Shall I book it?" in tom.say("1 Feb 1960")
    assert "Booked: Dr David Chen, Fri 17 Apr" in tom.say("yes by video")


def test_a_nul_character_in_a_body_is_dropped_not_a_500(
    app: TestClient, fake_twilio: FakeTwilio, db: Database
) -> None:
    # PostgreSQL refuses NUL in text columns; a body with "%00" must still be stored.
    ana = Patient(app, fake_twilio, "sms", "+15555550124")
    assert "1. Book a visit" in ana.say("hi\x00 there")
    with db.transaction() as session:
        assert session.scalars(select(InboundLog.body)).all() == ["hi there"]
