"""My appointments, and picking which one to reschedule or cancel."""

from __future__ import annotations

from core import notices, scheduling
from core.i18n import format_when
from core.messages import Option, Reply
from core.models import Appointment
from core.nlu import classify_intent
from flows.booking import remember_when, understood_when
from flows.context import Ctx, Outcome, with_notice


def upcoming(ctx: Ctx) -> list[Appointment]:
    if ctx.identity.patient_id is None:
        return []
    return [
        a
        for a in scheduling.upcoming_appointments(ctx.session, ctx.identity.patient_id, now=ctx.now)
        if a.status in ("booked", "confirmed")
    ]


def describe(ctx: Ctx, appointment: Appointment) -> str:
    when = format_when(appointment.start_at, ctx.lang, ctx.tz)
    kind = ctx.t("appointments.video") if appointment.visit_type == "video" else ""
    return ctx.t("appointments.item", name=appointment.practitioner.name, when=when) + kind


def no_appointments(ctx: Ctx) -> Outcome:
    return Outcome.end(ctx.t("appointments.none"))


class MyAppointments:
    name = "appointments.list"

    def enter(self, ctx: Ctx) -> Outcome | None:
        return None if upcoming(ctx) else no_appointments(ctx)

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        items = upcoming(ctx)
        lines = "\n".join(f"- {describe(ctx, a)}" for a in items)
        options = [
            Option(ctx.t("appointments.change"), "reschedule"),
            Option(ctx.t("appointments.cancel_one"), "cancel"),
            Option(ctx.t("appointments.book_another"), "book"),
        ]
        text = ctx.t("appointments.list", count=len(items)) + "\n" + lines
        return [ctx.ask(with_notice(notice, text), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        target = {
            "reschedule": "reschedule.pick",
            "cancel": "cancel.pick",
            "book": "booking.practitioner",
        }
        if ctx.choice in target:
            ctx.conversation.data = {}
            return Outcome.go(target[ctx.choice])
        return Outcome.stay(ctx.t("common.pick_number"))


class _Pick:
    """Which appointment? Skipped when there is only one."""

    name = ""
    next_step = ""
    question = ""

    def enter(self, ctx: Ctx) -> Outcome | None:
        items = upcoming(ctx)
        if not items:
            return no_appointments(ctx)
        if len(items) == 1:
            return self.chosen(ctx, items[0])
        return None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        options = [Option(describe(ctx, a), f"a:{a.id}") for a in upcoming(ctx)]
        return [ctx.ask(with_notice(notice, ctx.t(self.question)), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice and ctx.choice.startswith("a:"):
            appointment = ctx.session.get(Appointment, int(ctx.choice[2:]))
            if appointment is not None and appointment in upcoming(ctx):
                return self.chosen(ctx, appointment)
        return Outcome.stay(ctx.t("common.pick_number"))

    def chosen(self, ctx: Ctx, appointment: Appointment) -> Outcome:
        raise NotImplementedError


class PickToReschedule(_Pick):
    name = "reschedule.pick"
    question = "reschedule.which"

    def chosen(self, ctx: Ctx, appointment: Appointment) -> Outcome:
        request = ctx.data.get("request")
        ctx.conversation.data = {
            "replaces_id": appointment.id,
            "practitioner_id": appointment.practitioner_id,
        }
        if request:
            # "move my appointment to friday": the day comes with the request.
            when = understood_when(ctx, request)
            if when is not None:
                remember_when(ctx, when)
        return Outcome.go("booking.day")


class PickToCancel(_Pick):
    name = "cancel.pick"
    question = "cancel.which"

    def chosen(self, ctx: Ctx, appointment: Appointment) -> Outcome:
        ctx.conversation.data = {"cancel_id": appointment.id}
        return Outcome.go("cancel.confirm")


class ConfirmCancel:
    name = "cancel.confirm"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        appointment = ctx.session.get(Appointment, ctx.data.get("cancel_id", 0))
        if appointment is None:
            return [Reply(ctx.t("common.lost"))]
        options = [Option(ctx.t("cancel.yes"), "yes"), Option(ctx.t("cancel.no"), "no")]
        text = ctx.t("cancel.confirm", item=describe(ctx, appointment))
        return [ctx.ask(with_notice(notice, text), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        choice = ctx.choice or {"confirm": "yes", "cancel": "yes", "deny": "no"}.get(
            classify_intent(text, ctx.lang)
        )
        if choice == "no":
            return Outcome.end(ctx.t("cancel.kept"))
        if choice != "yes":
            return Outcome.stay(ctx.t("common.pick_number"))
        try:
            scheduling.cancel(ctx.session, ctx.data["cancel_id"], now=ctx.now, reason="patient")
        except scheduling.SchedulingError:
            return Outcome.end(ctx.t("cancel.not_possible"))
        notices.record_answer(ctx.session, ctx.data.get("notification_id"), "cancel", ctx.now)
        return Outcome.end(ctx.t("cancel.done"))
