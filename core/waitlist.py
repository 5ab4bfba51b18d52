"""The waitlist: patients waiting for an earlier slot, offered freed ones.

When a booked slot frees (cancelled, rescheduled away, released by staff),
the scheduler tick (``offer_freed_slots``) offers it to the first matching
waiting patients, oldest entry first, each with a timed claim. The offers are
notifications (``waitlist_offer``); the first valid "1" books the slot through
``core.scheduling.book``, whose per-practitioner lock and overlap check (and
PostgreSQL's exclusion constraint) make sure exactly one reply wins. The
others are told it is gone, and stay on the list.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core import scheduling
from core.models import (
    Appointment,
    Notification,
    Practitioner,
    WaitlistEntry,
)
from core.reminders import insert_notifications, out_of_quiet, planned_row
from core.settings import Settings, parse_quiet_hours

# Cancellations that never freed a bookable slot.
NOT_FREED = (scheduling.HOLD_EXPIRED, scheduling.HOLD_REPLACED, "hold_released")
DEFAULT_SPAN = timedelta(days=14)


class OfferLapsed(Exception):
    """The offer expired, or was already answered."""


def join(
    session: Session,
    *,
    clinic_id: int,
    patient_id: int,
    channel: str,
    address: str,
    practitioner: Practitioner,
    earliest: datetime,
    latest: datetime,
    now: datetime,
    appointment_id: int | None = None,
    visit_type: str = "in_person",
) -> WaitlistEntry:
    """Put the patient on the list (or update their entry for this practitioner)."""
    entry = session.scalars(
        select(WaitlistEntry).where(
            WaitlistEntry.patient_id == patient_id,
            WaitlistEntry.practitioner_id == practitioner.id,
            WaitlistEntry.status == "waiting",
        )
    ).first()
    if entry is None:
        entry = WaitlistEntry(
            clinic_id=clinic_id,
            patient_id=patient_id,
            practitioner_id=practitioner.id,
            specialty=practitioner.specialty,
            status="waiting",
            created_at=now,
        )
        session.add(entry)
    entry.channel, entry.address = channel, address
    entry.earliest_at, entry.latest_at = earliest, latest
    entry.appointment_id, entry.visit_type = appointment_id, visit_type
    entry.updated_at = now
    session.flush()
    return entry


def _freed(session: Session, limit: int) -> list[Appointment]:
    query = (
        select(Appointment)
        .where(Appointment.status == "cancelled", Appointment.waitlist_checked_at.is_(None))
        .order_by(Appointment.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Appointment)
    return list(session.scalars(query).unique())


def offer_freed_slots(session: Session, settings: Settings, now: datetime) -> int:
    """Offer each newly freed slot to the first waiting patients; returns offers made."""
    freed = _freed(session, 500)
    if not freed:
        return 0
    session.execute(
        update(Appointment)
        .where(Appointment.id.in_([a.id for a in freed]))
        .values(waitlist_checked_at=now)
        .execution_options(synchronize_session=False)
    )
    claim = timedelta(minutes=settings.waitlist_claim_minutes)
    rows: list[dict[str, Any]] = []
    offered: set[int] = set()
    for slot in freed:
        if slot.cancel_reason in NOT_FREED or slot.start_at <= now:
            continue
        p = slot.practitioner
        if not scheduling.is_slot_free(session, p, slot.start_at, now=now):
            continue
        for entry in _matching(session, slot, now, settings.waitlist_offer_count, offered):
            offered.add(entry.id)
            zone = ZoneInfo(p.clinic.timezone or "UTC")
            due = out_of_quiet(now, zone, parse_quiet_hours(settings.quiet_hours))
            rows.append(
                planned_row(
                    kind="waitlist_offer",
                    dedupe_key=f"waitlist_offer:{slot.id}:{entry.id}",
                    patient_id=entry.patient_id,
                    channel=entry.channel,
                    address=entry.address,
                    due_at=due,
                    send_by=due + claim,
                    expires_at=due + claim,
                    created_at=now,
                    data={
                        "entry_id": entry.id,
                        "practitioner_id": p.id,
                        "start": slot.start_at.isoformat(),
                        "slot": slot_key(p.id, slot.start_at),
                        "visit_type": entry.visit_type,
                        "minutes": settings.waitlist_claim_minutes,
                        "freed_id": slot.id,
                    },
                )
            )
    insert_notifications(session, rows)
    return len(rows)


def slot_key(practitioner_id: int, start: datetime) -> str:
    return f"{practitioner_id}:{start.isoformat()}"


def _matching(
    session: Session, slot: Appointment, now: datetime, count: int, offered: set[int]
) -> list[WaitlistEntry]:
    p = slot.practitioner
    open_offer = (
        select(Notification.id)
        .where(
            Notification.kind == "waitlist_offer",
            Notification.status.in_(("planned", "queued")),
            Notification.expires_at > now,
            Notification.patient_id == WaitlistEntry.patient_id,
        )
        .exists()
    )
    query = (
        select(WaitlistEntry)
        .where(
            WaitlistEntry.status == "waiting",
            WaitlistEntry.clinic_id == p.clinic_id,
            or_(
                WaitlistEntry.practitioner_id == p.id,
                (WaitlistEntry.practitioner_id.is_(None))
                & (WaitlistEntry.specialty == p.specialty),
            ),
            WaitlistEntry.earliest_at <= slot.start_at,
            WaitlistEntry.latest_at > slot.start_at,
            WaitlistEntry.patient_id != slot.patient_id,
            ~open_offer,
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(count + len(offered))
    )
    found = [e for e in session.scalars(query) if e.id not in offered]
    return found[:count]


def take(session: Session, offer: Notification, now: datetime) -> Appointment:
    """Book the offered slot for the patient; raises ``OfferLapsed`` or
    ``scheduling.SlotUnavailable`` (someone else was first)."""
    if offer.status == "cancelled" and offer.reason == "taken":
        # Told now, in answer: the "it's gone" notice would only repeat it.
        offer.status, offer.answer, offer.answered_at = "answered", "gone", now
        session.execute(
            update(Notification)
            .where(
                Notification.dedupe_key == f"waitlist_gone:{offer.id}",
                Notification.status == "planned",
            )
            .values(status="cancelled", reason="told")
        )
        raise scheduling.SlotUnavailable("someone else took the offered slot")
    if offer.status != "queued" or offer.expires_at is None or offer.expires_at <= now:
        raise OfferLapsed(f"offer {offer.id} is {offer.status}")
    entry = session.get(WaitlistEntry, int(offer.data["entry_id"]))
    p = session.get(Practitioner, int(offer.data["practitioner_id"]))
    if entry is None or p is None or entry.status != "waiting":
        raise OfferLapsed(f"offer {offer.id} has no waiting entry")
    start = datetime.fromisoformat(str(offer.data["start"]))
    old = session.get(Appointment, entry.appointment_id) if entry.appointment_id else None
    try:
        appointment = scheduling.book(
            session,
            practitioner=p,
            patient_id=entry.patient_id,
            start=start,
            now=now,
            channel=entry.channel,
            visit_type=str(offer.data.get("visit_type") or "in_person"),
        )
    except scheduling.SlotUnavailable:
        offer.status, offer.answer, offer.answered_at = "answered", "gone", now
        raise
    if old is not None and old.status in ("booked", "confirmed") and old.start_at > now:
        scheduling.cancel(session, old.id, now=now, reason=scheduling.RESCHEDULED)
        appointment.rescheduled_from_id = old.id
    entry.status, entry.updated_at = "booked", now
    offer.status, offer.answer, offer.answered_at = "answered", "take", now
    _tell_the_others(session, offer, now)
    return appointment


def _tell_the_others(session: Session, won: Notification, now: datetime) -> None:
    """Offers of the same slot: unsent ones are dropped, sent ones get a "gone" note."""
    others = session.scalars(
        select(Notification).where(
            Notification.kind == "waitlist_offer",
            Notification.status.in_(("planned", "queued")),
            Notification.id != won.id,
            Notification.data["slot"].as_string() == won.data["slot"],
        )
    )
    rows = []
    for other in others:
        was_sent = other.status == "queued"
        other.status, other.reason = "cancelled", "taken"
        if was_sent:
            rows.append(
                planned_row(
                    kind="waitlist_gone",
                    dedupe_key=f"waitlist_gone:{other.id}",
                    patient_id=other.patient_id,
                    channel=other.channel,
                    address=other.address,
                    due_at=now,
                    send_by=now + timedelta(hours=1),
                    created_at=now,
                    data=dict(other.data),
                )
            )
    session.flush()
    insert_notifications(session, rows)
