"""Urgent alerts for staff (red flags, emergency intakes, locked identities):
raising a red-flag alert (the flows and the Rasa actions) and acknowledging
one (``telemed alerts ack`` and the dashboard)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from core import outbox
from core.i18n import t
from core.messages import Reply
from core.models import Alert, Clinic
from core.settings import Settings

# Ids are 32-bit integers in PostgreSQL; a larger one can name no row (and
# would be an error there rather than "not found").
MAX_ID = 2**31 - 1


def acknowledge(session: Session, alert_id: int, *, now: datetime) -> Alert | None:
    """Mark an alert as seen and handled (twice is fine); None when there is no such alert."""
    alert = session.get(Alert, alert_id) if 0 < alert_id <= MAX_ID else None
    if alert is None:
        return None
    if alert.status != "acknowledged":
        alert.status, alert.acknowledged_at = "acknowledged", now
    return alert


def emergency_numbers(clinic: Clinic, settings: Settings) -> tuple[str, str]:
    """(emergency number, crisis line): the clinic's own, else the service's."""
    return (
        clinic.emergency_number or settings.emergency_number,
        clinic.crisis_line or settings.crisis_line,
    )


def raise_red_flag(
    session: Session,
    settings: Settings,
    clinic: Clinic,
    *,
    rules: Sequence[str],
    patient_id: int | None,
    channel: str,
    address: str,
    text: str,
    now: datetime,
    inbound_id: int | None = None,
    appointment_id: int | None = None,
) -> Alert:
    """Record a red-flag alert for staff and, when ``TELEMED_ONCALL_ADDRESS`` is
    set, queue a message to the on-call practitioner, in the caller's
    transaction (the one that stores the patient's emergency reply)."""
    rules = sorted(set(rules))
    alert = Alert(
        clinic_id=clinic.id,
        kind="red_flag",
        level="emergency",
        patient_id=patient_id,
        appointment_id=appointment_id,
        channel=channel,
        address=address,
        inbound_id=inbound_id,
        rules=rules,
        text=text,
        status="open",
        created_at=now,
    )
    session.add(alert)
    target = settings.oncall_address
    if target:
        oncall_channel, _, oncall_address = target.partition(":")
        # Minimum necessary: which rules and where, not the patient's words or number.
        message = t(
            clinic.default_language,
            "alert.oncall",
            clinic=clinic.name,
            rules=", ".join(rules),
            channel=channel,
        )
        outbox.enqueue(
            session,
            channel=oncall_channel,
            address=oncall_address,
            reply=Reply(message, purpose="alert"),
            now=now,
        )
    return alert
