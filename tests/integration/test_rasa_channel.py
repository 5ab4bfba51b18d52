"""Reminders to patients who only talk to the clinic's Rasa assistant: the
outbox sends them through Rasa's trigger_intent API (channels/rasa.py), here
to a fake Rasa server over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from bots.app import build_senders, channel_banner
from bots.dispatcher import Dispatcher
from core import scheduling
from core.clock import FixedClock
from core.db import Database
from core.messages import Reply
from core.models import ChannelIdentity, OutboxMessage, Patient, Practitioner
from core.settings import Settings
from tests.clinic import Clinic
from tests.fakes.rasa_server import TOKEN, FakeRasa
from tests.fakes.server import running

WED_10 = datetime(2026, 4, 15, 14, 0, tzinfo=UTC)


@pytest.fixture
def rasa_server() -> Iterator[FakeRasa]:
    with running(FakeRasa(intents=("EXTERNAL_telemed_message",)), "rasa") as fake:
        yield fake


def _rasa_patient(clinic: Clinic, conversation: str) -> int:
    """A patient Rasa registered (identity rasa:<conversation id>), booked Wednesday 10:00."""
    okafor = clinic.practitioner("Okafor")
    with clinic.db.transaction() as session:
        now = clinic.clock.now()
        patient = Patient(clinic_id=1, name="Rasa Patient", date_of_birth=date(1990, 5, 1))
        session.add(patient)
        session.flush()
        session.add(
            ChannelIdentity(
                channel="rasa", address=conversation, patient_id=patient.id, created_at=now
            )
        )
        p = session.get(Practitioner, okafor)
        assert p is not None
        appointment = scheduling.book(
            session, practitioner=p, patient_id=patient.id, start=WED_10, now=now, channel="rasa"
        )
        session.flush()
        return appointment.id


def _dispatch(clinic: Clinic) -> int:
    dispatcher = Dispatcher(clinic.db, build_senders(clinic.settings), clinic.clock)
    return asyncio.run(dispatcher.run_once(limit=100))


def test_reminders_reach_rasa_only_patients_through_trigger_intent(
    db: Database, clock: FixedClock, rasa_server: FakeRasa
) -> None:
    clinic = Clinic.open(db, clock, rasa_url=rasa_server.base_url, rasa_token=TOKEN)
    appointment_id = _rasa_patient(clinic, "9b2f/web chat")
    clinic.tick()
    planned = clinic.notifications(appointment_id)
    assert planned
    clock.set(min(n.due_at for n in planned))
    clinic.tick()
    assert _dispatch(clinic) == 1
    [(conversation, body, params)] = rasa_server.triggered
    assert conversation == "9b2f/web chat"  # quoted in the path, whole again at Rasa
    assert params == {"output_channel": "latest", "token": TOKEN}
    assert body["name"] == "EXTERNAL_telemed_message"
    assert body["entities"]["telemed_purpose"] == "reminder"
    assert "Dr Ben Okafor" in body["entities"]["telemed_message"]
    assert "1." not in body["entities"]["telemed_message"]  # no numbered options
    with db.transaction() as session:
        [row] = session.scalars(select(OutboxMessage))
        assert (row.channel, row.status) == ("rasa", "sent")


def test_rasa_being_down_is_retried_and_a_refusal_is_not(
    db: Database, clock: FixedClock, rasa_server: FakeRasa
) -> None:
    from channels.base import SendError
    from channels.rasa import RasaChannel, build_rasa_channel

    settings = Settings(database_url=db.url, rasa_url=rasa_server.base_url, rasa_token=TOKEN)
    channel = build_rasa_channel(settings)
    assert channel is not None
    reply = Reply("Reminder", purpose="reminder")

    def error(channel: RasaChannel | None) -> SendError:
        assert channel is not None

        async def attempt() -> None:
            try:
                await channel.send("c1", reply)
            finally:
                await channel.aclose()

        with pytest.raises(SendError) as failed:
            asyncio.run(attempt())
        return failed.value

    rasa_server.fail_next(503)
    down = error(build_rasa_channel(settings))
    assert down.outage and down.retryable
    for status in (400, 401, 404):
        rasa_server.fail_next(status)
        assert not error(build_rasa_channel(settings)).retryable, status
    wrong = error(build_rasa_channel(settings.model_copy(update={"rasa_token": "nope"})))
    assert "TELEMED_RASA_TOKEN" in str(wrong) and not wrong.retryable
    gone = error(build_rasa_channel(settings.model_copy(update={"rasa_url": "http://127.0.0.1:9"})))
    assert gone.outage
    assert rasa_server.triggered == []


def test_the_channel_is_off_until_rasa_url_is_set() -> None:
    assert "rasa" not in build_senders(Settings())
    assert not any(line.startswith("rasa") for line in channel_banner(Settings()))
    on = Settings(rasa_url="http://rasa:5005/")
    assert "rasa" in build_senders(on)
    assert any("TELEMED_RASA_TOKEN unset" in line for line in channel_banner(on))
    assert on.rasa_url == "http://rasa:5005"
    with pytest.raises(ValueError, match="http"):
        Settings(rasa_url="rasa:5005")


def test_without_the_channel_a_rasa_reminder_waits_for_a_process_that_has_it(
    db: Database, clock: FixedClock
) -> None:
    clinic = Clinic.open(db, clock)
    appointment_id = _rasa_patient(clinic, "c2")
    clinic.tick()
    clock.set(min(n.due_at for n in clinic.notifications(appointment_id)))
    clinic.tick()
    clinic.dispatch()  # sms, whatsapp and telegram senders; none for rasa
    with db.transaction() as session:
        [row] = session.scalars(select(OutboxMessage))
        assert (row.channel, row.status, row.attempts) == ("rasa", "pending", 0)
    assert not any(c.calls for c in clinic.channels.values())
