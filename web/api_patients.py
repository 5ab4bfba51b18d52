"""Patients over the REST API (``/api/v1``): search and the record.

Staff and admin tokens see the clinic's patients; a doctor's token sees the
patients their practitioner has seen, will see, prescribed for or been asked
by (``core.users.doctor_patient_ids``), and 403 for anyone else.

The date of birth is what proves a patient's identity on the channels
(ARCHITECTURE: privacy), so it goes only to doctor and admin tokens; staff
integrations (booking, reminders) get ``null``. Every answer is audited.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from core.models import Appointment, ChannelIdentity, Patient
from core.users import doctor_patient_ids
from web.api_appointments import AppointmentOut, appointment_out
from web.api_auth import (
    AUTH_ERRORS,
    MAX_ID,
    Caller,
    ClockDep,
    DbDep,
    check_patient,
    problem,
    record,
)

router = APIRouter(tags=["patients"])
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the patient's id")]
MAX_APPOINTMENTS = 100
DOB_ROLES = ("doctor", "admin")


class PatientSummary(BaseModel):
    id: int = Field(examples=[7])
    name: str | None = Field(examples=["Maria Lopez"])
    phone: str | None = Field(description="E.164", examples=["+15555550123"])
    language: str | None = Field(examples=["es"])
    created_at: datetime


class IdentityOut(BaseModel):
    channel: str = Field(description="sms, whatsapp or telegram", examples=["whatsapp"])
    address: str = Field(
        description="E.164 for sms/whatsapp, a chat id for telegram", examples=["+15555550123"]
    )
    language: str | None
    verified_at: datetime | None = Field(description="when the patient proved who they are")
    opted_out_at: datetime | None = Field(description="set by STOP; nothing is sent while set")
    consents: dict[str, Any] = Field(
        description="consent per purpose where it differs from the defaults",
        examples=[{"marketing": False}],
    )
    last_inbound_at: datetime | None


class PatientOut(PatientSummary):
    timezone: str | None
    date_of_birth: date | None = Field(
        description="doctor and admin tokens only; null for staff tokens"
    )
    identities: list[IdentityOut]
    appointments: list[AppointmentOut] = Field(
        description=f"newest first, at most {MAX_APPOINTMENTS}"
    )


def _summary(p: Patient) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "phone": p.phone,
        "language": p.language,
        "created_at": p.created_at,
    }


@router.get(
    "/patients",
    response_model=list[PatientSummary],
    responses={**AUTH_ERRORS, 422: problem("a bad query parameter")},
)
def list_patients(
    db: DbDep,
    clock: ClockDep,
    user: Caller,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="part of the name, phone number or a channel address",
            examples=["lopez"],
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[PatientSummary]:
    """Patients, by id; a doctor's token lists only their own practitioner's."""
    with db.transaction() as session:
        query = select(Patient).order_by(Patient.id).limit(limit)
        if user.is_doctor:
            if user.practitioner_id is None:
                return []
            query = query.where(Patient.id.in_(doctor_patient_ids(user.practitioner_id)))
        text = (q or "").strip()
        if text:
            matches = [Patient.name.icontains(text, autoescape=True)]
            digits = "".join(c for c in text if c.isdigit())
            if digits:
                matches.append(Patient.phone.contains(digits, autoescape=True))
            addressed = select(ChannelIdentity.patient_id).where(
                ChannelIdentity.address.contains(text, autoescape=True)
            )
            matches.append(Patient.id.in_(addressed))
            query = query.where(or_(*matches))
        rows = [PatientSummary(**_summary(p)) for p in session.scalars(query)]
        record(
            session,
            user,
            clock,
            "view",
            "patient",
            detail={"count": len(rows), "patient_ids": [r.id for r in rows], "search": bool(text)},
        )
        return rows


@router.get(
    "/patients/{patient_id}",
    response_model=PatientOut,
    responses={**AUTH_ERRORS, 404: problem("unknown patient")},
)
def get_patient(patient_id: IdPath, db: DbDep, clock: ClockDep, user: Caller) -> PatientOut:
    """A patient's record: channel identities (with consent and opt-out) and
    appointments. The date of birth for doctor and admin tokens only."""
    with db.transaction() as session:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise HTTPException(404, f"no patient {patient_id}")
        check_patient(session, user, patient_id)
        identities = session.scalars(
            select(ChannelIdentity)
            .where(ChannelIdentity.patient_id == patient_id)
            .order_by(ChannelIdentity.id)
        )
        appointments = session.scalars(
            select(Appointment)
            .options(joinedload(Appointment.patient))
            .where(Appointment.patient_id == patient_id)
            .order_by(Appointment.start_at.desc(), Appointment.id.desc())
            .limit(MAX_APPOINTMENTS)
        ).unique()
        out = PatientOut(
            **_summary(patient),
            timezone=patient.timezone,
            date_of_birth=patient.date_of_birth if user.role in DOB_ROLES else None,
            identities=[
                IdentityOut(
                    channel=i.channel,
                    address=i.address,
                    language=i.language,
                    verified_at=i.verified_at,
                    opted_out_at=i.opted_out_at,
                    consents=dict(i.consents or {}),
                    last_inbound_at=i.last_inbound_at,
                )
                for i in identities
            ],
            appointments=[appointment_out(a) for a in appointments],
        )
        record(session, user, clock, "view", "patient", entity_id=patient_id, patient_id=patient_id)
        return out
