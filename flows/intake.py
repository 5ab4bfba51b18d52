"""Symptom intake before a visit, one question per message.

Entered three ways: offered right after booking (``offer_after_booking`` ->
"intake.offer"), from the 24h reminder's "answer N quick questions" option
(``start``), and by the patient asking for it ("questions", "preguntas":
``resume``). Answers are saved on the ``IntakeResponse`` row after every
message, so a pause, a time-out or a detour through the menu loses nothing:
the row's ``item`` is where to carry on.

Each answer is read by ``core.intake.parse_answer``; an unreadable one is
re-asked with what is expected, and the third failed try records "not
answered" and moves on, so nobody is stuck. A red flag in any message ends
the intake at once with the emergency advice and an ``Alert`` for staff. At
the end the triage level and the doctor's summary are stored; an urgent level
offers a same-day visit through the booking flow.

Answers and names are patient data: nothing here logs them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from core import notices
from core.alerts import emergency_numbers
from core.i18n import format_when
from core.intake import (
    MAX_TRIES,
    Item,
    Questionnaire,
    Triage,
    assess,
    by_id,
    expect_key,
    is_pause,
    is_resume,
    load,
    parse_answer,
    summary,
)
from core.messages import Option, Reply
from core.models import Alert, Appointment, IntakeResponse
from core.nlu import classify_intent
from flows.context import END, Ctx, Outcome, with_notice

OFFER = "intake.offer"
QUESTION = "intake.question"
SAME_DAY = "intake.same_day"
OPEN_STATUSES = ("booked", "confirmed")


# -- the rows -------------------------------------------------------------------


def _questionnaire() -> Questionnaire:
    return load()


def _row(ctx: Ctx) -> IntakeResponse | None:
    row = ctx.session.get(IntakeResponse, ctx.data.get("intake_id", 0))
    return row if row is not None and row.status == "in-progress" else None


def _response_for(ctx: Ctx, appointment_id: int, q: Questionnaire) -> IntakeResponse | None:
    return ctx.session.scalars(
        select(IntakeResponse).where(
            IntakeResponse.appointment_id == appointment_id,
            IntakeResponse.questionnaire == q.id,
        )
    ).first()


def _upcoming(ctx: Ctx, appointment: Appointment | None) -> bool:
    """An appointment of this patient still to come."""
    return (
        appointment is not None
        and appointment.patient_id == ctx.identity.patient_id
        and appointment.status in OPEN_STATUSES
        and appointment.start_at > ctx.now
    )


def pending_questions(ctx: Ctx, appointment_id: int) -> int:
    """How many questions are left for this appointment's intake (0 when done):
    the count for "answer N quick questions"."""
    return notices.questions_left(ctx.session, appointment_id)


# -- entry points (the lead wires these into booking, reminders and the engine) --


def offer_after_booking(ctx: Ctx, appointment_id: int, *texts: str) -> Outcome:
    """Say ``texts`` (the booking confirmation), then offer the intake."""
    ctx.conversation.data = {"appointment_id": appointment_id}
    return Outcome(next=OFFER, replies=[Reply(text) for text in texts])


def start(ctx: Ctx, appointment_id: int) -> Outcome:
    """Ask the intake for ``appointment_id`` now: a new one from the first
    question, or an unfinished one from where the patient left off."""
    appointment = ctx.session.get(Appointment, appointment_id)
    if appointment is None or not _upcoming(ctx, appointment):
        return Outcome.end(ctx.t("intake.nothing"))
    q = _questionnaire()
    row = _response_for(ctx, appointment_id, q)
    if row is not None and row.status != "in-progress":
        return Outcome.end(ctx.t("intake.already_done"))
    notice = ctx.t("intake.welcome_back")
    if row is None:
        first = q.next_item({})
        row = IntakeResponse(
            appointment_id=appointment_id,
            patient_id=appointment.patient_id,
            questionnaire=q.id,
            version=q.version,
            language=ctx.lang,
            status="in-progress",
            item=first.link_id if first else None,
            answers={},
            tries=0,
            triage_rules=[],
            started_at=ctx.now,
            updated_at=ctx.now,
        )
        ctx.session.add(row)
        ctx.session.flush()
        notice = ctx.t("intake.intro")
    ctx.conversation.data = {"intake_id": row.id}
    if row.item is None or q.item(row.item) is None:
        return _advance(ctx, row, q, None)
    return Outcome.go(QUESTION, notice)


def resume(ctx: Ctx, text: str | None = None) -> Outcome | None:
    """The patient asked for the questions ("questions", "preguntas", "intake"):
    their unfinished intake, else one for their next visit. ``None`` when the
    message is not such a request, so the caller routes it as usual."""
    if not is_resume(ctx.message.text if text is None else text):
        return None
    if ctx.identity.patient_id is None:
        return Outcome.end(ctx.t("intake.nothing"))
    q = _questionnaire()
    unfinished = ctx.session.scalars(
        select(IntakeResponse)
        .join(Appointment, Appointment.id == IntakeResponse.appointment_id)
        .where(
            IntakeResponse.patient_id == ctx.identity.patient_id,
            IntakeResponse.status == "in-progress",
            Appointment.status.in_(OPEN_STATUSES),
            Appointment.start_at > ctx.now,
        )
        .order_by(IntakeResponse.updated_at.desc())
    ).first()
    if unfinished is not None:
        return start(ctx, unfinished.appointment_id)
    answered = select(IntakeResponse.appointment_id).where(
        IntakeResponse.patient_id == ctx.identity.patient_id,
        IntakeResponse.questionnaire == q.id,
    )
    upcoming = ctx.session.scalars(
        select(Appointment)
        .where(
            Appointment.patient_id == ctx.identity.patient_id,
            Appointment.status.in_(OPEN_STATUSES),
            Appointment.start_at > ctx.now,
            Appointment.id.not_in(answered),
        )
        .order_by(Appointment.start_at)
    ).first()
    if upcoming is None:
        return Outcome.end(ctx.t("intake.nothing"))
    return start(ctx, upcoming.id)


# -- steps ----------------------------------------------------------------------


class Offer:
    """Right after booking: "would you answer N quick questions?"."""

    name = OFFER

    def enter(self, ctx: Ctx) -> Outcome | None:
        appointment = ctx.session.get(Appointment, ctx.data.get("appointment_id", 0))
        if appointment is None or not _upcoming(ctx, appointment):
            return Outcome(next=END)  # nothing to offer: the confirmation stands alone
        if pending_questions(ctx, appointment.id) == 0:
            return Outcome(next=END)
        return None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        appointment = ctx.session.get(Appointment, ctx.data.get("appointment_id", 0))
        if appointment is None:
            return [Reply(with_notice(notice, ctx.t("intake.nothing")))]
        text = ctx.t(
            "intake.offer",
            name=appointment.practitioner.name,
            count=pending_questions(ctx, appointment.id),
        )
        options = [
            Option(ctx.t("intake.offer_now"), "now"),
            Option(ctx.t("intake.offer_later"), "later"),
        ]
        return [ctx.ask(with_notice(notice, text), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        choice = ctx.choice
        if choice is None:
            if is_pause(text):
                choice = "later"
            else:
                intent = classify_intent(text, ctx.lang)
                choice = {"confirm": "now", "deny": "later"}.get(intent)
        if choice == "now":
            return start(ctx, int(ctx.data.get("appointment_id", 0)))
        if choice == "later":
            return Outcome.end(ctx.t("intake.later"))
        return Outcome.stay(ctx.t("common.pick_number"))


def _options(ctx: Ctx, item: Item) -> list[Option]:
    if item.type == "boolean":
        return [Option(ctx.t("intake.yes"), "yes"), Option(ctx.t("intake.no"), "no")]
    return [Option(o.display(ctx.lang), f"o:{o.code}") for o in item.options]


class Question:
    """One question of the intake: asked, read, re-asked or moved past."""

    name = QUESTION

    def free_text(self, ctx: Ctx) -> bool:
        """True while the question wants free text, where "I want to see the
        doctor about my back" is an answer, not a request to book (for the
        engine's mid-flow intent routing)."""
        row = _row(ctx)
        if row is None:
            return False
        item = by_id(row.questionnaire).item(row.item)
        return item is not None and item.free_text

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        row = _row(ctx)
        q = by_id(row.questionnaire) if row is not None else None
        item = q.item(row.item) if q is not None and row is not None else None
        if row is None or q is None or item is None:
            return [Reply(with_notice(notice, ctx.t("intake.nothing")))]
        answers = dict(row.answers or {})
        enabled = q.enabled_items(answers)
        number = next((n for n, i in enumerate(enabled, 1) if i.link_id == item.link_id), 1)
        progress = ctx.t("intake.progress", n=number, total=len(enabled))
        return [
            ctx.ask(with_notice(notice, f"{progress} {item.text(ctx.lang)}"), _options(ctx, item))
        ]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        row = _row(ctx)
        if row is None:
            return Outcome.end(ctx.t("intake.nothing"))
        q = by_id(row.questionnaire)
        item = q.item(row.item)
        if item is None:
            return _advance(ctx, row, q, None)
        if is_pause(text):
            # Still in progress: "questions" or the reminder picks it up here.
            return Outcome.end(ctx.t("intake.paused"))
        today = ctx.now.astimezone(ZoneInfo(ctx.tz)).date()
        if ctx.choice is not None and (item.options or item.type == "boolean"):
            value: Any = ctx.choice == "yes" if item.type == "boolean" else ctx.choice[2:]
            _record(ctx, row, item, value)
            return _advance(ctx, row, q, item)
        parsed = parse_answer(item, text, ctx.lang, today, has_media=bool(ctx.message.media))
        if parsed.skipped:
            _record(ctx, row, item, None)
            return _advance(ctx, row, q, item, ctx.t("intake.skipped"))
        if parsed.problem is not None:
            row.tries += 1
            row.updated_at = ctx.now
            if row.tries >= MAX_TRIES:
                _record(ctx, row, item, None)
                return _advance(ctx, row, q, item, ctx.t("intake.gave_up"))
            expect, values = expect_key(item)
            problem = ctx.t(parsed.problem, **parsed.values)
            return Outcome.stay(f"{problem} {ctx.t(expect, **values)}")
        _record(ctx, row, item, parsed.value)
        return _advance(ctx, row, q, item)


