"""Appointments over the REST API (``/api/v1``): list and read (any token,
a doctor's scoped to their own practitioner), staff bookings at an exact
time, and cancel / check-in / complete.

Booking is what ``telemed appointments book`` does: no working-hours or
notice rule (staff may overbook hours) but never an overlap with another
appointment of the practitioner (409 with the reason). Every answer with a
patient's phone is a read of patient data, so it is audited.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from core import scheduling
from core.cancellations import cancel_for_clinic
from core.clock import Clock
from core.db import Database
from core.models import Appointment, Patient, Practitioner
from core.patients import find_or_create_patient_by_phone
from core.phones import InvalidPhone, to_e164
from web.api import clinic_timezone, to_zone
from web.api_auth import (
    AUTH_ERRORS,
    MAX_ID,
    ApiUser,
    Caller,
    ClinicCaller,
    ClockDep,
    DbDep,
    SettingsDep,
    check_practitioner,
    problem,
    record,
)

router = APIRouter(tags=["appointments"])
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the appointment's id")]


class AppointmentOut(BaseModel):
    """A superset of what ``telemed appointments --json`` prints."""

    id: int = Field(examples=[42])
    status: str = Field(
        description="held, booked, confirmed, cancelled, completed or no_show", examples=["booked"]
    )
    start: datetime = Field(
        description="ISO 8601 with the practitioner's UTC offset",
        examples=["2026-04-15T10:00:00-04:00"],
    )
    end: datetime = Field(examples=["2026-04-15T10:20:00-04:00"])
    practitioner: str = Field(examples=["Dr Ben Okafor"])
    practitioner_id: int
    patient_id: int
    patient_phone: str | None = Field(
        description="E.164, when the patient has one", examples=["+15555550123"]
    )
    channel: str | None = Field(description="sms, whatsapp or telegram", examples=["sms"])
    visit_type: str = Field(description="in_person or video", examples=["in_person"])
    checked_in_at: datetime | None = None
    cancel_reason: str | None = None


class BookingIn(BaseModel):
    """A staff booking at an exact time; give exactly one of patient_id and patient_phone."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "practitioner_id": 2,
                    "patient_phone": "+15555550123",
                    "start": "2026-04-15T10:30:00-04:00",
                    "channel": "sms",
                    "visit_type": "in_person",
                }
            ]
        },
    )

    practitioner_id: int = Field(ge=1, le=MAX_ID)
    patient_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    patient_phone: str | None = Field(
        default=None, min_length=1, max_length=32, description="E.164, e.g. +15555550123"
    )
    start: datetime = Field(description="ISO 8601; without an offset, in the clinic's zone")
    channel: Literal["sms", "whatsapp", "telegram"] = "sms"
    visit_type: Literal["in_person", "video"] = "in_person"

    @model_validator(mode="after")
    def one_patient(self) -> BookingIn:
        if (self.patient_id is None) == (self.patient_phone is None):
            raise ValueError("give exactly one of patient_id and patient_phone")
        return self


def appointment_out(appointment: Appointment) -> AppointmentOut:
    zone = to_zone(appointment.practitioner.timezone)
    return AppointmentOut(
        id=appointment.id,
        status=appointment.status,
        start=appointment.start_at.astimezone(zone),
        end=appointment.end_at.astimezone(zone),
        practitioner=appointment.practitioner.name,
        practitioner_id=appointment.practitioner_id,
        patient_id=appointment.patient_id,
        patient_phone=appointment.patient.phone if appointment.patient else None,
        channel=appointment.channel,
        visit_type=appointment.visit_type,
        checked_in_at=(
            appointment.checked_in_at.astimezone(zone) if appointment.checked_in_at else None
        ),
        cancel_reason=appointment.cancel_reason,
    )


