"""Benchmark: the next free slots of a busy practitioner.

    .venv/bin/python bench/slots.py                      # temporary SQLite file
    .venv/bin/python bench/slots.py --postgres URL       # same against PostgreSQL

Builds one practitioner (New York, weekdays 07:00-21:00, 10-minute slots,
90-day horizon) with 5,000 booked appointments spread over the next 90 days
(gaps left at random, plus a few holds, some expired, and a day off), then
times ``free_slots(limit=10)`` from many different ``now`` values. Prints
figures against the target (p50 <= 5 ms on SQLite); asserts nothing.

On PostgreSQL the database is migrated if needed and the rows the benchmark
adds are deleted afterwards; do not point it at a database in use.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time as timer
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from core import migrate
from core.db import Database, make_engine
from core.models import (
    Appointment,
    AvailabilityException,
    AvailabilityRule,
    Clinic,
    Patient,
    Practitioner,
)
from core.scheduling import free_slots, is_slot_free, nearest_free_slots

TZ = "America/New_York"
START = datetime(2026, 4, 13, 4, tzinfo=UTC)  # Monday 00:00 in New York
HORIZON_DAYS = 90
SLOT_MINUTES = 10
DAY_HOURS = (time(7), time(21))
TARGET_P50_MS = 5.0


def grid(days: int) -> list[datetime]:
    """Every slot start of the practitioner's weekday hours over ``days`` days."""
    zone = ZoneInfo(TZ)
    first = START.astimezone(zone).date()
    starts: list[datetime] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        moment = datetime.combine(day, DAY_HOURS[0], zone).astimezone(UTC)
        end = datetime.combine(day, DAY_HOURS[1], zone).astimezone(UTC)
        while moment + timedelta(minutes=SLOT_MINUTES) <= end:
            starts.append(moment)
            moment += timedelta(minutes=SLOT_MINUTES)
    return starts


def seed(db: Database, appointments: int, rng: random.Random) -> tuple[int, int]:
    """Returns (clinic id, practitioner id)."""
    with db.transaction() as s:
        clinic = Clinic(name="Bench clinic", timezone=TZ)
        s.add(clinic)
        s.flush()
        p = Practitioner(
            clinic_id=clinic.id,
            name="Dr Bench",
            specialty="General practice",
            timezone=TZ,
            slot_minutes=SLOT_MINUTES,
            min_notice_minutes=60,
            horizon_days=HORIZON_DAYS,
        )
        s.add(p)
        s.flush()
        for weekday in range(5):
            s.add(
                AvailabilityRule(
                    practitioner_id=p.id,
                    weekday=weekday,
                    start_time=DAY_HOURS[0],
                    end_time=DAY_HOURS[1],
                )
            )
        off = START + timedelta(days=15)
        s.add(
            AvailabilityException(
                practitioner_id=p.id, kind="off", start_at=off, end_at=off + timedelta(days=1)
            )
        )
        patients = [Patient(clinic_id=clinic.id, name=f"Bench {i}") for i in range(50)]
        s.add_all(patients)
        s.flush()
        slots = grid(HORIZON_DAYS)
        if appointments > len(slots):
            raise SystemExit(f"only {len(slots)} slots in {HORIZON_DAYS} days")
        chosen = sorted(rng.sample(slots, appointments))
        rows = [
            {
                "clinic_id": clinic.id,
                "practitioner_id": p.id,
                "patient_id": patients[i % len(patients)].id,
                "start_at": start,
                "end_at": start + timedelta(minutes=SLOT_MINUTES),
                "status": "booked",
                "created_at": START,
                "updated_at": START,
            }
            for i, start in enumerate(chosen)
        ]
        free = sorted(set(slots) - set(chosen))
        for i, start in enumerate(rng.sample(free, 30)):  # holds: half of them expired
            rows.append(
                {
                    "clinic_id": clinic.id,
                    "practitioner_id": p.id,
                    "patient_id": patients[i].id,
                    "start_at": start,
                    "end_at": start + timedelta(minutes=SLOT_MINUTES),
                    "status": "held",
                    "hold_expires_at": START + timedelta(days=200 if i % 2 else -1),
                    "created_at": START,
                    "updated_at": START,
                }
            )
        s.execute(insert(Appointment), rows)
        return clinic.id, p.id


