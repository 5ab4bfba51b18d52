"""The custom actions a clinic's Rasa assistant calls, over the service's core.

Each action reads the tracker's slots, does its work in one transaction and
answers in the tracker's language with the service's own message catalog.
Buttons carry Rasa payloads (``/intent{"entity": "value"}``) that the example
domain in docs/rasa.md maps back to slots. Nothing is left half done: a
booking either is made or the patient gets a clarifying answer, and no slot
is held while Rasa waits for the patient (the slot is booked when they pick
it, or they are told it was taken and offered the nearest free ones).

Red flags win: before any other work, a message that trips a red-flag rule
gets the emergency answer, and staff an alert, as on the service's own
channels.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from core import notices, pharmacies, scheduling
from core.alerts import emergency_numbers, raise_red_flag
from core.i18n import format_when, normalize_language, t
from core.intake import questionnaire
from core.models import Alert, Appointment, IntakeResponse, Patient, Practitioner
from core.nlu import detect_language
from core.nlu.redflags import RedFlag
from core.nlu.redflags import detect as detect_red_flags
from core.patients import patient_for_identity, register
from flows.booking import offered_slots, slot_choices, valid_name
from flows.dob import DobError, parse_dob

from .senders import MAX_ADDRESS, RASA_CHANNEL
from .slots import (
    BadSlot,
    Wanted,
    latest_entity,
    parse_instant,
    slot_id,
    slot_text,
    text_of,
    wanted_time,
)
from .turn import (
    NoClinic,
    Runtime,
    Turn,
    latest_text,
    log,
    open_turn,
    run_in_transaction,
    runtime,
)

TIMES_SHOWN = 6
PHARMACIES_SHOWN = 5
# One alert per message: Rasa may run several of our actions on one message.
ALERT_DEDUPE = timedelta(minutes=10)
REGISTRATION_FORM = "registration_form"
PHONE_CHANNELS = ("sms", "whatsapp")


@dataclass
class Said:
    """The responses and events of one action call."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    events: list[EventType] = field(default_factory=list)

    def deliver(self, dispatcher: CollectingDispatcher) -> list[EventType]:
        for message in self.messages:
            dispatcher.utter_message(**message)
        return self.events

    def say(self, text: str, buttons: Sequence[dict[str, str]] = ()) -> None:
        message: dict[str, Any] = {"text": text}
        if buttons:
            message["buttons"] = list(buttons)
        self.messages.append(message)

    def set(self, slot: str, value: Any) -> None:
        """Set ``slot``; a later value for the same slot replaces the earlier one."""
        self.events = [
            e for e in self.events if not (e.get("event") == "slot" and e.get("name") == slot)
        ]
        self.events.append(SlotSet(slot, value))


def payload(intent: str, **entities: object) -> str:
    """A Rasa button payload: ``/intent{"entity": "value"}``."""
    return "/" + intent + json.dumps({k: str(v) for k, v in entities.items()}, ensure_ascii=False)


def button(title: str, intent: str, **entities: object) -> dict[str, str]:
    return {"title": title, "payload": payload(intent, **entities)}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


# -- the base every action shares --------------------------------------------------


class CoreAction(Action, ABC):
    """Red flags first, then ``act`` in one transaction; the database being
    down is an apology, never a 500 the patient would see as silence."""

    action_name = ""
    # Actions that may book create the sender's identity on first contact;
    # look-ups do not, so a stranger asking leaves no row behind.
    creates_identity = False

    def name(self) -> str:
        return self.action_name

    @abstractmethod
    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None: ...

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        def work(turn: Turn) -> Said:
            said = Said()
            if turn.sender_problem:
                said.say(turn.t("rasa.unknown_sender"))
            else:
                self.act(turn, tracker, said)
            return said

        said = await run_turn(self.name(), tracker, work, create=self.creates_identity)
        return said.deliver(dispatcher)


