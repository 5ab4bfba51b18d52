"""Reminder ticks at scale: planning, and claiming + enqueuing what is due.

A temporary SQLite database is migrated and seeded with the demo clinic; then
--appointments booked appointments (08:00-18:00 in the clinic's zone, over
--days days, spread over as many extra practitioners as keep them from
overlapping) for --patients patients, each with an SMS identity, are written
with bulk inserts. ``plan_appointments`` plans them all, batch after batch,
at midnight of the first day (Python per appointment: its rate is printed,
not judged). Then, over that first day:

(a) one ``enqueue_due`` at the end of the busiest hour (the hours before it
    already ticked), repeated in transactions that are rolled back;
(b) a full day of ticks, hourly and then every --tick-seconds, each tick one
    committed transaction, from the same starting point.

Prints counts, seconds and reminders/s of enqueue time against the target;
asserts nothing. With --postgres URL the same runs against PostgreSQL too, in
a database of its own created on that server (CREATEDB needed) and dropped
afterwards (nothing else is touched).

    .venv/bin/python bench/reminders.py [--appointments 100000] [--days 30]
    .venv/bin/python bench/reminders.py --postgres postgresql+psycopg://postgres@127.0.0.1/scratch
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scratch import postgres_database, sqlite_database  # noqa: E402 (bench/ is on the path when a bench runs)

from core import reminders  # noqa: E402
from core.db import Database  # noqa: E402
from core.demo import seed_demo  # noqa: E402
from core.models import (  # noqa: E402
    Appointment,
    ChannelIdentity,
    Notification,
    OutboxMessage,
    Patient,
    Practitioner,
    table_of,
)
from core.settings import Settings  # noqa: E402

TARGET_RATE = 20_000.0  # reminders enqueued per second of enqueue time, SQLite
TZ = "America/New_York"
# Midnight before a Monday, away from DST changes; the measured day starts here.
DAY_START = datetime(2026, 4, 13, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
OPEN_HOUR, CLOSE_HOUR = 8, 18
SLOT = timedelta(minutes=15)
SLOTS_PER_DAY = (CLOSE_HOUR - OPEN_HOUR) * 4
VIDEO_EVERY = 10  # every 10th visit is a video visit (one more notification)
CHUNK = 10_000  # rows per bulk insert
PLAN_BATCH = 5_000  # the scheduler's own batch size
REPEATS = 5


# -- the database ------------------------------------------------------------------


def bulk(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), CHUNK):
        session.execute(insert(table_of(model)), rows[i : i + CHUNK])


def fill(db: Database, appointments: int, patients: int, days: int) -> None:
    """Demo clinic, practitioners enough for ``appointments`` in ``days`` without
    overlaps (PostgreSQL's exclusion constraint), patients with SMS identities."""
    per_practitioner = days * SLOTS_PER_DAY
    practitioners = -(-appointments // per_practitioner)
    booked_at = DAY_START - timedelta(days=40)
    zone = ZoneInfo(TZ)
    with db.transaction() as session:
        clinic = seed_demo(session, TZ)
        clinic_id = clinic.id
        bulk(
            session,
            Practitioner,
            [
                {
                    "clinic_id": clinic_id,
                    "name": f"Dr Bench {n}",
                    "specialty": "General practice",
                    "timezone": TZ,
                    "slot_minutes": 15,
                }
                for n in range(practitioners)
            ],
        )
        practitioner_ids = list(
            session.scalars(
                select(Practitioner.id)
                .where(Practitioner.name.startswith("Dr Bench"))
                .order_by(Practitioner.id)
            )
        )
        bulk(
            session,
            Patient,
            [
                {"clinic_id": clinic_id, "name": f"Patient {n}", "created_at": booked_at}
                for n in range(patients)
            ],
        )
        patient_ids = list(session.scalars(select(Patient.id).order_by(Patient.id)))
        bulk(
            session,
            ChannelIdentity,
            [
                {
                    "channel": "sms",
                    "address": f"+1555{n:07d}",
                    "patient_id": pid,
                    "created_at": booked_at,
                }
                for n, pid in enumerate(patient_ids)
            ],
        )
        rows = []
        for n in range(appointments):
            # Round-robin over practitioners, then slots: every day and hour of
            # the month gets its share, and no practitioner is double-booked.
            k = n // practitioners
            day, slot = divmod(k, SLOTS_PER_DAY)
            local = DAY_START.astimezone(zone).replace(tzinfo=None) + timedelta(
                days=day, hours=OPEN_HOUR
            )
            start = local.replace(tzinfo=zone).astimezone(UTC) + slot * SLOT
            rows.append(
                {
                    "clinic_id": clinic_id,
                    "practitioner_id": practitioner_ids[n % practitioners],
                    "patient_id": patient_ids[n % patients],
                    "start_at": start,
                    "end_at": start + SLOT,
                    "status": "booked",
                    "visit_type": "video" if n % VIDEO_EVERY == 0 else "in_person",
                    "channel": "sms",
                    "created_at": booked_at,
                    "updated_at": booked_at,
                }
            )
        bulk(session, Appointment, rows)
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def plan(db: Database, settings: Settings, now: datetime) -> tuple[int, float]:
    planned, elapsed = 0, 0.0
    while True:
        started = time.perf_counter()
        with db.transaction() as session:
            done = reminders.plan_appointments(
                session, reminders.policies(session, settings), now, limit=PLAN_BATCH
            )
        elapsed += time.perf_counter() - started
        if not done:
            return planned, elapsed
        planned += done


def reset_day(db: Database) -> None:
    """Back to just after planning: what a day of ticks queued or skipped is planned again."""
    n = table_of(Notification)
    with db.transaction() as session:
        session.execute(delete(table_of(OutboxMessage)))
        session.execute(
            update(n)
            .where(or_(n.c.status == "queued", n.c.reason == "missed_window"))
            .values(status="planned", reason=None, claim=None, queued_at=None)
        )


def due_by_hour(db: Database) -> Counter[int]:
    n = Notification
    with db.transaction() as session:
        rows = session.scalars(
            select(n.due_at).where(
                n.status == "planned",
                n.due_at >= DAY_START,
                n.due_at < DAY_START + timedelta(days=1),
            )
        )
        return Counter(int((due - DAY_START) // timedelta(hours=1)) for due in rows)


# -- the measurements --------------------------------------------------------------


def tick(db: Database, now: datetime) -> tuple[int, float]:
    """One committed ``enqueue_due`` transaction, as the scheduler runs it."""
    started = time.perf_counter()
    with db.transaction() as session:
        queued = reminders.enqueue_due(session, now)
    return queued, time.perf_counter() - started


def rolled_back(db: Database, now: datetime) -> tuple[int, float]:
    """One ``enqueue_due``, flushed and timed, then undone."""
    with db.engine.connect() as conn:
        transaction = conn.begin()
        try:
            session = Session(bind=conn)
            started = time.perf_counter()
            queued = reminders.enqueue_due(session, now)
            session.flush()
            elapsed = time.perf_counter() - started
        finally:
            transaction.rollback()
    return queued, elapsed


def rate(count: int, seconds: float) -> str:
    value = count / seconds if seconds else 0.0
    return f"{value:10,.0f}/s"


def verdict(count: int, seconds: float, sqlite: bool) -> str:
    if not sqlite:
        return ""
    met = seconds and count / seconds >= TARGET_RATE
    return "  target met" if met else f"  BELOW target {TARGET_RATE:,.0f}/s"


def run(db: Database, args: argparse.Namespace) -> None:
    sqlite = db.dialect == "sqlite"
    settings = Settings(database_url=db.url, clinic_timezone=TZ)

    started = time.perf_counter()
    fill(db, args.appointments, args.patients, args.days)
    print(f"  fill: {args.appointments:,} appointments in {time.perf_counter() - started:.1f} s")

    planned, seconds = plan(db, settings, DAY_START - timedelta(minutes=1))
    with db.transaction() as session:
        statuses = dict(
            session.execute(
                select(Notification.status, func.count()).group_by(Notification.status)
            ).all()
        )
    rows = sum(statuses.values())
    print(
        f"  plan_appointments: {planned:,} appointments in {seconds:.1f} s "
        f"({rate(planned, seconds).strip()} appointments, {rate(rows, seconds).strip()} "
        f"notification rows); rows by status {statuses}"
    )

    hours = due_by_hour(db)
    hour = args.hour if args.hour is not None else max(hours, key=lambda h: (hours[h], -h))
    print(f"  day 1: {sum(hours.values()):,} notifications due; hour {hour}: {hours[hour]:,}")

    # (a) the hours before ``hour`` tick for real, then ``hour``'s tick is timed.
    for h in range(hour):
        tick(db, DAY_START + timedelta(hours=h + 1))
    at = DAY_START + timedelta(hours=hour + 1)
    runs = [rolled_back(db, at) for _ in range(REPEATS)]
    count = runs[0][0]
    best = min(s for _, s in runs)
    median = statistics.median(s for _, s in runs)
    print(
        f"  (a) one tick at the end of hour {hour}: {count:,} enqueued (the rest past "
        f"send_by) in "
        f"{median * 1000:.1f} ms median, {best * 1000:.1f} ms best of {REPEATS} "
        f"-> {rate(count, median)}{verdict(count, median, sqlite)}"
    )

    runs_of_day = [("hourly", timedelta(hours=1))]
    if args.tick_seconds:
        runs_of_day.append((f"every {args.tick_seconds:g} s", timedelta(seconds=args.tick_seconds)))
    for label, step in runs_of_day:
        reset_day(db)
        ticks, total, elapsed, slowest = 0, 0, 0.0, 0.0
        at, end = DAY_START + step, DAY_START + timedelta(days=1)
        while at <= end and elapsed < args.budget:
            queued, seconds = tick(db, at)
            ticks, total, elapsed = ticks + 1, total + queued, elapsed + seconds
            slowest = max(slowest, seconds)
            at += step
        whole = ticks == (end - DAY_START) // step
        print(
            f"  (b) {'full day' if whole else 'part of the day'}, {label} ({ticks:,} ticks): "
            f"{total:,} enqueued, {elapsed:.2f} s of ticks ({elapsed / ticks * 1000:.1f} ms a "
            f"tick, slowest {slowest * 1000:.1f} ms) -> {rate(total, elapsed)}"
            # With a handful of rows a tick, the rate measures the empty tick's
            # fixed cost, not queuing speed: the per-tick time is the figure.
            + (verdict(total, elapsed, sqlite) if step >= timedelta(hours=1) else "  (per tick)")
        )
        if not whole:
            # Stopped at the budget: what a whole day of these ticks would cost.
            day_ticks = (end - DAY_START) // step
            print(
                f"      stopped at the {args.budget:g} s budget at {at - step - DAY_START} "
                f"into the day; {day_ticks:,} ticks at this pace would take "
                f"{elapsed / ticks * day_ticks:,.0f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--appointments", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=None, help="default: half the visits")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--hour", type=int, default=None, help="hour of day 1 for (a); default the busiest"
    )
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=15.0,
        help="simulated seconds between ticks in the second full-day run (0: hourly only)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds of ticks a full-day run may take before it stops and extrapolates",
    )
    parser.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL")
    args = parser.parse_args()
    args.patients = args.patients or max(1, args.appointments // 2)
    if args.appointments > args.days * SLOTS_PER_DAY * 10_000:
        parser.error("too many appointments for the slots")

    print(
        f"reminders bench: {args.appointments:,} appointments over {args.days} days, "
        f"{args.patients:,} patients, offsets {Settings().reminder_offsets}, "
        f"quiet {Settings().quiet_hours}"
    )
    print("SQLite (temporary file)")
    with sqlite_database() as db:
        run(db, args)
    if args.postgres:
        print(f"PostgreSQL ({make_url(args.postgres).render_as_string(hide_password=True)})")
        with postgres_database(args.postgres, "bench_reminders") as db:
            run(db, args)


if __name__ == "__main__":
    main()
