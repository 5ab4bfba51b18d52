"""Joining the waitlist: "anything sooner?".

A patient with a booking asks for something earlier with the same
practitioner (or one they name); one without a booking books first, since a
waitlist place without a fallback visit helps nobody. The entry lasts until
their booked visit (or what they said: "anything before friday"), else two
weeks. Offers are made by the scheduler (``core.waitlist``) and answered in
``flows.prompts``.
"""

from __future__ import annotations

import re

from core import waitlist
from core.i18n import format_day, format_when
from core.messages import Reply
from core.models import Appointment, Practitioner
from flows.booking import named_practitioners, understood_when
from flows.context import Ctx, Outcome, fold
from flows.manage import upcoming

_ASKS = re.compile(
    r"\b(?:wait ?list|waiting list|lista de espera"
    r"|(?:anything|something|any|algo|alguna?|hay algo|hay alguna?)\s+"
    r"(?:sooner|earlier|antes|mas pronto)"
    r"|(?:sooner|earlier)\s+(?:appointment|slot|time|visit|one)"
    r"|(?:cita|hora|hueco)\s+(?:antes|mas pronto))\b"
)


def asks_for_waitlist(text: str) -> bool:
    folded = fold(text)
    return bool(_ASKS.search(folded)) or folded in ("sooner", "earlier", "antes")


class Join:
    name = "waitlist.join"

    def enter(self, ctx: Ctx) -> Outcome | None:
        request = str(ctx.data.get("request") or ctx.message.text)
        patient = ctx.identity.patient
        booked = upcoming(ctx)
        named = named_practitioners(ctx, request)
        p: Practitioner | None = named[0] if len(named) == 1 else None
        current: Appointment | None = None
        if p is None and booked:
            current = booked[0]
            p = current.practitioner
        elif p is not None:
            current = next((a for a in booked if a.practitioner_id == p.id), None)
        if patient is None or not patient.name or p is None:
            ctx.conversation.data = {"request": request}
            return Outcome.go("booking.practitioner", ctx.t("waitlist.need_booking"))
        latest = current.start_at if current is not None else ctx.now + waitlist.DEFAULT_SPAN
        when = understood_when(ctx, request)
        if when is not None and when.start > ctx.now:
            latest = min(latest, when.end or when.start)
        waitlist.join(
            ctx.session,
            clinic_id=p.clinic_id,
            patient_id=patient.id,
            channel=ctx.message.channel,
            address=ctx.message.address,
            practitioner=p,
            earliest=ctx.now,
            latest=latest,
            now=ctx.now,
            appointment_id=current.id if current is not None else None,
            visit_type=current.visit_type if current is not None else "in_person",
        )
        keep = (
            ctx.t("waitlist.joined_keep", when=format_when(current.start_at, ctx.lang, ctx.tz))
            if current is not None
            else ""
        )
        return Outcome.end(
            ctx.t(
                "waitlist.joined",
                name=p.name,
                until=format_day(latest, ctx.lang, ctx.tz),
                minutes=ctx.settings.waitlist_claim_minutes,
                keep=keep,
            )
        )

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [Reply(notice or ctx.t("common.lost"))]  # never stays: enter always decides

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        return Outcome.end(ctx.t("common.lost"))