def _record(ctx: Ctx, row: IntakeResponse, item: Item, value: Any) -> None:
    # A new dict: the JSON column notices reassignment, not mutation.
    row.answers = {**(row.answers or {}), item.link_id: value}
    row.tries = 0
    row.updated_at = ctx.now


def _advance(
    ctx: Ctx, row: IntakeResponse, q: Questionnaire, item: Item | None, notice: str | None = None
) -> Outcome:
    answers = dict(row.answers or {})
    following = q.next_item(answers, after=item.link_id if item else None)
    if following is not None:
        row.item = following.link_id
        return Outcome(next=QUESTION, notice=notice) if item is None else Outcome.stay(notice)
    return _finish(ctx, row, q, notice)


def _age_months(appointment: Appointment, today: date) -> int | None:
    born = appointment.patient.date_of_birth
    if born is None:
        return None
    months = (today.year - born.year) * 12 + today.month - born.month
    return months - (1 if today.day < born.day else 0)


def _conclude(ctx: Ctx, row: IntakeResponse, q: Questionnaire, status: str, triage: Triage) -> None:
    answers = dict(row.answers or {})
    row.status = status
    row.item = None
    row.triage_level = triage.level
    row.triage_rules = list(triage.rules)
    row.summary = summary(q, answers, triage)
    row.completed_at = row.updated_at = ctx.now


