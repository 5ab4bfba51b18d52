"""The doctors' Telegram bot, end to end: real Telegram update JSON posted to
``/webhooks/telegram/doctor`` through the app, the outbox sent by the real
dispatcher through python-telegram-bot to a fake Bot API (the doctor bot's own
token), and the patient's answers recorded by the SMS channel."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bots.dispatcher import Dispatcher
from bots.doctor_bot import NOT_FOR_YOU, doctor_bot_config
from channels.base import Channel
from channels.telegram import TelegramChannel
from core import questions
from core.clock import FixedClock
from core.db import Database
from core.models import AuditEntry, QuestionThread, User
from core.patients import find_or_create_patient_by_phone
from tests.fakes.telegram_server import (
    BOT_USERNAME,
    FakeTelegram,
    callback_update,
    message_update,
    private_chat,
    running_fake_telegram,
)
from tests.staff import StaffSite

DOCTOR_TOKEN = "987654321:AADoctorBotTokenForTests_0123456789"
SECRET = "doctor-bot-secret_1"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
URL = "/webhooks/telegram/doctor"
RUIZ_CHAT, OKAFOR_CHAT, STRANGER = 5001, 5002, 6666
PHONE = "+15550002001"


@pytest.fixture(scope="module")
def doctor_fake() -> Iterator[FakeTelegram]:
    with running_fake_telegram(DOCTOR_TOKEN) as fake:
        yield fake


@pytest.fixture
def fake(doctor_fake: FakeTelegram) -> Iterator[FakeTelegram]:
    doctor_fake.clear()
    yield doctor_fake
    doctor_fake.clear()


class Bot:
    """The site with the doctor bot on, a webhook poster and the dispatcher."""

    def __init__(self, db: Database, clock: FixedClock, fake: FakeTelegram) -> None:
        self.site = StaffSite.open(
            db,
            clock,
            telegram_doctor_bot_token=DOCTOR_TOKEN,
            telegram_doctor_webhook_secret=SECRET,
            telegram_api_base_url=fake.base_url,
        )
        self.fake = fake
        self.webhook = TestClient(self.site.app)
        self.updates = iter(range(1000, 100_000))

    @property
    def settings(self) -> Any:
        return self.site.clinic.settings

    def post(self, body: dict[str, Any]) -> Any:
        return self.webhook.post(URL, json=body, headers=HEADERS)

    def say(self, chat: int, text: str, **content: Any) -> Any:
        answer = self.post(message_update(next(self.updates), chat, text, **content))
        assert answer.status_code == 200, answer.text
        return answer

    def tap(self, chat: int, label: str) -> Any:
        answer = self.post(self.fake.tap(chat, label, update_id=next(self.updates)))
        assert answer.status_code == 200, answer.text
        return answer

    def dispatch(self) -> None:
        channel = TelegramChannel(self.settings, doctor_bot_config(self.settings))
        senders: dict[str, Channel] = {
            "doctor_telegram": channel,
            "sms": self.site.clinic.channels["sms"],
        }

        async def run() -> None:
            try:
                dispatcher = Dispatcher(self.site.db, senders, self.site.clock)
                while await dispatcher.run_once():
                    pass
            finally:
                await channel.aclose()

        asyncio.run(run())

    def texts(self, chat: int) -> list[str]:
        return [p["text"] for p in self.fake.sent if str(p["chat_id"]) == str(chat)]

    def link(self, email: str, chat: int) -> None:
        code = link_code(self.site.client(email))
        self.say(chat, f"/start {code}")
        self.dispatch()
        assert self.texts(chat)[-1].startswith("Linked to "), self.texts(chat)

    def ask(self, body: str, *, doctor: str = "Ruiz", phone: str = PHONE) -> int:
        practitioner = self.site.clinic.practitioner(doctor)
        with self.site.db.transaction() as session:
            now = self.site.clock.now()
            clinic_id = session.scalars(select(User.clinic_id)).first()
            assert clinic_id is not None
            patient = find_or_create_patient_by_phone(session, clinic_id, phone, "sms", now=now)
            patient.name, patient.date_of_birth = "Maria Lopez", date(1980, 5, 17)
            return questions.open_thread(
                session,
                patient_id=patient.id,
                practitioner_id=practitioner,
                channel="sms",
                address=phone,
                body=body,
                media=[],
                inbound_id=None,
                now=now,
                settings=self.settings,
            ).id

    def thread(self, thread_id: int) -> QuestionThread:
        with self.site.db.transaction() as session:
            found = session.get(QuestionThread, thread_id)
            assert found is not None
            _ = found.messages
            return found

    def chat_of(self, email: str) -> str | None:
        with self.site.db.transaction() as session:
            return session.scalars(select(User.telegram_chat_id).where(User.email == email)).one()

    def patient_texts(self) -> list[str]:
        return self.site.clinic.channels["sms"].texts(PHONE)


def link_code(client: Any) -> str:
    page = client.get("/dashboard/telegram")
    found = re.search(r'id="link-code">([0-9A-Z]{8})<', page.text)
    assert found is not None, page.text
    return found.group(1)


@pytest.fixture
def bot(db: Database, clock: FixedClock, fake: FakeTelegram) -> Bot:
    return Bot(db, clock, fake)


def reply_to(message_id: int, chat: int, text: str = "") -> dict[str, Any]:
    """``reply_to_message``: the bot's message the doctor is answering."""
    return {
        "message_id": message_id,
        "from": {"id": 987654321, "is_bot": True, "first_name": "Doctor bot"},
        "chat": private_chat(chat),
        "date": 1_776_171_600,
        "text": text,
    }