async def run_turn(
    action: str, tracker: Tracker, work: Callable[[Turn], Said], *, create: bool
) -> Said:
    """``work`` in one transaction, unless the message trips a red flag (which
    wins). The database being down, or a bug, is an apology to the patient;
    a red flag is answered even then."""
    text = latest_text(tracker)
    flags = detect_red_flags(text) if text else ()

    def call(session: Session, rt: Runtime) -> Said:
        turn = open_turn(session, rt, tracker, create=create)
        if flags:
            said = Said()
            number, crisis = emergency_numbers(turn.clinic, rt.settings)
            said.say(_emergency_text(turn.lang, flags, number, crisis, alerted=True))
            _alert(turn, tracker, flags)
            return said
        return work(turn)

    try:
        return await run_in_transaction(call)
    except (OperationalError, InterfaceError, PoolTimeout, NoClinic) as exc:
        log.error("rasa_action_unavailable", action=action, error=type(exc).__name__)
        failure = "rasa.unavailable"
    except Exception:  # noqa: BLE001 - a bug: the patient gets an answer, we the traceback
        # rasa-sdk would answer 500 with the whole request (the patient's words) in it.
        log.exception("rasa_action_failed", action=action)
        failure = "rasa.failed"
    said = Said()
    lang = _tracker_lang(tracker)
    if flags:
        log.error("rasa_red_flag_alert_not_recorded", rules=sorted({f.rule for f in flags}))
        settings = runtime().settings
        number, crisis = settings.emergency_number, settings.crisis_line
        said.say(_emergency_text(lang, flags, number, crisis, alerted=False))
    else:
        said.say(t(lang, failure))
    return said


def _emergency_text(
    lang: str, flags: tuple[RedFlag, ...], number: str, crisis: str, *, alerted: bool
) -> str:
    """The service's emergency answer; without "I've alerted the clinic's
    staff" when the alert could not be recorded."""
    crisis_kind = any(f.kind == "crisis" for f in flags)
    if alerted:
        key = "emergency.crisis" if crisis_kind else "emergency.text"
    else:
        key = "rasa.crisis_unrecorded" if crisis_kind else "rasa.emergency_unrecorded"
    return t(lang, key, number=number, crisis=crisis)


def _alert(turn: Turn, tracker: Tracker, flags: tuple[RedFlag, ...]) -> None:
    """One alert for staff per message (Rasa may run several actions on one)."""
    if turn.identity is not None:
        channel, address = turn.identity.channel, turn.identity.address
    else:
        channel, address = RASA_CHANNEL, str(tracker.sender_id or "")[:MAX_ADDRESS]
    already = turn.session.scalar(
        select(Alert.id).where(
            Alert.kind == "red_flag",
            Alert.channel == channel,
            Alert.address == address,
            Alert.text == turn.text,
            Alert.created_at >= turn.now - ALERT_DEDUPE,
        )
    )
    if already is None:
        raise_red_flag(
            turn.session,
            turn.settings,
            turn.clinic,
            rules=[f.rule for f in flags],
            patient_id=turn.identity.patient_id if turn.identity else None,
            channel=channel,
            address=address,
            text=turn.text,
            now=turn.now,
        )
    log.warning("rasa_red_flag", rules=sorted({f.rule for f in flags}), channel=channel)


# -- shared pieces -------------------------------------------------------------------


def _label(turn: Turn, p: Practitioner) -> str:
    specialty = p.specialty_es if turn.lang == "es" and p.specialty_es else p.specialty
    return f"{p.name} ({specialty})"


def _everyone(turn: Turn) -> list[Practitioner]:
    return scheduling.find_practitioners(turn.session, "", turn.lang)


def _practitioner(turn: Turn, tracker: Tracker, said: Said) -> Practitioner | None:
    """The practitioner the patient means; otherwise asks which (and returns None).

    What the latest message says wins over what the slots remember from
    earlier: a tapped button (``practitioner_id``), then a name or specialty
    said now, then the remembered id, then a remembered name or specialty.
    """
    said_now = latest_entity(tracker, "practitioner") or latest_entity(tracker, "specialty")
    tapped = latest_entity(tracker, "practitioner_id") is not None
    chosen = slot_id(tracker, "practitioner_id") if tapped or not said_now else None
    if chosen is not None:
        p = turn.session.get(Practitioner, chosen)
        if p is not None and p.active:
            return p
    query = said_now or slot_text(tracker, "practitioner") or slot_text(tracker, "specialty")
    if query is None:
        _ask_who(turn, said, turn.t("rasa.who"), _everyone(turn))
        return None
    found = scheduling.find_practitioners(turn.session, query[:200], turn.lang)
    if len(found) == 1:
        said.set("practitioner_id", str(found[0].id))
        return found[0]
    if found:
        _ask_who(turn, said, turn.t("booking.which_of"), found)
    else:
        said.set("practitioner", None)
        said.set("specialty", None)
        _ask_who(turn, said, turn.t("rasa.who_unknown", text=query[:40]), _everyone(turn))
    return None


