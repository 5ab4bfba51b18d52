"""Red flags interrupt any flow at any step, alert staff in the same
transaction, and leave the flow to carry on afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from core.clock import FixedClock
from core.db import Database
from core.messages import InboundMessage
from core.models import Alert, Appointment, InboundLog, OutboxMessage
from flows.engine import FlowEngine
from tests.clinic import Clinic
from tests.dialogue import Chat

CHEST = "I have crushing chest pain and I can't breathe"


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    return Clinic.open(db, clock)


def chat(clinic: Clinic, address: str = "+15555550301", channel: str = "sms") -> Chat:
    return Chat(FlowEngine(clinic.db, clinic.settings, clinic.clock), address, channel)


def alerts(db: Database) -> list[Alert]:
    with db.transaction() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def outbox(db: Database) -> list[OutboxMessage]:
    with db.transaction() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_mid_booking_an_emergency_interrupts_and_booking_carries_on(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say("book")
    c.say(c.option_number("Okafor"))
    assert "Free times" in c.say("1")
    answer = c.say(CHEST)
    assert "Call 911 now" in answer and "alerted the clinic" in answer
    assert "carry on" in answer and "1. Yes, carry on" in answer
    [alert] = alerts(clinic.db)
    assert (alert.kind, alert.level, alert.status, alert.channel) == (
        "red_flag",
        "emergency",
        "open",
        "sms",
    )
    assert alert.text == CHEST and alert.rules and alert.inbound_id is not None
    assert [r.purpose for r in outbox(clinic.db)][-2:] == ["emergency", "reply"]
    # The booking was paused at the slot step, not lost.
    assert "Free times on Tue 14 Apr" in c.say("1")
    c.say("1")
    c.say("Maria Lopez")
    c.say("12/31/1980")
    assert "Booked" in c.say("1")


def test_suicidal_intent_in_spanish_gets_the_crisis_line(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say("hola")
    answer = c.say("ya no aguanto más, quiero suicidarme")
    assert "988" in answer and "No tiene que pasar por esto a solas" in answer
    assert len(alerts(clinic.db)) == 1


def test_the_clinic_number_is_used_when_set(db: Database, clock: FixedClock) -> None:
    clinic = Clinic.open(db, clock, emergency_number="112")
    assert "Call 112 now" in chat(clinic).say(CHEST)


def test_an_opted_out_patient_still_gets_the_emergency_answer(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say("STOP")
    assert c.say("hello") == ""  # opted out: nothing else is answered
    assert "Call 911" in c.say(CHEST)
    assert outbox(clinic.db)[-1].purpose == "emergency"


def test_the_on_call_practitioner_is_messaged_without_the_patients_words(
    db: Database, clock: FixedClock
) -> None:
    clinic = Clinic.open(db, clock, oncall_address="telegram:424242")
    chat(clinic).say(CHEST)
    [page] = [r for r in outbox(clinic.db) if r.purpose == "alert"]
    assert (page.channel, page.address) == ("telegram", "424242")
    text = page.payload["text"]
    assert "URGENT Riverside Family Clinic" in text
    # Which rules fired, not the patient's words or number.
    assert "crushing" not in text and "breathe" not in text and "+1555" not in text


def test_everyday_messages_raise_nothing(clinic: Clinic) -> None:
    c = chat(clinic)
    for text in ("hi", "book", "no chest pain, just a rash on my arm", "MENU"):
        c.say(text)
    assert alerts(clinic.db) == []


class Crash(Exception):
    pass


@pytest.fixture
def crash_on_outbox(clinic: Clinic) -> Iterator[dict[str, bool]]:
    """The database dies when the replies are written, after the alert."""
    armed = {"on": True}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if armed["on"] and statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            raise Crash("database went away")

    event.listen(clinic.db.engine, "before_cursor_execute", before)
    yield armed
    event.remove(clinic.db.engine, "before_cursor_execute", before)


def test_alert_and_reply_commit_together(clinic: Clinic, crash_on_outbox: dict[str, bool]) -> None:
    engine = FlowEngine(clinic.db, clinic.settings, clinic.clock)
    msg = InboundMessage("sms", "+15555550309", CHEST, "SM-chest-1")
    with pytest.raises(Crash):
        engine.handle(msg)
    with clinic.db.transaction() as session:
        assert session.scalars(select(Alert)).all() == []
        assert session.scalars(select(InboundLog)).all() == []
    # The provider retries the same message: now both are written, once.
    crash_on_outbox["on"] = False
    assert "Call 911" in engine.handle(msg).replies[0].text
    assert engine.handle(msg).duplicate
    assert len(alerts(clinic.db)) == 1
    assert [r.purpose for r in outbox(clinic.db)] == ["emergency"]


def test_an_emergency_mid_reschedule_pauses_it(clinic: Clinic) -> None:
    from datetime import UTC, datetime

    appointment = clinic.book("+15555550301", datetime(2026, 4, 17, 14, 0, tzinfo=UTC))
    c = chat(clinic)
    assert "When would you like it instead" in c.say("change my appointment")
    assert "Call 911" in c.say("my face is drooping and my arm is weak")
    assert "When would you like it instead" in c.say("continue")
    with clinic.db.transaction() as session:
        found = session.get(Appointment, appointment)
        assert found is not None and found.status == "booked"
