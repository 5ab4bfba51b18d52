"""Status callbacks arrive out of order; the outbox keeps the furthest one."""

from __future__ import annotations

import pytest

from core import outbox
from core.clock import FixedClock
from core.db import Database
from core.messages import Reply
from core.models import OutboxMessage


def sent_row(db: Database, clock: FixedClock, sid: str) -> int:
    with db.transaction() as session:
        row = outbox.enqueue(
            session, channel="sms", address="+15555550123", reply=Reply("hi"), now=clock.now()
        )
        session.flush()
        outbox.mark_sent(session, row.id, provider_message_id=sid, now=clock.now())
        return row.id


def status(db: Database, row_id: int) -> tuple[str, str | None]:
    with db.transaction() as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        return row.status, row.error


@pytest.mark.parametrize(
    ("callbacks", "final"),
    [
        (["queued", "sent", "delivered"], "delivered"),
        (["delivered", "sent", "queued"], "delivered"),
        (["read", "delivered", "sent"], "read"),
        (["sent", "undelivered", "delivered"], "undelivered"),
        (["SENT", "Delivered"], "delivered"),
    ],
)
def test_status_never_moves_backwards(
    db: Database, clock: FixedClock, callbacks: list[str], final: str
) -> None:
    row_id = sent_row(db, clock, "SM" + "1" * 32)
    for callback in callbacks:
        with db.transaction() as session:
            outbox.record_delivery(session, "SM" + "1" * 32, callback)
    assert status(db, row_id)[0] == final


def test_unknown_sid_or_status_changes_nothing(db: Database, clock: FixedClock) -> None:
    row_id = sent_row(db, clock, "SM" + "2" * 32)
    with db.transaction() as session:
        assert not outbox.record_delivery(session, "SM" + "9" * 32, "delivered")
        assert not outbox.record_delivery(session, "SM" + "2" * 32, "exploded")
    assert status(db, row_id) == ("sent", None)


def test_failure_keeps_the_error_code(db: Database, clock: FixedClock) -> None:
    row_id = sent_row(db, clock, "SM" + "3" * 32)
    with db.transaction() as session:
        assert outbox.record_delivery(session, "SM" + "3" * 32, "undelivered", error_code="30003")
    assert status(db, row_id) == ("undelivered", "provider error 30003")
