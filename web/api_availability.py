"""A practitioner's availability over the REST API (``/api/v1``): weekly
hours and time off, read and changed through ``core.availability`` (the same
checks as the dashboard's editor).

Any token reads and changes the schedule of a practitioner it may work with
(``core.users.can_see_practitioner``): staff and admin any practitioner's, a
doctor their own only (403 otherwise; time-off reasons can be personal). The
public ``GET /slots`` is what patients' tools need. Changes never move or
cancel booked appointments; the answer counts the upcoming ones left outside
the new hours.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from core import availability
from core.clock import Clock
from core.models import Practitioner
from web.api import to_zone
from web.api_auth import (
    AUTH_ERRORS,
    MAX_ID,
    ApiUser,
    Caller,
    ClockDep,
    DbDep,
    check_practitioner,
    problem,
    record,
)

router = APIRouter(tags=["availability"])
PractitionerPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the practitioner's id")]
ExceptionPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the time off's id")]
MAX_RANGES = 7 * availability.MAX_RANGES_PER_DAY


class HoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weekday: int = Field(ge=0, le=6, description="Monday 0 .. Sunday 6", examples=[0])
    start: str = Field(
        max_length=8, description="HH:MM in the practitioner's zone", examples=["09:00"]
    )
    end: str = Field(
        max_length=8, description="HH:MM; 24:00 for the end of the day", examples=["13:00"]
    )


class WeeklyHoursIn(BaseModel):
    """The practitioner's weekly hours, replacing the current ones. Ranges of
    one day may touch but not overlap; an empty list closes every day."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "weekly_hours": [
                        {"weekday": 0, "start": "09:00", "end": "13:00"},
                        {"weekday": 0, "start": "14:00", "end": "17:00"},
                        {"weekday": 2, "start": "09:00", "end": "17:00"},
                    ]
                }
            ]
        },
    )

    weekly_hours: list[HoursIn] = Field(max_length=MAX_RANGES)


class TimeOffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(
        max_length=32,
        description="YYYY-MM-DDTHH:MM or YYYY-MM-DD in the practitioner's zone (no offset)",
        examples=["2026-04-20"],
    )
    end: str = Field(
        max_length=32,
        description="as start; a bare date is the end of that day",
        examples=["2026-04-24"],
    )
    reason: str = Field(default="", max_length=availability.MAX_REASON, examples=["holiday"])


class HoursOut(BaseModel):
    weekday: int = Field(description="Monday 0 .. Sunday 6")
    start: str = Field(examples=["09:00"])
    end: str = Field(examples=["17:00"], description="24:00 is the end of the day")
    valid_from: date | None
    valid_until: date | None
    editable: bool = Field(description="false for dated rules, which PUT keeps as they are")


class ExceptionOut(BaseModel):
    id: int
    kind: str = Field(description="off (time off) or extra (extra hours)")
    start: datetime = Field(description="in the practitioner's zone")
    end: datetime
    reason: str | None


class AvailabilityOut(BaseModel):
    practitioner_id: int
    timezone: str = Field(examples=["America/New_York"])
    slot_minutes: int
    weekly_hours: list[HoursOut]
    exceptions: list[ExceptionOut] = Field(description="time off and extra hours not over yet")
    appointments_outside_hours: int = Field(
        description="upcoming booked appointments the hours no longer cover (never moved)"
    )


ERRORS = {**AUTH_ERRORS, 404: problem("unknown practitioner")}


def _practitioner(session: Session, user: ApiUser, practitioner_id: int) -> Practitioner:
    found = session.get(Practitioner, practitioner_id)
    if found is None:
        raise HTTPException(404, f"no practitioner {practitioner_id}")
    check_practitioner(user, practitioner_id, f"practitioner {practitioner_id}'s schedule")
    return found


def _out(session: Session, p: Practitioner, clock: Clock) -> AvailabilityOut:
    zone = to_zone(p.timezone)
    now = clock.now()
    return AvailabilityOut(
        practitioner_id=p.id,
        timezone=p.timezone,
        slot_minutes=p.slot_minutes,
        weekly_hours=[
            HoursOut(
                weekday=r.weekday,
                start=availability.format_clock(r.start_time),
                end=availability.format_clock(r.end_time, end=True),
                valid_from=r.valid_from,
                valid_until=r.valid_until,
                editable=availability.is_open_ended(r),
            )
            for r in availability.weekly_rules(session, p.id)
        ],
        exceptions=[
            ExceptionOut(
                id=e.id,
                kind=e.kind,
                start=e.start_at.astimezone(zone),
                end=e.end_at.astimezone(zone),
                reason=e.reason,
            )
            for e in availability.upcoming_exceptions(session, [p.id], now)
        ],
        appointments_outside_hours=availability.appointments_outside_hours(session, p, now),
    )


