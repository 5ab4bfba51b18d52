"""Booking: practitioner -> day -> numbered free slots -> (name, date of birth) -> confirm.

Rescheduling runs the same steps with ``replaces_id`` set: the new slot is
held, and confirming it cancels the old appointment in the same transaction.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from core import notices, scheduling
from core.i18n import format_clock, format_day, format_when, t
from core.messages import Option, Reply
from core.models import Appointment, Practitioner
from core.nlu import When, classify_intent, parse_when
from core.patients import patient_for_identity, register
from flows import intake
from flows.context import Ctx, Outcome, with_notice
from flows.dob import DobError, parse_dob

SLOTS_SHOWN = 6
DAYS_SHOWN = 5


# -- shared helpers -------------------------------------------------------------


def practitioner(ctx: Ctx) -> Practitioner | None:
    pid = ctx.data.get("practitioner_id")
    return ctx.session.get(Practitioner, pid) if pid else None


def practitioner_label(ctx: Ctx, p: Practitioner) -> str:
    specialty = p.specialty_es if ctx.lang == "es" and p.specialty_es else p.specialty
    return f"{p.name} ({specialty})"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    start = datetime.combine(day, datetime.min.time(), zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def window_from_when(when: When) -> tuple[datetime, datetime]:
    """The range of start times a patient's words allow."""
    start = when.start
    if when.end is not None:
        return start, when.end
    if when.open_ended:
        # "after 3": from then to the end of that day.
        local = start.astimezone(start.tzinfo)
        day_end = datetime.combine(
            local.date() + timedelta(days=1), datetime.min.time(), local.tzinfo
        )
        return start, day_end.astimezone(UTC)
    length = {
        "minute": timedelta(minutes=1),
        "hour": timedelta(hours=1),
        "day": timedelta(days=1),
        "week": timedelta(days=7),
        "month": timedelta(days=31),
    }[when.grain]
    if when.grain in ("minute", "hour"):
        return start, start + timedelta(minutes=1)  # an exact time
    return start, start + length


def understood_when(ctx: Ctx, text: str) -> When | None:
    return ctx.once("when", text, lambda: parse_when(text, ctx.lang, ctx.now, ctx.tz))


def named_practitioners(ctx: Ctx, text: str) -> list[Practitioner]:
    """The practitioners ``text`` names, by name or specialty (all for "")."""
    return ctx.once(
        "practitioners", text, lambda: scheduling.find_practitioners(ctx.session, text, ctx.lang)
    )


def remember_when(ctx: Ctx, when: When) -> None:
    lo, hi = window_from_when(when)
    ctx.data["window"] = [_iso(lo), _iso(hi), when.grain]


def window(ctx: Ctx) -> tuple[datetime, datetime, str] | None:
    saved = ctx.data.get("window")
    if not saved:
        return None
    start, end, grain = saved
    return _dt(start), _dt(end), grain


def exact_time(ctx: Ctx) -> datetime | None:
    """The moment asked for, when the patient named one ("thursday at 10")."""
    span = window(ctx)
    if span is None or span[2] not in ("minute", "hour"):
        return None
    lo, hi, _grain = span
    return lo if hi - lo <= timedelta(minutes=1) else None


def check_window(ctx: Ctx, p: Practitioner) -> str | None:
    """A reason the wanted time cannot work at all (past, beyond the horizon)."""
    span = window(ctx)
    if span is None:
        return None
    lo, hi, _grain = span
    if hi <= ctx.now:
        ctx.data.pop("window", None)
        return ctx.t("booking.past")
    if lo > ctx.now + timedelta(days=p.horizon_days):
        ctx.data.pop("window", None)
        return ctx.t("booking.too_far", days=p.horizon_days)
    return None


# -- steps ----------------------------------------------------------------------