# -- linking ---------------------------------------------------------------------------------


def test_a_doctor_links_their_chat_with_the_dashboard_code(bot: Bot) -> None:
    client = bot.site.client("ruiz@clinic.test")
    page = client.get("/dashboard/telegram")
    code = link_code(client)
    assert f'href="https://t.me/{BOT_USERNAME}?start={code}"' in page.text
    assert "not set up" not in page.text

    bot.say(RUIZ_CHAT, f"/start {code}")
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT) == [
        "Linked to Dr Ana Ruiz. New questions for you will arrive here."
    ]
    assert bot.chat_of("ruiz@clinic.test") == str(RUIZ_CHAT)
    assert "Unlink Telegram" in client.get("/dashboard/telegram").text
    with bot.site.db.transaction() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.source == "telegram", AuditEntry.entity == "user")
        ).one()
        assert entry.user_email == "ruiz@clinic.test" and entry.action == "update"

    # The code was for one use: another chat cannot take the account with it.
    bot.say(STRANGER, f"/start {code}")
    bot.dispatch()
    assert "wrong or has expired" in bot.texts(STRANGER)[-1]
    assert bot.chat_of("ruiz@clinic.test") == str(RUIZ_CHAT)


def test_wrong_and_expired_codes_link_nothing(bot: Bot) -> None:
    code = link_code(bot.site.client("ruiz@clinic.test"))
    bot.site.clock.advance(timedelta(minutes=21))
    bot.say(RUIZ_CHAT, f"/start {code}")
    bot.say(RUIZ_CHAT, "/start 00000000")
    bot.say(RUIZ_CHAT, "/start <script>")
    bot.dispatch()
    assert all("wrong or has expired" in text for text in bot.texts(RUIZ_CHAT))
    assert len(bot.texts(RUIZ_CHAT)) == 3
    assert bot.chat_of("ruiz@clinic.test") is None

    # Guessing is cut off: after five wrong codes even the right one waits.
    bot.say(RUIZ_CHAT, "/start ZZZZZZZZ")
    bot.say(RUIZ_CHAT, "/start YYYYYYYY")
    fresh = link_code(bot.site.client("ruiz@clinic.test"))
    bot.say(RUIZ_CHAT, f"/start {fresh}")
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1].startswith("Too many wrong codes")
    assert bot.chat_of("ruiz@clinic.test") is None


def test_a_code_still_works_within_fifteen_minutes(bot: Bot) -> None:
    code = link_code(bot.site.client("okafor@clinic.test"))
    bot.site.clock.advance(timedelta(minutes=14, seconds=59))
    bot.say(OKAFOR_CHAT, f"/start {code.lower()}")
    bot.dispatch()
    assert bot.chat_of("okafor@clinic.test") == str(OKAFOR_CHAT)


def test_unknown_chats_are_told_what_the_bot_is_for(bot: Bot) -> None:
    thread_id = bot.ask("Question")
    bot.say(STRANGER, "hello")
    bot.say(STRANGER, "/start")
    answer = bot.post(
        {
            "update_id": 77,
            "callback_query": {
                "id": "cbq-1",
                "from": {"id": STRANGER, "is_bot": False, "first_name": "X"},
                "message": {
                    "message_id": 3,
                    "chat": private_chat(STRANGER),
                    "date": 1_776_171_600,
                    "text": "?",
                },
                "chat_instance": "1",
                "data": f"reply:{thread_id}",
            },
        }
    )
    assert answer.json() == {"method": "answerCallbackQuery", "callback_query_id": "cbq-1"}
    bot.say(STRANGER, "I answer your question", reply_to_message=reply_to(1, STRANGER))
    bot.dispatch()
    assert bot.texts(STRANGER) == [NOT_FOR_YOU] * 4
    assert bot.thread(thread_id).status == "open"
    assert bot.patient_texts() == []


# -- what the webhook refuses ------------------------------------------------------------------


