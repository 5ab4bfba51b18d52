"""What a notification says, in the patient's language, when it is sent.

The scheduler queues notifications as outbox rows whose payload names the
notification (``{"notification": id}``); the dispatcher calls ``render`` at
send time, so the text shows the appointment as it is then, and a row whose
appointment was cancelled meanwhile is not sent at all. The options here are
the ones ``flows.prompts`` reads the answers against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core import intake, video
from core.i18n import format_when, normalize_language, t
from core.messages import Option, Reply
from core.models import (
    Appointment,
    ChannelIdentity,
    Clinic,
    IntakeResponse,
    Notification,
    Practitioner,
    VideoLink,
)

ACTIVE = ("booked", "confirmed")


def options(
    kind: str, lang: str, data: dict[str, Any] | None = None, *, questions: int | None = None
) -> tuple[Option, ...]:
    """The numbered choices a notification of ``kind`` offers (the reminder
    that invites to the symptom intake has a fourth, naming ``questions`` left)."""
    if kind == "reminder":
        base = (
            Option(t(lang, "reminder.confirm"), "confirm"),
            Option(t(lang, "reminder.reschedule"), "reschedule"),
            Option(t(lang, "reminder.cancel"), "cancel"),
        )
        if (data or {}).get("intake"):
            count = intake.load().question_count() if questions is None else questions
            return (*base, Option(t(lang, "intake.reminder_option", count=count), "intake"))
        return base
    if kind == "no_show":
        return (Option(t(lang, "noshow.rebook"), "rebook"), Option(t(lang, "noshow.no"), "no"))
    if kind == "prescription":
        return (Option(t(lang, "rx.see"), "rx:see"),)
    if kind == "waitlist_offer":
        return (Option(t(lang, "waitlist.take"), "take"), Option(t(lang, "waitlist.pass"), "no"))
    return ()


Identities = Mapping[tuple[str, str], ChannelIdentity]


def language_of(
    session: Session, n: Notification, clinic: Clinic | None, identities: Identities | None = None
) -> tuple[str, str]:
    """(language, time zone) to write to the notification's recipient in.

    ``identities`` (by channel and address) are ones the caller already loaded."""
    key = (n.channel, n.address)
    if identities is not None and key in identities:
        identity: ChannelIdentity | None = identities[key]
    else:
        identity = session.scalars(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == n.channel, ChannelIdentity.address == n.address
            )
        ).first()
    patient = identity.patient if identity is not None else None
    lang = (
        (identity.language if identity else None)
        or (patient.language if patient else None)
        or (clinic.default_language if clinic else None)
    )
    tz = (patient.timezone if patient else None) or (clinic.timezone if clinic else None) or "UTC"
    return normalize_language(lang), tz


def place(lang: str, visit_type: str, clinic: Clinic) -> str:
    if visit_type == "video":
        return t(lang, "reminder.by_video")
    return t(lang, "reminder.at", place=clinic.address or clinic.name)


def prefetch(session: Session, payloads: Iterable[dict[str, Any]]) -> None:
    """Load the notifications the payloads name, with their appointments and
    patients, in a few queries: ``render`` then finds them in the session
    instead of querying row by row (a pass of reminders is hundreds of rows)."""
    ids = [int(p["notification"]) for p in payloads if "notification" in p]
    if ids:
        session.scalars(
            select(Notification)
            .where(Notification.id.in_(ids))
            .options(selectinload(Notification.appointment).selectinload(Appointment.patient))
        ).all()


def render(
    session: Session, payload: dict[str, Any], now: datetime, identities: Identities | None = None
) -> Reply | None:
    """The message for an outbox payload naming a notification; ``None`` when it
    should no longer be sent (the appointment changed, the offer lapsed)."""
    n = session.get(Notification, int(payload["notification"]))
    if n is None:
        return None
    appointment = n.appointment
    p: Practitioner | None = appointment.practitioner if appointment is not None else None
    if n.kind in ("waitlist_offer", "waitlist_gone"):
        p = session.get(Practitioner, int(n.data.get("practitioner_id", 0)))
    if p is None:
        return None
    clinic = p.clinic
    lang, tz = language_of(session, n, clinic, identities)
    values = {"clinic": clinic.name, "practitioner": p.name}
    if n.kind == "reminder":
        if appointment is None or appointment.status not in ACTIVE or appointment.start_at <= now:
            return None
        text = t(
            lang,
            "reminder.text",
            **values,
            when=format_when(appointment.start_at, lang, tz),
            place=place(lang, appointment.visit_type, clinic),
        )
    elif n.kind == "video_link":
        if appointment is None or appointment.status not in ACTIVE or appointment.end_at <= now:
            return None
        link_id = n.data.get("video_link_id")
        if link_id is not None:
            link = session.get(VideoLink, int(link_id))
            if link is None or link.revoked_at is not None:
                return None  # revoked meanwhile: a dead link helps nobody
        text = video.link_text(
            lang,
            tz,
            appointment,
            str(n.data.get("link", "")),
            now,
            int(n.data.get("early_minutes", video.EARLY_MINUTES)),
        )
    elif n.kind == "no_show":
        if appointment is None:
            return None
        text = t(lang, "noshow.text", **values, when=format_when(appointment.start_at, lang, tz))
    elif n.kind in ("waitlist_offer", "waitlist_gone"):
        start = datetime.fromisoformat(str(n.data["start"]))
        if n.kind == "waitlist_offer" and (n.status != "queued" or start <= now):
            return None
        key = "waitlist.offer" if n.kind == "waitlist_offer" else "waitlist.gone"
        text = t(
            lang,
            key,
            **values,
            when=format_when(start, lang, tz),
            minutes=int(n.data.get("minutes", 15)),
        )
    else:
        return None
    left = None
    if n.kind == "reminder" and n.data.get("intake") and appointment is not None:
        left = questions_left(session, appointment.id)
    offered = options(n.kind, lang, n.data, questions=left)
    if left == 0:
        offered = offered[:3]  # already answered: no invitation to answer again
    return Reply(text, offered, purpose=n.purpose)


def questions_left(session: Session, appointment_id: int) -> int:
    """Intake questions the patient still has to answer for this visit."""
    q = intake.load()
    row = session.scalars(
        select(IntakeResponse).where(
            IntakeResponse.appointment_id == appointment_id, IntakeResponse.questionnaire == q.id
        )
    ).first()
    if row is None:
        return q.question_count()
    if row.status != "in-progress":
        return 0
    answers = dict(row.answers or {})
    return sum(1 for item in q.enabled_items(answers) if item.link_id not in answers)


def record_answer(session: Session, notification_id: object, answer: str, now: datetime) -> None:
    """The patient acted on a notification (for the report: confirmed,
    rescheduled, cancelled through reminders)."""
    if not isinstance(notification_id, int):
        return
    n = session.get(Notification, notification_id)
    if n is not None:
        n.status, n.answer, n.answered_at = "answered", answer, now
