"""Outbox dispatcher: claims due replies, sends them, records the outcome.

Each pass is two short transactions with the sending in between, so no
database transaction (or SQLite write lock) is held while a provider is
called. Claims are leased (``core.outbox.claim_due``), so several dispatchers
can run against one database without sending a row twice.

Messages to one address are sent in order; when one fails, the ones after it
in the same pass are put back to go after it, so a patient never reads a
later message before an earlier one.

Sends keep to per-sender rates (``bots.ratelimit``): before each send the
dispatcher books a slot with its ``RateLimiter`` and waits for it. A send
whose slot is further off than ``rate_horizon_s`` is not waited for in this
pass: the row (and the ones after it to that address) is put back untried,
due when its slot comes, so a pass never outlasts the claim's lease and a
slow channel never holds up the others for long.

Retries: every failure counts toward ``max_attempts`` (3 by default), a
provider's 429 included; when the provider says how long to wait
(``SendError.retry_after``), the next try is no sooner than that, and the
sender's rate keys are held back for as long so the other rows wait too.

Outages: a send failing because the provider or the way to it is down (a
5xx, a timeout, no connection: ``SendError.outage``) does not use up the
message's tries. The channel is paused (1 s, doubling to 30 s while it stays
down) and its rows are put back untried; when the pause ends one row goes
first as a probe, and the rest follow only once it gets through. So an outage
of any length costs one request per pause, loses nothing, keeps each
conversation in order, and the backlog drains as soon as the provider is back.
A message still unsent ``give_up`` after it was queued is marked failed.

A worker stopping (SIGTERM) finishes its pass; what it still holds after
``stop`` gives up waiting is handed back (``release_claims``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from bots.ratelimit import Limit, RateLimiter, RateLimits
from channels.base import Channel, SendError
from channels.render import render_text
from core import consent, notices, outbox, telemetry
from core.clock import Clock
from core.db import Database
from core.logs import get_logger
from core.messages import Reply
from core.models import ChannelIdentity, OutboxMessage
from core.patients import mark_opted_out

log = get_logger(__name__)

# Channels to the care team, not to patients (the doctors' Telegram bot):
# patient consent and opt-outs do not apply to them.
STAFF_CHANNELS = frozenset({"doctor_telegram"})


@dataclass(frozen=True)
class _Job:
    outbox_id: int
    channel: str
    address: str
    reply: Reply
    # WhatsApp only: within 24 h of the patient's last message (free text allowed),
    # and whether the same number may be texted by SMS instead.
    window_open: bool = True
    sms_allowed: bool = False


@dataclass
class _Outcome:
    job: _Job
    sent: bool = False
    provider_message_id: str | None = None
    error: str | None = None
    retryable: bool = True
    opted_out: bool = False
    sent_via: str | None = None
    deferred: bool = False  # not tried: an earlier message to the address failed or waits
    not_before: datetime | None = None  # deferred for the rate limit / provider's retry_after
    retry_after: float | None = None  # the provider asked us to wait this long (429)
    outage: bool = False  # the provider was down: retried without using up a try


# While a provider is down its channel pauses this long, doubling per failed probe.
OUTAGE_PAUSE_S = (1.0, 30.0)
GIVE_UP = timedelta(hours=24)


_dispatchers = itertools.count(1)


def worker_name() -> str:
    """``host:pid:n``, who holds an outbox claim (``outbox.claimed_by``): the
    n-th dispatcher of that process, so two in one process never take each
    other's claims for their own."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{next(_dispatchers)}"


@dataclass
class _Outage:
    """A channel's provider is down: no sends before ``until`` (monotonic),
    then one probe at a time until a send gets through."""

    failures: int = 0
    until: float = 0.0
    probing: bool = False