@router.get(
    "/practitioners/{practitioner_id}/availability",
    response_model=AvailabilityOut,
    responses=ERRORS,
)
def get_availability(
    practitioner_id: PractitionerPath, db: DbDep, clock: ClockDep, user: Caller
) -> AvailabilityOut:
    """Weekly hours and upcoming time off (a doctor's token: their own only)."""
    with db.transaction() as session:
        return _out(session, _practitioner(session, user, practitioner_id), clock)


@router.put(
    "/practitioners/{practitioner_id}/availability",
    response_model=AvailabilityOut,
    responses={**ERRORS, 422: problem("bad hours, with the reason for each range")},
)
def put_availability(
    practitioner_id: PractitionerPath,
    body: WeeklyHoursIn,
    db: DbDep,
    clock: ClockDep,
    user: Caller,
) -> AvailabilityOut:
    """Replace the weekly hours (dated rules are kept). Staff and admin
    tokens, or a doctor's for their own; new slots show in the next search."""
    with db.transaction() as session:
        p = _practitioner(session, user, practitioner_id)
        days: dict[int, list[tuple[str, str]]] = {}
        where: dict[tuple[int, int], int] = {}  # (weekday, row of that day) -> body index
        for index, hours in enumerate(body.weekly_hours):
            rows = days.setdefault(hours.weekday, [])
            where[(hours.weekday, len(rows))] = index
            rows.append((hours.start, hours.end))
        ranges, problems = availability.check_hours(days)
        if problems:
            raise HTTPException(
                422,
                "; ".join(
                    f"weekly_hours[{where[key]}] ({availability.WEEKDAYS[key[0]]}): {why}"
                    for key, why in sorted(problems.items(), key=lambda item: where[item[0]])
                ),
            )
        availability.replace_hours(session, p.id, ranges)
        record(
            session,
            user,
            clock,
            "update",
            "availability",
            entity_id=p.id,
            detail={"weekly_hours": len(ranges)},
        )
        return _out(session, p, clock)


@router.post(
    "/practitioners/{practitioner_id}/time-off",
    status_code=201,
    response_model=AvailabilityOut,
    responses={**ERRORS, 422: problem("bad dates, with the reason")},
)
def add_time_off(
    practitioner_id: PractitionerPath,
    body: TimeOffIn,
    db: DbDep,
    clock: ClockDep,
    user: Caller,
) -> AvailabilityOut:
    """Add time off (no slots are offered in it; booked appointments stay)."""
    with db.transaction() as session:
        p = _practitioner(session, user, practitioner_id)
        off, problems = availability.check_time_off(
            body.start, body.end, body.reason, to_zone(p.timezone), clock.now()
        )
        if off is None:
            raise HTTPException(
                422, "; ".join(f"{field}: {why}" for field, why in sorted(problems.items()))
            )
        row = availability.add_time_off(session, p.id, off)
        record(
            session,
            user,
            clock,
            "create",
            "availability",
            entity_id=p.id,
            detail={"time_off_id": row.id},
        )
        return _out(session, p, clock)


@router.delete(
    "/practitioners/{practitioner_id}/time-off/{exception_id}",
    response_model=AvailabilityOut,
    responses={**AUTH_ERRORS, 404: problem("unknown practitioner or time off")},
)
def remove_time_off(
    practitioner_id: PractitionerPath,
    exception_id: ExceptionPath,
    db: DbDep,
    clock: ClockDep,
    user: Caller,
) -> AvailabilityOut:
    """Remove one time off (or extra hours) of this practitioner."""
    with db.transaction() as session:
        p = _practitioner(session, user, practitioner_id)
        if not availability.remove_time_off(session, p.id, exception_id):
            raise HTTPException(404, f"practitioner {p.id} has no time off {exception_id}")
        record(
            session,
            user,
            clock,
            "delete",
            "availability",
            entity_id=p.id,
            detail={"time_off_id": exception_id},
        )
        return _out(session, p, clock)