def _ask_who(turn: Turn, said: Said, text: str, shown: list[Practitioner]) -> None:
    said.set("practitioner_id", None)
    said.say(text, [button(_label(turn, p), "book", practitioner_id=p.id) for p in shown])


def _wanted(turn: Turn, tracker: Tracker, p: Practitioner, said: Said) -> Wanted | BadSlot | None:
    """The time slot read for ``p``; a BadSlot (already answered) when unreadable."""
    try:
        wanted = wanted_time(turn, tracker)
    except BadSlot as bad:
        said.set(bad.slot, None)
        said.say(turn.t(bad.key))
        return bad
    if wanted is not None and wanted.lo > turn.now + timedelta(days=p.horizon_days):
        said.set("time", None)
        said.say(turn.t("booking.too_far", days=p.horizon_days))
        return BadSlot("time", "booking.too_far")
    return wanted


def _offer_times(
    turn: Turn,
    p: Practitioner,
    wanted: Wanted | None,
    said: Said,
    *,
    intent: str,
    notice: str | None = None,
    around: datetime | None = None,
    **entities: object,
) -> None:
    """Free times of ``p`` as buttons: in the wanted window, else the nearest
    (``offered_slots``, as the service's own booking offers them)."""
    found: list[scheduling.Slot] | None = None
    header = "slots"
    near, window = around, None
    if around is None and wanted is not None and wanted.exact:
        if scheduling.is_slot_free(turn.session, p, wanted.lo, now=turn.now):
            end = wanted.lo + timedelta(minutes=p.slot_minutes)
            found = [scheduling.Slot(p.id, wanted.lo, end)]
        else:
            notice = turn.t("booking.not_free", when=format_when(wanted.lo, turn.lang, turn.tz))
            near = wanted.lo
    elif around is None and wanted is not None:
        window = (wanted.lo, wanted.hi)
    if found is None:
        found, header = offered_slots(
            turn.session, p, turn.now, window=window, near=near, limit=TIMES_SHOWN
        )
    said.set("time", None)
    said.set("start_time", None)
    if not found:
        text = turn.t("rasa.no_availability", name=p.name)
        said.say(f"{notice}\n{text}" if notice else text)
        return
    title, labels = slot_choices(found, header, turn.lang, turn.tz)
    # A notice (the old time, a taken one) says whose times these are already.
    text = (
        title if notice and around is None else turn.t("rasa.times_for", name=p.name) + "\n" + title
    )
    buttons = [
        button(label, intent, start_time=_iso(s.start), **entities)
        for label, s in zip(labels, found, strict=True)
    ]
    said.say(f"{notice}\n{text}" if notice else text, buttons)


def _upcoming(turn: Turn) -> list[Appointment]:
    patient = turn.patient
    if patient is None:
        return []
    return [
        a
        for a in scheduling.upcoming_appointments(turn.session, patient.id, now=turn.now)
        if a.status in ("booked", "confirmed")
    ]


def _describe(turn: Turn, a: Appointment) -> str:
    when = format_when(a.start_at, turn.lang, turn.tz)
    kind = turn.t("appointments.video") if a.visit_type == "video" else ""
    return turn.t("appointments.item", name=a.practitioner.name, when=when) + kind


def _which_appointment(
    turn: Turn, tracker: Tracker, said: Said, *, intent: str, question: str
) -> tuple[Appointment | None, bool]:
    """(the appointment the patient means, whether they named it in this message);
    (None, _) after answering: none upcoming, or which one?"""
    items = _upcoming(turn)
    if not items:
        said.set("appointment_id", None)
        said.say(turn.t("rasa.no_appointments"))
        return None, False
    # Only an appointment picked in this message counts: the slot may still hold
    # one booked or picked earlier in the conversation.
    named_now = latest_entity(tracker, "appointment_id") is not None
    chosen = slot_id(tracker, "appointment_id") if named_now else None
    for a in items:
        if a.id == chosen:
            return a, True
    if len(items) == 1:
        return items[0], False
    said.set("appointment_id", None)
    said.say(
        turn.t(question),
        [button(_describe(turn, a), intent, appointment_id=a.id) for a in items],
    )
    return None, False


def _place(turn: Turn, a: Appointment) -> str:
    if a.visit_type == "video":
        return turn.t("booking.video")
    return turn.clinic.address or turn.clinic.name


