"""Before a record is shown: "please reply with your date of birth".

A step that other flows go through: ``require(ctx, then, data)`` returns
``then`` at once for a verified identity, else asks the date of birth and
goes on to ``then`` with ``data`` when it matches. Three wrong answers lock
record access for this identity and alert staff (``core.verification``).
"""

from __future__ import annotations

from typing import Any

from core import outbox, verification
from core.messages import Reply
from flows.context import Ctx, Outcome, with_notice
from flows.dob import DobError, parse_dob

STEP = "verify.dob"
CODE_STEP = "verify.code"


def require(ctx: Ctx, then: str, data: dict[str, Any]) -> Outcome:
    if verification.is_verified(ctx.identity):
        ctx.conversation.data = dict(data)
        return Outcome.go(then)
    if ctx.identity.locked_at is not None:
        return locked(ctx)
    ctx.conversation.data = {"then": then, "then_data": dict(data)}
    patient = ctx.identity.patient
    if patient is not None and patient.date_of_birth is None and patient.phone:
        return Outcome.go(CODE_STEP)  # nothing to ask: a code to the number on file
    return Outcome.go(STEP)


def locked(ctx: Ctx) -> Outcome:
    return Outcome.end(ctx.t("verify.locked", phone=ctx.clinic.phone or "-"))


class AskDob:
    name = STEP

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [ctx.ask(with_notice(notice, ctx.t("verify.ask")))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        today = ctx.now.date()
        try:
            given = parse_dob(text, ctx.lang, today)
        except DobError as exc:
            return Outcome.stay(ctx.t(f"register.dob_{exc}"))
        check = verification.check_dob(
            ctx.session, ctx.identity, given, clinic_id=ctx.clinic.id, now=ctx.now
        )
        if check.locked:
            return locked(ctx)
        if not check.ok:
            return Outcome.stay(ctx.t("verify.wrong", left=check.tries_left))
        return _passed(ctx)


def _passed(ctx: Ctx) -> Outcome:
    then = str(ctx.data.get("then") or "menu.main")
    ctx.conversation.data = dict(ctx.data.get("then_data") or {})
    return Outcome.go(then, ctx.t("verify.ok"))


class AskCode:
    """No date of birth on file: a one-time code sent to the number on file."""

    name = CODE_STEP

    def enter(self, ctx: Ctx) -> Outcome | None:
        patient = ctx.identity.patient
        if patient is None or not patient.phone:
            return Outcome.go(STEP)
        code = verification.start_code(ctx.identity, secret=ctx.settings.secret_key, now=ctx.now)
        # On this channel when it is the number on file (WhatsApp, SMS), else by SMS.
        same = ctx.identity.address == patient.phone and ctx.message.channel != "telegram"
        outbox.enqueue(
            ctx.session,
            channel=ctx.message.channel if same else "sms",
            address=patient.phone,
            reply=Reply(ctx.t("verify.code_text", code=code, clinic=ctx.clinic.name)),
            now=ctx.now,
        )
        return None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        patient = ctx.identity.patient
        ending = (patient.phone or "")[-2:] if patient is not None else ""
        return [ctx.ask(with_notice(notice, ctx.t("verify.code_sent", ending=ending)))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        check = verification.check_code(
            ctx.session,
            ctx.identity,
            text,
            secret=ctx.settings.secret_key,
            clinic_id=ctx.clinic.id,
            now=ctx.now,
        )
        if check.locked:
            return locked(ctx)
        if not check.ok:
            return Outcome.stay(ctx.t("verify.code_wrong", left=check.tries_left))
        return _passed(ctx)