def _finish(ctx: Ctx, row: IntakeResponse, q: Questionnaire, notice: str | None) -> Outcome:
    appointment = ctx.session.get(Appointment, row.appointment_id)
    assert appointment is not None
    today = ctx.now.astimezone(ZoneInfo(ctx.tz)).date()
    triage = assess(
        q, dict(row.answers or {}), row.language, age_months=_age_months(appointment, today)
    )
    earlier = row.triage_level == "emergency"  # a red flag interrupted it: already alerted
    if earlier and triage.level != "emergency":
        triage = Triage("emergency", tuple(row.triage_rules or ()))
    _conclude(ctx, row, q, "completed", triage)
    if triage.level == "emergency" and not earlier:
        return _alert_and_advise(ctx, row, triage)
    when = format_when(appointment.start_at, ctx.lang, ctx.tz)
    thanks = ctx.t("intake.done", name=appointment.practitioner.name, when=when)
    number = emergency_numbers(ctx.clinic, ctx.settings)[0]
    if triage.level == "urgent":
        local = appointment.start_at.astimezone(ZoneInfo(ctx.tz)).date()
        if local <= today:
            return Outcome.end(
                with_notice(notice, ctx.t("intake.urgent_today", when=when, number=number))
            )
        ctx.conversation.data = {"intake_id": row.id, "appointment_id": appointment.id}
        return Outcome.go(SAME_DAY, with_notice(notice, thanks))
    if triage.level == "self_care":
        advice = ctx.t("intake.self_care", phone=ctx.clinic.phone or "-")
        return Outcome.end(with_notice(notice, f"{thanks}\n{advice}"))
    return Outcome.end(with_notice(notice, thanks))