def _start_time(turn: Turn, tracker: Tracker, said: Said) -> datetime | BadSlot | None:
    text = slot_text(tracker, "start_time")
    if text is None:
        return None
    start = parse_instant(text, turn.tz)
    if start is None:
        said.set("start_time", None)
        return BadSlot("start_time", "booking.slot_again")
    return start


def _visit_type(tracker: Tracker, p: Practitioner) -> str:
    wanted = (slot_text(tracker, "visit_type") or "").lower().replace(" ", "_").replace("-", "_")
    return "video" if wanted == "video" and "video" in (p.visit_types or []) else "in_person"


# -- the actions ---------------------------------------------------------------------


class FindSlots(CoreAction):
    """Practitioner (or specialty) + time -> the next free times, as buttons."""

    action_name = "action_find_slots"

    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None:
        p = _practitioner(turn, tracker, said)
        if p is None:
            return
        wanted = _wanted(turn, tracker, p, said)
        if isinstance(wanted, BadSlot):
            return
        said.set("practitioner_id", str(p.id))
        _offer_times(turn, p, wanted, said, intent="choose_time", practitioner_id=p.id)


class BookAppointment(CoreAction):
    """Book the chosen free time for the sender (registering a new patient first)."""

    action_name = "action_book_appointment"
    creates_identity = True

    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None:
        p = _practitioner(turn, tracker, said)
        if p is None:
            return
        start = _start_time(turn, tracker, said)
        if not isinstance(start, datetime):
            # No time picked yet (or an unreadable one): offer the free times.
            wanted = _wanted(turn, tracker, p, said)
            if isinstance(wanted, BadSlot):
                return
            notice = turn.t("booking.slot_again") if isinstance(start, BadSlot) else None
            _offer_times(
                turn, p, wanted, said, intent="choose_time", notice=notice, practitioner_id=p.id
            )
            return
        patient = _registered_patient(turn, tracker, said)
        if patient is None:
            return
        existing = next(
            (a for a in _upcoming(turn) if a.practitioner_id == p.id and a.start_at == start), None
        )
        if existing is not None:  # Rasa retried, or the button was tapped twice
            _booked(turn, existing, said)
            return
        assert turn.identity is not None
        try:
            appointment = scheduling.book(
                turn.session,
                practitioner=p,
                patient_id=patient.id,
                start=start,
                now=turn.now,
                channel=turn.identity.channel,
                visit_type=_visit_type(tracker, p),
            )
        except scheduling.SlotUnavailable:
            taken = turn.t("booking.taken", when=format_when(start, turn.lang, turn.tz))
            _offer_times(
                turn,
                p,
                None,
                said,
                intent="choose_time",
                notice=taken,
                around=start,
                practitioner_id=p.id,
            )
            return
        _booked(turn, appointment, said)


def _booked(turn: Turn, appointment: Appointment, said: Said) -> None:
    when = format_when(appointment.start_at, turn.lang, turn.tz)
    name = appointment.practitioner.name
    said.say(turn.t("rasa.booked", name=name, when=when, place=_place(turn, appointment)))
    said.set("appointment_id", str(appointment.id))
    said.set("start_time", None)
    said.set("time", None)


def _registered_patient(turn: Turn, tracker: Tracker, said: Said) -> Patient | None:
    """The sender's patient with a name and date of birth: from the record, else
    from the registration form's slots (validated again), else ask for them."""
    assert turn.identity is not None
    phone = turn.identity.address if turn.identity.channel in PHONE_CHANNELS else None
    existing = turn.patient
    if existing is not None and existing.name and existing.date_of_birth:
        return existing
    name = valid_name(slot_text(tracker, "patient_name") or "")
    born = _dob(turn, slot_text(tracker, "date_of_birth"))
    if name is None or born is None:
        said.say(turn.t("rasa.register_first"))
        said.events.append(FollowupAction(REGISTRATION_FORM))
        return None
    patient = patient_for_identity(turn.session, turn.identity, turn.clinic, phone=phone)
    register(turn.session, patient, turn.identity, name=name, date_of_birth=born, now=turn.now)
    if patient.language is None:
        patient.language = turn.lang
    return patient


