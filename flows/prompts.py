"""Answers to what the clinic sent on its own: reminders, no-show follow-ups
and waitlist offers (``core.notices``).

The engine asks ``answer`` first on every message. A notification counts as
the question being answered when it is the last thing the patient was sent
(queued after the conversation last moved), or, with no flow under way,
when the message is a plain answer ("1", "yes", "confirm", "sí") to one sent
in the past week. Anything else goes on to the usual routing, so a reminder
never swallows "book" or "my appointments".

Replies act on the notification's appointment as it is now: one moved since
(rescheduled) is followed to its new time; one cancelled or past is
explained.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import notices, scheduling, waitlist
from core.i18n import format_when
from core.messages import Option, Reply
from core.models import ANSWERABLE_KINDS, Appointment, Notification
from core.nlu import classify_intent
from flows import intake, prescriptions
from flows.booking import remember_when, understood_when
from flows.context import Ctx, Outcome, match_option, number_choice, with_notice

ANSWER_WINDOW = timedelta(days=7)
STEP = "prompt.reply"


def latest(ctx: Ctx) -> Notification | None:
    """The newest unanswered question the clinic sent to this address lately."""
    return ctx.session.scalars(
        select(Notification)
        .where(
            Notification.channel == ctx.message.channel,
            Notification.address == ctx.message.address,
            Notification.kind.in_(ANSWERABLE_KINDS),
            # An offer someone else took still gets its "sorry, it's gone".
            (Notification.status == "queued")
            | ((Notification.status == "cancelled") & (Notification.reason == "taken")),
            Notification.queued_at >= ctx.now - ANSWER_WINDOW,
        )
        .order_by(Notification.queued_at.desc(), Notification.id.desc())
        .limit(1)
    ).first()


def answer(ctx: Ctx, text: str) -> Outcome | None:
    """What the message does to the latest notification, if it answers one."""
    n = latest(ctx)
    if n is None or n.queued_at is None:
        return None
    fresh = ctx.conversation.new or n.queued_at > ctx.conversation.updated_at
    if not fresh and ctx.conversation.step:
        return None  # mid-flow, answers belong to the flow
    choice = _choice(ctx, n, text)
    if choice is None:
        if not fresh or not _looks_like_answer(ctx, text):
            return None
        ctx.conversation.data = {"notification_id": n.id}
        return Outcome.go(STEP)
    if not fresh and number_choice(text) is None and choice not in ("confirm", "take"):
        return None  # an old notification: only a plain answer reaches it
    return act(ctx, n, choice, text)


def _looks_like_answer(ctx: Ctx, text: str) -> bool:
    """A short reply that asks for nothing else ("hmm", "what?") is taken as an
    unclear answer and gets the question again; "my appointments" is not."""
    if len(text.split()) > 3:
        return False
    return ctx.once("intent", text, lambda: classify_intent(text, ctx.lang)) == "other"


def _choice(ctx: Ctx, n: Notification, text: str) -> str | None:
    offered = [[o.label, o.value] for o in notices.options(n.kind, ctx.lang, n.data)]
    choice = match_option(text, offered, ctx.message.button_payload)
    if choice is not None:
        return choice
    intent = ctx.once("intent", text, lambda: classify_intent(text, ctx.lang))
    if n.kind == "reminder":
        by_intent = {
            "confirm": "confirm",
            "reschedule": "reschedule",
            "cancel": "cancel",
            "opt_out": "cancel",  # a lone CANCEL off SMS (on SMS it opted out already)
            "deny": "deny",
        }
        if intent in by_intent:
            return by_intent[intent]
        if understood_when(ctx, text) is not None:
            return "reschedule"  # "can we do thursday instead"
        return None
    if n.kind == "no_show":
        return {"confirm": "rebook", "book": "rebook", "deny": "no"}.get(intent)
    if n.kind == "prescription":
        return "rx:see" if intent == "confirm" else None
    if n.kind == "waitlist_offer":
        return {"confirm": "take", "book": "take", "deny": "no"}.get(intent)
    return None


def current_appointment(ctx: Ctx, appointment: Appointment) -> Appointment:
    """The appointment as it stands now: a rescheduled one's replacement."""
    seen = {appointment.id}
    while appointment.status == "cancelled" and appointment.cancel_reason == scheduling.RESCHEDULED:
        successor = ctx.session.scalars(
            select(Appointment).where(Appointment.rescheduled_from_id == appointment.id)
        ).first()
        if successor is None or successor.id in seen:
            break
        seen.add(successor.id)
        appointment = successor
    return appointment


