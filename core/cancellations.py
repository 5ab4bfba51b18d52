"""The clinic cancelling a visit (a doctor ill, a room closed): the patient
must hear about it, or they come for nothing. One function for the
dashboard, the REST API and ``telemed appointments cancel``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core import outbox, scheduling
from core.i18n import format_when, normalize_language, t
from core.logs import get_logger
from core.messages import Reply
from core.models import Appointment, Clinic, Patient
from core.reminders import address_for, recipients

log = get_logger(__name__)


def cancel_for_clinic(
    session: Session, appointment_id: int, *, now: datetime, default_language: str = "en"
) -> Appointment:
    """Cancels (reason ``clinic``; the freed slot then goes to the waitlist)
    and queues a message to the patient on the channel they booked on, with a
    way to book again. ``scheduling.InvalidTransition`` when it cannot be
    cancelled (already cancelled, already started)."""
    appointment = scheduling.cancel(session, appointment_id, now=now, reason="clinic")
    if appointment.hold_expires_at is not None and appointment.channel is None:
        return appointment  # a hold nobody confirmed: no one to tell
    patient = session.get(Patient, appointment.patient_id)
    clinic = session.get(Clinic, appointment.clinic_id)
    identities = recipients(session, [appointment.patient_id]).get(appointment.patient_id, [])
    where = address_for(identities, appointment.channel)
    if where is None or patient is None or clinic is None:
        log.info("cancel_notice_no_address", appointment_id=appointment.id)
        return appointment
    channel, address = where
    identity = next(i for i in identities if (i.channel, i.address) == where)
    lang = normalize_language(
        identity.language or patient.language or clinic.default_language or default_language
    )
    zone = patient.timezone or appointment.practitioner.timezone or clinic.timezone
    text = t(
        lang,
        "cancelled_by_clinic.text",
        clinic=clinic.name,
        practitioner=appointment.practitioner.name,
        when=format_when(appointment.start_at, lang, zone),
    )
    if clinic.phone:
        text += " " + t(lang, "cancelled_by_clinic.call", phone=clinic.phone)
    # No numbered options: a later "1" would be read by whatever the patient
    # is doing then; BOOK and MENU work in any state.
    reply = Reply(text + " " + t(lang, "cancelled_by_clinic.next"), purpose="reminder")
    outbox.enqueue(session, channel=channel, address=address, reply=reply, now=now)
    return appointment