def cleanup(db: Database, clinic_id: int, pid: int) -> None:
    with db.transaction() as s:
        s.execute(delete(Appointment).where(Appointment.practitioner_id == pid))
        s.execute(delete(AvailabilityRule).where(AvailabilityRule.practitioner_id == pid))
        s.execute(delete(AvailabilityException).where(AvailabilityException.practitioner_id == pid))
        s.execute(delete(Practitioner).where(Practitioner.id == pid))
        s.execute(delete(Patient).where(Patient.clinic_id == clinic_id))
        s.execute(delete(Clinic).where(Clinic.id == clinic_id))


def measure(
    db: Database,
    pid: int,
    nows: list[datetime],
    call: Callable[[Session, Practitioner, datetime], object],
) -> list[float]:
    """Milliseconds per call; each call in its own transaction, practitioner loaded first."""
    times: list[float] = []
    for now in nows:
        with db.transaction() as s:
            p = s.get(Practitioner, pid)
            assert p is not None
            began = timer.perf_counter()
            call(s, p, now)
            times.append((timer.perf_counter() - began) * 1000)
    return times


def report(label: str, times: list[float], target: float | None = None) -> None:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    line = f"  {label:<44} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   max {ordered[-1]:6.2f} ms"
    if target is not None:
        verdict = "met" if p50 <= target else "MISSED"
        line += f"   target p50 <= {target:g} ms: {verdict}"
    print(line)


def run(url: str, backend: str, runs: int, appointments: int, seed_value: int) -> None:
    rng = random.Random(seed_value)
    migrate.upgrade(make_engine(url))
    db = Database(url)
    began = timer.perf_counter()
    clinic_id, pid = seed(db, appointments, rng)
    print(
        f"{backend}: 1 practitioner, {appointments} booked appointments + 30 holds over "
        f"{HORIZON_DAYS} days ({SLOT_MINUTES}-minute slots, weekdays "
        f"{DAY_HOURS[0]:%H:%M}-{DAY_HOURS[1]:%H:%M} {TZ}); seeded in "
        f"{timer.perf_counter() - began:.1f} s; {runs} runs per line"
    )
    try:
        # Different "now" values over the first 60 days, at any minute of the day.
        nows = [START + timedelta(minutes=rng.randrange(60 * 24 * 60)) for _ in range(runs)]
        measure(db, pid, nows[:20], lambda s, p, now: free_slots(s, p, now=now, limit=10))
        report(
            "free_slots(limit=10), 90-day horizon",
            measure(db, pid, nows, lambda s, p, now: free_slots(s, p, now=now, limit=10)),
            TARGET_P50_MS,
        )
        report(
            "free_slots(limit=200)",
            measure(db, pid, nows, lambda s, p, now: free_slots(s, p, now=now, limit=200)),
        )
        report(
            "free_slots one day window (limit=10)",
            measure(
                db,
                pid,
                nows,
                lambda s, p, now: free_slots(
                    s, p, now=now, start=now + timedelta(days=3), end=now + timedelta(days=4)
                ),
            ),
        )
        report(
            "nearest_free_slots(limit=3), a week ahead",
            measure(
                db,
                pid,
                nows,
                lambda s, p, now: nearest_free_slots(s, p, now + timedelta(days=7), now=now),
            ),
        )
        report(
            "is_slot_free",
            measure(
                db,
                pid,
                nows,
                lambda s, p, now: is_slot_free(s, p, now + timedelta(days=2), now=now),
            ),
        )
    finally:
        if backend != "sqlite":
            cleanup(db, clinic_id, pid)
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL URL")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--appointments", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        run(url, "sqlite", args.runs, args.appointments, args.seed)
    if args.postgres:
        print()
        run(args.postgres, "postgresql", args.runs, args.appointments, args.seed)


if __name__ == "__main__":
    main()
