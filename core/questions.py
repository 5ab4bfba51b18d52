"""Ask the doctor: a patient's question becomes a thread for their practitioner
(or the clinic's triage queue when ``practitioner_id`` is NULL), answered
asynchronously from the dashboard or the doctors' Telegram bot.

* The patient is told when to expect an answer: ``answer_by`` counts working
  days (Monday to Friday) from the question, at the same local wall time.
* The answer goes back to the channel and address the patient wrote from
  last, in their language, as a ``clinical`` message: the dispatcher applies
  consent and the WhatsApp 24-hour rule (a template outside it).
* Linked doctors (staff and admins for the triage queue) hear of every new
  patient message on the ``doctor_telegram`` channel, with Reply / Mark
  answered buttons; ``bots.doctor_bot`` sends those rows and reads the taps.

Message bodies are patient data: nothing here logs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, selectinload

from core import outbox
from core.i18n import normalize_language, t
from core.logs import get_logger
from core.messages import Option, Reply
from core.models import (
    ChannelIdentity,
    Clinic,
    Patient,
    Practitioner,
    QuestionMessage,
    QuestionThread,
    User,
)
from core.settings import Settings
from core.users import Actor, can_see_practitioner

log = get_logger(__name__)

MAX_BODY = 4000
# Patients' own words are kept whole up to this much (the channels themselves
# stop near 4096 characters); only hostile input is ever cut.
MAX_PATIENT_BODY = 4 * MAX_BODY
STATUSES = ("open", "answered", "closed")
# An answered thread is still the patient's current one for this long, so
# "thanks, and one more thing..." continues it instead of starting another.
ACTIVE_FOR = timedelta(days=7)
# A weekend question counts from the first working morning.
WORKDAY_START = time(9, 0)

# The doctors' Telegram bot reads these rows (bots.doctor_bot). Their purpose is
# "alert", which core.consent always lets through: they go to a clinician, who
# has no patient-side channel identity or consent record.
DOCTOR_CHANNEL = "doctor_telegram"
DOCTOR_PURPOSE = "alert"
# Telegram caps a message at 4096 characters; the rest is in the dashboard.
DOCTOR_PREVIEW = 3000
PREVIEW = 120


# The service's defaults, for callers that pass no settings.
_DEFAULTS = Settings.model_construct()


class QuestionError(ValueError):
    """The question thread cannot be changed as asked; the message says why."""


# -- when to expect an answer -----------------------------------------------------------


def answer_by(start: datetime, days: int, zone: ZoneInfo) -> datetime:
    """``days`` working days (Monday to Friday) after ``start``, at the same wall
    time in ``zone`` (Friday 16:00 + 1 -> Monday 16:00). A question sent on a
    weekend counts from Monday 09:00 (Saturday + 1 -> Tuesday 09:00). A wall
    time a DST change skips moves forward by the gap. Returned in UTC."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if days < 0:
        raise ValueError("days must not be negative")
    local = start.astimezone(zone)
    day = local.date()
    wall = local.time().replace(fold=0)
    if day.weekday() >= 5:
        day += timedelta(days=7 - day.weekday())
        wall = WORKDAY_START
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5:
            counted += 1
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def target_days(clinic: Clinic, settings: Settings) -> int:
    """The clinic's own answer target, else the service's."""
    own = clinic.question_answer_days
    return own if own is not None and own >= 1 else settings.question_answer_days


def _due(session: Session, clinic_id: int, now: datetime, settings: Settings) -> datetime:
    clinic = session.get(Clinic, clinic_id)
    if clinic is None:
        raise QuestionError(f"no clinic {clinic_id}")
    return answer_by(now, target_days(clinic, settings), ZoneInfo(clinic.timezone or "UTC"))


def is_late(thread: QuestionThread, now: datetime) -> bool:
    """Open (waiting for the care team) and past the time the patient was given."""
    return thread.status == "open" and thread.due_at < now


# -- the patient's side -----------------------------------------------------------------


def _clean(body: str) -> str:
    """Trimmed, without NUL characters (PostgreSQL text cannot hold them)."""
    return (body or "").replace("\x00", "").strip()


