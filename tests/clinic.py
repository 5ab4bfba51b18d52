"""A clinic in a test: the demo seed, staff bookings, scheduler ticks and a
recording channel, so reminder, no-show and waitlist tests read as stories."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select

from bots.dispatcher import Dispatcher
from bots.scheduler import run_tick, tick_jobs
from core import outbox, scheduling
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.messages import Reply
from core.models import Appointment, Notification, OutboxMessage, Practitioner
from core.patients import find_or_create_patient_by_phone
from core.settings import Settings

TZ = "America/New_York"


class RecordingChannel:
    """Records every send, like a provider that accepts everything."""

    def __init__(self, name: str = "sms") -> None:
        self.name = name
        self.calls: list[tuple[str, Reply]] = []

    async def send(self, address: str, reply: Reply) -> str | None:
        self.calls.append((address, reply))
        return f"{self.name}-{len(self.calls)}"

    def texts(self, address: str | None = None) -> list[str]:
        return [r.text for a, r in self.calls if address is None or a == address]


@dataclass
class Clinic:
    db: Database
    clock: FixedClock
    settings: Settings
    channels: dict[str, RecordingChannel] = field(default_factory=dict)

    @classmethod
    def open(cls, db: Database, clock: FixedClock, **overrides: object) -> Clinic:
        with db.transaction() as session:
            seed_demo(session, TZ)
        values: dict[str, object] = {
            "database_url": db.url,
            "clinic_timezone": TZ,
            "inbound_max_per_minute": 1000,
        }
        values.update(overrides)
        settings = Settings(**values)  # type: ignore[arg-type]
        channels = {name: RecordingChannel(name) for name in ("sms", "whatsapp", "telegram")}
        return cls(db, clock, settings, channels)

    def practitioner(self, name: str) -> int:
        with self.db.transaction() as session:
            return session.scalars(
                select(Practitioner.id).where(Practitioner.name.contains(name))
            ).one()

    def book(
        self,
        phone: str,
        at: datetime,
        *,
        doctor: str = "Ruiz",
        channel: str = "sms",
        video: bool = False,
    ) -> int:
        """Staff books ``phone`` at ``at`` (tz-aware), now = the clock's time."""
        with self.db.transaction() as session:
            p = session.get(Practitioner, self.practitioner(doctor))
            assert p is not None
            now = self.clock.now()
            patient = find_or_create_patient_by_phone(session, p.clinic_id, phone, channel, now=now)
            # Registered at the desk, so the bot never needs to ask who they are.
            patient.name = patient.name or f"Patient {phone[-4:]}"
            patient.date_of_birth = patient.date_of_birth or date(1980, 1, 1)
            appointment = scheduling.book(
                session,
                practitioner=p,
                patient_id=patient.id,
                start=at,
                now=now,
                channel=channel,
                visit_type="video" if video else "in_person",
                enforce_rules=False,
            )
            session.flush()
            return appointment.id

    def tick(self) -> dict[str, object]:
        results = run_tick(self.db, self.clock, tick_jobs(self.settings))
        failed = {k: v for k, v in results.items() if isinstance(v, Exception)}
        assert not failed, failed
        return results

    def dispatch(self) -> int:
        dispatcher = Dispatcher(self.db, self.channels, self.clock)
        total = 0
        while claimed := asyncio.run(dispatcher.run_once(limit=500)):
            total += claimed
        return total

    def run(self) -> list[tuple[str, str, Reply]]:
        """One scheduler tick, then send what it queued; returns what was sent."""
        before = {name: len(c.calls) for name, c in self.channels.items()}
        self.tick()
        self.dispatch()
        return [
            (name, address, reply)
            for name, c in self.channels.items()
            for address, reply in c.calls[before[name] :]
        ]

    def notifications(self, appointment_id: int | None = None) -> list[Notification]:
        with self.db.transaction() as session:
            query = select(Notification).order_by(Notification.due_at, Notification.id)
            if appointment_id is not None:
                query = query.where(Notification.appointment_id == appointment_id)
            return list(session.scalars(query))

    def appointment(self, appointment_id: int) -> Appointment:
        with self.db.transaction() as session:
            found = session.get(Appointment, appointment_id)
            assert found is not None
            return found


def outbox_idle(database: Database) -> bool:
    """Nothing left to send: no outbox row pending or in flight (e2e tests wait
    on this before concluding that no reply is coming)."""
    with database.transaction() as session:
        waiting = session.scalar(
            select(func.count()).where(OutboxMessage.status.in_(outbox.WAITING))
        )
    return not waiting
