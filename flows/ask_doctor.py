"""Ask the doctor, the patient's side (``core.questions`` holds the threads).

"I have a question for Dr Ruiz", "pregunta para la doctora Ruiz", or the
menu's "Ask the doctor a question". When the message already carries the
question ("question for Dr Ruiz: is ibuprofen ok with amoxicillin?") it is
sent at once; else the bot asks for it (a free-text step: a question about
"rescheduling my surgery" is not a request to reschedule). A photo sent with
it is attached.

Who answers: the practitioner named; else the one of the patient's current
question thread; else of their next (or latest) appointment; else the
clinic's triage queue. A name two practitioners share gets a question. A
patient the clinic does not know yet gives their name and date of birth
first, once, as for a first booking (CONTRACT: asked once, never again).

Follow-ups without a flow step: for LISTEN after the patient wrote into a
thread, and right after the care team's answer (the answer is the last thing
that happened on this address: ``answered_at`` after the conversation last
moved), free text that is not a command goes into the thread (``follow_up``).
Commands (book, my appointments...), MENU and small numbers keep their usual
meaning; "thanks" is answered and ends it. Anywhere else the patient says
"reply to the doctor" or "another question for the doctor".

Red flags: the engine answers an emergency first, always. When the message
was meant for the doctor (it asks the doctor, answers "What is your
question?", or follows up a thread) it is stored in the thread too, so the
doctor sees it; the patient gets only the emergency reply (``keep_urgent``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import questions
from core.i18n import format_when
from core.logs import get_logger
from core.messages import Option, Reply
from core.models import Appointment, InboundLog, Patient, Practitioner, QuestionThread
from core.nlu import classify_intent
from core.patients import patient_for_identity
from flows import booking
from flows.booking import named_practitioners, practitioner_label
from flows.context import Ctx, Outcome, fold, number_choice, with_notice
from flows.emergency import numbers
from flows.prescriptions import asks_for_prescriptions
from flows.waitlist import asks_for_waitlist

log = get_logger(__name__)

START = "ask.start"
WHO = "ask.who"
QUESTION = "ask.question"
NAME = "ask.name"
DOB = "ask.dob"
STEPS = (START, WHO, QUESTION, NAME, DOB)
# Conversation data key: the thread the patient's next free text continues.
LISTENING = "ask_listening"
LISTEN = timedelta(minutes=30)
# How much of a message is read for meaning (all of it is stored).
SCAN = 500
# A message this long with no question after the "question for the doctor"
# clause is itself the question ("can I ask the doctor whether ...").
LONG = 12


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ASK_WORDS = _words(
    "question questions ask asking message talk speak write contact reply respond "
    "pregunta preguntas preguntar preguntarle duda dudas hablar mensaje consultar "
    "responder responderle contestar contestarle"
)
_DOCTOR_WORDS = _words(
    "doctor doctors dr dra doc physician nurse medico medica doctora enfermera enfermero"
)
# What the intent rules do not cover: "reply to the doctor", "doctor question: ...".
_REPLY = re.compile(
    r"\b(?:reply|respond|write back|responder|responderle|contestar|contestarle)"
    r"(?:\s+\w+){0,2}\s+(?:doctor|doctora|dr|dra|doc|medico|medica|nurse)\b"
    r"|^\s*(?:(?:a|one|quick|another|medical)\s+){0,2}(?:doctor|doctors|dr|doc|medical)"
    r"\s+questions?\s*$"
)
_CUT = re.compile(r"[:\n,;.?!¿¡]")
_TITLES = _words("dr dra drs mr mrs ms sr sra srta")
# The first clause asking for one of these is not a question for the doctor.
_COMMANDS = frozenset(
    ("book", "reschedule", "cancel", "my_appointments", "pharmacy", "refill", "opt_out")
)
# ...and mid-listening these keep their usual meaning too.
_ROUTED = _COMMANDS | {"help", "menu", "opt_in"}
_THANKS = _words(
    "thanks thank you so much very a lot ok okay k great perfect cheers got it noted "
    "doctor doctora dr dra gracias muchas mil vale perfecto de acuerdo genial entendido bien"
)
_GREETINGS = _words(
    "hi hello hey hola buenas buenos dias tardes noches good morning afternoon evening"
)


# -- reading the request -------------------------------------------------------------


def _cuts(text: str) -> list[int]:
    """Where clauses end: punctuation and line breaks, not the dot of "Dr." or "1.5"."""
    cuts = []
    for match in _CUT.finditer(text):
        i = match.start()
        if match.group() == ".":
            before = text[:i].split()
            if before and fold(before[-1]) in _TITLES:
                continue
            if text[i + 1 : i + 2].isdigit():
                continue
        cuts.append(i)
    return [*cuts, len(text)]


def _clause(ctx: Ctx, text: str) -> tuple[str, str] | None:
    """(the clause asking for the doctor, what follows it), else None. The first
    clause that asks for something decides: "book, and a question for the
    doctor" is a booking."""
    head = text[:SCAN]
    words = set(fold(head).replace(":", " ").split())
    if words.isdisjoint(_DOCTOR_WORDS) or words.isdisjoint(_ASK_WORDS):
        return None
    start = 0
    for cut in _cuts(head):
        clause = text[start:cut]
        start = cut + 1
        if not clause.strip():
            continue
        if _REPLY.search(fold(clause)):
            return clause, text[cut + 1 :]
        intent = _intent(ctx, clause)
        if intent == "ask_doctor":
            return clause, text[cut + 1 :]
        if intent in _COMMANDS:
            return None
    return None