def _patient_body(body: str) -> str:
    return _clean(body)[:MAX_PATIENT_BODY]


def _media(media: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{_clean(str(k)): _clean(str(v)) for k, v in m.items()} for m in media or []]


def open_thread(
    session: Session,
    *,
    patient_id: int,
    practitioner_id: int | None,
    channel: str,
    address: str,
    body: str,
    media: list[dict[str, str]],
    inbound_id: int | None,
    now: datetime,
    settings: Settings,
) -> QuestionThread:
    """A new question for ``practitioner_id`` (None: the clinic's triage queue)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise QuestionError(f"no patient {patient_id}")
    if practitioner_id is not None and session.get(Practitioner, practitioner_id) is None:
        raise QuestionError(f"no practitioner {practitioner_id}")
    text, attached = _patient_body(body), _media(media)
    if not text and not attached:
        raise QuestionError("the question is empty")
    thread = QuestionThread(
        clinic_id=patient.clinic_id,
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        channel=channel,
        address=address,
        status="open",
        due_at=_due(session, patient.clinic_id, now, settings),
        created_at=now,
        updated_at=now,
    )
    message = QuestionMessage(
        author="patient", body=text, media=attached, inbound_id=inbound_id, created_at=now
    )
    thread.messages.append(message)
    session.add(thread)
    session.flush()
    log.info("question_opened", thread_id=thread.id, practitioner_id=practitioner_id)
    notify_doctors(session, thread, message, now)
    return thread


def add_patient_message(
    session: Session,
    thread: QuestionThread,
    *,
    body: str,
    media: list[dict[str, str]],
    inbound_id: int | None,
    channel: str,
    address: str,
    now: datetime,
    settings: Settings | None = None,
) -> QuestionMessage:
    """A follow-up from the patient. The answer will go where they wrote from
    now; an answered thread is open again, with a new target from now
    (``settings`` gives the service's target when the clinic sets none)."""
    if thread.status == "closed":
        raise QuestionError(f"thread #{thread.id} is closed")
    text, attached = _patient_body(body), _media(media)
    if not text and not attached:
        raise QuestionError("the message is empty")
    message = QuestionMessage(
        author="patient", body=text, media=attached, inbound_id=inbound_id, created_at=now
    )
    thread.messages.append(message)
    thread.channel, thread.address = channel, address
    if thread.status == "answered":
        thread.status = "open"
        thread.due_at = _due(session, thread.clinic_id, now, settings or _DEFAULTS)
    thread.updated_at = now
    session.flush()
    log.info("question_followed_up", thread_id=thread.id)
    notify_doctors(session, thread, message, now)
    return message


def ask(
    session: Session,
    *,
    patient_id: int,
    practitioner_id: int | None,
    channel: str,
    address: str,
    body: str,
    media: list[dict[str, str]],
    inbound_id: int | None,
    now: datetime,
    settings: Settings,
    thread: QuestionThread | None = None,
) -> tuple[QuestionThread, bool]:
    """A patient's message for the doctor: into ``thread`` when given, else
    into their active thread when it is with the same practitioner, else a new
    thread. Returns the thread and whether the message joined an existing one."""
    if thread is None:
        current = active_thread(session, patient_id=patient_id, now=now)
        if current is not None and current.practitioner_id == practitioner_id:
            thread = current
    if thread is not None:
        add_patient_message(
            session,
            thread,
            body=body,
            media=media,
            inbound_id=inbound_id,
            channel=channel,
            address=address,
            now=now,
            settings=settings,
        )
        return thread, True
    opened = open_thread(
        session,
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        channel=channel,
        address=address,
        body=body,
        media=media,
        inbound_id=inbound_id,
        now=now,
        settings=settings,
    )
    return opened, False


def active_thread(session: Session, *, patient_id: int, now: datetime) -> QuestionThread | None:
    """The patient's current thread: open, or answered within ACTIVE_FOR."""
    return session.scalars(
        select(QuestionThread)
        .where(
            QuestionThread.patient_id == patient_id,
            (QuestionThread.status == "open")
            | (
                (QuestionThread.status == "answered")
                & (QuestionThread.answered_at >= now - ACTIVE_FOR)
            ),
        )
        .order_by(QuestionThread.updated_at.desc(), QuestionThread.id.desc())
        .limit(1)
    ).first()


# -- the care team's side ---------------------------------------------------------------


def _thread(session: Session, thread_id: int) -> QuestionThread:
    thread = session.get(QuestionThread, thread_id) if isinstance(thread_id, int) else None
    if thread is None:
        raise QuestionError(f"no question thread #{thread_id}")
    return thread


def reply(
    session: Session,
    thread_id: int,
    *,
    author: Actor,
    body: str,
    now: datetime,
    settings: Settings,
) -> QuestionMessage:
    """The care team's answer: stored, queued to the patient, thread answered."""
    text = _clean(body)
    if not text:
        raise QuestionError("the answer is empty")
    if len(text) > MAX_BODY:
        raise QuestionError(f"the answer is longer than {MAX_BODY} characters")
    thread = _thread(session, thread_id)
    if thread.status == "closed":
        raise QuestionError(f"thread #{thread.id} is closed")
    if not can_see_practitioner(author, thread.practitioner_id):
        raise QuestionError(f"thread #{thread.id} is not in your queue")
    role = "doctor" if author.role == "doctor" else "staff"
    message = QuestionMessage(author=role, user_id=author.id, body=text, media=[], created_at=now)
    thread.messages.append(message)
    thread.status, thread.answered_at, thread.updated_at = "answered", now, now
    session.flush()
    _send_answer(session, thread, author, text, now, settings)
    log.info("question_answered", thread_id=thread.id, user_id=author.id)
    return message


def _send_answer(
    session: Session,
    thread: QuestionThread,
    author: Actor,
    text: str,
    now: datetime,
    settings: Settings,
) -> None:
    """Queue the answer where the patient wrote from last; if they opted out
    there but another of their identities did not, there instead (as
    prescriptions do). The dispatcher still checks consent when it sends."""
    from core.reminders import reachable, recipients

    channel, address = thread.channel, thread.address
    identity = session.scalars(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == channel, ChannelIdentity.address == address
        )
    ).first()
    if identity is not None and identity.opted_out_at is not None:
        usable = reachable(recipients(session, [thread.patient_id]).get(thread.patient_id, []))
        if usable and usable[0].opted_out_at is None:
            identity = usable[0]
            channel, address = identity.channel, identity.address
    clinic = session.get(Clinic, thread.clinic_id)
    patient = thread.patient
    lang = normalize_language(
        (identity.language if identity is not None else None)
        or patient.language
        or (clinic.default_language if clinic is not None else None)
        or settings.default_language
    )
    who = _who(session, author, clinic, lang)
    who = who[:1].upper() + who[1:]  # "The care team at ..." starts the sentence
    reply_ = Reply(t(lang, "ask.answered", who=who, body=text), purpose="clinical")
    outbox.enqueue(session, channel=channel, address=address, reply=reply_, now=now)


