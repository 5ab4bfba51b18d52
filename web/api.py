"""Read-only REST API, mounted at ``/api/v1`` by ``bots.app``.

Times go out as ISO 8601 with the offset of the practitioner's zone. Query
parameters are checked here, so a bad value is a 4xx with a reason, never a
500. The database comes from ``request.app.state.db`` (set by the app factory).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from core.clock import Clock, SystemClock
from core.db import Database
from core.models import Appointment, Clinic, Practitioner

router = APIRouter()

MAX_ID = 2**31 - 1


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_clock(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock if clock is not None else SystemClock()


DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]


class PractitionerOut(BaseModel):
    id: int
    name: str
    specialty: str


class SlotOut(BaseModel):
    practitioner_id: int
    start: datetime = Field(description="ISO 8601 with the practitioner's UTC offset")
    end: datetime


class AppointmentOut(BaseModel):
    id: int
    status: str = Field(description="held, booked, confirmed, cancelled, completed or no_show")
    start: datetime = Field(description="ISO 8601 with the practitioner's UTC offset")
    end: datetime
    practitioner: str
    practitioner_id: int
    patient_phone: str | None = Field(description="E.164, when the patient has one")
    channel: str | None
    visit_type: str


@router.get("/practitioners", response_model=list[PractitionerOut], tags=["practitioners"])
def list_practitioners(db: DbDep) -> list[PractitionerOut]:
    """Active practitioners."""
    with db.transaction() as session:
        rows = session.scalars(
            select(Practitioner).where(Practitioner.active.is_(True)).order_by(Practitioner.id)
        )
        return [PractitionerOut(id=p.id, name=p.name, specialty=p.specialty) for p in rows]


@router.get(
    "/slots",
    response_model=list[SlotOut],
    responses={404: {"description": "unknown practitioner"}},
    tags=["slots"],
)
def list_slots(
    db: DbDep,
    clock: ClockDep,
    practitioner_id: Annotated[int, Query(ge=1, le=MAX_ID)],
    start: Annotated[
        str | None,
        Query(description="ISO 8601 date or date-time; without an offset, the practitioner's zone"),
    ] = None,
    end: Annotated[str | None, Query(description="ISO 8601 date or date-time (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[SlotOut]:
    """The next free slots of a practitioner, earliest first."""
    from core.scheduling import free_slots

    with db.transaction() as session:
        practitioner = session.get(Practitioner, practitioner_id)
        if practitioner is None or not practitioner.active:
            raise HTTPException(404, f"unknown practitioner {practitioner_id}")
        zone = _zone(practitioner.timezone)
        start_at = _instant(start, zone, "start")
        end_at = _instant(end, zone, "end")
        if start_at is not None and end_at is not None and end_at <= start_at:
            raise HTTPException(422, "end must be after start")
        slots = free_slots(
            session, practitioner, now=clock.now(), start=start_at, end=end_at, limit=limit
        )
        return [
            SlotOut(
                practitioner_id=slot.practitioner_id,
                start=slot.start.astimezone(zone),
                end=slot.end.astimezone(zone),
            )
            for slot in slots
        ]


@router.get("/appointments", response_model=list[AppointmentOut], tags=["appointments"])
def list_appointments(
    db: DbDep,
    clock: ClockDep,
    request: Request,
    day: Annotated[
        date | None,
        Query(description="YYYY-MM-DD in the clinic's zone; without it, today and later"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AppointmentOut]:
    """Appointments on one day, or from today on, in start order."""
    with db.transaction() as session:
        zone = _zone(_clinic_timezone(session, request))
        try:
            first = day if day is not None else clock.now().astimezone(zone).date()
            lower = datetime.combine(first, time(0), zone).astimezone(UTC)
            upper = (
                datetime.combine(first + timedelta(days=1), time(0), zone).astimezone(UTC)
                if day is not None
                else None
            )
        except (OverflowError, ValueError):
            raise HTTPException(422, "day is out of range") from None
        query = (
            select(Appointment)
            .options(joinedload(Appointment.patient))
            .where(Appointment.start_at >= lower)
            .order_by(Appointment.start_at, Appointment.id)
            .limit(limit)
        )
        if upper is not None:
            query = query.where(Appointment.start_at < upper)
        return [_appointment_out(a) for a in session.scalars(query).unique()]


def _appointment_out(appointment: Appointment) -> AppointmentOut:
    zone = _zone(appointment.practitioner.timezone)
    return AppointmentOut(
        id=appointment.id,
        status=appointment.status,
        start=appointment.start_at.astimezone(zone),
        end=appointment.end_at.astimezone(zone),
        practitioner=appointment.practitioner.name,
        practitioner_id=appointment.practitioner_id,
        patient_phone=appointment.patient.phone if appointment.patient else None,
        channel=appointment.channel,
        visit_type=appointment.visit_type,
    )


def _clinic_timezone(session: Session, request: Request) -> str:
    zone = session.scalar(select(Clinic.timezone).order_by(Clinic.id).limit(1))
    if zone:
        return zone
    settings = getattr(request.app.state, "settings", None)
    return getattr(settings, "clinic_timezone", "UTC")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _instant(value: str | None, zone: ZoneInfo, name: str) -> datetime | None:
    """ISO 8601 date or date-time -> aware UTC; naive values are read in ``zone``."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if "T" in text and " " in text:
            text = text.replace(" ", "+")  # an unescaped "+" in a query string arrives as " "
        if len(text) == 10:
            parsed = datetime.combine(date.fromisoformat(text), time(0))
        else:
            parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise HTTPException(
            422, f"{name} must be an ISO 8601 date or date-time, like 2026-04-15T09:00"
        ) from None
