"""Reminders end to end with a controllable clock: planned by the scheduler
tick, queued once, sent by the dispatcher, answered by the patient."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core import scheduling
from core.clock import FixedClock
from core.db import Database
from core.models import Appointment
from flows.engine import FlowEngine
from tests.clinic import TZ, Clinic
from tests.dialogue import Chat

NY = ZoneInfo(TZ)
ANA = "+15555550101"
BEN = "+15555550102"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    # The clock starts on Tuesday 14 April 2026, 09:00 in New York.
    return Clinic.open(db, clock)


def chat(clinic: Clinic, address: str = ANA, channel: str = "sms") -> Chat:
    return Chat(FlowEngine(clinic.db, clinic.settings, clinic.clock), address, channel)


def run_until(clinic: Clinic, end: datetime, step: timedelta = timedelta(minutes=15)) -> list:  # type: ignore[type-arg]
    """Tick and dispatch every ``step`` up to ``end``; (local time, address, text) sent."""
    sent = []
    while clinic.clock.now() < end:
        clinic.clock.advance(step)
        for _channel, address, reply in clinic.run():
            sent.append((clinic.clock.now().astimezone(NY), address, reply.text))
    return sent


def status(clinic: Clinic, appointment_id: int) -> str:
    return clinic.appointment(appointment_id).status


# -- when they go out -----------------------------------------------------------------


def test_three_reminders_each_sent_once_at_its_time(clinic: Clinic) -> None:
    clinic.book(ANA, local(2026, 4, 17, 10, 0))  # Friday 10:00
    sent = run_until(clinic, local(2026, 4, 17, 10, 15))  # before it could be a no-show
    assert [(when.strftime("%a %H:%M"), address) for when, address, _ in sent] == [
        ("Tue 10:00", ANA),
        ("Thu 10:00", ANA),
        ("Fri 08:00", ANA),
    ]
    text = sent[0][2]
    assert "Riverside Family Clinic" in text and "Dr Ana Ruiz" in text
    assert "Fri 17 Apr, 10:00 AM" in text and "12 River Street" in text
    reply = clinic.channels["sms"].calls[0][1]
    assert [o.label for o in reply.options] == ["Confirm", "Change the time", "Cancel this visit"]


def test_a_video_visit_gets_its_link_ten_minutes_before(clinic: Clinic) -> None:
    clinic.book(ANA, local(2026, 4, 14, 15, 0), video=True)
    sent = run_until(clinic, local(2026, 4, 14, 15, 30), step=timedelta(minutes=5))
    links = [(when.strftime("%H:%M"), text) for when, _a, text in sent if "Join here" in text]
    assert len(links) == 1
    assert links[0][0] == "14:50"
    assert "http://127.0.0.1:8000/v/" in links[0][1]  # the patient's own page (core.video)
    assert any("by video" in text for _w, _a, text in sent)  # the 2h reminder says so


def test_a_late_tick_never_sends_into_quiet_hours(clinic: Clinic) -> None:
    appointment = clinic.book(ANA, local(2026, 4, 17, 10, 0))
    clinic.tick()  # planned now
    clinic.clock.set(local(2026, 4, 14, 21, 30))  # the scheduler was down all day
    assert clinic.run() == []
    reasons = {n.offset_minutes: (n.status, n.reason) for n in clinic.notifications(appointment)}
    assert reasons[72 * 60] == ("skipped", "missed_window")
    assert reasons[24 * 60] == ("planned", None)


def test_per_day_cap_keeps_the_reminder_nearest_its_visit(db: Database, clock: FixedClock) -> None:
    clinic = Clinic.open(db, clock, reminders_per_day=1)
    clinic.book(ANA, local(2026, 4, 16, 10, 0))  # Thursday: its 2h reminder is Thu 08:00
    clinic.book(ANA, local(2026, 4, 17, 10, 0), doctor="Okafor")  # Friday: 24h is Thu 10:00
    sent = run_until(clinic, local(2026, 4, 17, 12, 0))
    per_day = Counter(when.date() for when, _a, text in sent if text.startswith("Reminder"))
    assert max(per_day.values()) == 1, per_day
    skipped = [n for n in clinic.notifications() if n.reason == "daily_cap"]
    assert skipped, "something had to give"


def test_booked_inside_the_24h_window_gets_only_the_2h_reminder(clinic: Clinic) -> None:
    clinic.book(ANA, local(2026, 4, 15, 8, 30))  # 23.5 h from now
    sent = run_until(clinic, local(2026, 4, 15, 9, 0))
    reminders = [when.strftime("%a %H:%M") for when, _a, t in sent if t.startswith("Reminder")]
    assert reminders == ["Wed 08:00"]


def test_a_cancelled_appointment_sends_nothing_more(clinic: Clinic) -> None:
    appointment = clinic.book(ANA, local(2026, 4, 17, 10, 0))
    run_until(clinic, local(2026, 4, 14, 11, 0))
    with clinic.db.transaction() as session:
        scheduling.cancel(session, appointment, now=clinic.clock.now(), reason="staff")
    assert run_until(clinic, local(2026, 4, 17, 12, 0)) == []
    statuses = Counter((n.status, n.reason) for n in clinic.notifications(appointment))
    assert statuses == {("queued", None): 1, ("cancelled", "appointment_changed"): 2}


def test_moved_after_the_first_reminder_reminds_of_the_new_time_only(clinic: Clinic) -> None:
    clinic.book(ANA, local(2026, 4, 17, 10, 0))
    run_until(clinic, local(2026, 4, 14, 10, 0))  # the 72h reminder went out
    c = chat(clinic)
    answer = c.say("can we do thursday instead")
    assert "Thu 16 Apr" in answer and "1. " in answer
    c.say("1")  # the first free time on Thursday
    assert "Changed" in c.say("1")
    later = [
        text
        for _w, _a, text in run_until(clinic, local(2026, 4, 17, 12, 0))
        if text.startswith("Reminder")
    ]
    assert len(later) == 2, "the new appointment's 24h and 2h reminders"
    assert all("Thu 16 Apr" in text and "Fri 17 Apr" not in text for text in later), later


def test_patients_with_an_earlier_no_show_get_the_extra_reminder(
    db: Database, clock: FixedClock
) -> None:
    clinic = Clinic.open(db, clock, risk_reminder_offsets="6h")
    missed = clinic.book(ANA, local(2026, 4, 14, 9, 30))
    clinic.clock.set(local(2026, 4, 14, 10, 30))
    clinic.tick()
    assert status(clinic, missed) == "no_show"
    risky = clinic.book(ANA, local(2026, 4, 20, 16, 0), doctor="Okafor")
    usual = clinic.book(BEN, local(2026, 4, 20, 16, 0))
    clinic.tick()
    assert sorted(n.offset_minutes for n in clinic.notifications(risky)) == [120, 360, 1440, 4320]
    assert sorted(n.offset_minutes for n in clinic.notifications(usual)) == [120, 1440, 4320]


# -- answers ----------------------------------------------------------------------------


def reminded(clinic: Clinic, address: str = ANA) -> int:
    """A Friday visit whose 72h reminder has just gone out."""
    appointment = clinic.book(address, local(2026, 4, 17, 10, 0))
    run_until(clinic, local(2026, 4, 14, 10, 0))
    assert clinic.channels["sms"].texts(address), "the reminder was sent"
    return appointment


@pytest.mark.parametrize("says", ["1", "yes", "Confirm", "confirmed, thanks", "sí", "Yes!"])
def test_confirming_words_confirm(clinic: Clinic, says: str) -> None:
    appointment = reminded(clinic)
    answer = chat(clinic).say(says)
    assert status(clinic, appointment) == "confirmed", answer
    assert "Dr Ana Ruiz" in answer
    assert "confirm" in answer.lower()
    answered = [n for n in clinic.notifications(appointment) if n.answer]
    assert [n.answer for n in answered] == ["confirm"]


def test_a_telegram_button_confirms(db: Database, clock: FixedClock) -> None:
    clinic = Clinic.open(db, clock)
    appointment = clinic.book("7001", local(2026, 4, 17, 10, 0), channel="telegram")
    run_until(clinic, local(2026, 4, 14, 10, 0))
    assert clinic.channels["telegram"].texts("7001")
    chat(clinic, "7001", "telegram").say("Confirm", button="confirm")
    assert status(clinic, appointment) == "confirmed"


def test_cancel_from_a_reminder_asks_then_frees_the_slot(clinic: Clinic) -> None:
    appointment = reminded(clinic)
    c = chat(clinic)
    assert "Cancel your visit" in c.say("3")
    assert "cancelled" in c.say("1")
    assert status(clinic, appointment) == "cancelled"
    assert [n.answer for n in clinic.notifications(appointment) if n.answer] == ["cancel"]


def test_no_then_offers_change_or_cancel(clinic: Clinic) -> None:
    appointment = reminded(clinic)
    c = chat(clinic)
    answer = c.say("no")
    assert "change the time or cancel" in answer
    assert "1. Change the time" in answer and "2. Cancel this visit" in answer
    assert "Your visit is Fri 17 Apr" in c.say("1")
    assert status(clinic, appointment) == "booked"


def test_an_old_reminder_answered_after_the_visit_moved_acts_on_the_new_one(
    clinic: Clinic,
) -> None:
    old = reminded(clinic)
    c = chat(clinic)
    c.say("menu")  # moved through the menu, leaving the reminder unanswered
    c.say("3")
    c.say("thursday at 10")
    assert "Changed" in c.say("1")
    assert status(clinic, old) == "cancelled"
    clinic.clock.advance(timedelta(days=1))
    answer = c.say("1")  # to the reminder of the old time, a day later
    assert "moved to Thu 16 Apr, 10:00 AM" in answer
    assert "confirmed" in answer
    moved = [a for a in all_appointments(clinic) if a.rescheduled_from_id == old]
    assert [a.status for a in moved] == ["confirmed"]


def test_an_answer_after_the_visit_explains(clinic: Clinic) -> None:
    appointment = reminded(clinic)
    with clinic.db.transaction() as session:
        scheduling.check_in(session, appointment, now=clinic.clock.now())
    clinic.clock.set(local(2026, 4, 17, 18, 0))
    answer = chat(clinic).say("1")
    assert "has passed" in answer
    assert status(clinic, appointment) == "booked"


def test_an_answer_to_a_cancelled_visit_explains(clinic: Clinic) -> None:
    appointment = reminded(clinic)
    with clinic.db.transaction() as session:
        scheduling.cancel(session, appointment, now=clinic.clock.now(), reason="staff")
    answer = chat(clinic).say("yes")
    assert "was cancelled" in answer


def test_a_reply_from_an_unknown_number_changes_nothing(clinic: Clinic) -> None:
    appointment = reminded(clinic)
    answer = chat(clinic, "+15555550199").say("1")
    assert "What would you like to do?" in answer or "Who would you like" in answer
    assert status(clinic, appointment) == "booked"


def test_a_reply_that_answers_no_reminder_goes_on_as_usual(clinic: Clinic) -> None:
    appointment = reminded(clinic)
    answer = chat(clinic).say("my appointments")
    assert "Your upcoming appointments (1)" in answer
    assert status(clinic, appointment) == "booked"


def test_a_spanish_patient_reads_and_answers_in_spanish(clinic: Clinic) -> None:
    appointment = clinic.book(ANA, local(2026, 4, 17, 10, 0))
    c = chat(clinic)
    c.say("IDIOMA")
    c.say("2")  # Español
    run_until(clinic, local(2026, 4, 14, 10, 0))
    text = clinic.channels["sms"].texts(ANA)[-1]
    assert "Recordatorio de Riverside Family Clinic" in text and "vie 17 de abr, 10:00" in text
    answer = c.say("sí, confirmo")
    assert "confirmada" in answer
    assert status(clinic, appointment) == "confirmed"


# -- no-shows ---------------------------------------------------------------------------


def test_a_no_show_end_to_end(clinic: Clinic) -> None:
    appointment = clinic.book(ANA, local(2026, 4, 14, 11, 0))
    sent = run_until(clinic, local(2026, 4, 14, 13, 0), step=timedelta(minutes=5))
    follow_ups = [(w.strftime("%H:%M"), t) for w, _a, t in sent if "We missed you" in t]
    assert len(follow_ups) == 1, sent
    assert follow_ups[0][0] == "11:30"  # the 30-minute grace, then the next tick
    assert status(clinic, appointment) == "no_show"
    assert run_until(clinic, local(2026, 4, 15, 13, 0), step=timedelta(hours=1)) == []
    answer = chat(clinic).say("1")
    assert "When would you like to see Dr Ana Ruiz" in answer


def test_a_checked_in_visit_is_never_a_no_show(clinic: Clinic) -> None:
    appointment = clinic.book(ANA, local(2026, 4, 14, 11, 0))
    clinic.clock.set(local(2026, 4, 14, 11, 5))
    with clinic.db.transaction() as session:
        scheduling.check_in(session, appointment, now=clinic.clock.now())
    sent = run_until(clinic, local(2026, 4, 14, 13, 0))
    assert not [t for _w, _a, t in sent if "We missed you" in t]
    assert status(clinic, appointment) == "booked"


def all_appointments(clinic: Clinic) -> list[Appointment]:
    from sqlalchemy import select

    with clinic.db.transaction() as session:
        return list(session.scalars(select(Appointment).order_by(Appointment.id)))


def test_across_the_spring_dst_change_reminders_keep_the_local_time(
    db: Database, clock: FixedClock
) -> None:
    clock.set(local(2026, 3, 2, 9, 0))  # Monday before DST starts (Sunday 8 March, 02:00)
    clinic = Clinic.open(db, clock)
    clinic.book(ANA, local(2026, 3, 9, 10, 0))  # Monday 10:00 EDT, the day after
    clinic.book(BEN, local(2026, 3, 8, 10, 0), doctor="Okafor")  # Sunday 10:00 EDT
    sent = [
        (when.strftime("%a %d %H:%M %Z"), address)
        for when, address, text in run_until(clinic, local(2026, 3, 9, 10, 15))
        if text.startswith("Reminder")
    ]
    assert sorted(sent) == sorted(
        [
            ("Thu 05 10:00 EST", BEN),
            ("Fri 06 10:00 EST", ANA),
            ("Sat 07 10:00 EST", BEN),  # 23 real hours before Sunday 10:00 EDT
            ("Sun 08 08:00 EDT", BEN),
            ("Sun 08 10:00 EDT", ANA),
            ("Mon 09 08:00 EDT", ANA),
        ]
    )


def test_the_24h_reminder_invites_to_the_intake(clinic: Clinic) -> None:
    clinic.book(ANA, local(2026, 4, 17, 10, 0))
    sent = run_until(clinic, local(2026, 4, 16, 10, 0))
    calls = [r for a, r in clinic.channels["sms"].calls if a == ANA]
    assert [o.value for o in calls[0].options] == ["confirm", "reschedule", "cancel"]  # 72h
    assert [o.value for o in calls[-1].options][-1] == "intake"  # 24h
    assert "Answer 8 quick questions" in calls[-1].options[-1].label
    assert len(sent) == 2
    answer = chat(clinic).say("4")
    assert "main reason for your visit" in answer
