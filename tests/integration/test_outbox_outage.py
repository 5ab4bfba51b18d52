"""Provider outages, order per conversation and claims held by workers
(the outbox dispatcher against a real database, both backends)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from bots.dispatcher import OUTAGE_PAUSE_S, Dispatcher
from channels.base import SendError
from core import outbox, telemetry
from core.clock import FixedClock
from core.db import Database
from core.models import OutboxMessage
from tests.integration.test_dispatcher import ANA, BEN, FakeChannel, enqueue, rows

DOWN = SendError("twilio error 20500 (HTTP 503)", outage=True)


class Ticks:
    """A monotonic clock the test moves by hand (the dispatcher's pauses)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dispatcher_for(
    db: Database, clock: FixedClock, sms: FakeChannel, ticks: Ticks, **kw: object
) -> Dispatcher:
    return Dispatcher(db, {"sms": sms}, clock, monotonic=ticks, **kw)  # type: ignore[arg-type]


def test_an_outage_uses_up_no_tries_and_pauses_the_channel(db: Database, clock: FixedClock) -> None:
    first = enqueue(db, clock, ANA, "one")
    other = enqueue(db, clock, BEN, "two")
    sms = FakeChannel(failures=[DOWN] * 20)
    ticks = Ticks()
    dispatcher = dispatcher_for(db, clock, sms, ticks, concurrency=1)
    failures = {"channel": "sms", "code": "http_503"}
    failed_before = telemetry.REGISTRY.get_sample_value("telemed_send_failures_total", failures)

    asyncio.run(dispatcher.run_once())
    stored = rows(db)
    # One request failed; the other row was put back untried behind the pause.
    assert len(sms.calls) == 1
    assert {stored[first].status, stored[other].status} == {"pending"}
    assert stored[first].attempts == 0 and stored[other].attempts == 0
    assert "503" in (stored[first].error or "")

    # While paused nothing is even claimed, however often the worker passes.
    for _ in range(5):
        assert asyncio.run(dispatcher.run_once()) == 0
    assert len(sms.calls) == 1

    # Each failed probe doubles the pause, up to the cap; still no try used up.
    pauses = []
    for _ in range(8):
        clock.advance(timedelta(seconds=60))
        ticks.now += 60
        asyncio.run(dispatcher.run_once())
        pauses.append(dispatcher._outages["sms"].until - ticks.now)
    assert pauses[:3] == [2.0, 4.0, 8.0]
    assert max(pauses) == OUTAGE_PAUSE_S[1]
    assert len(sms.calls) == 9  # one probe per pause, not one request per row
    failed = telemetry.REGISTRY.get_sample_value("telemed_send_failures_total", failures)
    assert (failed or 0) - (failed_before or 0) == 9
    assert {row.attempts for row in rows(db).values()} == {0}

    # The provider is back: the probe gets through and the backlog follows at once.
    sms.failures.clear()
    clock.advance(timedelta(seconds=60))
    ticks.now += 60
    for _ in range(3):
        asyncio.run(dispatcher.run_once())
    assert {row.status for row in rows(db).values()} == {"sent"}
    assert "sms" not in dispatcher._outages


def test_while_down_later_messages_keep_their_place(db: Database, clock: FixedClock) -> None:
    early = enqueue(db, clock, ANA, "first")
    sms = FakeChannel(failures=[DOWN])
    ticks = Ticks()
    dispatcher = dispatcher_for(db, clock, sms, ticks)
    asyncio.run(dispatcher.run_once())
    assert rows(db)[early].status == "pending"

    # A new message to the same patient, due now, arrives while "first" waits out
    # the pause: another worker (no pause of its own) must not send it first.
    late = enqueue(db, clock, ANA, "second")
    fresh = dispatcher_for(db, clock, FakeChannel(), Ticks())
    assert asyncio.run(fresh.run_once()) == 0
    assert rows(db)[late].status == "pending"

    clock.advance(timedelta(seconds=5))
    ticks.now += 5
    asyncio.run(dispatcher.run_once())
    asyncio.run(dispatcher.run_once())
    assert [reply.text for _, reply in sms.calls] == ["first", "first", "second"]


