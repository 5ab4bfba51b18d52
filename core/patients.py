"""Patients and the channel identities they write from."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from core.models import ChannelIdentity, Clinic, Patient, table_of

# Built once and reused: on every message, building and keying a statement
# costs more than running it.
_IDENTITY = (
    select(ChannelIdentity)
    .where(
        ChannelIdentity.channel == bindparam("channel"),
        ChannelIdentity.address == bindparam("address"),
    )
    .options(joinedload(ChannelIdentity.patient))
)
_TOUCH = (
    update(table_of(ChannelIdentity))
    .where(table_of(ChannelIdentity).c.id == bindparam("identity_id"))
    .values(last_inbound_at=bindparam("now"))
)


def default_clinic(session: Session) -> Clinic | None:
    return session.scalars(select(Clinic).order_by(Clinic.id).limit(1)).first()


def find_identity(session: Session, channel: str, address: str) -> ChannelIdentity | None:
    """The identity for (channel, address), if there is one (its patient loaded)."""
    return session.scalars(_IDENTITY, {"channel": channel, "address": address}).first()


def get_or_create_identity(
    session: Session, channel: str, address: str, *, now: datetime
) -> ChannelIdentity:
    """The identity for (channel, address), created on first contact.

    Insert-if-absent is done in SQL so two first messages racing on
    PostgreSQL do not trip the unique key.
    """
    identity = find_identity(session, channel, address)
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


def touch_identity(session: Session, identity: ChannelIdentity, now: datetime) -> None:
    """Record the patient's latest message (WhatsApp's 24-hour window counts
    from it) with one UPDATE, leaving the ORM object clean."""
    session.execute(_TOUCH, {"identity_id": identity.id, "now": now})
    set_committed_value(identity, "last_inbound_at", now)


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


def mark_opted_out(session: Session, channel: str, address: str, *, now: datetime) -> None:
    """The provider says this recipient opted out (e.g. Twilio 21610): stop
    every non-essential message to them, as a STOP from them would."""
    identity = get_or_create_identity(session, channel, address, now=now)
    if identity.opted_out_at is None:
        identity.opted_out_at = now
