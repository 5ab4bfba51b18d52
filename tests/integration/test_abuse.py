"""SMS-pumping guard: too many messages a minute from one address -> no replies for a while."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import ChannelIdentity, InboundLog, OutboxMessage
from core.settings import Settings
from flows.engine import FlowEngine
from tests.dialogue import Chat

TZ = "America/New_York"
PUMP = "+15555550199"
NOTICE = "sending messages very fast"


@pytest.fixture
def engine(db: Database, clock: FixedClock) -> Iterator[FlowEngine]:
    with db.transaction() as session:
        seed_demo(session, TZ)
    yield FlowEngine(
        db,
        Settings(
            database_url=db.url,
            clinic_timezone=TZ,
            inbound_max_per_minute=20,
            inbound_cooldown_minutes=10,
        ),
        clock,
    )


def pump(chat: Chat, clock: FixedClock, count: int, text: str = "help") -> list[str]:
    """``count`` messages two seconds apart (25 of them fit in 48 s)."""
    answers = []
    for _ in range(count):
        answers.append(chat.say(text))
        clock.advance(timedelta(seconds=2))
    return answers


def stored(db: Database, address: str) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(InboundLog).where(InboundLog.address == address)
        return int(session.scalar(query) or 0)


def outbox_bodies(db: Database, address: str) -> list[str]:
    with db.transaction() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.address == address).order_by(OutboxMessage.id)
        )
        return [str(row.payload.get("text", "")) for row in rows]


def test_replies_stop_after_the_limit_with_one_notice(
    engine: FlowEngine, db: Database, clock: FixedClock
) -> None:
    c = Chat(engine, address=PUMP)
    answers = pump(c, clock, 25)
    assert all(a and NOTICE not in a for a in answers[:20])
    assert NOTICE in answers[20]
    assert answers[21:] == ["", "", "", ""]
    assert stored(db, PUMP) == 25  # nothing lost
    bodies = outbox_bodies(db, PUMP)
    assert len(bodies) == 21
    assert sum(NOTICE in b for b in bodies) == 1


def test_the_conversation_does_not_move_while_limited(
    engine: FlowEngine, db: Database, clock: FixedClock
) -> None:
    c = Chat(engine, address=PUMP)
    pump(c, clock, 21)
    assert c.say("book") == ""
    assert c.say("1") == ""
    clock.advance(timedelta(minutes=11))
    assert "Book a visit" in c.say("hi")  # the menu, not the booking flow


def test_replies_resume_after_the_cooldown(
    engine: FlowEngine, db: Database, clock: FixedClock
) -> None:
    c = Chat(engine, address=PUMP)
    pump(c, clock, 25)
    clock.advance(timedelta(minutes=5))
    assert c.say("hi") == ""  # still cooling down, and no second notice
    clock.advance(timedelta(minutes=6))
    answer = c.say("hi")
    assert "Book a visit" in answer
    assert NOTICE not in answer
    assert stored(db, PUMP) == 27


def test_stop_is_honoured_while_limited(
    engine: FlowEngine, db: Database, clock: FixedClock
) -> None:
    c = Chat(engine, address=PUMP)
    pump(c, clock, 22)
    answer = c.say("STOP")
    assert "unsubscribed" in answer
    with db.transaction() as session:
        identity = session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.address == PUMP)
        ).one()
        assert identity.opted_out_at is not None
    clock.advance(timedelta(minutes=11))
    assert c.say("hi") == ""  # opted out: still nothing


def test_spanish_notice(engine: FlowEngine, clock: FixedClock) -> None:
    c = Chat(engine, address=PUMP)
    answers = pump(c, clock, 21, text="hola, quiero pedir una cita por favor")
    assert "muy rápido" in answers[20]


def test_another_address_is_unaffected(engine: FlowEngine, db: Database, clock: FixedClock) -> None:
    c = Chat(engine, address=PUMP)
    other = Chat(engine, address="+15555550100")
    whatsapp_same_number = Chat(engine, address=PUMP, channel="whatsapp")
    pump(c, clock, 25)
    assert "Book a visit" in other.say("hi")
    assert "Book a visit" in whatsapp_same_number.say("hi")
    assert c.say("hi") == ""


def test_a_steady_patient_is_never_limited(engine: FlowEngine, clock: FixedClock) -> None:
    c = Chat(engine, address=PUMP)
    for _ in range(60):  # 20 a minute for three minutes: at the limit, not over it
        assert c.say("help")
        clock.advance(timedelta(seconds=3))