def _intent(ctx: Ctx, text: str) -> str:
    return ctx.once("intent", text, lambda: classify_intent(text, ctx.lang))


def asks(ctx: Ctx, text: str) -> bool:
    """Does the message ask to write to the doctor ("question for Dr Ruiz...",
    "reply to the doctor")? The engine starts this flow when it does."""
    return bool(text.strip()) and _clause(ctx, text) is not None


def _question(text: str, found: tuple[str, str]) -> str:
    clause, rest = found
    rest = rest.strip()
    if len(rest.split()) >= 2 or (rest and "?" in rest):
        return rest
    if len(clause.split()) >= LONG:
        return text.strip()
    return ""


def _named(ctx: Ctx, clause: str) -> list[Practitioner]:
    """The practitioners the clause names. A long clause is searched only just
    after a title ("... for Dr Ruiz about ..."), so "my heart" in a question
    does not pick the cardiologist."""
    words = clause.split()
    if len(words) > 8:
        at = next((i for i, w in enumerate(words) if fold(w) in _DOCTOR_WORDS), None)
        clause = " ".join(words[at : at + 3]) if at is not None else ""
    return named_practitioners(ctx, clause) if clause.strip() else []


def _media(ctx: Ctx) -> list[dict[str, str]]:
    return [{"url": m.reference, "content_type": m.content_type} for m in ctx.message.media]


def _inbound_id(ctx: Ctx) -> int | None:
    msg = ctx.message
    return ctx.session.scalar(
        select(InboundLog.id).where(
            InboundLog.channel == msg.channel,
            InboundLog.provider_message_id == msg.provider_message_id,
        )
    )


def _default_practitioner(ctx: Ctx, patient_id: int | None) -> int | None:
    """The practitioner of the patient's next appointment, else their latest."""
    if patient_id is None:
        return None
    a = Appointment
    base = select(a).where(a.patient_id == patient_id)
    found = (
        ctx.session.scalars(
            base.where(a.status.in_(("booked", "confirmed")), a.start_at >= ctx.now)
            .order_by(a.start_at)
            .limit(1)
        ).first()
        or ctx.session.scalars(
            base.where(a.status.in_(("booked", "confirmed", "completed")), a.start_at < ctx.now)
            .order_by(a.start_at.desc())
            .limit(1)
        ).first()
    )
    if found is None or not found.practitioner.active:
        return None
    return found.practitioner_id