def act(ctx: Ctx, n: Notification, choice: str, text: str) -> Outcome:
    if n.kind == "waitlist_offer":
        return _offer(ctx, n, choice)
    if n.kind == "prescription":
        notices.record_answer(ctx.session, n.id, "see", ctx.now)
        return prescriptions.see(ctx, int(n.data.get("prescription_id", 0)) or None)
    appointment = n.appointment
    if appointment is None:
        return Outcome.end(ctx.t("common.lost"))
    if n.kind == "no_show":
        if choice == "rebook":
            notices.record_answer(ctx.session, n.id, "rebook", ctx.now)
            ctx.conversation.data = {"practitioner_id": appointment.practitioner_id}
            return Outcome.go("booking.day")
        notices.record_answer(ctx.session, n.id, "declined", ctx.now)
        return Outcome.end(ctx.t("noshow.declined"))
    return _reminder(ctx, n, appointment, choice, text)


def _reminder(ctx: Ctx, n: Notification, reminded: Appointment, choice: str, text: str) -> Outcome:
    appointment = current_appointment(ctx, reminded)
    moved = appointment.id != reminded.id
    notice = (
        ctx.t("reminder.moved", when=format_when(appointment.start_at, ctx.lang, ctx.tz))
        if moved
        else None
    )
    if appointment.status == "cancelled":
        notices.record_answer(ctx.session, n.id, "stale", ctx.now)
        return Outcome.end(ctx.t("reminder.was_cancelled"))
    if appointment.status not in ("booked", "confirmed") or appointment.start_at <= ctx.now:
        notices.record_answer(ctx.session, n.id, "stale", ctx.now)
        return Outcome.end(ctx.t("reminder.passed"))
    if choice == "intake":
        notices.record_answer(ctx.session, n.id, "intake", ctx.now)
        return intake.start(ctx, appointment.id)
    if choice == "confirm":
        scheduling.confirm(ctx.session, appointment.id, now=ctx.now)
        notices.record_answer(ctx.session, n.id, "confirm", ctx.now)
        done = ctx.t(
            "reminder.confirmed",
            name=appointment.practitioner.name,
            when=format_when(appointment.start_at, ctx.lang, ctx.tz),
        )
        return Outcome.end(with_notice(notice, done))
    if choice == "cancel":
        ctx.conversation.data = {"cancel_id": appointment.id, "notification_id": n.id}
        return Outcome.go("cancel.confirm", notice)
    if choice == "reschedule":
        ctx.conversation.data = {
            "replaces_id": appointment.id,
            "practitioner_id": appointment.practitioner_id,
            "notification_id": n.id,
        }
        when = understood_when(ctx, text)
        if when is not None:
            remember_when(ctx, when)
        return Outcome.go("booking.day", notice)
    # "no": not coming as booked; change or cancel?
    ctx.conversation.data = {"notification_id": n.id, "only": ["reschedule", "cancel"]}
    return Outcome.go(STEP, with_notice(notice, ctx.t("reminder.what_instead")))


def _offer(ctx: Ctx, n: Notification, choice: str) -> Outcome:
    if choice != "take":
        notices.record_answer(ctx.session, n.id, "declined", ctx.now)
        return Outcome.end(ctx.t("waitlist.passed"))
    try:
        appointment = waitlist.take(ctx.session, n, ctx.now)
    except waitlist.OfferLapsed:
        return Outcome.end(ctx.t("waitlist.expired"))
    except scheduling.SchedulingError:
        return Outcome.end(ctx.t("waitlist.taken_meanwhile"))
    when = format_when(appointment.start_at, ctx.lang, ctx.tz)
    place = (
        ctx.t("booking.video")
        if appointment.visit_type == "video"
        else (ctx.clinic.address or ctx.clinic.name)
    )
    key = "reschedule.done" if appointment.rescheduled_from_id else "booking.done"
    return Outcome.end(ctx.t(key, name=appointment.practitioner.name, when=when, place=place))


class PromptReply:
    """A notification's question asked again, after an unclear answer or "no"."""

    name = STEP

    def _notification(self, ctx: Ctx) -> Notification | None:
        n = ctx.session.get(Notification, ctx.data.get("notification_id", 0))
        return n if n is not None and n.status == "queued" else None

    def _options(self, ctx: Ctx, n: Notification) -> list[Option]:
        only = ctx.data.get("only")
        offered = notices.options(n.kind, ctx.lang, n.data)
        return [o for o in offered if not only or o.value in only]

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        n = self._notification(ctx)
        if n is None:
            return [Reply(with_notice(notice, ctx.t("common.lost")))]
        return [ctx.ask(notice or ctx.t("common.pick_number"), self._options(ctx, n))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        n = self._notification(ctx)
        if n is None:
            return Outcome.end(ctx.t("common.lost"))
        choice = ctx.choice or _choice(ctx, n, text)
        allowed = {o.value for o in self._options(ctx, n)}
        if choice is None or choice not in allowed | {"deny"}:
            return Outcome.stay(ctx.t("common.pick_number"))
        return act(ctx, n, choice, text)