@router.get(
    "/appointments",
    response_model=list[AppointmentOut],
    responses={**AUTH_ERRORS, 422: problem("a bad query parameter")},
)
def list_appointments(
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: Caller,
    day: Annotated[
        date | None,
        Query(description="YYYY-MM-DD in the clinic's zone; without it, today and later"),
    ] = None,
    practitioner_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only this practitioner's")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AppointmentOut]:
    """Appointments on one day, or from today on, in start order. Needs a token
    (the answer has patients' phones); a doctor's token lists only their own."""
    if user.is_doctor:
        check_practitioner(user, practitioner_id or user.practitioner_id, "that schedule")
        practitioner_id = user.practitioner_id
    with db.transaction() as session:
        zone = to_zone(clinic_timezone(session, settings))
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
        if practitioner_id is not None:
            query = query.where(Appointment.practitioner_id == practitioner_id)
        rows = [appointment_out(a) for a in session.scalars(query).unique()]
        record(
            session,
            user,
            clock,
            "view",
            "appointment",
            detail={"count": len(rows), "patient_ids": sorted({r.patient_id for r in rows})},
        )
        return rows


@router.get(
    "/appointments/{appointment_id}",
    response_model=AppointmentOut,
    responses={**AUTH_ERRORS, 404: problem("unknown appointment")},
)
def get_appointment(
    appointment_id: IdPath, db: DbDep, clock: ClockDep, user: Caller
) -> AppointmentOut:
    """One appointment (a doctor's token: their own practitioner's only)."""
    with db.transaction() as session:
        appointment = _appointment(session, user, appointment_id)
        record(
            session,
            user,
            clock,
            "view",
            "appointment",
            entity_id=appointment.id,
            patient_id=appointment.patient_id,
        )
        return appointment_out(appointment)


@router.post(
    "/appointments",
    status_code=201,
    response_model=AppointmentOut,
    responses={
        **AUTH_ERRORS,
        409: problem("the time overlaps another appointment of the practitioner, or has passed"),
        422: problem("a bad body: unknown practitioner or patient, bad phone, bad time"),
    },
)
def book_appointment(
    body: BookingIn, db: DbDep, clock: ClockDep, settings: SettingsDep, user: ClinicCaller
) -> AppointmentOut:
    """Book a patient (by id, or by phone: found or created) at an exact time.
    Staff and admin tokens only. No working-hours rule, never an overlap."""
    now = clock.now()
    try:
        with db.transaction() as session:
            doctor = session.get(Practitioner, body.practitioner_id)
            if doctor is None or not doctor.active:
                raise HTTPException(422, f"unknown practitioner {body.practitioner_id}")
            start = body.start
            if start.tzinfo is None:
                start = start.replace(tzinfo=to_zone(doctor.clinic.timezone))
            try:
                start = start.astimezone(UTC)
            except (OverflowError, ValueError):
                raise HTTPException(422, "start is out of range") from None
            patient_id = _patient_id(session, body, doctor, settings.default_region, now)
            appointment = scheduling.book(
                session,
                practitioner=doctor,
                patient_id=patient_id,
                start=start,
                now=now,
                channel=body.channel,
                visit_type=body.visit_type,
                enforce_rules=False,
            )
            session.flush()
            record(
                session,
                user,
                clock,
                "create",
                "appointment",
                entity_id=appointment.id,
                patient_id=patient_id,
            )
            return appointment_out(appointment)
    except scheduling.SlotUnavailable as exc:
        raise HTTPException(409, str(exc)) from None
    except scheduling.SchedulingError as exc:
        raise HTTPException(422, str(exc)) from None
    except IntegrityError:
        raise HTTPException(409, "that time overlaps another appointment") from None


def _patient_id(
    session: Session, body: BookingIn, doctor: Practitioner, region: str, now: datetime
) -> int:
    if body.patient_id is not None:
        patient = session.get(Patient, body.patient_id)
        if patient is None or patient.clinic_id != doctor.clinic_id:
            raise HTTPException(422, f"unknown patient {body.patient_id}")
        return patient.id
    assert body.patient_phone is not None
    try:
        phone = to_e164(body.patient_phone, region)
    except InvalidPhone:
        raise HTTPException(
            422, "patient_phone is not a phone number (E.164, like +15555550123)"
        ) from None
    # A phone number is an SMS/WhatsApp address; a Telegram chat is found by the patient id.
    identity_channel = body.channel if body.channel != "telegram" else "sms"
    return find_or_create_patient_by_phone(
        session, doctor.clinic_id, phone, identity_channel, now=now
    ).id


def _appointment(session: Session, user: ApiUser, appointment_id: int) -> Appointment:
    """The appointment, or 404; 403 for a doctor when it is not their practitioner's."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise HTTPException(404, f"no appointment {appointment_id}")
    check_practitioner(user, appointment.practitioner_id, f"appointment {appointment_id}")
    return appointment


def _change(
    action: Literal["cancel", "check-in", "complete"],
    appointment_id: int,
    db: Database,
    clock: Clock,
    user: ApiUser,
    default_language: str = "en",
) -> AppointmentOut:
    now = clock.now()
    try:
        with db.transaction() as session:
            _appointment(session, user, appointment_id)
            if action == "cancel":
                changed = cancel_for_clinic(
                    session,
                    appointment_id,
                    now=now,
                    default_language=default_language,
                )
            elif action == "check-in":
                changed = scheduling.check_in(session, appointment_id, now=now)
            else:
                changed = scheduling.complete(session, appointment_id, now=now)
            record(
                session,
                user,
                clock,
                "update",
                "appointment",
                entity_id=changed.id,
                patient_id=changed.patient_id,
                detail={"change": action},
            )
            return appointment_out(changed)
    except scheduling.AppointmentNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except scheduling.SchedulingError as exc:
        raise HTTPException(409, str(exc)) from None


CHANGE_ERRORS = {
    **AUTH_ERRORS,
    404: problem("unknown appointment"),
    409: problem("the appointment's state does not allow this (e.g. already cancelled)"),
}


@router.post(
    "/appointments/{appointment_id}/cancel", response_model=AppointmentOut, responses=CHANGE_ERRORS
)
def cancel_appointment(
    appointment_id: IdPath, db: DbDep, clock: ClockDep, user: Caller, settings: SettingsDep
) -> AppointmentOut:
    """Cancel for the clinic (reason ``clinic``): the patient is told on the
    channel they booked on, and the freed slot goes to the waitlist.
    A doctor's token: their own practitioner's appointments only."""
    return _change("cancel", appointment_id, db, clock, user, settings.default_language)


@router.post(
    "/appointments/{appointment_id}/check-in",
    response_model=AppointmentOut,
    responses=CHANGE_ERRORS,
)
def check_in_appointment(
    appointment_id: IdPath, db: DbDep, clock: ClockDep, user: Caller
) -> AppointmentOut:
    """The patient arrived (or joined the video call): never a no-show."""
    return _change("check-in", appointment_id, db, clock, user)


@router.post(
    "/appointments/{appointment_id}/complete",
    response_model=AppointmentOut,
    responses=CHANGE_ERRORS,
)
def complete_appointment(
    appointment_id: IdPath, db: DbDep, clock: ClockDep, user: Caller
) -> AppointmentOut:
    """The visit took place."""
    return _change("complete", appointment_id, db, clock, user)