def _who(session: Session, author: Actor, clinic: Clinic | None, lang: str) -> str:
    """Who answered, as the patient should read it: the doctor by name, else
    the clinic's care team."""
    if author.role == "doctor" and author.practitioner_id is not None:
        p = session.get(Practitioner, author.practitioner_id)
        if p is not None:
            return p.name
    return t(lang, "ask.care_team", clinic=clinic.name if clinic is not None else "")


def close(session: Session, thread_id: int, *, now: datetime) -> None:
    """Nothing more to answer ("Mark answered" / closed by staff)."""
    thread = _thread(session, thread_id)
    thread.status, thread.updated_at = "closed", now
    log.info("question_closed", thread_id=thread.id)


@dataclass
class ThreadRow:
    thread: QuestionThread
    late: bool
    last_at: datetime
    last_author: str
    preview: str


def inbox(
    session: Session,
    *,
    actor: Actor,
    status: str | None = "open",
    now: datetime,
    limit: int = 200,
) -> list[ThreadRow]:
    """The threads ``actor`` answers: a doctor their practitioner's; staff and
    admins all, the triage queue included. Late ones first, then the oldest due."""
    query = select(QuestionThread).options(
        selectinload(QuestionThread.patient), selectinload(QuestionThread.practitioner)
    )
    if actor.role not in ("admin", "staff"):
        if actor.practitioner_id is None:
            return []
        query = query.where(QuestionThread.practitioner_id == actor.practitioner_id)
    if status is not None:
        query = query.where(QuestionThread.status == status)
    late = case((and_(QuestionThread.status == "open", QuestionThread.due_at < now), 0), else_=1)
    threads = list(
        session.scalars(
            query.order_by(late, QuestionThread.due_at, QuestionThread.id).limit(max(0, limit))
        )
    )
    last = _last_messages(session, [th.id for th in threads])
    rows = []
    for th in threads:
        message = last.get(th.id)
        rows.append(
            ThreadRow(
                thread=th,
                late=is_late(th, now),
                last_at=message.created_at if message is not None else th.updated_at,
                last_author=message.author if message is not None else "",
                preview=preview(message) if message is not None else "",
            )
        )
    return rows