def note_emergency(ctx: Ctx, rules: list[str]) -> int | None:
    """The engine's red-flag check (which runs before any step) interrupted the
    intake under way. The engine has answered and alerted staff, and pauses the
    intake like any flow; here the intake is marked ``emergency`` at once, so
    the doctor's summary says so whether or not the patient carries on.
    Returns the appointment's id for the alert; None when no intake is under way."""
    row = _row(ctx)
    if row is None:
        return None
    fired = {f"red_flag:{rule}" for rule in rules}
    triage = Triage("emergency", tuple(sorted(fired | set(row.triage_rules or []))))
    row.triage_level, row.triage_rules = triage.level, list(triage.rules)
    row.summary = summary(by_id(row.questionnaire), dict(row.answers or {}), triage)
    row.updated_at = ctx.now
    return row.appointment_id


def _alert_and_advise(
    ctx: Ctx, row: IntakeResponse, triage: Triage, text: str | None = None
) -> Outcome:
    ctx.session.add(
        Alert(
            clinic_id=ctx.clinic.id,
            kind="intake_emergency",
            level="emergency",
            patient_id=row.patient_id,
            appointment_id=row.appointment_id,
            channel=ctx.message.channel,
            address=ctx.message.address,
            rules=list(triage.rules),
            text=text if text is not None else (row.summary or ""),
            status="open",
            created_at=ctx.now,
        )
    )
    number = emergency_numbers(ctx.clinic, ctx.settings)[0]
    return Outcome.end(ctx.t("emergency.text", number=number))


def _end_of_day(ctx: Ctx) -> datetime:
    zone = ZoneInfo(ctx.tz)
    today = ctx.now.astimezone(zone).date()
    return datetime.combine(today + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)


class SameDay:
    """After an urgent intake: a visit today instead of the booked one?"""

    name = SAME_DAY

    def _appointment(self, ctx: Ctx) -> Appointment | None:
        appointment = ctx.session.get(Appointment, ctx.data.get("appointment_id", 0))
        return appointment if _upcoming(ctx, appointment) else None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        appointment = self._appointment(ctx)
        if appointment is None:
            return [Reply(with_notice(notice, ctx.t("intake.nothing")))]
        when = format_when(appointment.start_at, ctx.lang, ctx.tz)
        options = [
            Option(ctx.t("intake.same_day_yes"), "today"),
            Option(ctx.t("intake.same_day_no"), "keep"),
        ]
        return [ctx.ask(with_notice(notice, ctx.t("intake.same_day", when=when)), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        appointment = self._appointment(ctx)
        if appointment is None:
            return Outcome.end(ctx.t("intake.nothing"))
        choice = ctx.choice or {"confirm": "today", "deny": "keep"}.get(
            classify_intent(text, ctx.lang)
        )
        if choice == "today":
            # The booking flow, as a reschedule limited to the rest of today:
            # confirming a slot there cancels the later visit in the same
            # transaction, so the patient never holds both.
            ctx.conversation.data = {
                "practitioner_id": appointment.practitioner_id,
                "replaces_id": appointment.id,
                "window": [
                    ctx.now.astimezone(UTC).isoformat(),
                    _end_of_day(ctx).isoformat(),
                    "day",
                ],
            }
            return Outcome.go("booking.day")
        if choice == "keep":
            when = format_when(appointment.start_at, ctx.lang, ctx.tz)
            number = emergency_numbers(ctx.clinic, ctx.settings)[0]
            return Outcome.end(
                ctx.t("intake.kept", when=when, phone=ctx.clinic.phone or "-", number=number)
            )
        return Outcome.stay(ctx.t("common.pick_number"))
