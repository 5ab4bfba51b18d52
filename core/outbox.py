"""Transactional outbox: replies are rows written with the state change that
caused them; a dispatcher claims and sends them afterwards.

Claiming is atomic (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single
writer on SQLite) and leased, so several dispatchers never send one row twice
and a crashed dispatcher's rows come back after the lease. Each claim records
the worker that holds it (``claimed_by``), so an operator can see whose rows
are in flight and a stopping worker can hand back its own.

Order per conversation: a row is claimed only when no earlier row to the same
channel and address is still waiting (pending, backing off, or in flight with
another worker), so a patient never reads a later message before an earlier
one, whichever worker sends them and however long a provider is down.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session

from core.messages import Reply
from core.models import OutboxMessage, table_of

# A send failing this many times is marked failed and never tried again.
MAX_ATTEMPTS = 3
LEASE = timedelta(seconds=60)


def enqueue(
    session: Session,
    *,
    channel: str,
    address: str,
    reply: Reply,
    now: datetime,
    conversation_id: int | None = None,
    inbound_id: int | None = None,
) -> OutboxMessage:
    row = OutboxMessage(
        channel=channel,
        address=address,
        conversation_id=conversation_id,
        inbound_id=inbound_id,
        payload=reply.to_json(),
        purpose=reply.purpose,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    return row


def enqueue_many(
    session: Session,
    *,
    channel: str,
    address: str,
    replies: Sequence[Reply],
    now: datetime,
    conversation_id: int | None = None,
    inbound_id: int | None = None,
) -> None:
    """Queue a message's replies with one INSERT (the hot path: no ORM objects)."""
    if not replies:
        return
    session.execute(
        insert(table_of(OutboxMessage)),
        [
            {
                "channel": channel,
                "address": address,
                "conversation_id": conversation_id,
                "inbound_id": inbound_id,
                "payload": reply.to_json(),
                "purpose": reply.purpose,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for reply in replies
        ],
    )


def claim_due(
    session: Session,
    *,
    now: datetime,
    limit: int = 100,
    channels: Collection[str] | None = None,
    address: str | None = None,
    lease: timedelta = LEASE,
    worker: str | None = None,
) -> list[OutboxMessage]:
    """Take up to ``limit`` due rows, oldest first, and lease them to ``worker``.

    A due row behind an earlier waiting row to the same address is left for a
    later pass (see the module docstring); fewer than ``limit`` rows may come
    back while more are due.
    """
    due = or_(
        (OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now),
        (OutboxMessage.status == "sending") & (OutboxMessage.claimed_until <= now),
    )
    query = select(OutboxMessage).where(due).order_by(OutboxMessage.id).limit(limit)
    if channels is not None:
        query = query.where(OutboxMessage.channel.in_(list(channels)))
    if address is not None:
        query = query.where(OutboxMessage.address == address)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = _first_in_line(session, list(session.scalars(query)))
    for row in rows:
        row.status = "sending"
        row.claimed_until = now + lease
        row.claimed_by = worker
        row.attempts += 1
    session.flush()
    return rows


WAITING = ("pending", "sending")


def _first_in_line(session: Session, rows: list[OutboxMessage]) -> list[OutboxMessage]:
    """The rows with no earlier waiting row to their address outside ``rows``.

    On PostgreSQL a row another worker is claiming right now (locked, so
    skipped above) still reads as waiting here, and holds back the rows after it.
    """
    if not rows:
        return rows
    o = OutboxMessage
    blockers = session.execute(
        select(o.channel, o.address, func.min(o.id))
        .where(
            o.address.in_({row.address for row in rows}),
            o.status.in_(WAITING),
            o.id.not_in([row.id for row in rows]),
        )
        .group_by(o.channel, o.address)
    )
    first_blocked = {(channel, address): first for channel, address, first in blockers}
    return [
        row for row in rows if row.id < first_blocked.get((row.channel, row.address), row.id + 1)
    ]


def mark_sent(
    session: Session, outbox_id: int, *, provider_message_id: str | None, now: datetime
) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id)
        .values(
            status="sent",
            provider_message_id=provider_message_id,
            sent_at=now,
            claimed_until=None,
            claimed_by=None,
        )
    )


