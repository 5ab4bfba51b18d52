"""The weekly report (`telemed report`) and `/metrics` (both backends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from itertools import count
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bots.app import create_app
from core import metrics, notices, scheduling
from core.clock import FixedClock
from core.db import Database
from core.models import Appointment, Notification, OutboxMessage, Practitioner
from core.patients import find_or_create_patient_by_phone
from tests.clinic import TZ, Clinic

ZONE = ZoneInfo(TZ)
KEYS = {
    "week_start",
    "reminders_sent",
    "reminders_answered",
    "reminders_confirmed",
    "reminders_rescheduled",
    "reminders_cancelled",
    "visits_due",
    "no_shows",
    "no_show_rate",
    "waitlist_offers_sent",
    "waitlist_fills",
}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class Data:
    """Rows written straight into the tables, at exact times."""

    def __init__(self, clinic: Clinic) -> None:
        self.db = clinic.db
        self.now = clinic.clock.now()
        self.serial = count(1)
        with self.db.transaction() as session:
            p = session.scalars(select(Practitioner).order_by(Practitioner.id)).first()
            assert p is not None
            self.clinic_id, self.practitioner_id = p.clinic_id, p.id
            patient = find_or_create_patient_by_phone(
                session, p.clinic_id, "+15555550100", "sms", now=self.now
            )
            self.patient_id = patient.id

    def appointment(self, start: datetime, status: str) -> int:
        with self.db.transaction() as session:
            row = Appointment(
                clinic_id=self.clinic_id,
                practitioner_id=self.practitioner_id,
                patient_id=self.patient_id,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                status=status,
                channel="sms",
                created_at=start - timedelta(days=10),
                updated_at=start - timedelta(days=10),
            )
            session.add(row)
            session.flush()
            return row.id

    def notification(
        self, kind: str, queued_at: datetime | None, answer: str | None = None
    ) -> None:
        status = "planned" if queued_at is None else "queued" if answer is None else "answered"
        at = queued_at or self.now
        with self.db.transaction() as session:
            session.add(
                Notification(
                    kind=kind,
                    dedupe_key=f"test:{next(self.serial)}",
                    patient_id=self.patient_id,
                    channel="sms",
                    address="+15555550100",
                    purpose="reminder",
                    due_at=at,
                    send_by=at + timedelta(hours=1),
                    status=status,
                    queued_at=queued_at,
                    answer=answer,
                    answered_at=None if answer is None else at + timedelta(minutes=5),
                    data={},
                    created_at=at - timedelta(days=1),
                )
            )

    def outbox(self, created_at: datetime, status: str) -> None:
        with self.db.transaction() as session:
            session.add(
                OutboxMessage(
                    channel="sms",
                    address="+15555550100",
                    payload={"text": "x"},
                    status=status,
                    next_attempt_at=created_at,
                    created_at=created_at,
                )
            )


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    # The clock: Tuesday 2026-04-14 09:00 in New York (13:00 UTC).
    return Clinic.open(db, clock)


@pytest.fixture
def data(clinic: Clinic) -> Data:
    d = Data(clinic)
    # Reminders, by when they went out (weeks start Monday 00:00 New York = 04:00 UTC).
    d.notification("reminder", utc(2026, 3, 29, 12), "confirm")  # before the window
    d.notification("reminder", utc(2026, 4, 6, 3, 30), "confirm")  # Sun 23:30: week of 03-30
    d.notification("reminder", utc(2026, 4, 8, 12), "confirm")
    d.notification("reminder", utc(2026, 4, 8, 12))  # not answered
    d.notification("reminder", utc(2026, 4, 13, 3, 30), "confirm")  # Sun 23:30: week of 04-06
    d.notification("reminder", utc(2026, 4, 13, 4, 30), "reschedule")  # Mon 00:30: 04-13
    d.notification("reminder", utc(2026, 4, 14, 12), "cancel")
    d.notification("reminder", utc(2026, 4, 14, 12, 10), "stale")
    d.notification("reminder", utc(2026, 4, 14, 12, 20))
    d.notification("reminder", None)  # planned, not sent
    d.notification("video_link", utc(2026, 4, 14, 12, 30))  # not a reminder
    d.notification("no_show", utc(2026, 4, 14, 12, 30), "rebook")  # not a reminder
    # Waitlist offers.
    d.notification("waitlist_offer", utc(2026, 4, 8, 15), "take")
    d.notification("waitlist_offer", utc(2026, 4, 8, 15), "declined")
    d.notification("waitlist_offer", utc(2026, 4, 8, 15))
    d.notification("waitlist_offer", utc(2026, 4, 14, 11), "take")
    # Visits, by their start.
    d.appointment(utc(2026, 3, 20, 14), "no_show")  # before the window
    d.appointment(utc(2026, 4, 1, 14), "completed")
    d.appointment(utc(2026, 4, 2, 14), "no_show")
    d.appointment(utc(2026, 4, 2, 15), "cancelled")  # never a visit
    d.appointment(utc(2026, 4, 7, 14), "booked")  # past, not marked: taken to have happened
    d.appointment(utc(2026, 4, 8, 14), "confirmed")
    d.appointment(utc(2026, 4, 9, 14), "no_show")
    d.appointment(utc(2026, 4, 10, 14), "held")  # never a visit
    d.appointment(utc(2026, 4, 13, 3), "completed")  # Sun 23:00: week of 04-06
    d.appointment(utc(2026, 4, 13, 15), "no_show")
    d.appointment(utc(2026, 4, 14, 14), "booked")  # later today: not due yet
    d.appointment(utc(2026, 4, 15, 14), "confirmed")  # future
    # The outbox: two waiting (the oldest 10 minutes old), one sent.
    d.outbox(d.now - timedelta(minutes=10), "pending")
    d.outbox(d.now - timedelta(minutes=5), "sending")
    d.outbox(d.now - timedelta(hours=3), "sent")
    return d


def report(db: Database, now: datetime, weeks: int) -> list[dict[str, object]]:
    with db.transaction() as session:
        rows = metrics.weekly_report(session, now=now, zone=ZONE, weeks=weeks)
    return [row.to_json() for row in rows]


def test_weekly_numbers(data: Data, db: Database, clock: FixedClock) -> None:
    rows = report(db, clock.now(), 3)
    assert [r["week_start"] for r in rows] == ["2026-03-30", "2026-04-06", "2026-04-13"]
    assert all(set(r) == KEYS for r in rows)
    first, second, third = rows
    assert first == {
        "week_start": "2026-03-30",
        "reminders_sent": 1,
        "reminders_answered": 1,
        "reminders_confirmed": 1,
        "reminders_rescheduled": 0,
        "reminders_cancelled": 0,
        "visits_due": 2,
        "no_shows": 1,
        "no_show_rate": 0.5,
        "waitlist_offers_sent": 0,
        "waitlist_fills": 0,
    }
    assert second == {
        "week_start": "2026-04-06",
        "reminders_sent": 3,
        "reminders_answered": 2,
        "reminders_confirmed": 2,
        "reminders_rescheduled": 0,
        "reminders_cancelled": 0,
        "visits_due": 4,
        "no_shows": 1,
        "no_show_rate": 0.25,
        "waitlist_offers_sent": 3,
        "waitlist_fills": 1,
    }
    assert third == {
        "week_start": "2026-04-13",
        "reminders_sent": 4,
        "reminders_answered": 3,  # reschedule, cancel, stale
        "reminders_confirmed": 0,
        "reminders_rescheduled": 1,
        "reminders_cancelled": 1,
        "visits_due": 1,
        "no_shows": 1,
        "no_show_rate": 1.0,
        "waitlist_offers_sent": 1,
        "waitlist_fills": 1,
    }


def test_weeks_without_anything_have_no_rate(data: Data, db: Database) -> None:
    rows = report(db, utc(2026, 6, 3, 12), 2)  # a Wednesday, weeks later
    assert [r["week_start"] for r in rows] == ["2026-05-25", "2026-06-01"]
    for row in rows:
        assert row["no_show_rate"] is None
        assert all(row[k] == 0 for k in KEYS - {"week_start", "no_show_rate"})


def test_one_week_is_the_current_one(data: Data, db: Database, clock: FixedClock) -> None:
    (row,) = report(db, clock.now(), 1)
    assert row["week_start"] == "2026-04-13"
    assert row["reminders_sent"] == 4


def test_week_starts_follow_the_local_monday_across_dst() -> None:
    # 2026-03-08 is the US DST change; Monday 03-09 00:00 EDT is 04:00 UTC, 03-02 is 05:00 UTC.
    mondays = metrics.week_starts(utc(2026, 3, 10, 3, 30), ZONE, 2)  # Mon 23:30 EDT
    assert mondays == [date(2026, 3, 2), date(2026, 3, 9)]
    assert all(d.weekday() == 0 for d in mondays)
    with pytest.raises(ValueError):
        metrics.week_starts(utc(2026, 3, 10), ZONE, 0)
    with pytest.raises(ValueError):
        metrics.week_starts(utc(2026, 3, 10), ZONE, metrics.MAX_WEEKS + 1)


def test_totals(data: Data, db: Database, clock: FixedClock) -> None:
    with db.transaction() as session:
        totals = metrics.totals(session, now=clock.now())
    assert totals.reminders_sent == 9
    assert totals.reminders_answered == {"cancel": 1, "confirm": 4, "reschedule": 1, "stale": 1}
    assert totals.visits_due == 8
    assert totals.no_shows == 4
    assert totals.waitlist_offers_sent == 4
    assert totals.waitlist_fills == 2
    assert totals.outbox_pending == 2
    assert totals.outbox_oldest_pending_seconds == 600.0


# -- a story through the real scheduler ticks ----------------------------------------------


def test_reminders_and_no_shows_from_the_ticks(db: Database) -> None:
    clock = FixedClock(utc(2026, 4, 6, 13))  # Monday 09:00 in New York
    clinic = Clinic.open(db, clock)
    kept = clinic.book("+15555550101", utc(2026, 4, 8, 14))  # Wednesday 10:00
    missed = clinic.book("+15555550102", utc(2026, 4, 8, 15))
    clinic.run()
    clock.set(utc(2026, 4, 7, 14, 5))  # the 24h reminders
    clinic.run()
    with db.transaction() as session:
        (reminder,) = session.scalars(
            select(Notification).where(
                Notification.appointment_id == kept,
                Notification.kind == "reminder",
                Notification.status == "queued",
            )
        )
        scheduling.confirm(session, kept, now=clock.now())
        notices.record_answer(session, reminder.id, "confirm", clock.now())
    clock.set(utc(2026, 4, 8, 12, 5))  # the 2h reminders
    clinic.run()
    with db.transaction() as session:
        visit = session.get(Appointment, kept)
        assert visit is not None
        visit.status, visit.checked_in_at = "completed", utc(2026, 4, 8, 13, 55)
    clock.set(utc(2026, 4, 8, 16))  # past both visits and their grace: a no-show
    clinic.run()
    assert clinic.appointment(missed).status == "no_show"

    sent = [n for n in clinic.notifications() if n.kind == "reminder" and n.queued_at]
    assert len(sent) >= 2
    (row,) = report(db, clock.now(), 1)
    assert row["week_start"] == "2026-04-06"
    assert row["reminders_sent"] == len(sent)
    assert row["reminders_answered"] == row["reminders_confirmed"] == 1
    assert row["visits_due"] == 2
    assert row["no_shows"] == 1
    assert row["no_show_rate"] == 0.5


# -- /metrics ---------------------------------------------------------------------------


def test_metrics_endpoint(data: Data, db: Database, clock: FixedClock) -> None:
    client = TestClient(create_app(db=db, clock=clock, role="web"), raise_server_exceptions=False)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("telemed_reminders_sent_total", ())] == 9
    answered = "telemed_reminders_answered_total"
    assert samples[(answered, (("answer", "confirm"),))] == 4
    assert samples[(answered, (("answer", "reschedule"),))] == 1
    assert samples[(answered, (("answer", "cancel"),))] == 1
    assert samples[(answered, (("answer", "stale"),))] == 1
    assert samples[("telemed_visits_due_total", ())] == 8
    assert samples[("telemed_no_shows_total", ())] == 4
    assert samples[("telemed_waitlist_offers_sent_total", ())] == 4
    assert samples[("telemed_waitlist_fills_total", ())] == 2
    assert samples[("telemed_outbox_pending", ())] == 2
    assert samples[("telemed_outbox_oldest_pending_seconds", ())] == 600
    assert "+1555" not in response.text


def test_metrics_of_an_empty_clinic(clinic: Clinic, db: Database, clock: FixedClock) -> None:
    client = TestClient(create_app(db=db, clock=clock, role="web"))
    text = client.get("/metrics").text
    assert "telemed_reminders_sent_total 0.0" in text
    assert 'telemed_reminders_answered_total{answer="confirm"} 0.0' in text
    assert "telemed_outbox_oldest_pending_seconds 0.0" in text


# -- the command line ------------------------------------------------------------------


def telemed(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMED_")}
    env |= {"TELEMED_DATABASE_URL": db_url, "TELEMED_CLINIC_TIMEZONE": "UTC"}
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def test_report_json_from_the_command_line(db: Database, tmp_path: Path) -> None:
    # The command line reads the real time: the data is from the last hour.
    now = datetime.now(UTC)
    clinic = Clinic.open(db, FixedClock(now))
    d = Data(clinic)
    d.notification("reminder", now - timedelta(minutes=50), "confirm")
    d.notification("reminder", now - timedelta(minutes=40), "cancel")
    d.notification("reminder", now - timedelta(minutes=30))
    d.notification("waitlist_offer", now - timedelta(minutes=20), "take")
    d.appointment(now - timedelta(minutes=50), "no_show")
    d.appointment(now - timedelta(minutes=40), "completed")
    d.appointment(now - timedelta(minutes=30), "confirmed")
    d.appointment(now - timedelta(minutes=20), "cancelled")

    result = telemed(db.url, tmp_path, "report", "--weeks", "2", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 2
    assert all(set(r) == KEYS for r in rows)
    mondays = [date.fromisoformat(r["week_start"]) for r in rows]
    assert all(m.weekday() == 0 for m in mondays)
    # The clinic's zone (New York, from the demo clinic), not TELEMED_CLINIC_TIMEZONE.
    this_monday = now.astimezone(ZONE).date() - timedelta(days=now.astimezone(ZONE).weekday())
    assert mondays == [this_monday - timedelta(weeks=1), this_monday]

    def total(key: str) -> int:
        return sum(int(r[key]) for r in rows)

    assert total("reminders_sent") == 3
    assert total("reminders_answered") == 2
    assert total("reminders_confirmed") == 1
    assert total("reminders_cancelled") == 1
    assert total("visits_due") == 3
    assert total("no_shows") == 1
    assert total("waitlist_fills") == 1

    table = telemed(db.url, tmp_path, "report")
    assert table.returncode == 0, table.stderr
    assert "no-show rate" in table.stdout
    assert str(this_monday) in table.stdout


@pytest.mark.parametrize("weeks", ["0", "105", "-1", "four"])
def test_report_bad_weeks_is_a_usage_error(weeks: str, tmp_path: Path) -> None:
    result = telemed(f"sqlite:///{tmp_path / 'none.db'}", tmp_path, "report", "--weeks", weeks)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--weeks" in lines[0] and "1 to 104" in lines[0]
    assert result.stdout == ""