def _last_messages(session: Session, thread_ids: list[int]) -> dict[int, QuestionMessage]:
    if not thread_ids:
        return {}
    newest = (
        select(func.max(QuestionMessage.id))
        .where(QuestionMessage.thread_id.in_(thread_ids))
        .group_by(QuestionMessage.thread_id)
    )
    found = session.scalars(select(QuestionMessage).where(QuestionMessage.id.in_(newest)))
    return {m.thread_id: m for m in found}


def _marks(media: list[dict[str, str]]) -> str:
    return " ".join(
        "[photo]" if str(m.get("content_type", "")).startswith("image/") else "[attachment]"
        for m in media or []
    )


def preview(message: QuestionMessage, size: int = PREVIEW) -> str:
    """One line of a message for lists: its words, else its attachments."""
    text = " ".join((message.body or "").split())
    if len(text) > size:
        text = text[: size - 1] + "…"
    return " ".join(x for x in (text, _marks(message.media)) if x)


# -- telling the doctors ----------------------------------------------------------------


def notify_doctors(
    session: Session, thread: QuestionThread, message: QuestionMessage, now: datetime
) -> int:
    """Queue a note of ``message`` for every active linked user who answers
    ``thread`` on Telegram: the practitioner's users, or for the triage queue
    staff and admins. Returns how many rows were queued."""
    users = select(User).where(User.active.is_(True), User.telegram_chat_id.is_not(None))
    if thread.practitioner_id is not None:
        users = users.where(User.practitioner_id == thread.practitioner_id)
    else:
        users = users.where(User.role.in_(("staff", "admin")))
    found = list(session.scalars(users.order_by(User.id)))
    if not found:
        return 0
    clinic = session.get(Clinic, thread.clinic_id)
    lang = normalize_language(clinic.default_language if clinic is not None else None)
    patient = thread.patient
    name = patient.name or t(lang, "ask.doctor_unnamed", id=patient.id)
    first = len(thread.messages) <= 1
    words = (message.body or "").strip()
    if len(words) > DOCTOR_PREVIEW:
        words = words[: DOCTOR_PREVIEW - 1] + "…"
    body = " ".join(x for x in (words, _marks(message.media)) if x)
    text = t(
        lang,
        "ask.doctor_new" if first else "ask.doctor_more",
        patient=name,
        thread=thread.id,
        body=body,
    )
    options = (
        Option(t(lang, "ask.doctor_reply"), f"reply:{thread.id}"),
        Option(t(lang, "ask.doctor_close"), f"close:{thread.id}"),
    )
    note = Reply(text, options, purpose=DOCTOR_PURPOSE)
    for user in found:
        assert user.telegram_chat_id is not None
        outbox.enqueue(
            session, channel=DOCTOR_CHANNEL, address=user.telegram_chat_id, reply=note, now=now
        )
    return len(found)
