"""Asking the doctor in the chat: the question (with a photo), who it goes to,
when to expect the answer, follow-ups after the answer, red flags."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from starlette.datastructures import ImmutableMultiDict

from channels.twilio import parse_inbound
from core import questions
from core.clock import FixedClock
from core.db import Database
from core.messages import InboundMessage
from core.models import (
    Alert,
    ChannelIdentity,
    Conversation,
    OutboxMessage,
    Patient,
    Practitioner,
    QuestionThread,
    User,
)
from core.patients import find_or_create_patient_by_phone
from core.users import create_user, use_cheap_hashing
from flows.engine import FlowEngine
from tests.clinic import TZ, Clinic
from tests.dialogue import Chat, render, verify_dialog

use_cheap_hashing()

NY = ZoneInfo(TZ)
JANE = "+15555550801"  # registered, booked with Dr Ruiz
JUAN = "+15555550802"  # registered, writes in Spanish, booked with Dr Ruiz
NEW = "+15555550803"  # unknown to the clinic
LONE = "+15555550804"  # registered, no appointments
IBUPROFEN = "is it ok to take ibuprofen with amoxicillin?"
# The clock: Tue 14 Apr 2026, 9:00 AM in New York; one working day later.
DUE = "will answer by Wed 15 Apr, 9:00 AM"


def ny(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY).astimezone(UTC)


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    clinic = Clinic.open(db, clock)
    clinic.book(JANE, ny(2026, 4, 20, 10, 0))
    clinic.book(JUAN, ny(2026, 4, 21, 10, 0))
    with db.transaction() as session:
        for phone, name in ((JANE, "Jane Roe"), (JUAN, "Juan Pérez"), (LONE, "Lone Wolf")):
            patient = find_or_create_patient_by_phone(session, 1, phone, "sms", now=clock.now())
            patient.name, patient.date_of_birth = name, date(1975, 3, 4)
            if phone == JUAN:
                patient.language = "es"
    return clinic


def chat(clinic: Clinic, address: str = JANE, channel: str = "sms") -> Chat:
    return Chat(FlowEngine(clinic.db, clinic.settings, clinic.clock), address, channel)


def threads(clinic: Clinic) -> list[QuestionThread]:
    with clinic.db.transaction() as session:
        found = list(session.scalars(select(QuestionThread).order_by(QuestionThread.id)))
        for thread in found:
            _ = thread.messages, thread.practitioner
        return found


def only_thread(clinic: Clinic) -> QuestionThread:
    [thread] = threads(clinic)
    return thread


def bodies(thread: QuestionThread) -> list[tuple[str, str]]:
    return [(m.author, m.body) for m in thread.messages]


def answer(clinic: Clinic, thread_id: int, text: str) -> None:
    with clinic.db.transaction() as session:
        doctor = session.scalars(select(User).where(User.email == "ruiz@clinic.test")).first()
        if doctor is None:
            doctor = create_user(
                session,
                email="ruiz@clinic.test",
                role="doctor",
                password="correct horse battery",
                now=clinic.clock.now(),
                practitioner="Ruiz",
            )
        questions.reply(
            session,
            thread_id,
            author=doctor,
            body=text,
            now=clinic.clock.now(),
            settings=clinic.settings,
        )


def add_practitioner(clinic: Clinic, name: str, specialty: str = "General practice") -> int:
    with clinic.db.transaction() as session:
        p = Practitioner(clinic_id=1, name=name, specialty=specialty, timezone=TZ)
        session.add(p)
        session.flush()
        return p.id


# -- asking -----------------------------------------------------------------------------


def test_a_question_in_the_first_message_is_sent_at_once(clinic: Clinic) -> None:
    c = chat(clinic)
    answer_text = c.say(f"Question for Dr Ruiz: {IBUPROFEN}")
    assert f"Dr Ana Ruiz {DUE}" in answer_text
    assert "If it gets worse or it is urgent, call 911" in answer_text
    assert "write it here" in answer_text  # what the patient can do next
    thread = only_thread(clinic)
    assert thread.practitioner is not None and thread.practitioner.name == "Dr Ana Ruiz"
    assert (thread.channel, thread.address, thread.status) == ("sms", JANE, "open")
    assert bodies(thread) == [("patient", IBUPROFEN)]
    assert thread.messages[0].inbound_id is not None


@pytest.mark.parametrize(
    ("said", "question"),
    [
        (
            "Doctor question: my son has a fever of 39, should I bring him in?",
            "my son has a fever of 39, should I bring him in?",
        ),
        (
            "Hi, I have a question for Dr Ruiz, is it ok to take ibuprofen?",
            "is it ok to take ibuprofen?",
        ),
        (
            "I'd like to ask the doctor whether I should stop the pills before the surgery",
            "I'd like to ask the doctor whether I should stop the pills before the surgery",
        ),
        ("Question for Dr Ruiz\nIs 2 pills a day ok?", "Is 2 pills a day ok?"),
    ],
)
def test_the_question_is_read_out_of_the_request(clinic: Clinic, said: str, question: str) -> None:
    assert DUE in chat(clinic).say(said)
    assert bodies(only_thread(clinic)) == [("patient", question)]


@pytest.mark.parametrize(
    "request_text",
    [
        "I have a question for Dr Ruiz",
        "can I ask the doctor something",
        "Hi! I have a question for the doctor.",
        "reply to the doctor",
    ],
)
def test_without_the_question_it_is_asked_for_as_free_text(
    clinic: Clinic, request_text: str
) -> None:
    c = chat(clinic)
    assert "What is your question for Dr Ana Ruiz?" in c.say(request_text)
    # A question that mentions rescheduling is a question, not a request to reschedule.
    assert DUE in c.say("Can I reschedule my surgery if I am still taking the antibiotic?")
    assert bodies(only_thread(clinic)) == [
        ("patient", "Can I reschedule my surgery if I am still taking the antibiotic?")
    ]


def test_a_lone_command_at_the_question_changes_the_patient_s_mind(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say("I have a question for the doctor")
    assert "Who would you like to see?" in c.say("book")
    assert threads(clinic) == []


def test_in_spanish(clinic: Clinic) -> None:
    c = chat(clinic, JUAN)
    verify_dialog(
        c,
        [
            ("pregunta para la doctora Ruiz", "¿Cuál es su pregunta para Dr Ana Ruiz?"),
            (
                "¿Puedo tomar ibuprofeno con amoxicilina?",
                [
                    "Dr Ana Ruiz le responderá antes del mié 15 de abr, 9:00",
                    "llame al 911",
                    "escriba MENÚ",
                ],
            ),
        ],
    )
    thread = only_thread(clinic)
    assert bodies(thread) == [("patient", "¿Puedo tomar ibuprofeno con amoxicilina?")]
    answer(clinic, thread.id, "Sí, con comida.")
    with clinic.db.transaction() as session:
        row = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        assert row is not None
        assert row.payload["text"].startswith(
            "Dr Ana Ruiz respondió a su pregunta:\nSí, con comida."
        )


def test_the_whole_question_in_spanish_with_a_title_abbreviation(clinic: Clinic) -> None:
    c = chat(clinic, JUAN)
    assert "le responderá" in c.say(
        "Tengo una pregunta para el Dr. Ruiz: ¿puedo tomar ibuprofeno con amoxicilina?"
    )
    assert bodies(only_thread(clinic)) == [("patient", "¿puedo tomar ibuprofeno con amoxicilina?")]


def mms(clinic: Clinic, phone: str, body: str) -> InboundMessage:
    """A Twilio MMS webhook with one photo, parsed by the real channel code."""
    params = ImmutableMultiDict(
        [
            ("MessageSid", "MM" + uuid.uuid4().hex),
            ("AccountSid", "AC" + "0" * 32),
            ("From", phone),
            ("To", "+15005550006"),
            ("Body", body),
            ("NumMedia", "1"),
            ("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1"),
            ("MediaContentType0", "image/jpeg"),
        ]
    )
    return parse_inbound("sms", params, "US")


def test_a_photo_sent_with_the_question_is_attached(clinic: Clinic) -> None:
    engine = FlowEngine(clinic.db, clinic.settings, clinic.clock)
    result = engine.handle(mms(clinic, JANE, "Question for Dr Ruiz: is this rash normal?"))
    assert DUE in render(result.replies)
    [message] = only_thread(clinic).messages
    assert message.body == "is this rash normal?"
    assert message.media == [
        {
            "url": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1",
            "content_type": "image/jpeg",
        }
    ]


def test_a_photo_alone_answers_what_is_your_question(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say("can I ask the doctor something")
    result = c.engine.handle(mms(clinic, JANE, ""))
    assert DUE in render(result.replies)
    [message] = only_thread(clinic).messages
    assert message.body == "" and message.media[0]["content_type"] == "image/jpeg"


def test_a_photo_sent_just_after_the_question_joins_it(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say(f"Question for Dr Ruiz: {IBUPROFEN}")
    clinic.clock.advance(timedelta(minutes=2))
    result = c.engine.handle(mms(clinic, JANE, "here is the box"))
    assert "Added to your question" in render(result.replies)
    thread = only_thread(clinic)
    assert [m.body for m in thread.messages] == [IBUPROFEN, "here is the box"]
    assert thread.messages[1].media != []


# -- who answers ------------------------------------------------------------------------


def test_the_named_practitioner_else_the_appointment_s_else_the_triage_queue(
    clinic: Clinic,
) -> None:
    chat(clinic).say("question for Dr Chen: should I keep running?")
    chat(clinic, JUAN).say("I have a question for the doctor: is my knee swelling normal?")
    lone = chat(clinic, LONE).say("question for the doctor: do you do travel vaccines?")
    assert "The care team at Riverside Family Clinic will answer by" in lone
    found = threads(clinic)
    assert [t.practitioner_id for t in found] == [
        clinic.practitioner("Chen"),
        clinic.practitioner("Ruiz"),  # Juan's booking
        None,  # the triage queue
    ]


def test_an_upcoming_appointment_beats_a_past_one(clinic: Clinic) -> None:
    today = clinic.clock.now()
    clinic.clock.set(ny(2026, 4, 10, 8, 0))
    clinic.book(LONE, ny(2026, 4, 13, 10, 0), doctor="Okafor")  # yesterday
    clinic.clock.set(today)
    assert "Dr Ben Okafor will answer" in chat(clinic, LONE).say(
        "question for the doctor: is the cream still ok to use?"
    )
    with clinic.db.transaction() as session:
        questions.close(session, only_thread(clinic).id, now=today)
    clinic.book(LONE, ny(2026, 4, 22, 10, 0), doctor="Silva")
    assert "Dr Carmen Silva will answer" in chat(clinic, LONE).say(
        "question for the doctor: can my son come too?"
    )


def test_a_name_two_practitioners_share_gets_a_question(clinic: Clinic) -> None:
    ramos = add_practitioner(clinic, "Dr Ana Ramos")
    c = chat(clinic)
    asked = c.say(f"Question for Dr Ana: {IBUPROFEN}")
    assert "Which doctor is your question for?" in asked
    assert "Dr Ana Ruiz" in asked and "Dr Ana Ramos" in asked and "Any doctor" in asked
    assert threads(clinic) == []
    assert "Dr Ana Ramos will answer by" in c.say(c.option_number("Ramos"))
    thread = only_thread(clinic)
    assert (thread.practitioner_id, bodies(thread)) == (ramos, [("patient", IBUPROFEN)])


def test_the_ambiguous_name_can_be_typed_or_left_to_anyone(clinic: Clinic) -> None:
    add_practitioner(clinic, "Dr Ana Ramos")
    c = chat(clinic)
    c.say("Question for Dr Ana")
    assert "Please reply with one of the numbers" in c.say("Dr Who")
    assert "What is your question for the care team" in c.say(c.option_number("Any doctor"))
    c.say("Do you take new patients?")
    assert only_thread(clinic).practitioner_id is None


def test_a_new_patient_gives_name_and_date_of_birth_once(clinic: Clinic) -> None:
    c = chat(clinic, NEW)
    verify_dialog(
        c,
        [
            ("question for the doctor: do you treat migraines?", "I need your full name"),
            ("Mary Major", "date of birth"),
            ("03/04/1975", ["The care team at Riverside Family Clinic will answer by"]),
        ],
    )
    thread = only_thread(clinic)
    assert bodies(thread) == [("patient", "do you treat migraines?")]
    with clinic.db.transaction() as session:
        patient = session.get(Patient, thread.patient_id)
        assert patient is not None
        assert (patient.name, patient.date_of_birth) == ("Mary Major", date(1975, 3, 4))
        identity = session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.address == NEW)
        ).one()
        assert identity.verified_at is not None
    clinic.clock.advance(timedelta(hours=2))
    again = c.say("another question for the doctor: and for cluster headaches?")
    assert "Added to your question" in again and "full name" not in again


def test_the_menu_offers_it(clinic: Clinic) -> None:
    c = chat(clinic)
    assert "Ask the doctor a question" in c.say("menu")
    assert "What is your question for Dr Ana Ruiz?" in c.say(c.option_number("Ask the doctor"))
    assert DUE in c.say(IBUPROFEN)


# -- the answer and follow-ups ----------------------------------------------------------


def asked_and_answered(clinic: Clinic, c: Chat) -> int:
    c.say(f"Question for Dr Ruiz: {IBUPROFEN}")
    thread = only_thread(clinic)
    clinic.clock.advance(timedelta(hours=4))
    answer(clinic, thread.id, "Yes, with food.")
    clinic.clock.advance(timedelta(hours=1))
    return thread.id


def test_free_text_right_after_the_answer_continues_the_thread(clinic: Clinic) -> None:
    c = chat(clinic)
    thread_id = asked_and_answered(clinic, c)
    assert only_thread(clinic).status == "answered"
    added = c.say("Thanks, and one more thing: can I drink alcohol with it?")
    assert "Added to your question. Dr Ana Ruiz will answer by Wed 15 Apr, 2:00 PM" in added
    thread = only_thread(clinic)
    assert thread.id == thread_id and thread.status == "open"
    assert thread.due_at == ny(2026, 4, 15, 14, 0)  # from the follow-up, not the question
    assert bodies(thread)[-1] == (
        "patient",
        "Thanks, and one more thing: can I drink alcohol with it?",
    )
    # More, a few minutes later, still goes in.
    clinic.clock.advance(timedelta(minutes=5))
    assert "Added to your question" in c.say("I weigh 60 kg if that matters")
    assert len(only_thread(clinic).messages) == 4


def test_thanks_after_the_answer_is_answered_and_more_still_goes_in(clinic: Clinic) -> None:
    c = chat(clinic)
    asked_and_answered(clinic, c)
    assert "You're welcome. If there is anything else for Dr Ana Ruiz" in c.say("thanks!")
    assert only_thread(clinic).status == "answered"  # "thanks" alone reopens nothing
    clinic.clock.advance(timedelta(minutes=3))
    assert "Added to your question" in c.say("oh, and how long should I take it for?")
    assert only_thread(clinic).status == "open"


def test_a_command_after_the_answer_is_a_command(clinic: Clinic) -> None:
    c = chat(clinic)
    asked_and_answered(clinic, c)
    assert "Who would you like to see?" in c.say("I want to book an appointment")
    assert len(only_thread(clinic).messages) == 2


def test_later_free_text_is_not_taken_as_a_follow_up(clinic: Clinic) -> None:
    c = chat(clinic)
    asked_and_answered(clinic, c)
    assert "Book a visit" in c.say("hi")  # a greeting: the menu, the thread untouched
    clinic.clock.advance(timedelta(hours=2))
    assert "Added" not in c.say("what are your opening hours on saturday please")
    assert len(only_thread(clinic).messages) == 2
    # Asking for it still works, at any time.
    assert "Added to your question" in c.say("reply to the doctor: it worked, thanks")
    assert len(only_thread(clinic).messages) == 3


def test_listening_ends_after_a_while(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say(f"Question for Dr Ruiz: {IBUPROFEN}")
    clinic.clock.advance(timedelta(hours=2))
    assert "Added" not in c.say("do you have parking at the clinic")
    assert len(only_thread(clinic).messages) == 1


def test_mid_flow_the_answer_does_not_take_the_patient_s_words(clinic: Clinic) -> None:
    c = chat(clinic)
    thread_id = asked_and_answered(clinic, c)
    c.say("I want to book an appointment")  # now in the booking flow
    clinic.clock.advance(timedelta(minutes=1))
    answer(clinic, thread_id, "And drink water.")
    clinic.clock.advance(timedelta(minutes=1))
    assert "Added" not in c.say("Okafor")
    assert len(only_thread(clinic).messages) == 3  # question, answer, answer


def test_the_doctor_is_told_of_the_question_and_the_follow_up(clinic: Clinic) -> None:
    with clinic.db.transaction() as session:
        ruiz = create_user(
            session,
            email="ruiz@clinic.test",
            role="doctor",
            password="correct horse battery",
            now=clinic.clock.now(),
            practitioner="Ruiz",
        )
        ruiz.telegram_chat_id = "777"
    c = chat(clinic)
    thread_id = asked_and_answered(clinic, c)
    c.say("can I drink alcohol with it?")
    with clinic.db.transaction() as session:
        rows = list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.channel == questions.DOCTOR_CHANNEL)
                .order_by(OutboxMessage.id)
            )
        )
    assert [r.payload["text"] for r in rows] == [
        f"New question from Jane Roe (thread #{thread_id}): {IBUPROFEN}",
        f"New message from Jane Roe (thread #{thread_id}): can I drink alcohol with it?",
    ]
    assert {r.address for r in rows} == {"777"}


# -- red flags --------------------------------------------------------------------------


def alerts(clinic: Clinic) -> list[Alert]:
    with clinic.db.transaction() as session:
        return list(session.scalars(select(Alert)))


def test_a_red_flag_in_a_question_gets_the_emergency_reply_and_is_kept(clinic: Clinic) -> None:
    c = chat(clinic)
    said = c.say("question for Dr Ruiz: I have crushing chest pain since this morning")
    assert "This may be an emergency. Call 911 now" in said
    assert "will answer by" not in said  # the emergency message stands alone
    [alert] = alerts(clinic)
    assert alert.rules == ["chest_pain"]
    thread = only_thread(clinic)  # the doctor sees it in the thread too
    assert thread.practitioner_id == clinic.practitioner("Ruiz")
    assert bodies(thread) == [("patient", "I have crushing chest pain since this morning")]


def test_a_red_flag_as_the_answer_to_what_is_your_question(clinic: Clinic) -> None:
    c = chat(clinic)
    c.say("I have a question for the doctor")
    said = c.say("my face is drooping and I can't lift my arm")
    assert "emergency" in said.lower() and "When you are safe" not in said
    assert len(alerts(clinic)) == 1
    assert bodies(only_thread(clinic)) == [
        ("patient", "my face is drooping and I can't lift my arm")
    ]
    with clinic.db.transaction() as session:
        conversation = session.scalars(
            select(Conversation).where(Conversation.address == JANE)
        ).one()
        assert conversation.step is None  # nothing left to resume: it was sent


def test_a_red_flag_as_a_follow_up_goes_into_the_thread(clinic: Clinic) -> None:
    c = chat(clinic)
    asked_and_answered(clinic, c)
    assert "Call 911 now" in c.say("now I have crushing chest pain")
    assert bodies(only_thread(clinic))[-1] == ("patient", "now I have crushing chest pain")
    assert only_thread(clinic).status == "open"


def test_a_red_flag_elsewhere_opens_no_thread(clinic: Clinic) -> None:
    assert "Call 911 now" in chat(clinic).say("I have crushing chest pain")
    assert threads(clinic) == [] and len(alerts(clinic)) == 1


# -- odd input --------------------------------------------------------------------------

ODD = [
    "",
    " ",
    "?",
    "x" * 10_000,
    "😀🙏🏽👩‍⚕️",
    "<script>alert('x')</script>",
    "{who} {when} {0} %s",
    "question for dr: ",
    "question for Dr " + "Ruiz " * 500,
    "doctor question " * 300,
    "reply to the doctor: " + "é" * 5000,
    "\x01\u202e",  # no NUL: the engine stores raw bodies, and PostgreSQL text refuses NUL
]


@pytest.mark.parametrize("text", ODD)
def test_odd_messages_never_crash(clinic: Clinic, text: str) -> None:
    c = chat(clinic)
    assert c.say(text).strip()
    c.say("can I ask the doctor something")
    answered = c.say(text)
    assert answered.strip()
    for thread in threads(clinic):
        for message in thread.messages:
            assert len(message.body) <= questions.MAX_PATIENT_BODY
