"""Patients and the channel identities they write from."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload

from core.models import ChannelIdentity, Clinic, Patient


def default_clinic(session: Session) -> Clinic | None:
    return session.scalars(select(Clinic).order_by(Clinic.id).limit(1)).first()


def get_or_create_identity(
    session: Session, channel: str, address: str, *, now: datetime
) -> ChannelIdentity:
    """The identity for (channel, address), created on first contact.

    Insert-if-absent is done in SQL so two first messages racing on
    PostgreSQL do not trip the unique key.
    """
    query = (
        select(ChannelIdentity)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
        .options(joinedload(ChannelIdentity.patient))
    )
    identity = session.scalars(query).first()
    if identity is not None:
        return identity
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(ChannelIdentity)
        .values(channel=channel, address=address, created_at=now)
        .on_conflict_do_nothing(index_elements=["channel", "address"])
    )
    identity = session.scalars(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == channel, ChannelIdentity.address == address
        )
    ).one()
    return identity


def patient_for_identity(
    session: Session, identity: ChannelIdentity, clinic: Clinic, *, phone: str | None
) -> Patient:
    """The identity's patient, creating an unnamed one the first time it is needed
    (when a slot is first held); name and date of birth follow in the same flow."""
    if identity.patient_id is not None:
        patient = session.get(Patient, identity.patient_id)
        assert patient is not None
        return patient
    patient = Patient(clinic_id=clinic.id, phone=phone, language=identity.language)
    session.add(patient)
    session.flush()
    identity.patient_id = patient.id
    return patient


def register(
    session: Session,
    patient: Patient,
    identity: ChannelIdentity,
    *,
    name: str,
    date_of_birth: date,
    now: datetime,
) -> None:
    """Record the name and date of birth a new patient gave; the identity that
    gave them is verified from now on."""
    patient.name = name
    patient.date_of_birth = date_of_birth
    identity.verified_at = now


def find_or_create_patient_by_phone(
    session: Session, clinic_id: int, phone_e164: str, channel: str, *, now: datetime
) -> Patient:
    """Staff booking by phone number: the patient behind that number, or a new one."""
    identity = get_or_create_identity(session, channel, phone_e164, now=now)
    if identity.patient_id is not None:
        patient = session.get(Patient, identity.patient_id)
        assert patient is not None
        return patient
    patient = session.scalars(
        select(Patient).where(Patient.clinic_id == clinic_id, Patient.phone == phone_e164)
    ).first()
    if patient is None:
        patient = Patient(clinic_id=clinic_id, phone=phone_e164)
        session.add(patient)
        session.flush()
    identity.patient_id = patient.id
    return patient
