"""A whole booking over Telegram: updates posted to the webhook with the secret
header, buttons tapped, replies sent by the real python-telegram-bot Bot to the
fake Bot API."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bots.app import create_app
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import Appointment, ChannelIdentity
from core.settings import Settings
from tests.clinic import outbox_idle
from tests.fakes import telegram_server
from tests.fakes.telegram_server import FakeTelegram, message_update

fake_telegram = telegram_server.fake_telegram

SECRET = "s3cret_token-for-tests"
_update_ids = itertools.count(1000)


@pytest.fixture
def app(db: Database, clock: FixedClock, fake_telegram: FakeTelegram) -> Iterator[TestClient]:
    with db.transaction() as session:
        seed_demo(session, "America/New_York")
    settings = Settings(
        database_url=db.url,
        public_url="https://clinic.example.com",
        clinic_timezone="America/New_York",
        telegram_bot_token=fake_telegram.token,
        telegram_api_base_url=fake_telegram.base_url,
        telegram_webhook_secret=SECRET,
    )
    application = create_app(settings, db=db, clock=clock, dispatch_interval_s=0.05)
    with TestClient(application) as client:
        yield client


class Patient:
    def __init__(self, client: TestClient, fake: FakeTelegram, chat_id: int) -> None:
        self.client, self.fake, self.chat_id = client, fake, chat_id

    def post(self, body: dict[str, Any], secret: str | None = SECRET) -> Any:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return self.client.post("/webhooks/telegram", json=body, headers=headers)

    def _deliver(self, body: dict[str, Any]) -> str:
        before = len(self.fake.sent)
        response = self.post(body)
        assert response.status_code == 200, response.text
        return self.replies(before)

    def say(self, text: str) -> str:
        return self._deliver(message_update(next(_update_ids), self.chat_id, text))

    def tap(self, label: str) -> str:
        return self._deliver(self.fake.tap(self.chat_id, label, update_id=next(_update_ids)))

    def replies(self, before: int, wait_s: float = 5.0) -> str:
        deadline = time.monotonic() + wait_s
        seen, idle = -1, 0
        mine: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            mine = [m for m in self.fake.sent[before:] if str(m["chat_id"]) == str(self.chat_id)]
            if mine and len(mine) == seen:
                break
            # Nothing came and the outbox has nothing left to send: nothing will.
            idle = idle + 1 if not mine and self._outbox_idle() else 0
            if idle >= 3:
                break
            seen = len(mine)
            time.sleep(0.1)
        return "\n".join(str(m.get("text", "")) for m in mine)

    def _outbox_idle(self) -> bool:
        return outbox_idle(self.client.app.state.db)  # type: ignore[attr-defined]

    def buttons(self) -> list[str]:
        return [b["text"] for b in self.fake.last_keyboard(self.chat_id)]


def test_full_booking_over_telegram_in_english_with_buttons(
    app: TestClient, fake_telegram: FakeTelegram, db: Database
) -> None:
    ana = Patient(app, fake_telegram, 4242)
    assert "What would you like to do?" in ana.say("/start")
    assert "Book a visit" in ana.buttons()
    assert "Who would you like to see?" in ana.tap("Book a visit")
    assert "Dr Ben Okafor (Dermatology)" in ana.buttons()
    assert "When would you like to see Dr Ben Okafor" in ana.tap("Dr Ben Okafor")
    assert "Free times on Tue 14 Apr" in ana.tap("Tue 14 Apr")
    assert "full name" in ana.tap("10:00 AM")
    assert "date of birth" in ana.say("Ana Ruiz Diaz")
    assert "Shall I book it?" in ana.say("12/31/1980")
    assert "Booked: Dr Ben Okafor, Tue 14 Apr, 10:00 AM" in ana.tap("Yes, in person")
    keyboards = [m for m in fake_telegram.sent if m.get("reply_markup")]
    assert all(
        len(b["callback_data"].encode()) <= 64
        for m in keyboards
        for row in m["reply_markup"]["inline_keyboard"]
        for b in row
    )
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 1


def test_full_booking_over_telegram_in_spanish_by_text(
    app: TestClient, fake_telegram: FakeTelegram
) -> None:
    maria = Patient(app, fake_telegram, 5151)
    assert "¿Con quién desea la cita?" in maria.say("hola, quiero una cita")
    assert "Horas libres el jue 16 de abr" in maria.say("cardiología el jueves por la mañana")
    assert "nombre completo" in maria.say("1")
    assert "fecha de nacimiento" in maria.say("María Pérez")
    assert "¿La reservo?" in maria.say("31/12/1980")
    assert "Cita reservada: Dr David Chen" in maria.say("sí")


def test_wrong_or_missing_secret_is_403_and_nothing_is_sent(
    app: TestClient, fake_telegram: FakeTelegram
) -> None:
    ana = Patient(app, fake_telegram, 4242)
    assert ana.post(message_update(1, 4242, "hi"), secret="wrong").status_code == 403
    assert ana.post(message_update(2, 4242, "hi"), secret=None).status_code == 403
    time.sleep(0.2)
    assert fake_telegram.sent == []


def test_a_redelivered_update_is_handled_once(app: TestClient, fake_telegram: FakeTelegram) -> None:
    ana = Patient(app, fake_telegram, 4242)
    body = message_update(77, 4242, "hi")
    assert "What would you like to do?" in ana._deliver(body)
    assert ana._deliver(body) == ""


def test_blocking_the_bot_opts_the_chat_out(
    app: TestClient, fake_telegram: FakeTelegram, db: Database
) -> None:
    ana = Patient(app, fake_telegram, 4242)
    ana.say("hi")
    fake_telegram.block(4242)
    ana.say("book")  # the send is refused with 403: blocked by the user
    time.sleep(0.3)
    with db.transaction() as session:
        identity = session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.address == "4242")
        ).one()
        assert identity.opted_out_at is not None
