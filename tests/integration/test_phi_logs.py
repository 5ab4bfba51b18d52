"""The acceptance check for logs: a whole conversation, and no phone number,
name, date of birth or message text of the patient's (nor the bot token) in
any line at INFO.

Every log line of the process (structlog's and the standard library's, the
app's, the dispatcher's, the provider SDKs') goes through ``core.logs`` to a
buffer as JSON; the file descriptors are captured too, for anything printed
around it. The same capture at DEBUG does show the text, so the check cannot
pass because nothing was captured.
"""

from __future__ import annotations

import io
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bots.app import create_app
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import Appointment
from core.settings import Settings
from tests.fakes import telegram_server, twilio_server
from tests.fakes.telegram_server import FakeTelegram, message_update, private_chat, user
from tests.fakes.twilio_server import FakeTwilio
from tests.integration import test_observability

fake_twilio = twilio_server.fake_twilio
fake_telegram = telegram_server.fake_telegram
json_logs = test_observability.json_logs

PUBLIC_URL = "https://clinic.example.com"
SMS_FROM = "+15005550006"
SECRET = "phi-test-secret"
PHONE = "+14155550173"
PHONE_FORMS = ("+14155550173", "14155550173", "4155550173", "(415) 555-0173", "415-555-0173")
CHAT_ID = 918273645
TELEGRAM_NAMES = ("Valentina", "Quispe", "vquispe_77")
DOB_FORMS = ("12/31/1980", "1980-12-31", "31/12/1980")
_update_ids = itertools.count(5000)


@pytest.fixture
def client(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> Iterator[TestClient]:
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
        sms_rate_per_second=100,
        telegram_bot_token=fake_telegram.token,
        telegram_api_base_url=fake_telegram.base_url,
        telegram_webhook_secret=SECRET,
    )
    app = create_app(settings, db=db, clock=clock, dispatch_interval_s=0.05)
    with TestClient(app) as test_client:
        yield test_client


class SmsPatient:
    def __init__(self, client: TestClient, fake: FakeTwilio) -> None:
        self.client, self.fake = client, fake
        self.said: list[str] = []

    def say(self, text: str) -> str:
        self.said.append(text)
        before = len(self.fake.messages)
        path = "/webhooks/twilio/sms"
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "AccountSid": self.fake.account_sid,
            "From": PHONE,
            "To": SMS_FROM,
            "Body": text,
            "NumMedia": "0",
            "FromCountry": "US",
        }
        signature = RequestValidator(self.fake.auth_token).compute_signature(
            PUBLIC_URL + path, params
        )
        answer = self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.text
        return self.replies(before)

    def replies(self, before: int, wait_s: float = 5.0) -> str:
        deadline, seen = time.monotonic() + wait_s, -1
        mine: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            mine = [m for m in self.fake.messages[before:] if m["to"] == PHONE]
            if mine and len(mine) == seen:
                break
            seen = len(mine)
            time.sleep(0.1)
        return "\n".join(m["body"] for m in mine)


def telegram_says(client: TestClient, fake: FakeTelegram, text: str) -> None:
    first, last, username = TELEGRAM_NAMES
    sender = user(CHAT_ID, first_name=first, last_name=last, username=username, language_code="en")
    update = message_update(next(_update_ids), CHAT_ID, text, chat=private_chat(CHAT_ID, first))
    update["message"]["from"] = sender
    before = len(fake.sent)
    answer = client.post(
        "/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
    )
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(fake.sent) == before:
        time.sleep(0.05)
    assert len(fake.sent) > before, "the bot never answered on Telegram"


def test_a_whole_conversation_leaves_no_patient_data_in_info_logs(
    client: TestClient,
    db: Database,
    fake_twilio: FakeTwilio,
    fake_telegram: FakeTelegram,
    json_logs: Callable[..., io.StringIO],
    capfd: pytest.CaptureFixture[str],
) -> None:
    logs = json_logs("info")
    maria = SmsPatient(client, fake_twilio)
    assert "1. Book a visit" in maria.say("Hello, good morning")
    assert "Dr Ben Okafor (Dermatology)" in maria.say("I would like to book a visit")
    assert "Tue 14 Apr" in maria.say("dermatology")
    assert "Free times on Wed 15 Apr" in maria.say("tomorrow morning")
    assert "full name" in maria.say("1")
    assert "date of birth" in maria.say("Maria Lopez")
    assert "Shall I book it?" in maria.say("12/31/1980")
    assert "Booked: Dr Ben Okafor" in maria.say("1")
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    telegram_says(client, fake_telegram, "hello from telegram please")

    captured = logs.getvalue()
    out, err = capfd.readouterr()
    lines = [json.loads(line) for line in captured.splitlines() if line.strip()]
    # Two lines per webhook at least (the access line, the flow's), so this
    # cannot pass because nothing was logged.
    assert len(lines) >= 2 * 9, captured
    assert {"http_request", "inbound_handled"} <= {line["event"] for line in lines}
    assert sum(line["event"] == "inbound_handled" for line in lines) == 9
    assert all(line["level"] != "debug" for line in lines)

    forbidden = [
        *PHONE_FORMS,
        str(CHAT_ID),
        "Maria Lopez",
        "Lopez",
        *TELEGRAM_NAMES,
        *DOB_FORMS,
        *(text for text in [*maria.said, "hello from telegram please"] if len(text) >= 4),
        # A secret: httpx logs request URLs, the Bot API's among them.
        fake_telegram.token.partition(":")[2][:16],
    ]
    everything = "\n".join([captured, out, err]).lower()
    leaked = [value for value in forbidden if value.lower() in everything]
    assert not leaked, f"patient data in the logs: {leaked}\n{captured}"

    # The same capture at DEBUG shows the text: the check above looked at real output.
    debug = json_logs("debug")
    maria.say("zebra crossing question")
    assert "zebra crossing question" in debug.getvalue()
    assert PHONE in debug.getvalue()
