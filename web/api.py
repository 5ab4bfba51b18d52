"""The public part of the REST API, mounted at ``/api/v1`` by ``bots.app``:
practitioners and their free slots (no token, no patient data), and the
time helpers the other ``web.api_*`` routers share.

Times go out as ISO 8601 with the offset of the practitioner's zone. Query
parameters are checked here, so a bad value is a 4xx with a reason, never a
500. The database comes from ``request.app.state.db`` (set by the app factory).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Clinic, Practitioner
from core.settings import Settings
from web.api_auth import MAX_ID, ClockDep, DbDep, problem

router = APIRouter()


class PractitionerOut(BaseModel):
    id: int = Field(examples=[1])
    name: str = Field(examples=["Dr Ana Ruiz"])
    specialty: str = Field(examples=["general practice"])


class SlotOut(BaseModel):
    practitioner_id: int
    start: datetime = Field(
        description="ISO 8601 with the practitioner's UTC offset",
        examples=["2026-04-15T09:00:00-04:00"],
    )
    end: datetime = Field(examples=["2026-04-15T09:30:00-04:00"])


@router.get("/practitioners", response_model=list[PractitionerOut], tags=["practitioners"])
def list_practitioners(db: DbDep) -> list[PractitionerOut]:
    """Active practitioners. Public: no token needed."""
    with db.transaction() as session:
        rows = session.scalars(
            select(Practitioner).where(Practitioner.active.is_(True)).order_by(Practitioner.id)
        )
        return [PractitionerOut(id=p.id, name=p.name, specialty=p.specialty) for p in rows]


@router.get(
    "/slots",
    response_model=list[SlotOut],
    responses={404: problem("unknown practitioner"), 422: problem("a bad query parameter")},
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
    """The next free slots of a practitioner, earliest first. Public: no token needed."""
    from core.scheduling import free_slots

    with db.transaction() as session:
        practitioner = session.get(Practitioner, practitioner_id)
        if practitioner is None or not practitioner.active:
            raise HTTPException(404, f"unknown practitioner {practitioner_id}")
        zone = to_zone(practitioner.timezone)
        start_at = parse_instant(start, zone, "start")
        end_at = parse_instant(end, zone, "end")
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


# -- shared by the api_* routers ------------------------------------------------------


def clinic_timezone(session: Session, settings: Settings | None) -> str:
    zone = session.scalar(select(Clinic.timezone).order_by(Clinic.id).limit(1))
    if zone:
        return zone
    return getattr(settings, "clinic_timezone", "UTC")


def to_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def parse_instant(value: str | None, zone: ZoneInfo, name: str) -> datetime | None:
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