class Dispatcher:
    """Sends outbox rows through the channel named by each row.

    By default only rows of channels in ``senders`` are claimed, so a process
    without (say) Twilio credentials leaves SMS rows for a process that has
    them (``telemed chat`` drains its own conversation this way while
    ``telemed serve`` runs). With ``claim_unknown=True`` every due row is
    claimed and rows of a channel without a sender are marked failed at once.

    ``rate_limits`` (``RateLimits.from_settings(settings)`` in the service)
    sets the per-sender send rates; without it sends are not spaced.
    ``concurrency`` bounds the sends in flight (rows of one address always
    go one after another, in order). ``lease`` is how long a claim lasts
    (a pass must end inside it: ``send_timeout_s`` plus the rate horizon);
    ``give_up`` how long a message is retried while its provider is down.
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
        concurrency: int = 64,
        rate_limits: RateLimits | None = None,
        limiter: RateLimiter | None = None,
        rate_horizon_s: float = 3.0,
        whatsapp_template_sid: str | None = None,
        lease: timedelta = outbox.LEASE,
        give_up: timedelta = GIVE_UP,
        worker: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.senders = dict(senders)
        self.clock = clock
        self.claim_unknown = claim_unknown
        self.max_attempts = max_attempts
        self.send_timeout_s = send_timeout_s
        self.concurrency = max(1, concurrency)
        self.rate_limits = rate_limits
        self.limiter = limiter if limiter is not None else RateLimiter()
        self.rate_horizon_s = rate_horizon_s
        self.whatsapp_template_sid = whatsapp_template_sid
        self.lease = lease
        self.give_up = give_up
        self.worker = worker or worker_name()
        self._monotonic = monotonic
        self._outages: dict[str, _Outage] = {}
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
        finished: list[_Outcome] = []
        news = asyncio.Event()

        async def send(group: list[_Job]) -> None:
            finished.extend(await self._send_group(group, gate))  # one address's, together
            news.set()

        # Outcomes are written while the other sends go on, a batch per
        # transaction (whatever finished meanwhile): a worker killed mid-pass
        # leaves unrecorded only what was in flight or had just finished, and
        # each unrecorded send is sent again after the lease.
        sending = asyncio.gather(*(send(group) for group in groups.values()))
        while True:
            waiter = asyncio.ensure_future(news.wait())
            await asyncio.wait({sending, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            news.clear()
            batch, finished[:] = finished[:], []
            if batch:
                await asyncio.to_thread(self._record, batch)
            if sending.done() and not finished:
                break
        sending.result()  # a failure in sending, if any, after recording the rest
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

    def release_claims(self) -> int:
        """Hand back the rows this worker still holds (it is stopping)."""
        with self.db.transaction() as session:
            return outbox.release_claims(session, self.worker, now=self.clock.now())

    def _claim(self, limit: int, address: str | None) -> list[_Job]:
        channels = None if self.claim_unknown else sorted(self.senders)
        paused = self._paused_channels()
        if channels is not None and paused:
            # A channel whose provider is down is not claimed until its pause ends
            # (with claim_unknown its rows are claimed and put back in _send_group).
            channels = [c for c in channels if c not in paused]
            if not channels:
                return []
        with self.db.transaction() as session:
            now = self.clock.now()
            rows = outbox.claim_due(
                session,
                now=now,
                limit=limit,
                channels=channels,
                address=address,
                lease=self.lease,
                worker=self.worker,
            )
            if not rows:
                return []
            identities = _identities(session, rows)
            kept = _drop_unconsented(rows, identities)
            notices.prefetch(session, (row.payload for row in kept))
            jobs = []
            for row in kept:
                reply = _reply(session, row, now, identities)
                if reply is None:
                    row.status, row.claimed_until, row.error = (
                        "suppressed",
                        None,
                        "no longer applies",
                    )
                    continue
                window = (
                    _whatsapp_window(row.address, identities, now)
                    if row.channel == "whatsapp"
                    else ()
                )
                jobs.append(_Job(row.id, row.channel, row.address, reply, *window))
            return jobs

    def _record(self, outcomes: list[_Outcome]) -> None:
        with self.db.transaction() as session:
            now = self.clock.now()
            retry_at: dict[tuple[str, str], datetime] = {}
            sent = [
                (o.job.outbox_id, o.provider_message_id, o.sent_via) for o in outcomes if o.sent
            ]
            outbox.mark_sent_many(session, sent, now=now)
            for outcome in outcomes:
                job = outcome.job
                key = (job.channel, job.address)
                if outcome.sent:
                    continue
                if outcome.deferred:
                    at = outcome.not_before or retry_at.get(key, now)
                    _release(session, job.outbox_id, at=at)
                elif outcome.outage:
                    at = outcome.not_before or now
                    status = outbox.mark_unavailable(
                        session,
                        job.outbox_id,
                        error=outcome.error or "provider unavailable",
                        now=now,
                        retry_at=at,
                        give_up=self.give_up,
                    )
                    retry_at[key] = at
                    if status == "failed":
                        log.warning(
                            "outbox_gave_up",
                            outbox_id=job.outbox_id,
                            channel=job.channel,
                            after_hours=round(self.give_up.total_seconds() / 3600, 1),
                        )
                else:
                    if outcome.opted_out and job.channel not in STAFF_CHANNELS:
                        mark_opted_out(session, job.channel, job.address, now=now)
                    status = outbox.mark_failed(
                        session,
                        job.outbox_id,
                        error=outcome.error or "send failed",
                        now=now,
                        retryable=outcome.retryable,
                        max_attempts=self.max_attempts,
                        not_before=(
                            now + timedelta(seconds=outcome.retry_after)
                            if outcome.retry_after
                            else None
                        ),
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
        """Send one address's rows in order; after a failure or a put-off, the
        rest wait their turn. The gate is held only while a send is in flight,
        not while waiting for a rate slot."""
        outcomes: list[_Outcome] = []
        stopped = False
        not_before: datetime | None = None
        for job in jobs:
            if stopped:
                outcomes.append(_Outcome(job, deferred=True, not_before=not_before))
                continue
            outage = self._outages.get(job.channel)
            if outage is not None and (outage.probing or self._monotonic() < outage.until):
                # Its provider is down, or another row is probing it: back after the pause.
                stopped, not_before = True, self._pause_end(outage)
                outcomes.append(_Outcome(job, deferred=True, not_before=not_before))
                continue
            probe = outage is not None
            if outage is not None:
                outage.probing = True  # this send is the probe; the others wait for it
            limits = self._limits(job)
            cost = self._cost(job) if limits else 1
            if limits:
                wait = self.limiter.reserve(limits, cost=cost, horizon_s=self.rate_horizon_s)
                if wait is None:
                    if outage is not None:
                        outage.probing = False  # no probe went out after all
                    # Its slot is too far off for this pass: back when it comes.
                    delay = timedelta(seconds=self.limiter.wait_s(limits))
                    stopped, not_before = True, self.clock.now() + delay
                    outcomes.append(_Outcome(job, deferred=True, not_before=not_before))
                    continue
                if wait > 0:
                    await asyncio.sleep(wait)
            async with gate:
                # The provider may have gone down while this send waited its turn.
                down = None if probe else self._outages.get(job.channel)
                if down is None:
                    if limits:
                        self.limiter.started(limits, cost=cost)
                    outcome = await self._send(job)
            if down is not None:
                stopped, not_before = True, self._pause_end(down)
                outcomes.append(_Outcome(job, deferred=True, not_before=not_before))
                continue
            if limits:
                self.limiter.done(limits, cost=cost)
            if outcome.retry_after and limits:
                self.limiter.back_off(limits, outcome.retry_after)
            self._note_outcome(job.channel, outcome)
            telemetry.send_result(
                job.channel, outcome.sent, None if outcome.sent else _failure_code(outcome)
            )
            stopped = not outcome.sent
            outcomes.append(outcome)
        return outcomes

    # -- outages ----------------------------------------------------------------

    def _note_outcome(self, channel: str, outcome: _Outcome) -> None:
        """Open, lengthen or close the channel's pause after a send."""
        outage = self._outages.get(channel)
        if outcome.outage:
            if outage is None:
                outage = self._outages[channel] = _Outage()
                log.warning("provider_unavailable", channel=channel, error=outcome.error)
            outage.failures += 1
            outage.probing = False
            low, high = OUTAGE_PAUSE_S
            outage.until = self._monotonic() + min(high, low * 2 ** (outage.failures - 1))
            outcome.not_before = self._pause_end(outage)
        elif outage is not None:
            del self._outages[channel]
            if outcome.sent:
                log.warning("provider_recovered", channel=channel, failed_sends=outage.failures)

    def _pause_end(self, outage: _Outage) -> datetime:
        wait = max(0.0, outage.until - self._monotonic())
        return self.clock.now() + timedelta(seconds=wait)

    def _paused_channels(self) -> set[str]:
        now = self._monotonic()
        return {name for name, o in self._outages.items() if o.probing or now < o.until}

    def _limits(self, job: _Job) -> list[Limit]:
        if self.rate_limits is None:
            return []
        return self.rate_limits.for_send(job.channel, job.address)

    def _cost(self, job: _Job) -> int:
        """Provider requests the reply takes (an SMS split in parts is several)."""
        bodies = getattr(self.senders.get(job.channel), "bodies", None)
        if not callable(bodies):
            return 1
        try:
            return max(1, len(bodies(job.reply)))
        except Exception:  # noqa: BLE001 - send reports the real problem
            return 1

    async def _send(self, job: _Job) -> _Outcome:
        sender = self.senders.get(job.channel)
        if sender is None:
            return _Outcome(job, error=f"no sender for channel {job.channel!r}", retryable=False)
        via: str | None = None
        if job.channel == "whatsapp" and not job.window_open:
            # WhatsApp delivers free text only within 24 h of the patient's last
            # message: an approved template instead, else SMS to the same number.
            template = getattr(sender, "send_template", None)
            if self.whatsapp_template_sid and template is not None:
                # The numbered options travel in the one variable too: "Reply 1" must
                # mean something to the patient reading the template.
                variables = {"1": render_text(job.reply)[:1000]}
                call = template(job.address, self.whatsapp_template_sid, variables)
                via = "template"
            elif job.sms_allowed and "sms" in self.senders:
                call = self.senders["sms"].send(job.address, job.reply)
                via = "sms"
            else:
                reason = (
                    "whatsapp window closed; no template (TELEMED_WHATSAPP_TEMPLATE_SID) or SMS"
                )
                return _Outcome(job, error=reason, retryable=False)
        else:
            call = sender.send(job.address, job.reply)
        try:
            provider_id = await asyncio.wait_for(call, timeout=self.send_timeout_s)
        except SendError as exc:
            return _Outcome(
                job,
                error=f"SendError: {exc}",
                retryable=exc.retryable,
                opted_out=exc.opted_out,
                retry_after=_retry_after(exc),
                outage=exc.outage,
            )
        except TimeoutError:
            error = f"TimeoutError: no answer in {self.send_timeout_s:g}s"
            return _Outcome(job, error=error, outage=True)
        except Exception as exc:  # noqa: BLE001 - any provider error is a retryable failure
            return _Outcome(job, error=f"{type(exc).__name__}: {exc}")
        return _Outcome(job, sent=True, provider_message_id=provider_id, sent_via=via)


