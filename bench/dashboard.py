"""The dashboard's day view for a big clinic: server time of ``GET /dashboard``.

A throwaway database (a temporary SQLite file; with --postgres URL also a
PostgreSQL database of its own on that server, dropped afterwards) gets the
demo clinic grown to --practitioners practitioners and --appointments
appointments on one day (a Tuesday, 08:00 onwards in the clinic's zone), each
for its own patient with an SMS identity; every third has a finished intake
(triage level and summary), the morning's visits are completed, checked in
or no-shows, and --alerts red-flag alerts are open. Then an admin logs in
through the real app (Starlette's TestClient, no lifespan: no scheduler or
dispatcher) and the day view of every practitioner is fetched --requests
times after a few warm-up requests.

Printed: p50, p90 and max of the server time (measured around the ASGI app,
so the test client's own work is left out) and of the time the client saw,
against the target p50 <= 50 ms on SQLite. Asserts nothing. --profile prints
where the time of one request goes (cProfile).

    .venv/bin/python bench/dashboard.py [--appointments 1000] [--practitioners 40]
    .venv/bin/python bench/dashboard.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scratch import postgres_database, sqlite_database  # noqa: E402 (bench/ is on the path when a bench runs)

from bots.app import create_app  # noqa: E402
from core import users  # noqa: E402
from core.clock import FixedClock  # noqa: E402
from core.db import Database  # noqa: E402
from core.demo import seed_demo  # noqa: E402
from core.models import (  # noqa: E402
    Alert,
    Appointment,
    ChannelIdentity,
    IntakeResponse,
    Patient,
    Practitioner,
    table_of,
)
from core.settings import Settings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx, not ours
    from fastapi.testclient import TestClient

TARGET_P50_MS = 50.0
TZ = "America/New_York"
DAY = datetime(2026, 4, 14, tzinfo=ZoneInfo(TZ))  # a Tuesday, away from DST changes
NOW = (DAY + timedelta(hours=12)).astimezone(UTC)  # midday: half the day has happened
SLOT = timedelta(minutes=20)
EMAIL, PASSWORD = "admin@bench.test", "bench password 123"
LEVELS = ("routine", "urgent", "routine", "self_care", "emergency")
CHUNK = 5_000


def bulk(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), CHUNK):
        session.execute(insert(table_of(model)), rows[i : i + CHUNK])


def fill(db: Database, practitioners: int, appointments: int, alerts: int) -> None:
    booked_at = NOW - timedelta(days=10)
    with db.transaction() as session:
        clinic = seed_demo(session, TZ)
        have = len(list(session.scalars(select(Practitioner.id))))
        bulk(
            session,
            Practitioner,
            [
                {
                    "clinic_id": clinic.id,
                    "name": f"Dr Bench {n:02d}",
                    "specialty": "General practice",
                    "timezone": TZ,
                    "slot_minutes": 20,
                }
                for n in range(max(0, practitioners - have))
            ],
        )
        doctors = list(session.scalars(select(Practitioner.id).order_by(Practitioner.id)))
        bulk(
            session,
            Patient,
            [
                {"clinic_id": clinic.id, "name": f"Patient {n:04d}", "created_at": booked_at}
                for n in range(appointments)
            ],
        )
        patients = list(session.scalars(select(Patient.id).order_by(Patient.id)))
        bulk(
            session,
            ChannelIdentity,
            [
                {
                    "channel": "sms",
                    "address": f"+1555{n:07d}",
                    "patient_id": pid,
                    "created_at": booked_at,
                    "consents": {},
                }
                for n, pid in enumerate(patients)
            ],
        )
        start_of_day = (DAY + timedelta(hours=8)).astimezone(UTC)
        rows = []
        for n, patient_id in enumerate(patients):
            slot, doctor = divmod(n, len(doctors))
            start = start_of_day + slot * SLOT
            status, checked_in = "booked", None
            if start + SLOT <= NOW:  # the morning: mostly seen, some missed
                status = ("completed", "completed", "no_show", "completed")[n % 4]
                checked_in = start if status == "completed" else None
            elif start <= NOW:
                checked_in = start
            rows.append(
                {
                    "clinic_id": clinic.id,
                    "practitioner_id": doctors[doctor],
                    "patient_id": patient_id,
                    "start_at": start,
                    "end_at": start + SLOT,
                    "status": status,
                    "visit_type": "video" if n % 5 == 0 else "in_person",
                    "channel": "sms",
                    "checked_in_at": checked_in,
                    "created_at": booked_at,
                    "updated_at": booked_at,
                }
            )
        bulk(session, Appointment, rows)
        visits = list(
            session.execute(
                select(Appointment.id, Appointment.patient_id).order_by(Appointment.id)
            ).all()
        )
        bulk(
            session,
            IntakeResponse,
            [
                {
                    "appointment_id": appointment_id,
                    "patient_id": patient_id,
                    "questionnaire": "general-intake",
                    "version": "1",
                    "language": "en",
                    "status": "completed",
                    "answers": {"reason": "cough", "days": 3},
                    "tries": 0,
                    "triage_level": LEVELS[n % len(LEVELS)],
                    "triage_rules": ["fever_high"] if n % 5 == 1 else [],
                    "summary": (
                        f"Triage: {LEVELS[n % len(LEVELS)]}\nReason for visit: cough for 3 days"
                        "\nFever: yes\nPain: 4/10\nMedicines: none"
                    ),
                    "started_at": booked_at,
                    "updated_at": booked_at,
                    "completed_at": booked_at,
                }
                for n, (appointment_id, patient_id) in enumerate(visits)
                if n % 3 == 0
            ],
        )
        bulk(
            session,
            Alert,
            [
                {
                    "clinic_id": clinic.id,
                    "kind": "red_flag",
                    "level": "emergency" if n % 2 else "urgent",
                    "patient_id": visits[n * 7 % len(visits)][1],
                    "appointment_id": None,
                    "channel": "sms",
                    "address": "+15550000000",
                    "rules": ["chest_pain"],
                    "text": "redacted",
                    "status": "open",
                    "created_at": NOW - timedelta(minutes=n),
                }
                for n in range(alerts)
            ],
        )
        users.create_user(session, email=EMAIL, role="admin", password=PASSWORD, now=NOW)
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Timed:
    """The app, timed from the request coming in to the last byte going out."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.seconds.append(time.perf_counter() - started)


