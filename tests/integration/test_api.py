"""The HTTP app: health, readiness, OpenAPI and the read-only REST API (both backends)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bots.app import create_app
from core import outbox, scheduling
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.messages import Reply
from core.models import Practitioner
from core.patients import find_or_create_patient_by_phone
from core.settings import Settings

ZONE = "America/New_York"
PHONE = "+15555550123"
API_TOKEN = "api-test-token"


@pytest.fixture
def seeded(db: Database) -> Database:
    with db.transaction() as session:
        seed_demo(session, ZONE)
    return db


@pytest.fixture
def client(seeded: Database, clock: FixedClock) -> TestClient:
    # GET /appointments needs a token (it answers with patients' phones): the
    # legacy integration token acts as admin. Roles are in test_api_v1.py.
    settings = Settings(database_url=seeded.url, api_token=API_TOKEN)
    app = create_app(settings, db=seeded, clock=clock, role="web")
    return TestClient(
        app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )


def practitioner_named(db: Database, fragment: str) -> int:
    with db.transaction() as session:
        for p in session.scalars(select(Practitioner).order_by(Practitioner.id)):
            if fragment in p.name:
                return p.id
    raise AssertionError(fragment)


def book(db: Database, clock: FixedClock, practitioner_id: int, start: datetime) -> int:
    with db.transaction() as session:
        practitioner = session.get(Practitioner, practitioner_id)
        assert practitioner is not None
        patient = find_or_create_patient_by_phone(
            session, practitioner.clinic_id, PHONE, "sms", now=clock.now()
        )
        appointment = scheduling.book(
            session,
            practitioner=practitioner,
            patient_id=patient.id,
            start=start,
            now=clock.now(),
            channel="sms",
            enforce_rules=False,
        )
        session.flush()
        return appointment.id


# -- health -----------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_migrated(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_503_before_migrations(tmp_path: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        response = TestClient(create_app(db=empty, role="web")).get("/readyz")
    finally:
        empty.dispose()
    assert response.status_code == 503
    assert "migrations" in response.json()["reason"]


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    nowhere = Database("postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    try:
        response = TestClient(create_app(db=nowhere, role="web")).get("/readyz")
    finally:
        nowhere.dispose()
    assert response.status_code == 503
    assert "unreachable" in response.json()["reason"]


def test_openapi_documents_the_api(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    for path in ("/api/v1/practitioners", "/api/v1/slots", "/api/v1/appointments", "/readyz"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"PractitionerOut", "SlotOut", "AppointmentOut"} <= set(schemas)
    assert {"id", "status", "start", "patient_phone"} <= set(
        schemas["AppointmentOut"]["properties"]
    )


def test_unknown_role_is_refused(seeded: Database) -> None:
    with pytest.raises(ValueError, match="role"):
        create_app(db=seeded, role="chef")


# -- practitioners and slots ----------------------------------------------------------


def test_practitioners(client: TestClient) -> None:
    response = client.get("/api/v1/practitioners")
    assert response.status_code == 200
    body = response.json()
    assert len(body) >= 3
    assert len({p["specialty"] for p in body}) >= 3
    assert set(body[0]) == {"id", "name", "specialty"}


def test_slots_are_future_ascending_and_in_the_practitioners_zone(
    client: TestClient, seeded: Database, clock: FixedClock
) -> None:
    pid = practitioner_named(seeded, "Ruiz")
    response = client.get("/api/v1/slots", params={"practitioner_id": pid, "limit": 5})
    assert response.status_code == 200
    slots = response.json()
    assert len(slots) == 5
    starts = [datetime.fromisoformat(s["start"]) for s in slots]
    assert starts == sorted(starts)
    assert all(s > clock.now() for s in starts)
    # April in New York is EDT.
    assert all(s["start"].endswith("-04:00") and s["end"].endswith("-04:00") for s in slots)
    assert all(s["practitioner_id"] == pid for s in slots)


def test_slots_within_a_window(client: TestClient, seeded: Database) -> None:
    pid = practitioner_named(seeded, "Ruiz")
    params: dict[str, Any] = {
        "practitioner_id": pid,
        "start": "2026-04-15",
        "end": "2026-04-16",
        "limit": 100,
    }
    slots = client.get("/api/v1/slots", params=params).json()
    assert slots
    assert {s["start"][:10] for s in slots} == {"2026-04-15"}
    assert slots[0]["start"] == "2026-04-15T09:00:00-04:00"


def test_slots_skip_a_booked_time(client: TestClient, seeded: Database, clock: FixedClock) -> None:
    pid = practitioner_named(seeded, "Ruiz")
    book(seeded, clock, pid, datetime(2026, 4, 15, 13, 0, tzinfo=UTC))  # 09:00 in New York
    params = {"practitioner_id": pid, "start": "2026-04-15T09:00", "limit": 1}
    slots = client.get("/api/v1/slots", params=params).json()
    assert slots[0]["start"] == "2026-04-15T09:30:00-04:00"


def test_slots_of_an_unknown_practitioner_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/slots", params={"practitioner_id": 9999})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"practitioner_id": "abc"},
        {"practitioner_id": "99999999999999999999999"},
        {"practitioner_id": "-1"},
        {"practitioner_id": "1", "start": "tomorrow"},
        {"practitioner_id": "1", "start": "2026-02-30"},
        {"practitioner_id": "1", "end": "2026-04-15T25:00"},
        {"practitioner_id": "1", "start": "2026-04-16", "end": "2026-04-15"},
        {"practitioner_id": "1", "limit": "0"},
        {"practitioner_id": "1", "limit": "100000"},
        {"practitioner_id": "1", "limit": "many"},
    ],
)
def test_bad_slot_queries_are_422(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/api/v1/slots", params=params)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "params",
    [
        {"start": "9999-12-31T23:59:59"},
        {"start": "0001-01-01"},
        {"start": "2026-04-15T09:00:00 02:00"},  # an unescaped "+" arrives as a space
        {"start": "2026-04-15T09:00:00Z", "end": "2026-04-15T09:01:00Z"},
        {"end": "2000-01-01"},
    ],
)
def test_odd_but_valid_slot_queries_never_500(
    client: TestClient, seeded: Database, params: dict[str, str]
) -> None:
    params = {"practitioner_id": str(practitioner_named(seeded, "Ruiz")), **params}
    response = client.get("/api/v1/slots", params=params)
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 422)


# -- appointments -------------------------------------------------------------------


def test_appointments_of_a_day(client: TestClient, seeded: Database, clock: FixedClock) -> None:
    pid = practitioner_named(seeded, "Okafor")
    appointment_id = book(seeded, clock, pid, datetime(2026, 4, 15, 14, 0, tzinfo=UTC))
    book(seeded, clock, pid, datetime(2026, 4, 16, 14, 0, tzinfo=UTC))

    response = client.get("/api/v1/appointments", params={"day": "2026-04-15"})
    assert response.status_code == 200
    body = response.json()
    assert len(body) == 1
    row = body[0]
    assert row["id"] == appointment_id
    assert row["status"] == "booked"
    assert row["start"] == "2026-04-15T10:00:00-04:00"
    assert row["end"] == "2026-04-15T10:20:00-04:00"
    assert row["practitioner"] == "Dr Ben Okafor"
    assert row["patient_phone"] == PHONE
    assert row["channel"] == "sms"
    assert row["visit_type"] == "in_person"

    assert client.get("/api/v1/appointments", params={"day": "2026-04-14"}).json() == []
    upcoming = client.get("/api/v1/appointments").json()
    assert [a["start"][:10] for a in upcoming] == ["2026-04-15", "2026-04-16"]


@pytest.mark.parametrize("day", ["yesterday", "2026-13-01", "2026-04-31", "9999-12-31", ""])
def test_bad_days_are_4xx(client: TestClient, day: str) -> None:
    response = client.get("/api/v1/appointments", params={"day": day})
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("params", [{"day": "0001-01-01"}, {"limit": "0"}, {"limit": "x"}])
def test_odd_appointment_queries_never_500(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/api/v1/appointments", params=params)
    assert response.status_code in (200, 422), response.text


# -- the app's background work ------------------------------------------------------------


class RecordingChannel:
    name = "sms"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, address: str, reply: Reply) -> str | None:
        self.sent.append((address, reply.text))
        return "fake-1"


@pytest.mark.timeout(60)
def test_role_all_runs_the_dispatcher_and_scheduler(seeded: Database) -> None:
    clock = FixedClock(datetime.now(UTC))
    channel = RecordingChannel()
    with seeded.transaction() as session:
        outbox.enqueue(session, channel="sms", address=PHONE, reply=Reply("hi"), now=clock.now())
    app = create_app(
        db=seeded, clock=clock, role="all", senders={"sms": channel}, dispatch_interval_s=0.05
    )
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 20
        while not channel.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        background = app.state.background
        assert background.scheduler is not None and background.scheduler.running
    assert channel.sent == [(PHONE, "hi")]
    assert app.state.background.scheduler is None


def test_role_web_runs_no_background_work(seeded: Database, clock: FixedClock) -> None:
    channel = RecordingChannel()
    with seeded.transaction() as session:
        outbox.enqueue(session, channel="sms", address=PHONE, reply=Reply("hi"), now=clock.now())
    app = create_app(db=seeded, clock=clock, role="web", senders={"sms": channel})
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        time.sleep(0.2)
        assert app.state.background.scheduler is None
    assert channel.sent == []
    assert app.state.engine is seeded.engine


def test_appointments_listing_is_ordered_by_start(
    client: TestClient, seeded: Database, clock: FixedClock
) -> None:
    ana, ben = practitioner_named(seeded, "Ruiz"), practitioner_named(seeded, "Okafor")
    later = datetime(2026, 4, 15, 18, 0, tzinfo=UTC)
    book(seeded, clock, ana, later)
    book(seeded, clock, ben, later - timedelta(hours=3))
    rows = client.get("/api/v1/appointments", params={"day": "2026-04-15"}).json()
    assert [r["practitioner"] for r in rows] == ["Dr Ben Okafor", "Dr Ana Ruiz"]
