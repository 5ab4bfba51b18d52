"""Urgent alerts for staff (red flags, emergency intakes, locked identities):
acknowledging one. Shared by ``telemed alerts ack`` and the dashboard."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.models import Alert

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