def mark_sent_many(
    session: Session,
    sent: Sequence[tuple[int, str | None, str | None]],
    *,
    now: datetime,
) -> None:
    """``mark_sent`` for many ``(outbox_id, provider_message_id, sent_via)`` in one statement."""
    if not sent:
        return
    session.execute(
        update(OutboxMessage),
        [
            {
                "id": outbox_id,
                "status": "sent",
                "provider_message_id": provider_message_id,
                "sent_via": sent_via,
                "sent_at": now,
                "claimed_until": None,
                "claimed_by": None,
            }
            for outbox_id, provider_message_id, sent_via in sent
        ],
    )


def mark_failed(
    session: Session,
    outbox_id: int,
    *,
    error: str,
    now: datetime,
    retryable: bool = True,
    max_attempts: int = MAX_ATTEMPTS,
    not_before: datetime | None = None,
) -> str:
    """Schedule a retry with growing delay, or give up; returns the new status.

    Every failure counts toward ``max_attempts``, a provider's 429 included;
    ``not_before`` (now + the 429's retry_after) puts the retry no sooner.
    """
    row = _unclaimed(session, outbox_id, error)
    if row is None:
        return "missing"
    if retryable and row.attempts < max_attempts:
        row.status = "pending"
        retry_at = now + timedelta(seconds=min(2**row.attempts * 5, 3600))
        row.next_attempt_at = max(retry_at, not_before) if not_before else retry_at
    else:
        row.status = "failed"
    return row.status


def mark_unavailable(
    session: Session,
    outbox_id: int,
    *,
    error: str,
    now: datetime,
    retry_at: datetime,
    give_up: timedelta,
) -> str:
    """The provider was down (5xx, timed out, unreachable): try again at
    ``retry_at`` without using up one of the row's tries, until the row is
    ``give_up`` old; returns the new status."""
    row = _unclaimed(session, outbox_id, error)
    if row is None:
        return "missing"
    if now - row.created_at >= give_up:
        row.status = "failed"
    else:
        row.status = "pending"
        row.attempts = max(0, row.attempts - 1)
        row.next_attempt_at = retry_at
    return row.status


def _unclaimed(session: Session, outbox_id: int, error: str) -> OutboxMessage | None:
    """The row, its claim ended and the failure noted (None: it is gone)."""
    row = session.get(OutboxMessage, outbox_id)
    if row is not None:
        row.error = error[:200]
        row.claimed_until = None
        row.claimed_by = None
    return row


def release_claims(session: Session, worker: str, *, now: datetime) -> int:
    """A stopping worker hands back the rows it still holds (a send cut short
    may have reached the provider: the same as its lease running out, sooner)."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == "sending", OutboxMessage.claimed_by == worker)
        .values(status="pending", claimed_until=None, claimed_by=None, next_attempt_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def reply_of(row: OutboxMessage) -> Reply:
    return Reply.from_json(row.payload)


# Provider delivery statuses, in the order they can follow one another.
# Callbacks arrive out of order; a status never moves back to a lower rank.
_RANK = {
    "pending": 0,
    "sending": 1,
    "accepted": 2,
    "scheduled": 2,
    "queued": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}


def record_delivery(
    session: Session, provider_message_id: str, status: str, *, error_code: str | None = None
) -> bool:
    """Apply a provider's status callback; False when it is unknown or stale."""
    status = status.strip().lower()
    if status not in _RANK:
        return False
    row = session.scalars(
        select(OutboxMessage).where(OutboxMessage.provider_message_id == provider_message_id)
    ).first()
    if row is None or _RANK[status] <= _RANK.get(row.status, 0):
        return False
    row.status = status
    if error_code:
        row.error = f"provider error {error_code}"[:200]
    return True
