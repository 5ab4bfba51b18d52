"""Two scheduler processes on one PostgreSQL database: every reminder goes out once.

5,000 patients, each with an SMS number and a visit two hours from now, so
each has one reminder due at this instant. Two OS processes run the service's
tick (``tests.system.scheduler_proc``) at the same fixed instant, released
together; then one dispatcher sends the outbox through the real Twilio SDK
to the fake Twilio, which counts what it received.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from bots.dispatcher import Dispatcher
from bots.ratelimit import RateLimits
from channels.twilio import build_twilio_channels
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import (
    Appointment,
    ChannelIdentity,
    Notification,
    OutboxMessage,
    Patient,
    Practitioner,
    table_of,
)
from core.settings import Settings
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN
from tests.system.cluster import FakeTwilioProcess, scaled

ROOT = Path(__file__).resolve().parents[2]
TZ = "America/New_York"
PATIENTS = scaled(5_000)
# The planner only plans a reminder due at most 5 minutes before "now" (the
# booking grace), so every visit starts in the 5 minutes up to now + 2 h; the
# practitioners are enough for those visits not to overlap (PostgreSQL's
# exclusion constraint), each visit lasting 6 seconds.
PRACTITIONERS = 100
VISIT = timedelta(seconds=6)
ROUNDS = 3
SMS_FROM = "+15005550006"


def phone(n: int) -> str:
    return f"+1555{n:07d}"


def book_everyone(db: Database, now: datetime) -> None:
    long_ago = now - timedelta(days=1)
    with db.transaction() as session:
        clinic_id = seed_demo(session, TZ).id
        session.execute(
            insert(table_of(Practitioner)),
            [
                {"clinic_id": clinic_id, "name": f"Dr System {n}", "specialty": "General practice"}
                for n in range(PRACTITIONERS)
            ],
        )
        practitioners = list(
            session.scalars(
                select(Practitioner.id)
                .where(Practitioner.name.startswith("Dr System"))
                .order_by(Practitioner.id)
            )
        )
        session.execute(
            insert(table_of(Patient)),
            [
                {"clinic_id": clinic_id, "phone": phone(n), "created_at": long_ago}
                for n in range(PATIENTS)
            ],
        )
        patients = list(session.scalars(select(Patient.id).order_by(Patient.id)))
        session.execute(
            insert(table_of(ChannelIdentity)),
            [
                {"channel": "sms", "address": phone(n), "patient_id": pid, "created_at": long_ago}
                for n, pid in enumerate(patients)
            ],
        )
        last = now + timedelta(hours=2) - VISIT
        rows = []
        for n, pid in enumerate(patients):
            start = last - (n // PRACTITIONERS) * VISIT
            rows.append(
                {
                    "clinic_id": clinic_id,
                    "practitioner_id": practitioners[n % PRACTITIONERS],
                    "patient_id": pid,
                    "start_at": start,
                    "end_at": start + VISIT,
                    "status": "booked",
                    "channel": "sms",
                    "created_at": long_ago,
                    "updated_at": long_ago,
                }
            )
        session.execute(insert(table_of(Appointment)), rows)


def run_schedulers(url: str, now: datetime, count: int = 2) -> list[dict[str, Any]]:
    """``count`` scheduler processes, released together once all are connected."""
    argv = [sys.executable, "-m", "tests.system.scheduler_proc", url, now.isoformat(), str(ROUNDS)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", (line, proc.stderr and proc.stderr.read())
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=40) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        lines = [x for x in out.splitlines() if x.startswith("result ")]
        assert lines, (out, err)
        results.append(json.loads(lines[-1].removeprefix("result ")))
    return results


async def drain(dispatcher: Dispatcher) -> int:
    # Sends run in threads (the Twilio SDK blocks): as many as the dispatcher sends at once.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64))
    total = 0
    while claimed := await dispatcher.run_once(limit=1000):
        total += claimed
    return total


def test_two_schedulers_send_each_reminder_once(
    postgres_db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    db = postgres_db
    now = clock.now()
    book_everyone(db, now)

    started = time.monotonic()
    results = run_schedulers(db.url, now)
    split = [int(r["enqueued"]) for r in results]
    print(
        f"two schedulers in {time.monotonic() - started:.1f} s: enqueued {split}, "
        f"planned {[r['planned'] for r in results]}, errors {[r['errors'] for r in results]}"
    )
    assert sum(split) == PATIENTS
    assert sum(int(r["planned"]) for r in results) == PATIENTS

    with db.transaction() as session:
        by_status = dict(
            session.execute(
                select(Notification.status, func.count())
                .where(Notification.kind == "reminder")
                .group_by(Notification.status)
            ).all()
        )
        queued_for = session.scalars(
            select(Notification.address).where(Notification.status == "queued")
        ).all()
        outbox_rows = session.scalar(select(func.count()).select_from(OutboxMessage))
    # One due reminder per visit; the 72 h and 24 h ones had passed before booking.
    assert by_status == {"queued": PATIENTS, "skipped": 2 * PATIENTS}
    assert sorted(queued_for) == sorted(phone(n) for n in range(PATIENTS))
    assert outbox_rows == PATIENTS

    # Twilio is another machine: its fake runs in a process of its own, so it
    # does not share this process's interpreter with the dispatcher.
    fake_twilio = FakeTwilioProcess(tmp_path)
    try:
        settings = Settings(
            database_url=db.url,
            clinic_timezone=TZ,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            twilio_api_base_url=fake_twilio.base_url,
            twilio_sms_from=SMS_FROM,
            sms_rate_per_second=10_000,
        )
        dispatcher = Dispatcher(
            db,
            build_twilio_channels(settings),
            clock,
            rate_limits=RateLimits.from_settings(settings),
        )
        started = time.monotonic()
        assert asyncio.run(drain(dispatcher)) == PATIENTS
        print(f"dispatched {PATIENTS} in {time.monotonic() - started:.1f} s")
        messages = fake_twilio.messages()
    finally:
        fake_twilio.stop()

    received = Counter(m["to"] for m in messages)
    assert len(received) == PATIENTS
    assert set(received) == {phone(n) for n in range(PATIENTS)}
    assert max(received.values()) == 1
    assert all("Riverside Family Clinic" in m["body"] for m in messages)
    with db.transaction() as session:
        statuses = dict(
            session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            ).all()
        )
    assert statuses == {"sent": PATIENTS}
