"""The audit log: every view and change of patient data by a user.

Written in the same transaction as what it records, so a change and its entry
stand or fall together. Append-only: the table refuses UPDATE and DELETE
(triggers from migration 0005). Never holds message text or a phone number:
``detail`` names fields, not their values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import AuditEntry
from core.users import Actor

ACTIONS = ("view", "create", "update", "delete", "login", "logout", "export", "send")


def record(
    session: Session,
    *,
    user: Actor | None,
    action: str,
    entity: str,
    now: datetime,
    entity_id: int | None = None,
    patient_id: int | None = None,
    source: str = "web",
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    assert action in ACTIONS, action
    entry = AuditEntry(
        at=now,
        user_id=user.id if user is not None else None,
        user_email=user.email if user is not None else "",
        action=action,
        entity=entity,
        entity_id=entity_id,
        patient_id=patient_id,
        source=source,
        ip=(ip or None) and ip[:64],
        detail=detail or {},
    )
    session.add(entry)
    return entry


def entries(
    session: Session,
    *,
    user_id: int | None = None,
    user_email: str | None = None,
    patient_id: int | None = None,
    action: str | None = None,
    entity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[AuditEntry]:
    """Newest first, filtered; ``offset`` skips that many (pages)."""
    query = (
        select(AuditEntry)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    if user_email:
        query = query.where(AuditEntry.user_email == user_email)
    if patient_id is not None:
        query = query.where(AuditEntry.patient_id == patient_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return list(session.scalars(query))
