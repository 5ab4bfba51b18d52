"""Whatever a patient types, at whatever step, the bot answers and never raises."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.messages import InboundMessage
from core.settings import Settings
from flows.engine import FlowEngine

# Steps reached by these openings, then fuzzed with one more message.
OPENINGS = {
    "menu": ["hi"],
    "practitioner": ["book"],
    "day": ["book", "2"],
    "slot": ["book", "2", "1"],
    "name": ["book", "2", "1", "1"],
    "dob": ["book", "2", "1", "1", "Maria Lopez"],
    "confirm": ["book", "2", "1", "1", "Maria Lopez", "12/31/1980"],
}

patient_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=400),
    st.sampled_from(
        [
            "0",
            "-1",
            "99",
            "1.5",
            "١",
            "Ⅻ",
            "\x00",
            "\u202e",
            "tomorrow at 25:00",
            "yesterday",
            "in 900 days",
            "3/31/2026",
            "/start",
            "MENU",
            "ayuda",
        ]
    ),
    st.from_regex(r"[0-9 /.:-]{1,20}", fullmatch=True),
)


@pytest.fixture
def engine(tmp_path: Path, sqlite_template: Path) -> FlowEngine:
    path = tmp_path / "fuzz.db"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}")
    with db.transaction() as session:
        seed_demo(session, "America/New_York")
    clock = FixedClock(datetime(2026, 4, 14, 13, 0, tzinfo=UTC))
    return FlowEngine(db, Settings(database_url=db.url), clock)


def say(engine: FlowEngine, address: str, text: str) -> list[str]:
    msg = InboundMessage("sms", address, text, uuid.uuid4().hex)
    return [r.text for r in engine.handle(msg).replies]


@pytest.mark.parametrize("step", sorted(OPENINGS))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=patient_text)
def test_any_text_at_any_step_gets_an_answer(engine: FlowEngine, step: str, text: str) -> None:
    address = f"+1555{uuid.uuid4().int % 10**7:07d}"
    for opening in OPENINGS[step]:
        assert say(engine, address, opening)
    answers = say(engine, address, text)
    # Silence is right only for an opt-out word's aftermath; every other text gets a reply.
    assert answers, f"no answer to {text!r} at {step}"
    assert all(a.strip() for a in answers)


def _notified(engine: FlowEngine, address: str, kind: str) -> None:
    """A patient with a visit in two hours, just sent a notification of ``kind``."""
    from datetime import timedelta

    from sqlalchemy import select

    from core.models import Appointment, Notification, Practitioner
    from core.patients import find_or_create_patient_by_phone

    now = engine.clock.now()
    with engine.db.transaction() as session:
        p = session.scalars(select(Practitioner).limit(1)).one()
        patient = find_or_create_patient_by_phone(session, p.clinic_id, address, "sms", now=now)
        start = now + timedelta(hours=2)
        # Inserted directly: many fuzzed patients share the one time (SQLite only).
        appointment = Appointment(
            clinic_id=p.clinic_id,
            practitioner_id=p.id,
            patient_id=patient.id,
            start_at=start,
            end_at=start + timedelta(minutes=30),
            status="booked",
            channel="sms",
            created_at=now,
            updated_at=now,
        )
        session.add(appointment)
        session.flush()
        data = {}
        if kind == "waitlist_offer":
            data = {"entry_id": 0, "practitioner_id": p.id, "start": start.isoformat()}
        session.add(
            Notification(
                kind=kind,
                dedupe_key=f"fuzz:{address}",
                appointment_id=appointment.id,
                patient_id=patient.id,
                channel="sms",
                address=address,
                purpose="reminder",
                due_at=now,
                send_by=start,
                expires_at=start,
                status="queued",
                queued_at=now,
                data=data,
                created_at=now,
            )
        )


@pytest.mark.parametrize("kind", ["reminder", "no_show", "waitlist_offer"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=patient_text)
def test_any_answer_to_a_notification_gets_an_answer(
    engine: FlowEngine, kind: str, text: str
) -> None:
    address = f"+1555{uuid.uuid4().int % 10**7:07d}"
    _notified(engine, address, kind)
    answers = say(engine, address, text)
    assert answers, f"no answer to {text!r} after a {kind}"
    assert all(a.strip() for a in answers)
