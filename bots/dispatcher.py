"""Outbox dispatcher: claims due replies, sends them, records the outcome.

Each pass is two short transactions with the sending in between, so no
database transaction (or SQLite write lock) is held while a provider is
called. Claims are leased (``core.outbox.claim_due``), so several dispatchers
can run against one database without sending a row twice.

Messages to one address are sent in order; when one fails, the ones after it
in the same pass are put back to go after it, so a patient never reads a
later message before an earlier one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from channels.base import Channel, SendError
from core import outbox
from core.clock import Clock
from core.db import Database
from core.logs import get_logger
from core.messages import Reply
from core.models import OutboxMessage
from core.patients import mark_opted_out

log = get_logger(__name__)


@dataclass(frozen=True)
class _Job:
    outbox_id: int
    channel: str
    address: str
    reply: Reply


@dataclass
class _Outcome:
    job: _Job
    sent: bool = False
    provider_message_id: str | None = None
    error: str | None = None
    retryable: bool = True
    opted_out: bool = False
    deferred: bool = False  # not tried: an earlier message to the address failed


class Dispatcher:
    """Sends outbox rows through the channel named by each row.

    By default only rows of channels in ``senders`` are claimed, so a process
    without (say) Twilio credentials leaves SMS rows for a process that has
    them (``telemed chat`` drains its own conversation this way while
    ``telemed serve`` runs). With ``claim_unknown=True`` every due row is
    claimed and rows of a channel without a sender are marked failed at once.
    """

    def __init__(
        self,
        db: Database,
        senders: Mapping[str, Channel],
        clock: Clock,
        *,
        claim_unknown: bool = False,
        max_attempts: int = outbox.MAX_ATTEMPTS,
        send_timeout_s: float = 15.0,
        concurrency: int = 8,
    ) -> None:
        self.db = db
        self.senders = dict(senders)
        self.clock = clock
        self.claim_unknown = claim_unknown
        self.max_attempts = max_attempts
        self.send_timeout_s = send_timeout_s
        self.concurrency = max(1, concurrency)
        self._wake = asyncio.Event()

    async def run_once(self, limit: int = 100, address: str | None = None) -> int:
        """One pass; returns how many rows were claimed (sent, retried or failed)."""
        if not self.senders and not self.claim_unknown:
            return 0
        jobs = await asyncio.to_thread(self._claim, limit, address)
        if not jobs:
            return 0
        groups: dict[tuple[str, str], list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.channel, job.address), []).append(job)
        gate = asyncio.Semaphore(self.concurrency)
        results = await asyncio.gather(
            *(self._send_group(group, gate) for group in groups.values())
        )
        outcomes = [outcome for group in results for outcome in group]
        await asyncio.to_thread(self._record, outcomes)
        return len(jobs)

    async def run_forever(
        self, interval_s: float, stop_event: asyncio.Event, *, limit: int = 100
    ) -> None:
        """Pass after pass until ``stop_event`` is set; a full batch goes again at once."""
        while not stop_event.is_set():
            try:
                claimed = await self.run_once(limit=limit)
            except Exception as exc:  # noqa: BLE001 - the loop must survive a bad pass
                # The type only: driver messages can carry SQL parameters (bodies, numbers).
                log.warning("dispatcher_pass_failed", error_type=type(exc).__name__)
                claimed = 0
            if claimed >= limit:
                await asyncio.sleep(0)
                continue
            await self._idle(stop_event, interval_s)

    def nudge(self) -> None:
        """New rows are waiting (a webhook just queued replies): pass now, not
        at the next interval. Call it from the event loop's thread."""
        self._wake.set()

    async def _idle(self, stop_event: asyncio.Event, interval_s: float) -> None:
        waiters = [
            asyncio.ensure_future(stop_event.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            self._wake.clear()

    # -- the two transactions -------------------------------------------------

    def _claim(self, limit: int, address: str | None) -> list[_Job]:
        channels = None if self.claim_unknown else sorted(self.senders)
        with self.db.transaction() as session:
            rows = outbox.claim_due(
                session, now=self.clock.now(), limit=limit, channels=channels, address=address
            )
            return [_Job(row.id, row.channel, row.address, outbox.reply_of(row)) for row in rows]

    def _record(self, outcomes: list[_Outcome]) -> None:
        with self.db.transaction() as session:
            now = self.clock.now()
            retry_at: dict[tuple[str, str], datetime] = {}
            for outcome in outcomes:
                job = outcome.job
                key = (job.channel, job.address)
                if outcome.sent:
                    outbox.mark_sent(
                        session,
                        job.outbox_id,
                        provider_message_id=outcome.provider_message_id,
                        now=now,
                    )
                elif outcome.deferred:
                    _release(session, job.outbox_id, at=retry_at.get(key, now))
                else:
                    if outcome.opted_out:
                        mark_opted_out(session, job.channel, job.address, now=now)
                    status = outbox.mark_failed(
                        session,
                        job.outbox_id,
                        error=outcome.error or "send failed",
                        now=now,
                        retryable=outcome.retryable,
                        max_attempts=self.max_attempts,
                    )
                    row = session.get(OutboxMessage, job.outbox_id)
                    if status == "pending" and row is not None:
                        retry_at[key] = row.next_attempt_at
                    log.warning(
                        "outbox_send_failed",
                        outbox_id=job.outbox_id,
                        channel=job.channel,
                        status=status,
                        error_type=(outcome.error or "").split(":", 1)[0],
                    )

    # -- sending ----------------------------------------------------------------

    async def _send_group(self, jobs: list[_Job], gate: asyncio.Semaphore) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        async with gate:
            failed = False
            for job in jobs:
                if failed:
                    outcomes.append(_Outcome(job, deferred=True))
                    continue
                outcome = await self._send(job)
                failed = not outcome.sent
                outcomes.append(outcome)
        return outcomes

    async def _send(self, job: _Job) -> _Outcome:
        sender = self.senders.get(job.channel)
        if sender is None:
            return _Outcome(job, error=f"no sender for channel {job.channel!r}", retryable=False)
        try:
            provider_id = await asyncio.wait_for(
                sender.send(job.address, job.reply), timeout=self.send_timeout_s
            )
        except SendError as exc:
            return _Outcome(
                job, error=f"SendError: {exc}", retryable=exc.retryable, opted_out=exc.opted_out
            )
        except TimeoutError:
            return _Outcome(job, error=f"TimeoutError: no answer in {self.send_timeout_s:g}s")
        except Exception as exc:  # noqa: BLE001 - any provider error is a retryable failure
            return _Outcome(job, error=f"{type(exc).__name__}: {exc}")
        return _Outcome(job, sent=True, provider_message_id=provider_id)


def _release(session: Session, outbox_id: int, *, at: datetime) -> None:
    """Put a claimed row back untried: its claim does not count as an attempt."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id)
        .values(
            status="pending",
            claimed_until=None,
            next_attempt_at=at,
            attempts=OutboxMessage.attempts - 1,
        )
    )
