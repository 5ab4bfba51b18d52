"""The outbox dispatcher against a real database (both backends)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bots.dispatcher import Dispatcher
from bots.scheduler import TICK_JOBS, run_tick
from channels.base import SendError
from core import outbox
from core.clock import FixedClock
from core.db import Database
from core.messages import Option, Reply
from core.models import OutboxMessage

ANA = "+15555550123"
BEN = "+15555550124"


class FakeChannel:
    """Records every send; fails while ``failures`` has entries left."""

    def __init__(self, name: str = "sms", failures: list[Exception] | None = None) -> None:
        self.name = name
        self.calls: list[tuple[str, Reply]] = []
        self.failures = list(failures or [])

    async def send(self, address: str, reply: Reply) -> str | None:
        self.calls.append((address, reply))
        if self.failures:
            raise self.failures.pop(0)
        return f"{self.name}-{len(self.calls)}"


def enqueue(db: Database, clock: FixedClock, address: str, text: str, channel: str = "sms") -> int:
    with db.transaction() as session:
        row = outbox.enqueue(
            session,
            channel=channel,
            address=address,
            reply=Reply(text, options=(Option("Menu", "menu"),)),
            now=clock.now(),
        )
        session.flush()
        return row.id


def rows(db: Database) -> dict[int, OutboxMessage]:
    with db.transaction() as session:
        return {row.id: row for row in session.scalars(select(OutboxMessage))}


def test_each_pending_row_is_sent_once(db: Database, clock: FixedClock) -> None:
    ids = [enqueue(db, clock, ANA, "one"), enqueue(db, clock, BEN, "two")]
    ids.append(enqueue(db, clock, ANA, "three"))
    sms = FakeChannel()
    dispatcher = Dispatcher(db, {"sms": sms}, clock)

    assert asyncio.run(dispatcher.run_once()) == 3
    assert asyncio.run(dispatcher.run_once()) == 0

    assert sorted(reply.text for _, reply in sms.calls) == ["one", "three", "two"]
    to_ana = [reply.text for address, reply in sms.calls if address == ANA]
    assert to_ana == ["one", "three"]
    assert sms.calls[0][1].options == (Option("Menu", "menu"),)
    stored = rows(db)
    for outbox_id in ids:
        assert stored[outbox_id].status == "sent"
        assert stored[outbox_id].provider_message_id
        assert stored[outbox_id].sent_at == clock.now()


def test_address_filter_sends_only_that_conversation(db: Database, clock: FixedClock) -> None:
    enqueue(db, clock, ANA, "for ana")
    enqueue(db, clock, BEN, "for ben")
    sms = FakeChannel()
    dispatcher = Dispatcher(db, {"sms": sms}, clock)
    assert asyncio.run(dispatcher.run_once(address=ANA)) == 1
    assert [address for address, _ in sms.calls] == [ANA]
    assert {row.address: row.status for row in rows(db).values()} == {
        ANA: "sent",
        BEN: "pending",
    }


def test_a_raising_channel_retries_with_growing_delay_then_fails(
    db: Database, clock: FixedClock
) -> None:
    outbox_id = enqueue(db, clock, ANA, "hello")
    sms = FakeChannel(failures=[RuntimeError("provider down")] * 10)
    dispatcher = Dispatcher(db, {"sms": sms}, clock, max_attempts=4)

    delays = []
    for attempt in range(1, 4):
        assert asyncio.run(dispatcher.run_once()) == 1
        row = rows(db)[outbox_id]
        assert row.status == "pending"
        assert row.attempts == attempt
        assert "provider down" in (row.error or "")
        delays.append(row.next_attempt_at - clock.now())
        # Not due yet: nothing is claimed.
        assert asyncio.run(dispatcher.run_once()) == 0
        clock.set(row.next_attempt_at)

    assert delays[0] < delays[1] < delays[2]
    assert asyncio.run(dispatcher.run_once()) == 1
    row = rows(db)[outbox_id]
    assert row.status == "failed"
    assert row.attempts == 4
    assert len(sms.calls) == 4
    clock.advance(timedelta(days=1))
    assert asyncio.run(dispatcher.run_once()) == 0


def test_a_send_failing_three_times_is_failed_and_never_retried(
    db: Database, clock: FixedClock
) -> None:
    assert outbox.MAX_ATTEMPTS == 3
    outbox_id = enqueue(db, clock, ANA, "hello")
    sms = FakeChannel(failures=[RuntimeError("provider down")] * 10)
    dispatcher = Dispatcher(db, {"sms": sms}, clock)

    for attempt in (1, 2):
        assert asyncio.run(dispatcher.run_once()) == 1
        row = rows(db)[outbox_id]
        assert (row.status, row.attempts) == ("pending", attempt)
        clock.set(row.next_attempt_at)
    assert asyncio.run(dispatcher.run_once()) == 1
    row = rows(db)[outbox_id]
    assert (row.status, row.attempts) == ("failed", 3)
    for _ in range(3):
        clock.advance(timedelta(days=1))
        assert asyncio.run(dispatcher.run_once()) == 0
    assert len(sms.calls) == 3
    assert rows(db)[outbox_id].status == "failed"


def test_a_retry_after_puts_the_next_try_no_sooner(db: Database, clock: FixedClock) -> None:
    outbox_id = enqueue(db, clock, ANA, "hello")
    sms = FakeChannel(failures=[SendError("429", retryable=True, retry_after=600)])
    asyncio.run(Dispatcher(db, {"sms": sms}, clock).run_once())
    row = rows(db)[outbox_id]
    assert row.status == "pending" and row.attempts == 1  # a 429 counts as a try
    assert row.next_attempt_at == clock.now() + timedelta(seconds=600)


def test_a_permanent_send_error_fails_at_once(db: Database, clock: FixedClock) -> None:
    outbox_id = enqueue(db, clock, ANA, "hello")
    sms = FakeChannel(failures=[SendError("not a mobile number", retryable=False)])
    assert asyncio.run(Dispatcher(db, {"sms": sms}, clock).run_once()) == 1
    row = rows(db)[outbox_id]
    assert row.status == "failed"
    assert "not a mobile number" in (row.error or "")


def test_after_a_failure_later_messages_to_that_address_wait_their_turn(
    db: Database, clock: FixedClock
) -> None:
    first = enqueue(db, clock, ANA, "first")
    second = enqueue(db, clock, ANA, "second")
    other = enqueue(db, clock, BEN, "other")
    sms = FakeChannel(failures=[RuntimeError("timeout")])
    dispatcher = Dispatcher(db, {"sms": sms}, clock)

    assert asyncio.run(dispatcher.run_once()) == 3
    stored = rows(db)
    assert stored[first].status == "pending" and stored[first].attempts == 1
    assert stored[second].status == "pending" and stored[second].attempts == 0
    assert stored[second].next_attempt_at == stored[first].next_attempt_at
    assert stored[other].status == "sent"
    assert [reply.text for _, reply in sms.calls].count("second") == 0

    clock.set(stored[first].next_attempt_at)
    assert asyncio.run(dispatcher.run_once()) == 2
    to_ana = [reply.text for address, reply in sms.calls if address == ANA]
    assert to_ana == ["first", "first", "second"]
    assert {row.status for row in rows(db).values()} == {"sent"}


def test_rows_of_channels_without_a_sender_are_left_alone_by_default(
    db: Database, clock: FixedClock
) -> None:
    outbox_id = enqueue(db, clock, "12345", "hi", channel="telegram")
    assert asyncio.run(Dispatcher(db, {"sms": FakeChannel()}, clock).run_once()) == 0
    assert rows(db)[outbox_id].status == "pending"


def test_unknown_channel_is_failed_without_retry_when_claimed(
    db: Database, clock: FixedClock
) -> None:
    outbox_id = enqueue(db, clock, "12345", "hi", channel="telegram")
    sms = FakeChannel()
    dispatcher = Dispatcher(db, {"sms": sms}, clock, claim_unknown=True)
    assert asyncio.run(dispatcher.run_once()) == 1
    row = rows(db)[outbox_id]
    assert row.status == "failed"
    assert "no sender" in (row.error or "")
    assert sms.calls == []


def test_a_slow_channel_times_out_and_is_retried(db: Database, clock: FixedClock) -> None:
    outbox_id = enqueue(db, clock, ANA, "hello")

    class Slow:
        name = "sms"

        async def send(self, address: str, reply: Reply) -> str | None:
            await asyncio.sleep(5)
            return "late"

    dispatcher = Dispatcher(db, {"sms": Slow()}, clock, send_timeout_s=0.05)
    assert asyncio.run(dispatcher.run_once()) == 1
    row = rows(db)[outbox_id]
    assert row.status == "pending"
    assert "TimeoutError" in (row.error or "")


@pytest.mark.timeout(30)
def test_run_forever_sends_and_stops_when_told(db: Database, clock: FixedClock) -> None:
    enqueue(db, clock, ANA, "one")
    sms = FakeChannel()
    dispatcher = Dispatcher(db, {"sms": sms}, clock)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher.run_forever(0.01, stop))
        for _ in range(500):
            if sms.calls:
                break
            await asyncio.sleep(0.01)
        enqueue(db, clock, ANA, "two")
        for _ in range(500):
            if len(sms.calls) == 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
    assert [reply.text for _, reply in sms.calls] == ["one", "two"]


# -- the scheduler's tick ---------------------------------------------------------------


def test_tick_releases_expired_holds_and_survives_a_failing_job(
    db: Database, clock: FixedClock
) -> None:
    from core import scheduling
    from core.demo import seed_demo
    from core.models import Appointment, Practitioner
    from core.patients import find_or_create_patient_by_phone

    with db.transaction() as session:
        seed_demo(session, "America/New_York")
        practitioner = session.scalars(select(Practitioner).order_by(Practitioner.id)).first()
        assert practitioner is not None
        patient = find_or_create_patient_by_phone(
            session, practitioner.clinic_id, ANA, "sms", now=clock.now()
        )
        slot = scheduling.free_slots(session, practitioner, now=clock.now(), limit=1)[0]
        held = scheduling.hold_slot(
            session,
            practitioner=practitioner,
            patient_id=patient.id,
            start=slot.start,
            now=clock.now(),
            hold_minutes=10,
            channel="sms",
        )
        session.flush()
        held_id = held.id

    def broken(session: object, now: object) -> object:
        raise RuntimeError("boom")

    jobs = [("broken", broken), *TICK_JOBS]
    assert run_tick(db, clock, jobs)["release_expired_holds"] == 0
    clock.advance(timedelta(minutes=11))
    results = run_tick(db, clock, jobs)
    assert isinstance(results["broken"], RuntimeError)
    assert results["release_expired_holds"] == 1
    with db.transaction() as session:
        appointment = session.get(Appointment, held_id)
        assert appointment is not None
        assert appointment.status == "cancelled"


def test_a_provider_opt_out_marks_the_identity(db: Database, clock: FixedClock) -> None:
    from core.models import ChannelIdentity

    outbox_id = enqueue(db, clock, ANA, "hello")
    refusing = FakeChannel(failures=[SendError("21610", retryable=False, opted_out=True)])
    asyncio.run(Dispatcher(db, {"sms": refusing}, clock).run_once())
    assert rows(db)[outbox_id].status == "failed"
    with db.transaction() as session:
        identity = session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.address == ANA)
        ).one()
        assert identity.opted_out_at == clock.now()


@pytest.mark.parametrize(
    ("purpose", "opted_out", "consents", "sent"),
    [
        ("reply", False, {}, True),
        ("reminder", False, {}, True),
        ("reminder", False, {"reminder": False}, False),
        ("clinical", True, {}, False),
        ("reply", True, {}, False),
        ("consent", True, {}, True),  # the opt-out confirmation itself
        ("marketing", False, {}, False),  # never by default
        ("marketing", False, {"marketing": True}, True),
    ],
)
def test_only_consented_purposes_are_sent(
    db: Database,
    clock: FixedClock,
    purpose: str,
    opted_out: bool,
    consents: dict[str, bool],
    sent: bool,
) -> None:
    from core.models import ChannelIdentity

    with db.transaction() as session:
        session.add(
            ChannelIdentity(
                channel="sms",
                address=ANA,
                created_at=clock.now(),
                opted_out_at=clock.now() if opted_out else None,
                consents=consents,
            )
        )
        row = outbox.enqueue(
            session, channel="sms", address=ANA, reply=Reply("x", purpose=purpose), now=clock.now()
        )
        session.flush()
        outbox_id = row.id
    sms = FakeChannel()
    asyncio.run(Dispatcher(db, {"sms": sms}, clock).run_once())
    assert bool(sms.calls) == sent
    assert rows(db)[outbox_id].status == ("sent" if sent else "suppressed")
