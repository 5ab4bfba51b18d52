"""The flow engine: one inbound message -> one transaction -> replies in the outbox.

Order of work for each message (ARCHITECTURE.md, "The path of one message"):
dedupe by provider id, lock the conversation, consent words, global commands
(MENU, HELP, LANGUAGE, and the book/reschedule/cancel/my-appointments
intents), then the active step, else intent routing. State and replies are
committed together.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import Token
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import structlog
from sqlalchemy import Insert, bindparam
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import abuse, outbox, telemetry
from core.clock import Clock
from core.db import Database
from core.i18n import normalize_language
from core.logs import get_logger
from core.messages import InboundMessage, Media, Reply
from core.models import ChannelIdentity, Clinic, InboundLog, table_of
from core.nlu import classify_intent, detect_language
from core.nlu.redflags import detect as detect_red_flags
from core.patients import (
    default_clinic,
    find_or_create_patient_by_phone,
    get_or_create_identity,
    touch_identity,
)
from core.settings import Settings
from flows import ask_doctor, emergency, intake, prompts, registry, state
from flows.context import END, Ctx, Outcome, fold, match_option
from flows.prescriptions import asks_for_prescriptions
from flows.state import ConversationState
from flows.video import asks_for_video_link
from flows.waitlist import asks_for_waitlist

log = get_logger("telemed.flows")

__all__ = ["FlowEngine", "HandleResult", "NotSetUp", "find_or_create_patient_by_phone"]

# Only this much of a message is read for meaning; all of it is stored.
MAX_READ = 500
CLINIC_TTL = 30.0

MENU_WORDS = {"menu", "menú", "main menu", "inicio", "start over", "empezar de nuevo", "volver"}
HELP_WORDS = {"help", "ayuda", "info", "?", "informacion", "información"}
LANGUAGE_WORDS = {"language", "idioma", "lang", "lengua"}
OPT_OUT_WORDS = {
    "stop",
    "stopall",
    "unsubscribe",
    "end",
    "quit",
    "cancel",
    "revoke",
    "optout",
    "opt out",
    "alto",
    "baja",
    "parar",
    "detener",
    "cancelar suscripcion",
    "darme de baja",
}
OPT_IN_WORDS = {"start", "unstop", "alta", "yes", "si", "sí"}
FLOW_INTENTS = {
    "book": "booking.practitioner",
    "reschedule": "reschedule.pick",
    "cancel": "cancel.pick",
    "my_appointments": "appointments.list",
    "pharmacy": "rx.where",
    "refill": "rx.refill",
}


class NotSetUp(RuntimeError):
    """No clinic in the database: run ``telemed demo`` or create one."""


@dataclass(frozen=True)
class HandleResult:
    duplicate: bool
    replies: tuple[Reply, ...]
    conversation_id: int | None = None


class FlowEngine:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._clinic_cache: tuple[float, Clinic] | None = None

    # -- public ----------------------------------------------------------------

    def handle(self, msg: InboundMessage) -> HandleResult:
        started = time.perf_counter()
        now = self.clock.now()
        # The text and address at DEBUG only (core.logs redacts them above it).
        log.debug("inbound_received", channel=msg.channel, address=msg.address, text=msg.text)
        # Bound while this message is handled, then reset: the thread that ran
        # it goes on to serve other requests.
        bound: Mapping[str, Token[Any]] = {}
        try:
            with self.db.transaction() as session:
                inbound_id = _record_inbound(session, msg, now)
                if inbound_id is None:
                    telemetry.inbound(msg.channel, duplicate=True)
                    log.info("inbound_duplicate", channel=msg.channel)
                    return HandleResult(duplicate=True, replies=())
                conversation = state.lock(session, msg.channel, msg.address, now)
                bound = structlog.contextvars.bind_contextvars(conversation_id=conversation.id)
                step_before = conversation.step
                identity = get_or_create_identity(session, msg.channel, msg.address, now=now)
                touch_identity(session, identity, now)
                clinic = self._clinic(session)
                verdict = self._abuse_verdict(session, msg, inbound_id, now)
                replies = self._respond(
                    session, msg, conversation, identity, clinic, now, verdict, inbound_id
                )
                state.save(session, conversation, now)
                outbox.enqueue_many(
                    session,
                    channel=msg.channel,
                    address=msg.address,
                    replies=replies,
                    now=now,
                    conversation_id=conversation.id,
                    inbound_id=inbound_id,
                )
            # Counted once committed: a rolled-back message comes again from the provider.
            seconds = time.perf_counter() - started
            telemetry.inbound(msg.channel)
            telemetry.flow_step(msg.channel, seconds)
            # Ids and steps only: bodies and addresses never reach logs above DEBUG.
            log.info(
                "inbound_handled",
                channel=msg.channel,
                step_from=step_before,
                step_to=conversation.step,
                replies=len(replies),
                ms=round(seconds * 1000, 1),
            )
            return HandleResult(False, tuple(replies), conversation.id)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

    def _clinic(self, session: Session) -> Clinic:
        """The clinic, read at most every CLINIC_TTL seconds: it changes rarely
        and every message needs it. The cached row is detached and read-only."""
        cached = self._clinic_cache
        if cached is not None and time.monotonic() - cached[0] < CLINIC_TTL:
            return cached[1]
        clinic = default_clinic(session)
        if clinic is None:
            raise NotSetUp("no clinic is set up: run `telemed demo` first")
        session.expunge(clinic)
        self._clinic_cache = (time.monotonic(), clinic)
        return clinic

    def set_language(self, channel: str, address: str, lang: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            conversation = state.lock(session, channel, address, now)
            identity = get_or_create_identity(session, channel, address, now=now)
            conversation.language = identity.language = normalize_language(lang)
            state.save(session, conversation, now)

    # -- one message -----------------------------------------------------------

    def _respond(
        self,
        session: Session,
        msg: InboundMessage,
        conversation: ConversationState,
        identity: ChannelIdentity,
        clinic: Clinic,
        now: datetime,
        verdict: abuse.Verdict = abuse.Verdict.OK,
        inbound_id: int | None = None,
    ) -> list[Reply]:
        text = " ".join(msg.text.split())[:MAX_READ]
        folded = fold(text)
        lang = self._language(conversation, identity, text)
        patient_tz = identity.patient.timezone if identity.patient else None
        ctx = Ctx(
            session=session,
            settings=self.settings,
            clock=self.clock,
            now=now,
            clinic=clinic,
            identity=identity,
            conversation=conversation,
            lang=lang,
            tz=patient_tz or clinic.timezone,
            message=msg,
        )

        # Before anything else, consent words and the abuse guard included: an
        # emergency is answered even from an opted-out or rate-limited number.
        flags = detect_red_flags(text)
        if flags:
            ask_doctor.keep_urgent(ctx, inbound_id)  # a question for the doctor is kept too
            return emergency.interrupt(ctx, flags, inbound_id)

        consent = self._consent(ctx, folded)
        if verdict is not abuse.Verdict.OK:
            # Sending too fast: consent words still act, and an opt-out is still
            # confirmed; nothing else is answered and the conversation stays put.
            if consent is not None:
                return [r for r in consent if r.purpose == "consent"]
            return [Reply(ctx.t("abuse.slow_down"))] if verdict is abuse.Verdict.TRIPPED else []
        if consent is not None:
            return consent

        if folded not in MENU_WORDS and folded not in HELP_WORDS and folded not in LANGUAGE_WORDS:
            # An answer to a reminder or an offer comes before a timed-out flow.
            answered = prompts.answer(ctx, text)
            if answered is not None:
                return self._apply(ctx, conversation.step or prompts.STEP, answered)
            # Free text right after the doctor's answer continues the question thread.
            followed = ask_doctor.follow_up(ctx, text)
            if followed is not None:
                return self._apply(ctx, ask_doctor.START, followed)

        if conversation.step and self._timed_out(conversation, now):
            conversation.data = {"resume": [conversation.step, conversation.data]}
            return self._enter(ctx, "system.resume", None)

        if folded in MENU_WORDS:
            return self._enter(ctx, "menu.main", None)
        if folded in HELP_WORDS or text == "?":
            return [self._help(ctx)]  # the conversation stays where it was
        if folded in LANGUAGE_WORDS:
            return self._enter(ctx, "menu.language", None)

        resumed = intake.resume(ctx, text)
        if resumed is not None:  # "questions": back to the symptom intake
            return self._apply(ctx, conversation.step or intake.QUESTION, resumed)

        step = registry.get(conversation.step) if conversation.step else None
        if step is not None:
            options = conversation.data.get("options") or []
            ctx.choice = match_option(text, options, msg.button_payload) if options else None
            # A free-text answer ("I want to see the doctor about my back") is an
            # answer, not a request to book.
            wants_text = getattr(step, "free_text", None)
            if ctx.choice is None and not (wants_text is not None and wants_text(ctx)):
                started = self._start_by_intent(ctx, text, only_commands=True)
                if started is not None:
                    return started
            return self._apply(ctx, step.name, step.handle(ctx, text))

        started = self._start_by_intent(ctx, text, only_commands=False)
        return started if started is not None else self._enter(ctx, "menu.main", None)

    def _start_by_intent(self, ctx: Ctx, text: str, *, only_commands: bool) -> list[Reply] | None:
        """Start the flow the patient asked for. Mid-flow (``only_commands``) it
        takes a clear request ("book", "cancel my appointment"); free text
        such as "tomorrow at 3" stays with the current step."""
        if not text:
            return None if only_commands else self._enter(ctx, "menu.main", None)
        if ask_doctor.asks(ctx, text):  # "question for Dr Ruiz: ...", "reply to the doctor"
            ctx.conversation.data = {"request": text}
            return self._enter(ctx, ask_doctor.START, None)
        if asks_for_waitlist(text):
            ctx.conversation.data = {"request": text}
            return self._enter(ctx, "waitlist.join", None)
        if asks_for_prescriptions(text):
            ctx.conversation.data = {}
            return self._enter(ctx, "rx.pick", None)
        if asks_for_video_link(text):  # "link": the video visit's link, now
            ctx.conversation.data = {}
            return self._enter(ctx, "video.link", None)
        intent = classify_intent(text, ctx.lang)
        if intent == "opt_out":
            intent = "cancel"  # only a lone CANCEL off SMS gets here (see _consent)
        if (
            intent == "cancel"
            and ctx.conversation.step
            and ctx.conversation.step.startswith("cancel.")
        ):
            return None  # "yes, cancel it" answers the cancel flow's own question
        target = FLOW_INTENTS.get(intent)
        if target is not None:
            ctx.conversation.data = {"request": text}
            return self._enter(ctx, target, None)
        if only_commands:
            return None
        if intent == "help":
            return [self._help(ctx)]
        if registry.mentions_booking_details(ctx, text):
            # "tomorrow afternoon with the dermatologist": a booking request without the verb.
            ctx.conversation.data = {"request": text}
            return self._enter(ctx, "booking.practitioner", None)
        return None

    # -- steps -----------------------------------------------------------------

    def _enter(self, ctx: Ctx, step_name: str, notice: str | None) -> list[Reply]:
        step = registry.get(step_name)
        assert step is not None, step_name
        ctx.conversation.flow, _, _ = step_name.partition(".")
        ctx.conversation.step = step_name
        entered = getattr(step, "enter", None)
        if entered is not None:
            # Steps that can act on what was already said ("book with Dr Ruiz tomorrow").
            outcome: Outcome | None = entered(ctx)
            if outcome is not None:
                return self._apply(ctx, step_name, outcome)
        ctx.data.pop("options", None)
        return step.prompt(ctx, notice)

    def _apply(self, ctx: Ctx, current: str, outcome: Outcome) -> list[Reply]:
        replies = list(outcome.replies)
        if outcome.next == END:
            ctx.conversation.flow = ctx.conversation.step = None
            ctx.conversation.data = {}
            return replies
        if outcome.next is None:
            if not outcome.reprompt:
                return replies + ([Reply(outcome.notice)] if outcome.notice else [])
            step = registry.get(current)
            assert step is not None
            return replies + step.prompt(ctx, outcome.notice)
        return replies + self._enter(ctx, outcome.next, outcome.notice)

    # -- language, consent, time-outs ----------------------------------------

    def _help(self, ctx: Ctx) -> Reply:
        return Reply(ctx.t("help.text", clinic=ctx.clinic.name, phone=ctx.clinic.phone or "-"))

    def _language(
        self, conversation: ConversationState, identity: ChannelIdentity, text: str
    ) -> str:
        """The language the patient chose; else the one detected from their first
        message, kept unless they clearly write a sentence in the other one
        (a short "ok" or "hola" does not switch)."""
        lang = identity.language
        if not lang:
            detected = detect_language(text)
            current = conversation.language
            if current is None or (detected and detected != current and len(text.split()) >= 3):
                lang = detected or current
            else:
                lang = current
        conversation.language = normalize_language(lang or self.settings.default_language)
        return conversation.language

    def _consent(self, ctx: Ctx, folded: str) -> list[Reply] | None:
        """Opt-out words stop every reply at once; START brings them back.

        A lone CANCEL is an opt-out on SMS (carriers treat it so); elsewhere
        it is the patient asking to cancel.
        """
        identity = ctx.identity
        opt_out = folded in OPT_OUT_WORDS and not (
            folded == "cancel" and ctx.message.channel != "sms"
        )
        if identity.opted_out_at is not None:
            if folded in OPT_IN_WORDS:
                identity.opted_out_at = None
                return [Reply(ctx.t("consent.opted_in"))]
            if folded in HELP_WORDS:
                return [
                    Reply(
                        ctx.t(
                            "consent.help_opted_out",
                            clinic=ctx.clinic.name,
                            phone=ctx.clinic.phone or "",
                        )
                    )
                ]
            return []
        if opt_out:
            identity.opted_out_at = ctx.now
            ctx.conversation.flow = ctx.conversation.step = None
            ctx.conversation.data = {}
            return [Reply(ctx.t("consent.opted_out"), purpose="consent")]
        return None

    def _abuse_verdict(
        self, session: Session, msg: InboundMessage, inbound_id: int, now: datetime
    ) -> abuse.Verdict:
        verdict = abuse.check(
            session,
            channel=msg.channel,
            address=msg.address,
            inbound_id=inbound_id,
            now=now,
            max_per_minute=self.settings.inbound_max_per_minute,
            cooldown=timedelta(minutes=self.settings.inbound_cooldown_minutes),
        )
        if verdict is abuse.Verdict.TRIPPED:
            log.warning("inbound_rate_limit_tripped", channel=msg.channel)
        return verdict

    def _timed_out(self, conversation: ConversationState, now: datetime) -> bool:
        idle = now - conversation.updated_at
        return idle > timedelta(minutes=self.settings.conversation_timeout_minutes)


@cache
def _insert_inbound(dialect: str) -> Insert:
    table = table_of(InboundLog)
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(table)
        .values({c: bindparam(c) for c in INBOUND_COLUMNS})
        .on_conflict_do_nothing(index_elements=["channel", "provider_message_id"])
        .returning(table.c.id)
    )


INBOUND_COLUMNS = ("channel", "provider_message_id", "address", "body", "media", "received_at")


def _record_inbound(session: Session, msg: InboundMessage, now: datetime) -> int | None:
    """Insert the message once; ``None`` when this provider id was seen before."""
    row_id = session.execute(
        _insert_inbound(session.get_bind().dialect.name),
        {
            "channel": msg.channel,
            "provider_message_id": msg.provider_message_id,
            "address": msg.address,
            "body": msg.text,
            "media": [_media_json(m) for m in msg.media],
            "received_at": msg.received_at or now,
        },
    ).scalar()
    return row_id


def _media_json(media: Media) -> dict[str, str]:
    return {"content_type": media.content_type, "reference": media.reference}