def _dob(turn: Turn, text: str | None) -> date | None:
    """The date of birth the form's slot holds (ISO once validated); None if none."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    today = turn.now.astimezone(ZoneInfo(turn.tz)).date()
    try:
        return parse_dob(text[:100], turn.lang, today)
    except DobError:
        return None


class RescheduleAppointment(CoreAction):
    """Which appointment, then a new free time of the same practitioner."""

    action_name = "action_reschedule_appointment"

    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None:
        old, _named = _which_appointment(
            turn, tracker, said, intent="reschedule", question="reschedule.which"
        )
        if old is None:
            return
        p = old.practitioner
        said.set("appointment_id", str(old.id))
        start = _start_time(turn, tracker, said)
        if not isinstance(start, datetime):
            wanted = _wanted(turn, tracker, p, said)
            if isinstance(wanted, BadSlot):
                return
            notice = turn.t("rasa.reschedule_from", old=_describe(turn, old))
            _offer_times(
                turn,
                p,
                wanted,
                said,
                intent="choose_new_time",
                notice=notice,
                appointment_id=old.id,
            )
            return
        try:
            held = scheduling.hold_slot(
                turn.session,
                practitioner=p,
                patient_id=old.patient_id,
                start=start,
                now=turn.now,
                hold_minutes=turn.settings.hold_minutes,
                channel=old.channel,
                visit_type=old.visit_type,
            )
            new = scheduling.confirm_hold(turn.session, held.id, now=turn.now, replaces_id=old.id)
        except scheduling.SlotUnavailable:
            taken = turn.t("booking.taken", when=format_when(start, turn.lang, turn.tz))
            _offer_times(
                turn,
                p,
                None,
                said,
                intent="choose_new_time",
                notice=taken,
                around=start,
                appointment_id=old.id,
            )
            return
        except scheduling.SchedulingError:
            said.set("start_time", None)
            said.say(turn.t("rasa.not_possible"))
            return
        when = format_when(new.start_at, turn.lang, turn.tz)
        said.say(turn.t("rasa.rescheduled", name=p.name, when=when, place=_place(turn, new)))
        said.set("appointment_id", str(new.id))
        said.set("start_time", None)
        said.set("time", None)


class CancelAppointment(CoreAction):
    """Cancel the appointment the patient picked in this message; otherwise ask
    which and to confirm, so a misread "cancel" never cancels a visit. The freed
    time goes to the waitlist at the scheduler's next tick."""

    action_name = "action_cancel_appointment"

    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None:
        appointment, named_now = _which_appointment(
            turn, tracker, said, intent="cancel", question="cancel.which"
        )
        if appointment is None:
            return
        if not named_now:
            said.say(
                turn.t("cancel.confirm", item=_describe(turn, appointment)),
                [
                    button(turn.t("cancel.yes"), "cancel", appointment_id=appointment.id),
                    {"title": turn.t("cancel.no"), "payload": "/deny"},
                ],
            )
            return
        said.set("appointment_id", None)
        try:
            scheduling.cancel(turn.session, appointment.id, now=turn.now, reason="patient")
        except scheduling.SchedulingError:
            said.say(turn.t("rasa.not_possible"))
            return
        said.say(turn.t("rasa.cancelled", item=_describe(turn, appointment)))


class MyAppointments(CoreAction):
    action_name = "action_my_appointments"

    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None:
        items = _upcoming(turn)
        if not items:
            said.say(turn.t("rasa.no_appointments"))
            return
        lines = "\n".join(f"- {_describe(turn, a)}" for a in items)
        said.say(turn.t("appointments.list", count=len(items)) + "\n" + lines)