WHATSAPP_WINDOW = timedelta(hours=24)


def _reply(
    session: Session,
    row: OutboxMessage,
    now: datetime,
    identities: dict[tuple[str, str], ChannelIdentity],
) -> Reply | None:
    """The row's message; a scheduled notification is written now, from the
    appointment as it is (``None``: it no longer applies)."""
    if "notification" in row.payload:
        return notices.render(session, row.payload, now, identities)
    return outbox.reply_of(row)


def _identities(
    session: Session, rows: list[OutboxMessage]
) -> dict[tuple[str, str], ChannelIdentity]:
    """The identities the claimed rows go to, and for WhatsApp rows the SMS
    identity of the same number too (the fallback), in one query."""
    channels = {r.channel for r in rows} | (
        {"sms"} if any(r.channel == "whatsapp" for r in rows) else set()
    )
    found = session.scalars(
        select(ChannelIdentity)
        .where(
            ChannelIdentity.address.in_({r.address for r in rows}),
            ChannelIdentity.channel.in_(channels),
        )
        .options(selectinload(ChannelIdentity.patient))  # a notification's language
    )
    return {(i.channel, i.address): i for i in found}


def _drop_unconsented(
    rows: list[OutboxMessage], identities: dict[tuple[str, str], ChannelIdentity]
) -> list[OutboxMessage]:
    """Rows the recipient has not consented to (opted out, or a purpose they
    refused) are marked ``suppressed`` and never sent."""
    kept = []
    for row in rows:
        if row.channel in STAFF_CHANNELS or consent.allows(
            identities.get((row.channel, row.address)), row.purpose
        ):
            kept.append(row)
        else:
            row.status, row.claimed_until, row.error = "suppressed", None, "no consent"
    return kept