def test_bad_secret_malformed_and_unhandled_updates(bot: Bot) -> None:
    body = message_update(1, STRANGER, "hello")
    assert bot.webhook.post(URL, json=body).status_code == 403
    wrong = bot.webhook.post(
        URL, json=body, headers={**HEADERS, "X-Telegram-Bot-Api-Secret-Token": "no"}
    )
    assert wrong.status_code == 403
    # The patients' bot's secret does not open the doctors' bot.
    assert bot.webhook.post("/webhooks/telegram", json=body, headers=HEADERS).status_code == 404

    malformed = bot.webhook.post(URL, content=b"{not json", headers=HEADERS)
    assert malformed.status_code == 400
    assert bot.webhook.post(URL, json=[1, 2], headers=HEADERS).status_code == 400
    assert bot.webhook.post(URL, json={"message": {}}, headers=HEADERS).status_code == 400
    edited = {"update_id": 5, "edited_message": body["message"]}
    assert bot.post(edited).status_code == 200
    assert bot.post({"update_id": 6, "poll": {"id": "1"}}).status_code == 200
    bot.dispatch()
    assert bot.fake.sent == []


def test_the_webhook_is_off_without_a_doctor_bot_token(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    client = TestClient(site.app)
    answer = client.post(URL, json=message_update(1, STRANGER, "/start X"), headers=HEADERS)
    assert answer.status_code == 404
    assert "TELEMED_TELEGRAM_DOCTOR_BOT_TOKEN" in answer.json()["detail"]


# -- questions and answers ---------------------------------------------------------------------


def test_a_new_question_reaches_the_doctor_with_two_buttons(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    bot.link("okafor@clinic.test", OKAFOR_CHAT)
    thread_id = bot.ask("Is this rash normal?")
    bot.dispatch()

    note = bot.fake.sent[-1]
    assert str(note["chat_id"]) == str(RUIZ_CHAT)
    assert "Is this rash normal?" in note["text"] and "Maria Lopez" in note["text"]
    buttons = [b for row in note["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["callback_data"] for b in buttons] == [f"reply:{thread_id}", f"close:{thread_id}"]
    assert len(bot.texts(OKAFOR_CHAT)) == 1  # only the "Linked" message


def test_reply_button_then_text_answers_the_patient(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    thread_id = bot.ask("Can I take ibuprofen?")
    bot.dispatch()

    tapped = bot.tap(RUIZ_CHAT, "Reply")
    assert tapped.json()["method"] == "answerCallbackQuery"
    bot.dispatch()
    prompt = bot.fake.sent[-1]
    assert prompt["text"] == f"Your answer to Maria's question #{thread_id}:"
    assert prompt["reply_markup"] == {"force_reply": True}

    bot.say(RUIZ_CHAT, "Yes, with food.")
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1] == "Sent to the patient."
    (answer,) = bot.patient_texts()
    assert "Yes, with food." in answer
    thread = bot.thread(thread_id)
    assert thread.status == "answered"
    assert [(m.author, m.body) for m in thread.messages][-1] == ("doctor", "Yes, with food.")
    with bot.site.db.transaction() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "question", AuditEntry.action == "create")
        ).one()
        assert entry.source == "telegram" and entry.entity_id == thread_id
        assert entry.patient_id == thread.patient_id and entry.user_email == "ruiz@clinic.test"

    # The next text is not taken as another answer.
    bot.say(RUIZ_CHAT, "And also this")
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1].startswith("To answer a question, tap Reply")
    assert len(bot.patient_texts()) == 1


def test_replying_to_the_forwarded_question_answers_it(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    first = bot.ask("First question", phone="+15550002002")
    second = bot.ask("Second question")
    bot.dispatch()
    forwarded = {
        str(p["reply_markup"]["inline_keyboard"][0][0]["callback_data"]): m
        for p, m in zip(bot.fake.sent, range(1, len(bot.fake.sent) + 1), strict=True)
        if p.get("reply_markup")
    }
    message_id = forwarded[f"reply:{second}"]

    bot.say(RUIZ_CHAT, "Rest and fluids.", reply_to_message=reply_to(message_id, RUIZ_CHAT))
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1] == "Sent to the patient."
    assert bot.thread(second).status == "answered"
    assert bot.thread(first).status == "open"
    assert any("Rest and fluids." in text for text in bot.patient_texts())


def test_replying_to_an_earlier_prompt_answers_that_thread(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    first = bot.ask("First question", phone="+15550002003")
    second = bot.ask("Second question")
    bot.dispatch()
    bot.tap(RUIZ_CHAT, "Reply")  # the last keyboard: the second thread
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1].endswith(f"question #{second}:")
    second_prompt = len(bot.fake.sent)
    bot.post(
        callback_update(
            next(bot.updates), RUIZ_CHAT, f"reply:{first}", message_id=second_prompt - 2
        )
    )
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1].endswith(f"question #{first}:")

    # Telegram's reply to the second prompt answers the second thread, not the last tapped.
    bot.say(RUIZ_CHAT, "For the second", reply_to_message=reply_to(second_prompt, RUIZ_CHAT))
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1] == "Sent to the patient."
    assert bot.thread(second).status == "answered"
    assert bot.thread(first).status == "open"
    bot.say(RUIZ_CHAT, "For the first")
    bot.dispatch()
    assert bot.thread(first).status == "answered"
    assert bot.thread(first).messages[-1].body == "For the first"


