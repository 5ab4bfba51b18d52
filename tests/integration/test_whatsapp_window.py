"""WhatsApp free text only within 24 hours of the patient's last message; outside
it the dispatcher sends the approved template, or falls back to SMS, and records
which. Proven at the fake Twilio API."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy import select

from bots.dispatcher import Dispatcher
from channels.twilio import build_twilio_channels
from core import outbox
from core.clock import FixedClock
from core.db import Database
from core.messages import Option, Reply
from core.models import ChannelIdentity, OutboxMessage
from core.settings import Settings
from tests.fakes import twilio_server
from tests.fakes.twilio_server import FakeTwilio

fake_twilio = twilio_server.fake_twilio

PATIENT = "+34600111222"
SMS_FROM = "+15005550006"
WA_FROM = "+14155238886"
TEMPLATE = "HX" + "0" * 32
NUMBERED = "Riverside Family Clinic: Dr Ruiz, Tue 14 Apr, 10:00 AM.\n1. Confirm\n2. Change the time"
REMINDER = Reply(
    "Riverside Family Clinic: Dr Ruiz, Tue 14 Apr, 10:00 AM.",
    (Option("Confirm", "confirm"), Option("Change the time", "reschedule")),
    purpose="reminder",
)


def settings(fake: FakeTwilio) -> Settings:
    return Settings(
        public_url="https://clinic.example.com",
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_api_base_url=fake.base_url,
        twilio_sms_from=SMS_FROM,
        twilio_whatsapp_from=WA_FROM,
    )


def queue(db: Database, clock: FixedClock, last_message_ago: timedelta | None) -> int:
    """A reminder for a known WhatsApp identity (``None``: it never wrote to us,
    e.g. staff booked by phone with the patient's WhatsApp opt-in)."""
    with db.transaction() as session:
        session.add(
            ChannelIdentity(
                channel="whatsapp",
                address=PATIENT,
                created_at=clock.now() - timedelta(days=30),
                last_inbound_at=None
                if last_message_ago is None
                else clock.now() - last_message_ago,
            )
        )
        row = outbox.enqueue(
            session, channel="whatsapp", address=PATIENT, reply=REMINDER, now=clock.now()
        )
        session.flush()
        return row.id


def dispatch(db: Database, clock: FixedClock, fake: FakeTwilio, template: str | None) -> None:
    senders = build_twilio_channels(settings(fake))
    dispatcher = Dispatcher(db, senders, clock, whatsapp_template_sid=template)
    asyncio.run(dispatcher.run_once())


def row(db: Database, outbox_id: int) -> OutboxMessage:
    with db.transaction() as session:
        found = session.get(OutboxMessage, outbox_id)
        assert found is not None
        return found


def test_inside_the_window_free_text_goes_by_whatsapp(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio
) -> None:
    outbox_id = queue(db, clock, timedelta(hours=23))
    dispatch(db, clock, fake_twilio, TEMPLATE)
    [sent] = fake_twilio.messages
    assert (sent["to"], sent["body"], sent["content_sid"]) == (
        "whatsapp:" + PATIENT,
        NUMBERED,
        None,
    )
    assert (row(db, outbox_id).status, row(db, outbox_id).sent_via) == ("sent", None)


def test_outside_the_window_the_template_goes_never_free_text(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio
) -> None:
    outbox_id = queue(db, clock, timedelta(hours=25))
    dispatch(db, clock, fake_twilio, TEMPLATE)
    [sent] = fake_twilio.messages
    assert sent["to"] == "whatsapp:" + PATIENT
    assert sent["body"] == ""
    assert sent["content_sid"] == TEMPLATE
    # The numbered choices travel in the variable, so "reply 1" still makes sense.
    assert json.loads(sent["content_variables"]) == {"1": NUMBERED}
    assert row(db, outbox_id).sent_via == "template"


def test_outside_the_window_without_a_template_it_falls_back_to_sms(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio
) -> None:
    outbox_id = queue(db, clock, timedelta(days=3))
    dispatch(db, clock, fake_twilio, None)
    [sent] = fake_twilio.messages
    assert (sent["to"], sent["from"], sent["body"]) == (PATIENT, SMS_FROM, NUMBERED)
    assert row(db, outbox_id).sent_via == "sms"


def test_a_number_that_never_wrote_on_whatsapp_gets_no_free_text(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio
) -> None:
    outbox_id = queue(db, clock, None)
    dispatch(db, clock, fake_twilio, TEMPLATE)
    assert [m["content_sid"] for m in fake_twilio.messages] == [TEMPLATE]
    assert row(db, outbox_id).sent_via == "template"


def test_no_template_and_sms_opted_out_fails_without_sending(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio
) -> None:
    outbox_id = queue(db, clock, timedelta(days=2))
    with db.transaction() as session:
        session.add(
            ChannelIdentity(
                channel="sms", address=PATIENT, created_at=clock.now(), opted_out_at=clock.now()
            )
        )
    dispatch(db, clock, fake_twilio, None)
    assert fake_twilio.messages == []
    failed = row(db, outbox_id)
    assert failed.status == "failed" and "window closed" in (failed.error or "")
    with db.transaction() as session:
        assert session.scalars(select(OutboxMessage)).one().attempts == 1


def test_nothing_but_replies_goes_to_a_number_we_do_not_know(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio
) -> None:
    with db.transaction() as session:
        queued = outbox.enqueue(
            session, channel="whatsapp", address="+34600999888", reply=REMINDER, now=clock.now()
        )
        session.flush()
        outbox_id = queued.id
    dispatch(db, clock, fake_twilio, TEMPLATE)
    assert fake_twilio.messages == []
    assert row(db, outbox_id).status == "suppressed"