def test_a_row_in_flight_with_another_worker_holds_back_the_next(
    db: Database, clock: FixedClock
) -> None:
    first = enqueue(db, clock, ANA, "first")
    second = enqueue(db, clock, ANA, "second")
    with db.transaction() as session:
        claimed = outbox.claim_due(session, now=clock.now(), limit=1, worker="host-a:1")
    assert [row.id for row in claimed] == [first]

    other = Dispatcher(db, {"sms": FakeChannel()}, clock, worker="host-b:2")
    assert asyncio.run(other.run_once()) == 0  # "second" waits for "first"
    stored = rows(db)
    assert stored[first].claimed_by == "host-a:1"
    assert stored[second].status == "pending"


def test_a_message_down_too_long_is_given_up(db: Database, clock: FixedClock) -> None:
    outbox_id = enqueue(db, clock, ANA, "hello")
    clock.advance(timedelta(hours=2))
    sms = FakeChannel(failures=[DOWN])
    dispatcher = dispatcher_for(db, clock, sms, Ticks(), give_up=timedelta(hours=1))
    asyncio.run(dispatcher.run_once())
    assert rows(db)[outbox_id].status == "failed"


def test_a_timeout_is_an_outage(db: Database, clock: FixedClock) -> None:
    outbox_id = enqueue(db, clock, ANA, "hello")

    class Hanging(FakeChannel):
        async def send(self, address: str, reply: object) -> str | None:
            await asyncio.sleep(5)
            return None

    dispatcher = Dispatcher(db, {"sms": Hanging()}, clock, send_timeout_s=0.05)
    asyncio.run(dispatcher.run_once())
    row = rows(db)[outbox_id]
    assert (row.status, row.attempts) == ("pending", 0)
    assert "TimeoutError" in (row.error or "")
    assert "sms" in dispatcher._outages


def test_a_stopping_worker_hands_back_only_its_own_claims(db: Database, clock: FixedClock) -> None:
    mine = enqueue(db, clock, ANA, "mine")
    theirs = enqueue(db, clock, BEN, "theirs")
    with db.transaction() as session:
        outbox.claim_due(session, now=clock.now(), limit=1, worker="me:1")
        outbox.claim_due(session, now=clock.now(), limit=1, worker="them:2")
    dispatcher = Dispatcher(db, {"sms": FakeChannel()}, clock, worker="me:1")
    assert dispatcher.release_claims() == 1
    stored = rows(db)
    assert (stored[mine].status, stored[mine].claimed_by) == ("pending", None)
    assert (stored[theirs].status, stored[theirs].claimed_by) == ("sending", "them:2")


def test_a_crashed_workers_rows_come_back_after_the_lease(db: Database, clock: FixedClock) -> None:
    outbox_id = enqueue(db, clock, ANA, "hello")
    with db.transaction() as session:
        outbox.claim_due(session, now=clock.now(), worker="dead:1", lease=timedelta(seconds=10))
    sms = FakeChannel()
    dispatcher = Dispatcher(db, {"sms": sms}, clock, worker="alive:2")
    assert asyncio.run(dispatcher.run_once()) == 0
    clock.advance(timedelta(seconds=11))
    assert asyncio.run(dispatcher.run_once()) == 1
    row = rows(db)[outbox_id]
    assert (row.status, row.claimed_by, row.attempts) == ("sent", None, 2)


def test_failed_and_sent_rows_hold_nothing_back(db: Database, clock: FixedClock) -> None:
    dead = enqueue(db, clock, ANA, "undeliverable")
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == dead).values(status="failed")
        )
    later = enqueue(db, clock, ANA, "later")
    sms = FakeChannel()
    assert asyncio.run(Dispatcher(db, {"sms": sms}, clock).run_once()) == 1
    assert rows(db)[later].status == "sent"
