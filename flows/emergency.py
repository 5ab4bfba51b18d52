"""The red-flag safety net: an emergency in any message stops everything.

The engine checks every message before consent words, the abuse guard and
any flow (``core.nlu.redflags``). On a red flag the patient gets the
emergency message at once (the crisis line for suicidal intent or
self-harm), in their language; staff get an ``Alert`` row, and the on-call
practitioner a message when ``TELEMED_ONCALL_ADDRESS`` is set, all in the
transaction that stores the reply, so a crash loses neither. The flow that
was under way is paused, not lost: the patient can carry on afterwards.
"""

from __future__ import annotations

from core.alerts import emergency_numbers, raise_red_flag
from core.messages import Reply
from core.nlu.redflags import RedFlag
from flows import intake
from flows.context import Ctx, Outcome, fold
from flows.menu import Resume

STEP = "emergency.after"
CONTINUE_WORDS = {"continue", "carry on", "seguir", "continuar", "sigamos"}


def numbers(ctx: Ctx) -> tuple[str, str]:
    """(emergency number, crisis line): the clinic's own, else the service's."""
    return emergency_numbers(ctx.clinic, ctx.settings)


def interrupt(ctx: Ctx, flags: tuple[RedFlag, ...], inbound_id: int | None) -> list[Reply]:
    """Answer a message that carries red flags; pause the flow under way."""
    number, crisis = numbers(ctx)
    key = "emergency.crisis" if any(f.kind == "crisis" for f in flags) else "emergency.text"
    replies = [Reply(ctx.t(key, number=number, crisis=crisis), purpose="emergency")]
    conversation = ctx.conversation
    appointment_id = None
    if conversation.step == intake.QUESTION:
        # The doctor's summary says so, even if the patient never carries on.
        appointment_id = intake.note_emergency(ctx, sorted({f.rule for f in flags}))
    raise_alert(ctx, flags, inbound_id, appointment_id)
    if conversation.step and conversation.step != STEP:
        conversation.data = {"resume": [conversation.step, conversation.data]}
        conversation.flow, conversation.step = "emergency", STEP
        replies.extend(AfterEmergency().prompt(ctx))
    return replies


def raise_alert(
    ctx: Ctx, flags: tuple[RedFlag, ...], inbound_id: int | None, appointment_id: int | None
) -> None:
    raise_red_flag(
        ctx.session,
        ctx.settings,
        ctx.clinic,
        rules=[f.rule for f in flags],
        patient_id=ctx.identity.patient_id,
        channel=ctx.message.channel,
        address=ctx.message.address,
        text=ctx.message.text,
        now=ctx.now,
        inbound_id=inbound_id,
        appointment_id=appointment_id,
    )


class AfterEmergency(Resume):
    """After the emergency message: carry on with the paused flow, or the menu
    (the time-out's resume step, with its own question; "continue" typed works)."""

    name = STEP
    question = "emergency.after"

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice is None and fold(text) in CONTINUE_WORDS:
            ctx.choice = "continue"
        return super().handle(ctx, text)