class ChoosePractitioner:
    name = "booking.practitioner"

    def enter(self, ctx: Ctx) -> Outcome | None:
        request = ctx.data.pop("request", None)
        if ctx.data.get("practitioner_id"):
            return Outcome.go("booking.day")
        if not request:
            return None
        when = understood_when(ctx, request)
        if when is not None:
            remember_when(ctx, when)
        found = named_practitioners(ctx, request)
        if len(found) == 1:
            ctx.data["practitioner_id"] = found[0].id
            return Outcome.go("booking.day")
        if len(found) > 1:
            ctx.data["candidates"] = [p.id for p in found]
        return None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        ids = ctx.data.get("candidates")
        everyone = named_practitioners(ctx, "")
        shown = [p for p in everyone if not ids or p.id in ids]
        options = [Option(practitioner_label(ctx, p), f"p:{p.id}") for p in shown]
        return [ctx.ask(with_notice(notice, ctx.t("booking.who")), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice and ctx.choice.startswith("p:"):
            ctx.data["practitioner_id"] = int(ctx.choice[2:])
            ctx.data.pop("candidates", None)
            return Outcome.go("booking.day")
        if not text:
            return Outcome.stay(ctx.t("booking.who_again"))
        found = named_practitioners(ctx, text)
        when = understood_when(ctx, text)
        if when is not None:
            remember_when(ctx, when)
        if len(found) == 1:
            ctx.data["practitioner_id"] = found[0].id
            ctx.data.pop("candidates", None)
            return Outcome.go("booking.day")
        if len(found) > 1:
            ctx.data["candidates"] = [p.id for p in found]
            return Outcome.stay(ctx.t("booking.which_of"))
        return Outcome.stay(ctx.t("booking.who_again"))


def free_days(ctx: Ctx, p: Practitioner, count: int) -> list[date]:
    """The next days with a free slot: one slot query per day found, skipping
    straight past each found day rather than listing all its slots."""
    days: list[date] = []
    cursor: datetime | None = None
    while len(days) < count:
        found = scheduling.free_slots(ctx.session, p, now=ctx.now, start=cursor, limit=1)
        if not found:
            break
        day = found[0].start.astimezone(ZoneInfo(ctx.tz)).date()
        days.append(day)
        cursor = _local_day_bounds(day, ctx.tz)[1]
    return days


class ChooseDay:
    name = "booking.day"

    def enter(self, ctx: Ctx) -> Outcome | None:
        p = practitioner(ctx)
        if p is None:
            return Outcome.go("booking.practitioner")
        problem = check_window(ctx, p)
        if problem:
            return Outcome(next=None, notice=problem)
        if ctx.data.get("window"):
            return to_slots(ctx, p)
        return None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        p = practitioner(ctx)
        assert p is not None
        days = free_days(ctx, p, DAYS_SHOWN)
        if not days:
            return [Reply(with_notice(notice, ctx.t("booking.no_availability", name=p.name)))]
        options = [Option(format_day(d, ctx.lang), f"d:{d.isoformat()}") for d in days]
        text = ctx.t("booking.when", name=p.name)
        if ctx.data.get("replaces_id"):
            old = ctx.session.get(Appointment, ctx.data["replaces_id"])
            if old is not None:
                text = ctx.t("reschedule.when", old=format_when(old.start_at, ctx.lang, ctx.tz))
        return [ctx.ask(with_notice(notice, text), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        p = practitioner(ctx)
        assert p is not None
        if ctx.choice and ctx.choice.startswith("d:"):
            lo, hi = _local_day_bounds(date.fromisoformat(ctx.choice[2:]), ctx.tz)
            ctx.data["window"] = [_iso(lo), _iso(hi), "day"]
            return Outcome.go("booking.slot")
        when = understood_when(ctx, text)
        if when is None:
            return Outcome.stay(ctx.t("booking.day_again"))
        remember_when(ctx, when)
        problem = check_window(ctx, p)
        if problem:
            return Outcome.stay(problem)
        return to_slots(ctx, p)


def to_slots(ctx: Ctx, p: Practitioner) -> Outcome:
    """A named moment is held at once when free; anything wider lists its slots."""
    moment = exact_time(ctx)
    if moment is None:
        return Outcome.go("booking.slot")
    ctx.data.pop("window", None)
    if scheduling.is_slot_free(ctx.session, p, moment, now=ctx.now):
        return hold(ctx, p, moment)
    ctx.data["near"] = _iso(moment)
    return Outcome.go(
        "booking.slot", ctx.t("booking.not_free", when=format_when(moment, ctx.lang, ctx.tz))
    )


def offered_slots(
    session: Session,
    p: Practitioner,
    now: datetime,
    *,
    window: tuple[datetime, datetime] | None = None,
    near: datetime | None = None,
    limit: int = SLOTS_SHOWN,
) -> tuple[list[scheduling.Slot], str]:
    """The free times to offer, and which header fits them: ``slots`` (in
    ``window``, or the next ones), ``nearest`` (around ``near``, a taken
    time), ``none_then`` (nothing in ``window``: the nearest instead)."""
    if near is not None:
        nearest = scheduling.nearest_free_slots(session, p, near, now=now, limit=limit)
        return sorted(nearest, key=lambda s: s.start), "nearest"
    if window is not None:
        lo, hi = window
        found = scheduling.free_slots(session, p, now=now, start=lo, end=hi, limit=limit)
        if found:
            return found, "slots"
        nearest = scheduling.nearest_free_slots(session, p, lo, now=now, limit=limit)
        return sorted(nearest, key=lambda s: s.start), "none_then"
    return scheduling.free_slots(session, p, now=now, limit=limit), "slots"


def slot_choices(
    slots: list[scheduling.Slot], intro: str, lang: str, tz: str
) -> tuple[str, list[str]]:
    """The header and a label per slot. One day: times only, the day in the
    header ("Free times on Tue 14 Apr:")."""
    same_day = len({s.start.astimezone(ZoneInfo(tz)).date() for s in slots}) == 1
    show = format_clock if same_day else format_when
    key = f"booking.{intro}_on" if same_day else f"booking.{intro}"
    header = t(lang, key, day=format_day(slots[0].start, lang, tz))
    return header, [show(s.start, lang, tz) for s in slots]


class ChooseSlot:
    name = "booking.slot"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        p = practitioner(ctx)
        assert p is not None
        near = ctx.data.pop("near", None)
        span = window(ctx)
        slots, intro = offered_slots(
            ctx.session,
            p,
            ctx.now,
            near=_dt(near) if near else None,
            window=(span[0], span[1]) if span else None,
        )
        if not slots:
            ctx.data.pop("window", None)
            return [Reply(with_notice(notice, ctx.t("booking.no_availability", name=p.name)))]
        header, labels = slot_choices(slots, intro, ctx.lang, ctx.tz)
        options = [
            Option(label, f"s:{_iso(s.start)}") for label, s in zip(labels, slots, strict=True)
        ]
        options.append(Option(ctx.t("booking.other_day"), "other"))
        return [ctx.ask(with_notice(notice, header), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        p = practitioner(ctx)
        assert p is not None
        if ctx.choice == "other":
            ctx.data.pop("window", None)
            return Outcome.go("booking.day")
        if ctx.choice and ctx.choice.startswith("s:"):
            return hold(ctx, p, _dt(ctx.choice[2:]))
        when = understood_when(ctx, text)
        if when is None:
            return Outcome.stay(ctx.t("booking.slot_again"))
        if when.grain in ("minute", "hour") and when.end is None:
            # "the 1:20 one" means the offered 1:20, whatever day the parser assumed.
            zone = ZoneInfo(ctx.tz)
            clock_time = when.start.astimezone(zone).time()
            offered = [
                _dt(v[2:]) for _label, v in ctx.data.get("options", []) if v.startswith("s:")
            ]
            same_time = [s for s in offered if s.astimezone(zone).time() == clock_time]
            if len(same_time) == 1:
                return hold(ctx, p, same_time[0])
            if scheduling.is_slot_free(ctx.session, p, when.start, now=ctx.now):
                return hold(ctx, p, when.start)
            ctx.data["near"] = _iso(when.start)
            return Outcome.stay(
                ctx.t("booking.not_free", when=format_when(when.start, ctx.lang, ctx.tz))
            )
        remember_when(ctx, when)
        problem = check_window(ctx, p)
        return Outcome.stay(problem)


def hold(ctx: Ctx, p: Practitioner, start: datetime) -> Outcome:
    patient = patient_for_identity(ctx.session, ctx.identity, ctx.clinic, phone=_phone(ctx))
    try:
        appointment = scheduling.hold_slot(
            ctx.session,
            practitioner=p,
            patient_id=patient.id,
            start=start,
            now=ctx.now,
            hold_minutes=ctx.settings.hold_minutes,
            channel=ctx.message.channel,
        )
    except scheduling.SlotUnavailable:
        ctx.data["near"] = _iso(start)
        return Outcome.stay(ctx.t("booking.taken", when=format_when(start, ctx.lang, ctx.tz)))
    ctx.data["appointment_id"] = appointment.id
    if not patient.name:
        return Outcome.go("booking.name")
    if not patient.date_of_birth:
        return Outcome.go("booking.dob")
    return Outcome.go("booking.confirm")


def _phone(ctx: Ctx) -> str | None:
    address = ctx.message.address
    return address if ctx.message.channel in ("sms", "whatsapp") else None


def valid_name(text: str) -> str | None:
    """A patient's full name as typed, tidied; None when it cannot be a name."""
    name = " ".join(text.split())
    letters = sum(c.isalpha() for c in name)
    if letters < 2 or len(name) > 100 or any(c.isdigit() for c in name):
        return None
    return name


class AskName:
    name = "booking.name"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [ctx.ask(with_notice(notice, ctx.t("register.name")))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        name = valid_name(text)
        if name is None:
            return Outcome.stay(ctx.t("register.name_again"))
        ctx.data["name"] = name
        return Outcome.go("booking.dob")


class AskDob:
    name = "booking.dob"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [ctx.ask(with_notice(notice, ctx.t("register.dob")))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        today = ctx.now.astimezone(ZoneInfo(ctx.tz)).date()
        try:
            born = parse_dob(text, ctx.lang, today)
        except DobError as exc:
            return Outcome.stay(ctx.t(f"register.dob_{exc}"))
        patient = patient_for_identity(ctx.session, ctx.identity, ctx.clinic, phone=_phone(ctx))
        name = ctx.data.pop("name", None) or patient.name
        if not name:
            return Outcome.go("booking.name")
        register(ctx.session, patient, ctx.identity, name=name, date_of_birth=born, now=ctx.now)
        ctx.data["registered"] = True
        return Outcome.go("booking.confirm")


class Confirm:
    name = "booking.confirm"

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        appointment = ctx.session.get(Appointment, ctx.data.get("appointment_id", 0))
        if appointment is None:
            return [Reply(with_notice(notice, ctx.t("common.lost")))]
        p = appointment.practitioner
        options = [Option(ctx.t("booking.confirm_in_person"), "c:in_person")]
        if "video" in (p.visit_types or []):
            options.append(Option(ctx.t("booking.confirm_video"), "c:video"))
        options.append(Option(ctx.t("booking.other_time"), "other"))
        when = format_when(appointment.start_at, ctx.lang, ctx.tz)
        text = ctx.t("booking.confirm", name=p.name, when=when)
        patient = appointment.patient
        if ctx.data.get("replaces_id"):
            old = ctx.session.get(Appointment, ctx.data["replaces_id"])
            if old is not None:
                text += "\n" + ctx.t(
                    "reschedule.instead_of", old=format_when(old.start_at, ctx.lang, ctx.tz)
                )
        elif patient.date_of_birth and ctx.data.get("registered"):
            # Read back what a new patient just gave, so a misread date can be caught.
            text += "\n" + ctx.t(
                "booking.for_patient",
                name=patient.name or "",
                dob=format_day(patient.date_of_birth, ctx.lang, pattern="fmt.date"),
            )
        return [ctx.ask(with_notice(notice, text), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        choice = ctx.choice
        if choice is None:
            intent = classify_intent(text, ctx.lang)
            choice = {"confirm": "c:in_person", "deny": "other"}.get(intent)
        appointment_id = ctx.data.get("appointment_id", 0)
        if choice == "other":
            with contextlib.suppress(scheduling.SchedulingError):  # the hold had lapsed
                scheduling.cancel(ctx.session, appointment_id, now=ctx.now, reason="hold_released")
            ctx.data.pop("appointment_id", None)
            ctx.data.pop("window", None)
            return Outcome.go("booking.day")
        if choice is None or not choice.startswith("c:"):
            return Outcome.stay(ctx.t("common.pick_number"))
        replaces = ctx.data.get("replaces_id")
        try:
            appointment = scheduling.confirm_hold(
                ctx.session, appointment_id, now=ctx.now, replaces_id=replaces
            )
        except scheduling.HoldExpired:
            held = ctx.session.get(Appointment, appointment_id)
            if held is not None:
                ctx.data["near"] = _iso(held.start_at)
            ctx.data.pop("appointment_id", None)
            return Outcome.go("booking.slot", ctx.t("booking.hold_expired"))
        except scheduling.SchedulingError:
            return Outcome.end(ctx.t("common.lost"))
        appointment.visit_type = choice[2:]
        if replaces:
            notices.record_answer(
                ctx.session, ctx.data.get("notification_id"), "reschedule", ctx.now
            )
        when = format_when(appointment.start_at, ctx.lang, ctx.tz)
        place = (
            ctx.t("booking.video")
            if appointment.visit_type == "video"
            else (ctx.clinic.address or ctx.clinic.name)
        )
        key = "reschedule.done" if replaces else "booking.done"
        done = ctx.t(key, name=appointment.practitioner.name, when=when, place=place)
        if replaces:
            return Outcome.end(done)
        return intake.offer_after_booking(ctx, appointment.id, done)