class FindPharmacy(CoreAction):
    """Pharmacies near a shared location (``latitude``/``longitude`` slots) or a
    postcode, street or town (``location`` slot)."""

    action_name = "action_find_pharmacy"

    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None:
        lat, lon = _coordinate(tracker, "latitude"), _coordinate(tracker, "longitude")
        if lat is not None and lon is not None:
            self._near(turn, lat, lon, said)
            return
        text = slot_text(tracker, "location")
        if text is None:
            said.say(turn.t("rasa.pharmacy_where"))
            return
        said.set("location", None)
        result = pharmacies.search_text(turn.session, text[:200])
        if result.place is not None:
            self._near(turn, result.place.latitude, result.place.longitude, said)
        elif result.ambiguous:
            said.say(
                turn.t("rx.which_place"),
                [
                    button(
                        place.label,
                        "find_pharmacy",
                        latitude=round(place.latitude, 6),
                        longitude=round(place.longitude, 6),
                    )
                    for place in result.places
                ],
            )
        elif result.suggestions:
            said.say(turn.t("rx.did_you_mean", places=", ".join(result.suggestions)))
        else:
            said.say(turn.t("rx.where_unknown", text=text[:40]))

    def _near(self, turn: Turn, lat: float, lon: float, said: Said) -> None:
        said.set("latitude", None)
        said.set("longitude", None)
        try:
            found = pharmacies.nearest(turn.session, lat, lon, limit=PHARMACIES_SHOWN)
        except ValueError:
            said.say(turn.t("rasa.pharmacy_where"))
            return
        if not found:
            said.say(turn.t("rx.none_near"))
            return
        lines = [turn.t("rx.nearest")]
        for number, f in enumerate(found, 1):
            state = pharmacies.is_open(f, turn.now, turn.clinic.timezone)
            opened = {None: "rx.hours_unknown", True: "rx.open", False: "rx.closed"}[state]
            line = turn.t(
                "rx.pharmacy_line",
                name=f.name,
                km=f"{f.distance_km:.1f}",
                address=f.address or f.city or "",
                open=turn.t(opened),
            )
            phone = f" {f.phone}" if f.phone else ""
            lines.append(f"{number}. {line}{phone}")
        said.say("\n".join(lines))


def _coordinate(tracker: Tracker, name: str) -> float | None:
    text = slot_text(tracker, name)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class IntakeStatus(CoreAction):
    """Where the patient's symptom questions for their next visit stand."""

    action_name = "action_intake_status"

    def act(self, turn: Turn, tracker: Tracker, said: Said) -> None:
        items = _upcoming(turn)
        if not items:
            said.say(turn.t("rasa.no_appointments"))
            return
        a = items[0]
        when = format_when(a.start_at, turn.lang, turn.tz)
        q = questionnaire.load()
        row = turn.session.scalars(
            select(IntakeResponse).where(
                IntakeResponse.appointment_id == a.id, IntakeResponse.questionnaire == q.id
            )
        ).first()
        left = notices.questions_left(turn.session, a.id)
        if row is not None and row.status != "in-progress":
            said.say(turn.t("rasa.intake_done", name=a.practitioner.name, when=when))
        elif row is None:
            said.say(turn.t("rasa.intake_not_started", when=when, count=left))
        else:
            said.say(turn.t("rasa.intake_in_progress", when=when, count=left))
        said.set("intake_status", "completed" if left == 0 else (row.status if row else "none"))


class ValidateRegistrationForm(FormValidationAction):
    """The registration form's name and date of birth, read as the service's
    own booking reads them; a value that cannot be one is asked again."""

    def name(self) -> str:
        return "validate_" + REGISTRATION_FORM

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = latest_text(tracker)
        if text and detect_red_flags(text):
            said = await run_turn(self.name(), tracker, lambda _turn: Said(), create=False)
            # The words were no name or date: ask for them again afterwards.
            cleared = [SlotSet(slot, None) for slot in tracker.slots_to_validate()]
            return [*said.deliver(dispatcher), *cleared]
        return await super().run(dispatcher, tracker, domain)

    async def validate_patient_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        lang = _tracker_lang(tracker)
        name = valid_name(text_of(value) or "")
        if name is None:
            dispatcher.utter_message(text=t(lang, "register.name_again"))
            return {"patient_name": None}
        return {"patient_name": name}

    async def validate_date_of_birth(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        lang = _tracker_lang(tracker)
        text = text_of(value)
        if text is None:
            dispatcher.utter_message(text=t(lang, "register.dob_unreadable"))
            return {"date_of_birth": None}
        try:
            today = runtime().clock.now().date()
            born = parse_dob(text[:100], lang, today)
        except DobError as exc:
            dispatcher.utter_message(text=t(lang, f"register.dob_{exc}"))
            return {"date_of_birth": None}
        return {"date_of_birth": born.isoformat()}


def _tracker_lang(tracker: Tracker) -> str:
    text = str((tracker.latest_message or {}).get("text") or "")
    return normalize_language(
        text_of(tracker.get_slot("language")) or (detect_language(text) if text else None)
    )


ACTIONS: tuple[type[Action], ...] = (
    FindSlots,
    BookAppointment,
    RescheduleAppointment,
    CancelAppointment,
    MyAppointments,
    FindPharmacy,
    IntakeStatus,
    ValidateRegistrationForm,
)
