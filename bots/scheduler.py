"""Periodic ticks (APScheduler 3 on the app's event loop).

APScheduler only ticks: every ``TELEMED_SCHEDULER_TICK_SECONDS`` each tick
job runs in its own short transaction and claims its due work atomically, so
any number of processes may run the scheduler. The jobs, in order: free
expired holds, mark no-shows, offer freed slots to the waitlist, plan new
appointments' reminders, then queue everything due (``core.reminders``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.orm import Session

from core.clock import Clock
from core.db import Database
from core.logs import get_logger
from core.settings import Settings

log = get_logger(__name__)

TickJob = Callable[[Session, datetime], object]


def release_expired_holds(session: Session, now: datetime) -> object:
    """Free slots whose hold ran out before the patient confirmed."""
    from core import scheduling

    return scheduling.release_expired_holds(session, now=now)


# (name, job): each runs once per tick, in its own transaction. These need no
# settings; ``tick_jobs(settings)`` is the full list the service runs.
TICK_JOBS: list[tuple[str, TickJob]] = [
    ("release_expired_holds", release_expired_holds),
]


def tick_jobs(settings: Settings) -> list[tuple[str, TickJob]]:
    from core import reminders, waitlist

    def mark_no_shows(session: Session, now: datetime) -> object:
        return reminders.mark_no_shows(session, reminders.policies(session, settings), now)

    def offer_freed_slots(session: Session, now: datetime) -> object:
        return waitlist.offer_freed_slots(session, settings, now)

    def plan_reminders(session: Session, now: datetime) -> object:
        return reminders.plan_appointments(session, reminders.policies(session, settings), now)

    def enqueue_due(session: Session, now: datetime) -> object:
        return reminders.enqueue_due(session, now)

    def expire_prescriptions(session: Session, now: datetime) -> object:
        from core import prescriptions

        return prescriptions.expire_overdue(session, now)

    return [
        *TICK_JOBS,
        ("expire_prescriptions", expire_prescriptions),
        ("mark_no_shows", mark_no_shows),
        ("offer_freed_slots", offer_freed_slots),
        ("plan_reminders", plan_reminders),
        ("enqueue_due", enqueue_due),
    ]


def run_tick(
    db: Database, clock: Clock, jobs: Sequence[tuple[str, TickJob]] | None = None
) -> dict[str, object]:
    """Run every tick job once; one failing job does not stop the others."""
    results: dict[str, object] = {}
    for name, job in TICK_JOBS if jobs is None else jobs:
        try:
            with db.transaction() as session:
                results[name] = job(session, clock.now())
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning("tick_job_failed", job=name, error_type=type(exc).__name__)
            results[name] = exc
    return results


class Tick:
    """The scheduler's job: ``run_tick``, one at a time, with a way to wait for
    the one under way. APScheduler's asyncio executor cannot wait for a job on
    shutdown: it cancels the job's future and logs the CancelledError with a
    traceback, so ``stop_scheduler`` pauses, waits here, then shuts down."""

    def __init__(
        self, db: Database, clock: Clock, jobs: Sequence[tuple[str, TickJob]] | None
    ) -> None:
        self.db, self.clock, self.jobs = db, clock, jobs
        self._running = threading.Lock()

    def __call__(self) -> dict[str, object]:
        with self._running:
            return run_tick(self.db, self.clock, self.jobs)

    def wait_idle(self, timeout: float) -> bool:
        """True once no tick is running (False after ``timeout`` seconds)."""
        if not self._running.acquire(timeout=timeout):
            return False
        self._running.release()
        return True


def create_scheduler(
    db: Database,
    clock: Clock,
    *,
    tick_seconds: float,
    jobs: Sequence[tuple[str, TickJob]] | None = None,
) -> AsyncIOScheduler:
    """A scheduler with one interval job running the tick; call ``start()`` on a
    running loop, and ``stop_scheduler`` to stop it.

    The tick is a plain function, so APScheduler runs it in the loop's default
    executor and the database work never blocks the event loop.
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        Tick(db, clock, jobs),
        "interval",
        seconds=tick_seconds,
        id="tick",
        name="telemed tick",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        next_run_time=datetime.now(UTC),
    )
    return scheduler


async def stop_scheduler(scheduler: AsyncIOScheduler, timeout: float = 30.0) -> None:
    """No new tick; the one under way (a short transaction per job) finishes;
    then shut down, with nothing left for APScheduler to cancel."""
    scheduler.pause()
    job = scheduler.get_job("tick")
    tick = job.func if job is not None else None
    if isinstance(tick, Tick) and not await asyncio.to_thread(tick.wait_idle, timeout):
        log.warning("scheduler_tick_still_running", timeout_s=timeout)
    scheduler.shutdown(wait=False)
