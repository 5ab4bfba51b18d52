"""The symptom intake as patients text it: the full default intake in English
and Spanish, invalid answers and their re-asks, skip logic, pause and resume,
three failed tries, the urgent same-day offer and an emergency.

Every intake here is entered the ways patients enter it: the offer after
booking by chat ("Booked: ..." then "would you answer N quick questions?"),
the word "questions" / "preguntas" at any time, and the 24h reminder's
"Answer N quick questions" option. Red flags go through the real matcher.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy import select

from core import intake as core_intake
from core.clock import FixedClock
from core.db import Database
from core.messages import InboundMessage, Media, Reply
from core.models import Alert, IntakeResponse
from flows.engine import FlowEngine
from tests.clinic import TZ, Clinic
from tests.dialogue import Chat, render, verify_dialog

PHONE = "+15555550123"
NY = ZoneInfo(TZ)
# Thursday 16 Apr 2026, 10:00 in New York; the clock says Tuesday 14 Apr, 9:00.
VISIT = datetime(2026, 4, 16, 14, 0, tzinfo=UTC)


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    return Clinic.open(db, clock)


@pytest.fixture
def c(clinic: Clinic) -> Chat:
    return Chat(FlowEngine(clinic.db, clinic.settings, clinic.clock), address=PHONE)


def booked_by_staff(clinic: Clinic) -> int:
    """Dr Ruiz, Thu 16 Apr 10:00, booked at the desk (no message to the patient)."""
    return clinic.book(PHONE, VISIT)


def response(clinic: Clinic) -> IntakeResponse:
    with clinic.db.transaction() as session:
        return session.scalars(select(IntakeResponse)).one()


def send_photo(c: Chat) -> str:
    msg = InboundMessage(
        channel="sms",
        address=PHONE,
        text="",
        provider_message_id=uuid.uuid4().hex,
        media=(Media("image/jpeg", "https://example.test/photo.jpg"),),
    )
    c.last = c.engine.handle(msg)
    return render(c.last.replies)


def reminders_until(clinic: Clinic, end: datetime) -> list[Reply]:
    """Scheduler ticks and dispatch every 15 minutes up to ``end``; what PHONE got."""
    got: list[Reply] = []
    while clinic.clock.now() < end:
        clinic.clock.advance(timedelta(minutes=15))
        got += [reply for _channel, address, reply in clinic.run() if address == PHONE]
    return got


def the_24h_reminder(clinic: Clinic) -> Reply:
    """Wednesday 10:00: the reminder that invites to the intake arrives."""
    sent = reminders_until(clinic, datetime(2026, 4, 15, 10, 0, tzinfo=NY))
    assert sent, "no reminder was sent"
    return sent[-1]


# Booking Dr Ruiz for Thursday 10:00 by chat, as a new patient, up to the offer.
BOOK_IN_ENGLISH = [
    ("book", "Who would you like to see?"),
    ("Dr Ruiz", "When would you like to see Dr Ana Ruiz"),
    ("thursday at 10", "full name"),
    ("Maria Lopez", "date of birth"),
    ("12/31/1980", ["Dr Ana Ruiz, Thu 16 Apr, 10:00 AM", "Shall I book it?"]),
    (
        "1",
        [
            "Booked: Dr Ana Ruiz, Thu 16 Apr, 10:00 AM",
            "Before your visit with Dr Ana Ruiz, would you answer 8 quick questions?",
            "1. Yes, now",
            "2. Later",
        ],
    ),
]


# -- the full intake ------------------------------------------------------------


def test_full_intake_in_english_with_invalid_answers(clinic: Clinic, c: Chat) -> None:
    verify_dialog(
        c,
        [
            *BOOK_IN_ENGLISH,
            ("1", ["Reply PAUSE", "(1/8) What is the main reason for your visit?"]),
            ("asdfgh", ["didn't understand", "Please tell me in a few words", "(1/8)"]),
            ("Cough and sore throat", "(2/8) How long have you had it?"),
            ("2", ["2 what: hours, days, weeks or months?", "(2/8)"]),
            ("2 days", "(3/8) How bad is it right now"),
            ("12", ["12 is not between 0 and 10", "one number from 0 to 10", "(3/8)"]),
            ("5", ["(4/8) Have you had a fever", "1. Yes", "2. No"]),
            ("sí", "(5/8) Which medicines"),  # the other language's yes
            ("skip", ["OK, skipped.", "(6/8) Are you allergic"]),
            ("penicillin", ["(7/8) What sex were you assigned at birth?", "1. Female"]),
            ("1", ["(8/9) Could you be pregnant?", "3. Not sure"]),
            ("2", "(9/9) Anything else the doctor should know"),
            ("no", ["Thank you, your answers are with Dr Ana Ruiz", "Thu 16 Apr, 10:00 AM"]),
        ],
    )
    row = response(clinic)
    assert row.status == "completed" and row.completed_at is not None
    assert clinic.appointment(row.appointment_id).start_at == VISIT
    assert row.language == "en"
    assert row.answers == {
        "reason": "Cough and sore throat",
        "onset": {"value": 2, "unit": "d"},
        "severity": 5,
        "fever": True,
        "medicines": None,
        "allergies": "penicillin",
        "sex": "female",
        "pregnant": "N",
        "notes": "no",
    }
    assert (row.triage_level, row.triage_rules) == ("routine", [])
    assert row.summary is not None and row.summary.startswith("Triage: routine")
    assert "Current medicines: not answered" in row.summary
    QuestionnaireResponse.model_validate(core_intake.response_json(row))


def test_full_intake_in_spanish_skips_pregnancy_for_men(clinic: Clinic, c: Chat) -> None:
    verify_dialog(
        c,
        [
            ("Hola, quiero una cita", "¿Con quién desea la cita?"),
            ("Dr Ruiz", "¿Cuándo desea ver a Dr Ana Ruiz?"),
            ("el jueves a las 10", "nombre completo"),
            ("José Pérez", "fecha de nacimiento"),
            ("31/12/1980", ["Dr Ana Ruiz, jue 16 de abr, 10:00", "¿La reservo?"]),
            (
                "sí",
                [
                    "Cita reservada: Dr Ana Ruiz",
                    "Antes de su consulta con Dr Ana Ruiz",
                    "8 preguntas rápidas",
                    "Sí, ahora",
                ],
            ),
            ("hola", ["Antes de su consulta con Dr Ana Ruiz", "8 preguntas rápidas"]),
            ("sí", ["PAUSA", "(1/8) ¿Cuál es el motivo principal"]),
            ("no sé", ["Esta ayuda al médico", "(1/8)"]),  # required: explained
            ("Me pica la garganta", "(2/8) ¿Desde cuándo lo tiene?"),
            ("mucho", ["no lo entendí", "desde ayer", "(2/8)"]),
            ("desde ayer", "(3/8) ¿Qué tan fuerte es ahora"),
            ("dos", ["(4/8) ¿Ha tenido fiebre", "1. Sí", "2. No"]),
            ("no", "(5/8) ¿Qué medicamentos toma"),
            ("ninguno", "(6/8) ¿Tiene alergia"),
            ("ninguna", ["(7/8) ¿Qué sexo se le asignó al nacer?", "2. Masculino"]),
            ("2", ["(8/8) ¿Algo más que el médico deba saber", "!embarazada"]),
            ("saltar", ["De acuerdo, la saltamos", "Gracias", "parece leve", "!embarazada"]),
        ],
    )
    row = response(clinic)
    assert row.language == "es" and row.status == "completed"
    assert "pregnant" not in row.answers
    assert row.answers["onset"] == {"value": 1, "unit": "d"}
    assert (row.triage_level, row.triage_rules) == ("self_care", ["mild_and_recent"])


def test_third_failed_try_records_not_answered(clinic: Clinic, c: Chat) -> None:
    booked_by_staff(clinic)
    verify_dialog(
        c,
        [
            ("questions", "(1/8) What is the main reason"),
            ("Headache", "(2/8)"),
            ("idk", ["please give your best guess", "(2/8)"]),
            ("a while", ["didn't understand", 'like "3 days"', "(2/8)"]),
        ],
    )
    # A photo instead of text is the third failed try: noted, and on we go.
    answer = send_photo(c)
    assert "I'll note that one as not answered" in answer and "(3/8) How bad" in answer
    verify_dialog(c, [("5", "(4/8) Have you had a fever")])
    row = response(clinic)
    assert row.answers["onset"] is None and row.answers["severity"] == 5
    assert row.tries == 0


def test_photo_gets_an_explanation(clinic: Clinic, c: Chat) -> None:
    booked_by_staff(clinic)
    verify_dialog(c, [("questions", "(1/8)")])
    answer = send_photo(c)
    assert "can't read photos or files here" in answer
    assert "Please tell me in a few words" in answer and "(1/8)" in answer


# -- pause and resume -------------------------------------------------------------


def test_pause_then_resume_by_word_and_after_the_reminder(clinic: Clinic, c: Chat) -> None:
    verify_dialog(
        c,
        [
            *BOOK_IN_ENGLISH,
            ("1", "(1/8)"),
            ("Rash on my arm", "(2/8)"),
            ("later", ["Paused", "Reply QUESTIONS"]),
            ("hi", "Book a visit"),  # the conversation is free meanwhile
        ],
    )
    row = response(clinic)
    assert (row.status, row.item) == ("in-progress", "onset")
    verify_dialog(
        c,
        [
            ("questions", ["Welcome back", "(2/8) How long"]),  # back where they were
            ("1 week", "(3/8)"),
            ("pause", "Paused"),
        ],
    )
    reminder = the_24h_reminder(clinic)
    assert "Thu 16 Apr, 10:00 AM" in reminder.text
    assert [o.value for o in reminder.options] == ["confirm", "reschedule", "cancel", "intake"]
    assert "quick questions" in reminder.options[3].label
    verify_dialog(c, [("4", ["Welcome back", "(3/8) How bad"])])
    assert response(clinic).answers == {
        "reason": "Rash on my arm",
        "onset": {"value": 1, "unit": "wk"},
    }


def test_later_at_the_offer_and_nothing_to_resume(clinic: Clinic, c: Chat) -> None:
    verify_dialog(
        c,
        [
            *BOOK_IN_ENGLISH,
            ("2", "Reply QUESTIONS any time"),
            ("preguntas", "(1/8)"),  # no unfinished one: starts the next visit's
            ("pause", "Paused"),
            ("cancel my appointment", "Cancel your visit: Dr Ana Ruiz, Thu 16 Apr"),
            ("1", "Your appointment is cancelled"),
            ("questions", "no questions to answer"),
        ],
    )
    assert response(clinic).status == "in-progress"  # kept, for a visit no longer due


def answer_all(c: Chat, severity: str, fever: str, notes: str = "skip", start: int = 1) -> str:
    """From question ``start`` on: the answers, ending with ``notes``."""
    for text in ("Stomach pain", "1 day", severity, fever, "none", "none", "2")[start - 1 :]:
        c.say(text)
    return c.say(notes)


def test_a_finished_intake_is_not_asked_again(clinic: Clinic, c: Chat) -> None:
    booked_by_staff(clinic)
    reminder = the_24h_reminder(clinic)
    assert reminder.options[-1].value == "intake"
    verify_dialog(
        c,
        [
            ("my appointments", "Dr Ana Ruiz"),  # not an answer to the reminder
            ("questions", "(1/8)"),
        ],
    )
    assert "Thank you, your answers are with Dr Ana Ruiz" in answer_all(c, "3", "no")
    verify_dialog(
        c,
        [
            ("4", "already answered"),  # the reminder's option, tapped afterwards
            ("questions", "no questions to answer"),
        ],
    )
    assert response(clinic).status == "completed"


# -- triage outcomes --------------------------------------------------------------


def test_urgent_offers_a_visit_today(clinic: Clinic, c: Chat) -> None:
    verify_dialog(c, [*BOOK_IN_ENGLISH, ("1", "(1/8)")])
    last = answer_all(c, "9", "yes")
    assert "you should see a doctor today" in last
    assert "instead of Thu 16 Apr, 10:00 AM" in last
    row = response(clinic)
    assert row.triage_level == "urgent"
    assert row.triage_rules == ["severe_with_fever", "very_severe"]
    assert row.summary and "URGENT" in row.summary and "severe_with_fever" in row.summary
    verify_dialog(c, [("1", ["Tue 14 Apr", "11:00 AM", "!Wed 15 Apr"])])


def test_urgent_can_keep_the_visit(clinic: Clinic, c: Chat) -> None:
    appointment_id = booked_by_staff(clinic)
    verify_dialog(c, [("questions", "(1/8)")])
    answer_all(c, "8", "yes")
    verify_dialog(c, [("2", ["your visit stays on Thu 16 Apr", "911"])])
    assert clinic.appointment(appointment_id).status == "booked"


def test_red_flag_during_the_intake_pauses_it_and_it_can_carry_on(clinic: Clinic, c: Chat) -> None:
    appointment_id = booked_by_staff(clinic)
    verify_dialog(
        c,
        [
            ("questions", "(1/8)"),
            ("Headache", "(2/8)"),
            (
                "now I have crushing chest pain and can't breathe",
                ["This may be an emergency", "Call 911", "1. Yes, carry on", "!(3/8)"],
            ),
        ],
    )
    row = response(clinic)
    # Marked at once, so the doctor sees it even if the patient never carries on.
    assert (row.status, row.triage_level) == ("in-progress", "emergency")
    assert row.triage_rules == ["red_flag:breathing", "red_flag:chest_pain"]
    assert row.summary and "EMERGENCY" in row.summary
    with clinic.db.transaction() as session:
        alert = session.scalars(select(Alert)).one()
        got: dict[str, Any] = {
            "kind": alert.kind,
            "level": alert.level,
            "appointment_id": alert.appointment_id,
            "rules": alert.rules,
        }
    assert got == {
        "kind": "red_flag",
        "level": "emergency",
        "appointment_id": appointment_id,
        "rules": ["breathing", "chest_pain"],
    }
    QuestionnaireResponse.model_validate(core_intake.response_json(row))
    # Later, safe: the intake goes on where it stopped and ends still flagged.
    verify_dialog(c, [("1", "(2/8)")])
    last = answer_all(c, "3", "no", start=2)
    assert "911" not in last  # staff were alerted once, when it happened
    row = response(clinic)
    assert (row.status, row.triage_level) == ("completed", "emergency")
    assert "red_flag:chest_pain" in row.triage_rules
    with clinic.db.transaction() as session:
        assert len(session.scalars(select(Alert)).all()) == 1


def test_a_reason_that_sounds_like_a_request_is_an_answer(clinic: Clinic, c: Chat) -> None:
    verify_dialog(
        c,
        [
            *BOOK_IN_ENGLISH,
            ("1", "(1/8)"),
            ("I want to see the doctor about my back pain", "(2/8)"),
        ],
    )
    assert response(clinic).answers == {"reason": "I want to see the doctor about my back pain"}
