"""Booking, rescheduling, cancelling and "my appointments" as patients text them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.models import Appointment, OutboxMessage, Patient
from core.settings import Settings
from flows.engine import FlowEngine
from tests.dialogue import Chat, verify_dialog

TZ = "America/New_York"


@pytest.fixture
def engine(db: Database, clock: FixedClock) -> Iterator[FlowEngine]:
    with db.transaction() as session:
        seed_demo(session, TZ)
    # These conversations send many messages within one frozen minute: lift the
    # SMS-pumping guard (tests/integration/test_abuse.py covers it).
    settings = Settings(database_url=db.url, clinic_timezone=TZ, inbound_max_per_minute=1000)
    yield FlowEngine(db, settings, clock)


def chat(engine: FlowEngine, address: str = "+15555550123", channel: str = "sms") -> Chat:
    return Chat(engine, address=address, channel=channel)


def appointments(db: Database, status: str | None = None) -> list[Appointment]:
    with db.transaction() as session:
        query = select(Appointment).order_by(Appointment.id)
        if status:
            query = query.where(Appointment.status == status)
        return list(session.scalars(query))


def book_by_numbers(c: Chat, doctor: str = "Okafor", day: str = "1") -> None:
    """Menu -> doctor -> an offered day -> its first slot, up to the name or confirm question."""
    c.say("hi")
    c.say(c.option_number("book"))
    c.say(c.option_number(doctor))
    c.say(day)
    c.say("1")


# -- booking ----------------------------------------------------------------------


def test_new_patient_books_by_numbers_in_english(engine: FlowEngine, db: Database) -> None:
    c = chat(engine)
    verify_dialog(
        c,
        [
            ("hi", ["Riverside Family Clinic", "1. Book a visit", "2. My appointments"]),
            ("1", ["Who would you like to see?", "Dr Ben Okafor (Dermatology)"]),
            ("2", ["When would you like to see Dr Ben Okafor", "1. Tue 14 Apr"]),
            ("1", ["Free times on Tue 14 Apr", "1. 10:00 AM", "Another day"]),
            ("1", "full name"),
            ("Maria Lopez", "date of birth"),
            (
                "12/31/1980",
                [
                    "Dr Ben Okafor, Tue 14 Apr, 10:00 AM",
                    "Shall I book it?",
                    "For Maria Lopez, born",
                    "1. Yes, in person",
                    "2. Yes, by video",
                ],
            ),
            ("1", ["Booked: Dr Ben Okafor, Tue 14 Apr, 10:00 AM", "12 River Street", "MENU"]),
        ],
    )
    booked = appointments(db, "booked")
    assert len(booked) == 1
    assert booked[0].start_at.isoformat() == "2026-04-14T14:00:00+00:00"
    assert booked[0].visit_type == "in_person"
    with db.transaction() as session:
        patient = session.scalars(select(Patient)).one()
        assert (patient.name, patient.date_of_birth.isoformat()) == ("Maria Lopez", "1980-12-31")
        assert patient.phone == "+15555550123"


def test_booking_by_free_text_in_english(engine: FlowEngine, db: Database) -> None:
    c = chat(engine)
    verify_dialog(
        c,
        [
            (
                "I'd like to book with the dermatologist tomorrow afternoon",
                ["Free times on Wed 15 Apr", "12:00 PM"],
            ),
            ("the 1:20 one", "full name"),
            ("John Smith", "date of birth"),
            ("March 3, 1975", ["Wed 15 Apr, 1:20 PM", "born"]),
            ("yes", "Booked: Dr Ben Okafor, Wed 15 Apr, 1:20 PM"),
        ],
    )
    assert [a.start_at.isoformat() for a in appointments(db, "booked")] == [
        "2026-04-15T17:20:00+00:00"
    ]


def test_next_tuesday_after_3_offers_only_those_times(engine: FlowEngine) -> None:
    c = chat(engine)
    verify_dialog(
        c,
        [
            ("book", "Who would you like to see?"),
            ("Dr Ruiz", "When would you like to see Dr Ana Ruiz"),
            ("next tuesday after 3", ["Tue 21 Apr", "3:00 PM", "3:30 PM", "!2:30 PM"]),
        ],
    )


def test_new_patient_books_in_spanish_by_free_text(engine: FlowEngine, db: Database) -> None:
    c = chat(engine, "+34600111222")
    verify_dialog(
        c,
        [
            ("Hola, quiero una cita", "¿Con quién desea la cita?"),
            ("pediatría", "¿Cuándo desea ver a Dr Carmen Silva?"),
            ("mañana por la tarde", ["Horas libres el mié 15 de abr", "13:00"]),
            ("1", "nombre completo"),
            ("María José Pérez", "fecha de nacimiento"),
            (
                "31/12/1980",
                ["Dr Carmen Silva, mié 15 de abr, 13:00", "¿La reservo?", "1. Sí, presencial"],
            ),
            ("sí", "Cita reservada: Dr Carmen Silva"),
        ],
    )
    booked = appointments(db, "booked")
    assert len(booked) == 1
    with db.transaction() as session:
        patient = session.get(Patient, booked[0].patient_id)
        assert patient is not None and patient.date_of_birth is not None
        assert patient.date_of_birth.isoformat() == "1980-12-31"


def test_known_patient_is_not_asked_name_again_and_can_book_video(engine: FlowEngine) -> None:
    c = chat(engine)
    book_by_numbers(c)
    c.say("Maria Lopez")
    c.say("12/31/1980")
    c.say("1")
    verify_dialog(
        c,
        [
            ("book", "Who would you like to see?"),
            ("general practice", "When would you like to see Dr Ana Ruiz"),
            (
                "thursday at 10",
                ["Dr Ana Ruiz, Thu 16 Apr, 10:00 AM", "Shall I book it?", "!full name", "!born"],
            ),
            ("2", ["Booked", "video visit"]),
        ],
    )


# -- wrong answers ----------------------------------------------------------------


def test_wrong_answers_get_help_and_keep_the_place(engine: FlowEngine) -> None:
    c = chat(engine)
    verify_dialog(
        c,
        [
            ("hi", "What would you like to do?"),
            ("9", ["reply with one of the numbers", "1. Book a visit"]),
            ("", ["reply with one of the numbers", "1. Book a visit"]),
            ("1", "Who would you like to see?"),
            ("the podiatrist", ["couldn't find that doctor", "Who would you like to see?"]),
            ("2", "When would you like to see"),
            ("purple", ["didn't catch a day", "1. Tue 14 Apr"]),
            ("yesterday", ["already passed", "When would you like"]),
            ("in 6 months", ["up to 60 days ahead"]),
            ("😀👍", ["didn't catch a day"]),
            ("x" * 2000, ["didn't catch a day"]),
            ("1", "Free times on Tue 14 Apr"),
            ("42", ["pick a number", "1. 10:00 AM"]),
            ("1", "full name"),
            ("12345", "full name in letters"),
            ("Maria Lopez", "date of birth"),
            ("hello", ["couldn't read that date", "12/31/1980"]),
            ("12/31/2030", "in the future"),
            ("12/31/1980", "Shall I book it?"),
            ("maybe", ["reply with one of the numbers", "Shall I book it?"]),
            ("1", "Booked"),
        ],
    )


def test_help_answers_without_losing_the_step(engine: FlowEngine) -> None:
    c = chat(engine)
    c.say("book")
    verify_dialog(
        c,
        [
            ("help", ["Riverside Family Clinic", "+15550100000", "MENU"]),
            ("2", "When would you like to see Dr Ben Okafor"),
            ("menu", "What would you like to do?"),
        ],
    )


def test_language_switch_is_remembered(engine: FlowEngine) -> None:
    c = chat(engine)
    verify_dialog(
        c,
        [
            ("language", ["1. English", "2. Español"]),
            ("2", ["le escribiré en español", "¿Qué desea hacer?", "1. Pedir una cita"]),
            ("hello", "¿Qué desea hacer?"),
        ],
    )


# -- holds and races --------------------------------------------------------------


def test_slot_taken_meanwhile_offers_nearest_alternatives(engine: FlowEngine, db: Database) -> None:
    first, second = chat(engine, "+15555550001"), chat(engine, "+15555550002")
    for c in (first, second):
        c.say("book")
        c.say(c.option_number("Okafor"))
        c.say("1")
    first.say("1")  # holds 10:00
    answer = second.say("1")
    assert "just taken" in answer and "nearest free times" in answer.lower()
    assert "10:20 AM" in answer
    assert "full name" in second.say(second.option_number("10:20"))
    assert len(appointments(db, "held")) == 2


def test_expired_hold_taken_by_another_offers_alternatives(
    engine: FlowEngine, db: Database, clock: FixedClock
) -> None:
    slow, fast = chat(engine, "+15555550001"), chat(engine, "+15555550002")
    book_by_numbers(slow, day="2")
    slow.say("Maria Lopez")
    slow.say("12/31/1980")
    clock.advance(timedelta(minutes=11))
    book_by_numbers(fast, day="2")  # the lapsed hold frees Wed 10:00 for the next patient
    assert "Wed 15 Apr, 10:00 AM" in fast.transcript[-1] or "full name" in fast.transcript[-1]
    fast.say("Ann Other")
    fast.say("1/2/1990")
    assert "Booked" in fast.say("1")
    answer = slow.say("1")
    assert "someone took it" in answer and "nearest free times" in answer.lower()
    assert "1. " in answer
    assert len(appointments(db, "booked")) == 1


def test_expired_hold_still_free_is_booked(
    engine: FlowEngine, db: Database, clock: FixedClock
) -> None:
    c = chat(engine)
    book_by_numbers(c)
    c.say("Maria Lopez")
    c.say("12/31/1980")
    clock.advance(timedelta(minutes=30))
    assert "Booked" in c.say("1")
    assert len(appointments(db, "booked")) == 1


# -- managing appointments --------------------------------------------------------


@pytest.fixture
def booked(engine: FlowEngine) -> Chat:
    c = chat(engine)
    book_by_numbers(c)
    c.say("Maria Lopez")
    c.say("12/31/1980")
    c.say("1")
    return c


def test_my_appointments_lists_and_offers_next_steps(booked: Chat) -> None:
    verify_dialog(
        booked,
        [
            (
                "my appointments",
                [
                    "Your upcoming appointments (1)",
                    "Dr Ben Okafor, Tue 14 Apr, 10:00 AM",
                    "1. Change one",
                    "2. Cancel one",
                ],
            )
        ],
    )


def test_reschedule_by_free_text(booked: Chat, db: Database) -> None:
    verify_dialog(
        booked,
        [
            ("can I move my appointment to thursday", ["Free times on Thu 16 Apr"]),
            (
                "2",
                [
                    "Dr Ben Okafor, Thu 16 Apr, 10:20 AM",
                    "instead of Tue 14 Apr, 10:00 AM",
                    "!full name",
                ],
            ),
            ("1", ["Changed", "Thu 16 Apr, 10:20 AM"]),
        ],
    )
    rows = appointments(db)
    assert [(a.status, a.cancel_reason) for a in rows] == [
        ("cancelled", "rescheduled"),
        ("booked", None),
    ]
    assert rows[1].rescheduled_from_id == rows[0].id


def booked_in_spanish(engine: FlowEngine) -> Chat:
    """A new Spanish-speaking patient booked with Dr Okafor, Tue 14 Apr 10:00."""
    c = chat(engine, "+34600111222")
    c.say("hola, quiero una cita")
    c.say(c.option_number("Okafor"))
    c.say("1")
    c.say("1")
    c.say("María Pérez")
    c.say("31/12/1980")
    assert "Cita reservada" in c.say("1")
    return c


def test_reschedule_in_spanish_by_numbers(engine: FlowEngine, db: Database) -> None:
    c = booked_in_spanish(engine)
    verify_dialog(
        c,
        [
            ("menú", "¿Qué desea hacer?"),
            ("3", ["Su cita es el mar 14 de abr, 10:00", "¿Cuándo la prefiere?"]),
            ("2", "Horas libres el mié 15 de abr"),
            ("1", ["en lugar del mar 14 de abr, 10:00", "¿La reservo?"]),
            ("1", "Cita cambiada"),
        ],
    )
    assert [a.status for a in appointments(db)] == ["cancelled", "booked"]


def test_cancel_my_appointment(booked: Chat, db: Database) -> None:
    verify_dialog(
        booked,
        [
            (
                "cancel my appointment",
                [
                    "Cancel your visit: Dr Ben Okafor, Tue 14 Apr, 10:00 AM?",
                    "1. Yes, cancel it",
                    "2. No, keep it",
                ],
            ),
            ("1", "Your appointment is cancelled"),
            ("my appointments", "You have no upcoming appointments"),
        ],
    )
    assert [a.status for a in appointments(db)] == ["cancelled"]


def test_cancel_in_spanish_and_keep(engine: FlowEngine, db: Database) -> None:
    c = booked_in_spanish(engine)
    verify_dialog(
        c,
        [
            ("quiero anular mi cita", ["¿Anular su cita:", "1. Sí, anularla"]),
            ("no", "su cita se mantiene"),
            ("mis citas", ["Sus próximas citas (1)", "Dr Ben Okafor"]),
            ("2", "¿Anular su cita:"),
            ("1", "Su cita está anulada"),
        ],
    )
    assert [a.status for a in appointments(db)] == ["cancelled"]


def test_nothing_to_cancel_or_move(engine: FlowEngine) -> None:
    verify_dialog(
        chat(engine),
        [
            ("cancel my appointment", "You have no upcoming appointments"),
            ("reschedule", "You have no upcoming appointments"),
        ],
    )


# -- time-outs, retries, consent --------------------------------------------------


def test_conversation_resumed_after_timeout(engine: FlowEngine, clock: FixedClock) -> None:
    c = chat(engine)
    c.say("book")
    c.say(c.option_number("Ruiz"))
    clock.advance(timedelta(hours=3))
    verify_dialog(
        c,
        [
            ("2", ["Welcome back", "1. Yes, carry on", "2. No, show the menu"]),
            ("1", "When would you like to see Dr Ana Ruiz"),
        ],
    )
    clock.advance(timedelta(hours=3))
    verify_dialog(c, [("hello", "Welcome back"), ("2", "What would you like to do?")])


def test_provider_retry_changes_nothing(engine: FlowEngine, db: Database) -> None:
    c = chat(engine)
    c.say("book", message_id="SM00000000000000000000000000000001")
    c.say("2", message_id="SM00000000000000000000000000000002")
    with db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(OutboxMessage))
    assert c.say("2", message_id="SM00000000000000000000000000000002") == ""
    assert c.last is not None and c.last.duplicate
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == before
    assert "Free times" in c.say("1")  # still on the day step: the retry did not advance it


def test_stop_silences_until_start(engine: FlowEngine) -> None:
    c = chat(engine)
    verify_dialog(
        c,
        [
            ("STOP", ["unsubscribed", "START"]),
            ("book", []),
            ("START", "subscribed again"),
            ("book", "Who would you like to see?"),
        ],
    )
    assert c.say("stop") and c.say("hello") == ""


def test_lone_cancel_opts_out_on_sms_but_not_on_telegram(engine: FlowEngine) -> None:
    assert "unsubscribed" in chat(engine, "+15555550999").say("CANCEL")
    assert "no upcoming appointments" in chat(engine, "4242", channel="telegram").say("cancel")


def test_reschedule_and_list_in_spanish_by_free_text(engine: FlowEngine, db: Database) -> None:
    c = chat(engine, "+34600111333")
    c.say("quiero una cita con el dermatólogo el miércoles a las 11")
    c.say("Lucía Gómez")
    c.say("3 de marzo de 1990")
    assert "Cita reservada: Dr Ben Okafor, mié 15 de abr, 11:00" in c.say("sí")
    verify_dialog(
        c,
        [
            ("¿cuándo es mi cita?", ["Sus próximas citas (1)", "mié 15 de abr, 11:00"]),
            (
                "quiero cambiar mi cita al jueves por la mañana",
                ["Horas libres el jue 16 de abr", "10:00"],
            ),
            ("la de las 10:40", ["jue 16 de abr, 10:40", "en lugar del mié 15 de abr, 11:00"]),
            ("vale", "Cita cambiada"),
        ],
    )
    assert [a.status for a in appointments(db)] == ["cancelled", "booked"]


def test_detected_language_is_kept_for_short_replies(engine: FlowEngine) -> None:
    c = chat(engine, "+34600111444")
    verify_dialog(
        c,
        [
            ("hola, quiero una cita", "¿Con quién desea la cita?"),
            ("ok", "No encontré ese médico"),
            ("2", "¿Cuándo desea ver a Dr Ben Okafor?"),
            ("I would prefer english please", "didn't catch a day"),
        ],
    )