def logged_in(client: TestClient) -> None:
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert done.status_code == 303, done.text[:300]


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"p50 {statistics.median(ordered) * 1000:6.1f} ms, p90 {p90 * 1000:6.1f} ms, "
        f"max {ordered[-1] * 1000:6.1f} ms"
    )


def run(db: Database, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    fill(db, args.practitioners, args.appointments, args.alerts)
    print(
        f"  fill: {args.practitioners} practitioners, {args.appointments:,} appointments, "
        f"{args.alerts} open alerts in {time.perf_counter() - started:.1f} s"
    )
    settings = Settings(database_url=db.url, clinic_timezone=TZ)
    timed = Timed(create_app(settings, db=db, clock=FixedClock(NOW), role="web"))
    client = TestClient(timed, follow_redirects=False)
    logged_in(client)
    page = client.get("/dashboard")
    assert page.status_code == 200, page.text[:500]
    rows = page.text.count('<tr id="appointment-')
    print(f"  day view: {rows:,} appointment rows, {len(page.content) / 1024:,.0f} kB of HTML")
    for _ in range(3):  # warm-up: caches, compiled statements, templates
        client.get("/dashboard")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        client.get("/dashboard")
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    timed.seconds.clear()
    seen = []
    for _ in range(args.requests):
        begun = time.perf_counter()
        answer = client.get("/dashboard")
        seen.append(time.perf_counter() - begun)
        assert answer.status_code == 200
    server = timed.seconds
    verdict = ""
    if db.dialect == "sqlite":
        met = statistics.median(server) * 1000 <= TARGET_P50_MS
        verdict = "  target met" if met else f"  ABOVE target p50 {TARGET_P50_MS:.0f} ms"
    print(f"  GET /dashboard x{args.requests}: server {percentiles(server)}{verdict}")
    print(f"  {'':>{len(str(args.requests)) + 17}}client {percentiles(seen)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--practitioners", type=int, default=40)
    parser.add_argument("--appointments", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="cProfile one request")
    parser.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL")
    args = parser.parse_args()
    if args.practitioners < 4 or args.appointments < 1 or args.requests < 1:
        parser.error("at least 4 practitioners (the demo's), 1 appointment and 1 request")
    if args.appointments > args.practitioners * 48:
        parser.error("too many appointments for one day of 20-minute slots")
    print(
        f"dashboard bench: day view of {args.practitioners} practitioners, "
        f"{args.appointments:,} appointments that day"
    )
    print("SQLite (temporary file)")
    with sqlite_database() as db:
        run(db, args)
    if args.postgres:
        print(f"PostgreSQL ({make_url(args.postgres).render_as_string(hide_password=True)})")
        with postgres_database(args.postgres, "bench_dashboard") as db:
            run(db, args)


if __name__ == "__main__":
    main()