def _phone(ctx: Ctx) -> str | None:
    msg = ctx.message
    return msg.address if msg.channel in ("sms", "whatsapp") else None


def _who(ctx: Ctx, practitioner_id: int | None) -> str:
    p = ctx.session.get(Practitioner, practitioner_id) if practitioner_id else None
    return p.name if p is not None else ctx.t("ask.care_team", clinic=ctx.clinic.name)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- the steps --------------------------------------------------------------------------


class Start:
    """Reads the request; always moves on (to the question, a choice of doctor,
    the patient's name) or sends the question at once."""

    name = START

    def enter(self, ctx: Ctx) -> Outcome | None:
        request = ctx.data.pop("request", None)
        text = ctx.message.text if request else ""
        found = _clause(ctx, text) if text else None
        data: dict[str, Any] = {"media": _media(ctx)}
        if found is not None:
            question = _question(text, found)
            if question:
                data["question"] = question
                data["inbound_id"] = _inbound_id(ctx)
            named = _named(ctx, found[0])
        else:
            named = []
        ctx.conversation.data = data
        if len(named) > 1:
            data["candidates"] = [p.id for p in named]
            return Outcome.go(WHO)
        if named:
            data["practitioner_id"] = named[0].id
        else:
            data["practitioner_id"] = _current_practitioner(ctx)
        return _next(ctx)

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [Reply(notice or ctx.t("common.lost"))]  # never stays: enter always decides

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        return Outcome.end(ctx.t("common.lost"))


def _current_practitioner(ctx: Ctx) -> int | None:
    """No one named: whoever has the patient's current thread, else their
    appointment's practitioner, else the triage queue (None)."""
    patient_id = ctx.identity.patient_id
    if patient_id is None:
        return None
    thread = questions.active_thread(ctx.session, patient_id=patient_id, now=ctx.now)
    if thread is not None:
        return thread.practitioner_id
    return _default_practitioner(ctx, patient_id)


def _next(ctx: Ctx) -> Outcome:
    """Ask for what is still missing, else send the question."""
    if "question" not in ctx.data:
        return Outcome.go(QUESTION)
    # By id: a patient created in this message is not on the identity's relationship yet.
    pid = ctx.identity.patient_id
    patient = ctx.session.get(Patient, pid) if pid is not None else None
    if patient is None or not patient.name:
        return Outcome.go(NAME)
    if patient.date_of_birth is None:
        return Outcome.go(DOB)
    return _send(ctx)


def _send(ctx: Ctx) -> Outcome:
    """Into the patient's current thread when it is with the same practitioner,
    else a new thread; then listen for more."""
    patient = patient_for_identity(ctx.session, ctx.identity, ctx.clinic, phone=_phone(ctx))
    pid = ctx.data.get("practitioner_id")
    practitioner_id = pid if isinstance(pid, int) else None
    msg = ctx.message
    body = str(ctx.data.get("question") or "")
    media = list(ctx.data.get("media") or [])
    inbound = ctx.data.get("inbound_id")
    inbound_id = inbound if isinstance(inbound, int) else None
    thread, added = questions.ask(
        ctx.session,
        patient_id=patient.id,
        practitioner_id=practitioner_id,
        channel=msg.channel,
        address=msg.address,
        body=body,
        media=media,
        inbound_id=inbound_id,
        now=ctx.now,
        settings=ctx.settings,
    )
    return _listen(ctx, thread, "ask.added" if added else "ask.sent")


def _listen(ctx: Ctx, thread: QuestionThread, key: str) -> Outcome:
    """Say when to expect the answer, and leave the conversation free (no step)
    but listening: more free text within LISTEN goes to this thread."""
    ctx.conversation.flow = ctx.conversation.step = None
    ctx.conversation.data = {LISTENING: thread.id}
    who = _who(ctx, thread.practitioner_id)
    text = ctx.t(
        key,
        who=_cap(who),
        to=who,
        when=format_when(thread.due_at, ctx.lang, ctx.tz),
        number=numbers(ctx)[0],
    )
    return Outcome(replies=[Reply(text)], reprompt=False)