def _whatsapp_window(
    address: str, identities: dict[tuple[str, str], ChannelIdentity], now: datetime
) -> tuple[bool, bool]:
    """(window open, SMS to that number allowed) for a WhatsApp address."""
    whatsapp = identities.get(("whatsapp", address))
    seen = whatsapp.last_inbound_at if whatsapp is not None else None
    sms = identities.get(("sms", address))
    return (
        seen is not None and now - seen < WHATSAPP_WINDOW,
        sms is None or sms.opted_out_at is None,
    )


_TWILIO_ERROR = re.compile(r"twilio error (\d+) \(HTTP (\d+)\)")
_TELEGRAM_STATUS = re.compile(r"Telegram (\d{3})\b")


def _failure_code(outcome: _Outcome) -> str:
    """A short label for a failed send (``core.telemetry`` bounds the values)."""
    error = outcome.error or ""
    if found := _TWILIO_ERROR.search(error):
        code, status = found.groups()
        return f"http_{status}" if int(status) >= 500 else f"twilio_{code}"
    if error.startswith("TimeoutError") or "timed out" in error:
        return "timeout"
    if "unreachable" in error or "network error" in error:
        return "unreachable"
    if outcome.opted_out:
        return "opted_out"
    if found := _TELEGRAM_STATUS.search(error):
        return f"http_{found.group(1)}"
    return "rejected" if not outcome.retryable else "other"


def _retry_after(exc: SendError) -> float | None:
    """The wait a 429 asked for, in seconds (PTB may give a timedelta)."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and value > 0:
        return float(value)
    return None


def _release(session: Session, outbox_id: int, *, at: datetime) -> None:
    """Put a claimed row back untried: its claim does not count as an attempt."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id)
        .values(
            status="pending",
            claimed_until=None,
            claimed_by=None,
            next_attempt_at=at,
            attempts=OutboxMessage.attempts - 1,
        )
    )
