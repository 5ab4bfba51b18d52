"""20 patients picking the same slot at the same moment, each through its own
connection: one gets it, 19 are told it is gone and offered alternatives."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import Appointment
from core.settings import Settings
from flows.engine import FlowEngine
from tests.dialogue import Chat

PATIENTS = 20


def test_twenty_patients_race_for_one_slot(db: Database, clock: FixedClock) -> None:
    with db.transaction() as session:
        seed_demo(session, "America/New_York")
    settings = Settings(database_url=db.url, clinic_timezone="America/New_York")
    databases = [Database(db.url) for _ in range(PATIENTS)]
    chats = [
        Chat(FlowEngine(d, settings, clock), address=f"+1555555{i:04d}")
        for i, d in enumerate(databases)
    ]
    for c in chats:
        c.say("book")
        c.say(c.option_number("Okafor"))
        assert "1. 10:00 AM" in c.say("1")

    barrier = threading.Barrier(PATIENTS)

    def pick(c: Chat) -> str:
        barrier.wait()
        return c.say("1")

    try:
        with ThreadPoolExecutor(PATIENTS) as pool:
            answers = list(pool.map(pick, chats))
    finally:
        for d in databases:
            d.dispose()

    winners = [a for a in answers if "full name" in a]
    losers = [a for a in answers if "just taken" in a]
    assert len(winners) == 1, answers
    assert len(losers) == PATIENTS - 1, answers
    assert all("10:20 AM" in a for a in losers)  # the nearest alternative is offered
    with db.transaction() as session:
        at_ten = session.scalars(
            select(Appointment).where(Appointment.status.in_(["held", "booked"]))
        ).all()
    assert [a.start_at.isoformat() for a in at_ten] == ["2026-04-14T14:00:00+00:00"]