class Who:
    """A name two practitioners share ("Dr Ana"): which one, or anyone."""

    name = WHO

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        ids = ctx.data.get("candidates") or []
        shown = [p for p in named_practitioners(ctx, "") if p.id in ids]
        options = [Option(practitioner_label(ctx, p), f"p:{p.id}") for p in shown]
        options.append(Option(ctx.t("ask.anyone"), "triage"))
        return [ctx.ask(with_notice(notice, ctx.t("ask.which")), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        ids = list(ctx.data.get("candidates") or [])
        chosen: int | None = None
        if ctx.choice == "triage":
            return self._chosen(ctx, None)
        if ctx.choice and ctx.choice.startswith("p:"):
            chosen = int(ctx.choice[2:])
        elif text.strip():
            found = [p.id for p in named_practitioners(ctx, text) if p.id in ids]
            chosen = found[0] if len(found) == 1 else None
        if chosen is None or chosen not in ids:
            return Outcome.stay(ctx.t("common.pick_number"))
        return self._chosen(ctx, chosen)

    def _chosen(self, ctx: Ctx, practitioner_id: int | None) -> Outcome:
        ctx.data.pop("candidates", None)
        ctx.data.pop("options", None)
        ctx.data["practitioner_id"] = practitioner_id
        return _next(ctx)


def _short_command(ctx: Ctx, text: str) -> bool:
    """A few words that ask for something else ("book", "my appointments")."""
    if len(text.split()) > 3:
        return False
    return _intent(ctx, text) in _ROUTED


class Question:
    """ "What is your question?": any text, a photo alone too."""

    name = QUESTION

    def free_text(self, ctx: Ctx) -> bool:
        """Any answer is the question (the engine does not route "can I
        reschedule my surgery?" to rescheduling), but a lone "book" or "my
        appointments" is the patient changing their mind."""
        return not _short_command(ctx, " ".join(ctx.message.text.split()))

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        who = _who(ctx, ctx.data.get("practitioner_id"))
        return [ctx.ask(with_notice(notice, ctx.t("ask.question", who=who)))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        body = ctx.message.text.strip()
        media = _media(ctx)
        if not body and not media:
            return Outcome.stay(ctx.t("ask.question_again"))
        ctx.data["question"] = body
        ctx.data["media"] = [*(ctx.data.get("media") or []), *media]
        ctx.data["inbound_id"] = _inbound_id(ctx)
        return _next(ctx)


class AskName(booking.AskName):
    """Booking's name step, for a question."""

    name = NAME

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [ctx.ask(with_notice(notice, ctx.t("ask.name")))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        outcome = super().handle(ctx, text)
        return Outcome.go(DOB) if outcome.next == "booking.dob" else outcome


class AskDob(booking.AskDob):
    """Booking's date-of-birth step (registers the patient), for a question."""

    name = DOB

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        outcome = super().handle(ctx, text)
        if outcome.next == "booking.name":
            return Outcome.go(NAME)
        if outcome.next == "booking.confirm":
            ctx.data.pop("registered", None)
            return _next(ctx)
        return outcome


# -- follow-ups -------------------------------------------------------------------------


def _continued(ctx: Ctx) -> tuple[QuestionThread, bool] | None:
    """The thread this message may continue, and whether it is the first
    message since the care team answered (else: listening after the patient
    wrote into it). Does not change anything."""
    patient_id = ctx.identity.patient_id
    if patient_id is None:
        return None
    conversation, msg = ctx.conversation, ctx.message
    listening = conversation.data.get(LISTENING) if conversation.step is None else None
    if listening is not None and ctx.now - conversation.updated_at > LISTEN:
        listening = None
    thread = questions.active_thread(ctx.session, patient_id=patient_id, now=ctx.now)
    if thread is None:
        return None
    answered = thread.answered_at
    fresh = (
        thread.status == "answered"
        and answered is not None
        and (conversation.new or answered > conversation.updated_at)
        and (thread.channel, thread.address) == (msg.channel, msg.address)
    )
    if fresh and conversation.step is not None and not _timed_out(ctx):
        return None  # mid-flow: the message belongs to the flow
    if fresh or listening == thread.id:
        return thread, fresh
    return None


def _timed_out(ctx: Ctx) -> bool:
    idle = ctx.now - ctx.conversation.updated_at
    return idle > timedelta(minutes=ctx.settings.conversation_timeout_minutes)


def _stop_listening(ctx: Ctx) -> None:
    if ctx.conversation.step is None:
        ctx.conversation.data.pop(LISTENING, None)


def follow_up(ctx: Ctx, text: str) -> Outcome | None:
    """The message as a follow-up to the patient's thread, when it is one (see
    the module doc); None leaves it to the usual routing."""
    found = _continued(ctx)
    if found is None:
        _stop_listening(ctx)
        return None
    thread, fresh = found
    body, media = ctx.message.text.strip(), _media(ctx)
    if not media:
        words = fold(text).split()
        if not body or number_choice(text) is not None or (words and set(words) <= _GREETINGS):
            _stop_listening(ctx)
            return None
        if set(words) <= _THANKS:  # "thanks", "ok", "👍" (no words at all)
            if fresh:
                return _listen(ctx, thread, "ask.welcome_more")
            ctx.conversation.data = {}
            return Outcome(replies=[Reply(ctx.t("ask.welcome"))], reprompt=False)
        if (
            asks(ctx, text)
            or asks_for_waitlist(text)
            or asks_for_prescriptions(text)
            or _intent(ctx, text) in _ROUTED
        ):
            _stop_listening(ctx)
            return None
    questions.add_patient_message(
        ctx.session,
        thread,
        body=body,
        media=media,
        inbound_id=_inbound_id(ctx),
        channel=ctx.message.channel,
        address=ctx.message.address,
        now=ctx.now,
        settings=ctx.settings,
    )
    return _listen(ctx, thread, "ask.added")


# -- red flags --------------------------------------------------------------------------


def keep_urgent(ctx: Ctx, inbound_id: int | None) -> None:
    """A red-flag message meant for the doctor is stored in the thread as well
    (the engine sends the emergency reply; nothing is added to it here). A
    failure here never stands in the way of that reply."""
    try:
        with ctx.session.begin_nested():
            kept = _keep(ctx, inbound_id)
    except Exception as exc:  # noqa: BLE001 - the emergency answer must go out regardless
        log.warning("question_keep_failed", error_type=type(exc).__name__)
        return
    if kept and ctx.conversation.step in STEPS:
        # Sent: nothing of the question flow is left to resume after the emergency.
        ctx.conversation.flow = ctx.conversation.step = None
        ctx.conversation.data = {}


def _keep(ctx: Ctx, inbound_id: int | None) -> bool:
    msg, step = ctx.message, ctx.conversation.step
    text = msg.text.strip()
    media = _media(ctx)
    if step in STEPS:
        media = [*(ctx.data.get("media") or []), *media]
        held = str(ctx.data.get("question") or "")
        body = "\n".join(x for x in (held, text) if x)
        pid = ctx.data.get("practitioner_id")
        target: int | None = pid if isinstance(pid, int) else None
        thread = None
    else:
        continued = _continued(ctx)
        if continued is not None:
            thread, body, target = continued[0], text, continued[0].practitioner_id
        else:
            found = _clause(ctx, text)
            if found is None:
                return False
            body = _question(text, found) or text
            named = _named(ctx, found[0])
            target = named[0].id if len(named) == 1 else _current_practitioner(ctx)
            thread = None
    patient = patient_for_identity(ctx.session, ctx.identity, ctx.clinic, phone=_phone(ctx))
    questions.ask(
        ctx.session,
        patient_id=patient.id,
        practitioner_id=target,
        channel=msg.channel,
        address=msg.address,
        body=body,
        media=media,
        inbound_id=inbound_id,
        now=ctx.now,
        settings=ctx.settings,
        thread=thread,
    )
    return True
