"""The demo clinic that ``telemed demo`` and ``make run`` seed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.models import AvailabilityRule, Base, Clinic, Practitioner
from core.pharmacies import seed_demo_pharmacies


@dataclass(frozen=True)
class DemoPractitioner:
    name: str
    specialty: str
    specialty_es: str
    hours: tuple[tuple[time, time], ...]
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    slot_minutes: int = 30


DEMO_PRACTITIONERS = (
    DemoPractitioner(
        "Dr Ana Ruiz",
        "General practice",
        "Medicina general",
        ((time(9), time(13)), (time(14), time(17))),
    ),
    DemoPractitioner(
        "Dr Ben Okafor",
        "Dermatology",
        "Dermatología",
        ((time(10), time(16)),),
        weekdays=(0, 1, 2, 3),
        slot_minutes=20,
    ),
    DemoPractitioner(
        "Dr Carmen Silva",
        "Pediatrics",
        "Pediatría",
        ((time(8), time(12)), (time(13), time(16))),
    ),
    DemoPractitioner(
        "Dr David Chen",
        "Cardiology",
        "Cardiología",
        ((time(9), time(15)),),
        weekdays=(1, 2, 3, 4),
        slot_minutes=45,
    ),
)


def is_seeded(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(Clinic)))


def seed_demo(session: Session, timezone: str = "UTC", *, reset: bool = False) -> Clinic:
    """Create the demo clinic with practitioners working weekdays, open-ended."""
    if reset:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))
    elif is_seeded(session):
        clinic = session.scalars(select(Clinic).order_by(Clinic.id)).first()
        assert clinic is not None
        seed_demo_pharmacies(session)  # a demo seeded before pharmacies existed gets them
        return clinic
    clinic = Clinic(
        name="Riverside Family Clinic",
        timezone=timezone,
        phone="+15550100000",
        address="12 River Street",
    )
    session.add(clinic)
    session.flush()
    for demo in DEMO_PRACTITIONERS:
        practitioner = Practitioner(
            clinic_id=clinic.id,
            name=demo.name,
            specialty=demo.specialty,
            specialty_es=demo.specialty_es,
            timezone=timezone,
            slot_minutes=demo.slot_minutes,
            min_notice_minutes=60,
            horizon_days=60,
        )
        session.add(practitioner)
        session.flush()
        for weekday in demo.weekdays:
            for start, end in demo.hours:
                session.add(
                    AvailabilityRule(
                        practitioner_id=practitioner.id,
                        weekday=weekday,
                        start_time=start,
                        end_time=end,
                    )
                )
    session.flush()
    seed_demo_pharmacies(session)
    return clinic
