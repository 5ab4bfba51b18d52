"""The main menu, language choice and resuming after a time-out."""

from __future__ import annotations

from typing import Any

from core.i18n import LANGUAGES
from core.messages import Option, Reply
from flows.context import Ctx, Outcome, with_notice

MENU_TARGETS = {
    "book": "booking.practitioner",
    "mine": "appointments.list",
    "reschedule": "reschedule.pick",
    "cancel": "cancel.pick",
    "ask": "ask.start",
    "language": "menu.language",
}


class MainMenu:
    name = "menu.main"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        options = [
            Option(ctx.t("menu.book"), "book"),
            Option(ctx.t("menu.mine"), "mine"),
            Option(ctx.t("menu.reschedule"), "reschedule"),
            Option(ctx.t("menu.cancel"), "cancel"),
            Option(ctx.t("ask.menu"), "ask"),
            Option(ctx.t("menu.language"), "language"),
        ]
        return [ctx.ask(with_notice(notice, ctx.t("menu.prompt", clinic=ctx.clinic.name)), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice in MENU_TARGETS:
            ctx.conversation.data = {}
            return Outcome.go(MENU_TARGETS[ctx.choice])
        return Outcome.stay(ctx.t("common.pick_number"))


class Language:
    name = "menu.language"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        options = [Option("English", "en"), Option("Español", "es")]
        return [ctx.ask(with_notice(notice, ctx.t("language.prompt")), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        lang = ctx.choice or {"ingles": "en", "espanol": "es"}.get(text.strip().lower())
        if lang not in LANGUAGES:
            return Outcome.stay(ctx.t("common.pick_number"))
        ctx.identity.language = ctx.conversation.language = ctx.lang = lang
        return Outcome.go("menu.main", ctx.t("language.done"))


class Resume:
    """After a long silence: offer to carry on where the patient left off."""

    name = "system.resume"
    question = "resume.prompt"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        options = [
            Option(ctx.t("resume.continue"), "continue"),
            Option(ctx.t("resume.menu"), "menu"),
        ]
        return [ctx.ask(with_notice(notice, ctx.t(self.question)), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice == "continue":
            saved: list[Any] = ctx.data.get("resume") or [None, {}]
            step, data = saved
            ctx.conversation.data = dict(data)
            ctx.data.pop("options", None)
            return Outcome.go(step) if step else Outcome.go("menu.main")
        if ctx.choice == "menu":
            ctx.conversation.data = {}
            return Outcome.go("menu.main")
        return Outcome.stay(ctx.t("common.pick_number"))