def test_an_empty_or_refused_answer_says_why(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    thread_id = bot.ask("Question")
    bot.dispatch()
    bot.tap(RUIZ_CHAT, "Reply")
    bot.say(RUIZ_CHAT, "x" * 4001)
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1] == "Not sent: the answer is longer than 4000 characters"
    assert bot.thread(thread_id).status == "open"
    # Still answering that thread: the next text goes through.
    bot.say(RUIZ_CHAT, "Short answer")
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1] == "Sent to the patient."


def test_a_doctor_cannot_answer_another_doctors_thread(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    bot.link("okafor@clinic.test", OKAFOR_CHAT)
    thread_id = bot.ask("For Dr Ruiz")
    bot.dispatch()
    forwarded_id = len(bot.fake.sent)  # the fake numbers messages in order

    for data in (f"reply:{thread_id}", f"close:{thread_id}"):
        update = {
            "update_id": next(bot.updates),
            "callback_query": {
                "id": f"q-{data}",
                "from": {"id": OKAFOR_CHAT, "is_bot": False, "first_name": "Ben"},
                "message": {
                    "message_id": forwarded_id,
                    "chat": private_chat(OKAFOR_CHAT),
                    "date": 1_776_171_600,
                    "text": "?",
                },
                "chat_instance": "1",
                "data": data,
            },
        }
        assert bot.post(update).status_code == 200
    bot.say(OKAFOR_CHAT, "My answer", reply_to_message=reply_to(forwarded_id, OKAFOR_CHAT))
    bot.dispatch()
    texts = bot.texts(OKAFOR_CHAT)[-3:]
    assert texts[:2] == [f"Question #{thread_id} is not one you can answer."] * 2
    assert texts[2].startswith("To answer a question")  # not Okafor's message: unknown here
    thread = bot.thread(thread_id)
    assert thread.status == "open" and len(thread.messages) == 1
    assert bot.patient_texts() == []


def test_close_button_closes_the_thread(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    thread_id = bot.ask("Thanks, all fine now")
    bot.dispatch()
    label = bot.fake.last_keyboard(RUIZ_CHAT)[1]["text"]
    bot.tap(RUIZ_CHAT, label)
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1] == f"Question #{thread_id} is closed."
    assert bot.thread(thread_id).status == "closed"
    with bot.site.db.transaction() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "question", AuditEntry.action == "update")
        ).one()
        assert entry.source == "telegram" and entry.entity_id == thread_id


def test_a_retried_update_is_handled_once(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    thread_id = bot.ask("Question")
    bot.dispatch()
    bot.tap(RUIZ_CHAT, "Reply")
    update = message_update(50_000, RUIZ_CHAT, "Only once")
    assert bot.post(update).status_code == 200
    assert bot.post(update).status_code == 200  # Telegram delivering it again
    bot.dispatch()
    assert len(bot.patient_texts()) == 1
    assert len(bot.thread(thread_id).messages) == 2
    # After a quiet week Telegram restarts update ids at random: a lower one is new.
    assert bot.post(message_update(7, RUIZ_CHAT, "/start")).status_code == 200
    bot.dispatch()
    assert bot.texts(RUIZ_CHAT)[-1].startswith("Linked to Dr Ana Ruiz. To answer a question")


def test_blocking_the_bot_unlinks_the_chat(bot: Bot) -> None:
    bot.link("ruiz@clinic.test", RUIZ_CHAT)
    blocked = {
        "update_id": next(bot.updates),
        "my_chat_member": {
            "chat": private_chat(RUIZ_CHAT),
            "from": {"id": RUIZ_CHAT, "is_bot": False, "first_name": "Ana"},
            "date": 1_776_171_600,
            "old_chat_member": {
                "status": "member",
                "user": {"id": 987654321, "is_bot": True, "first_name": "Doctor bot"},
            },
            "new_chat_member": {
                "status": "kicked",
                "until_date": 0,
                "user": {"id": 987654321, "is_bot": True, "first_name": "Doctor bot"},
            },
        },
    }
    assert bot.post(blocked).status_code == 200
    assert bot.chat_of("ruiz@clinic.test") is None
    bot.ask("Question")
    bot.dispatch()
    assert len(bot.texts(RUIZ_CHAT)) == 1  # only the earlier "Linked" message
