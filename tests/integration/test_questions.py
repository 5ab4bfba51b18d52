"""Question threads in the core: when an answer is due, who sees which thread,
what the patient and the doctors are sent, and what is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bots.dispatcher import Dispatcher
from channels.telegram import keyboard_for
from core import questions
from core.clock import FixedClock
from core.db import Database
from core.messages import Reply
from core.models import (
    ChannelIdentity,
    OutboxMessage,
    Patient,
    QuestionThread,
    User,
)
from core.models import Clinic as ClinicRow
from core.patients import find_or_create_patient_by_phone
from core.questions import QuestionError, answer_by
from core.users import create_user, use_cheap_hashing
from tests.clinic import TZ, Clinic, RecordingChannel

use_cheap_hashing()  # argon2 at full cost would dominate these tests

NY = ZoneInfo(TZ)
MADRID = ZoneInfo("Europe/Madrid")
PHONE = "+15555550701"
OTHER = "+15555550702"
PASSWORD = "correct horse battery"


def ny(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


# -- answer_by: working days at the same wall time ------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (ny(2026, 4, 14, 10, 0), 1, ny(2026, 4, 15, 10, 0)),  # Tue -> Wed
        (ny(2026, 4, 17, 16, 0), 1, ny(2026, 4, 20, 16, 0)),  # Fri 16:00 -> Mon 16:00
        (ny(2026, 4, 17, 23, 59), 1, ny(2026, 4, 20, 23, 59)),  # late Friday -> Monday
        (ny(2026, 4, 18, 11, 0), 1, ny(2026, 4, 21, 9, 0)),  # Sat -> from Mon 09:00 -> Tue
        (ny(2026, 4, 19, 22, 0), 1, ny(2026, 4, 21, 9, 0)),  # Sun -> Tue 09:00
        (ny(2026, 4, 18, 11, 0), 0, ny(2026, 4, 20, 9, 0)),  # Sat, 0 days -> Mon 09:00
        (ny(2026, 4, 14, 10, 0), 0, ny(2026, 4, 14, 10, 0)),
        (ny(2026, 4, 16, 8, 30), 3, ny(2026, 4, 21, 8, 30)),  # Thu + 3 -> Tue
        (ny(2026, 4, 13, 12, 0), 5, ny(2026, 4, 20, 12, 0)),  # a week
        # DST starts in New York on Sun 8 Mar 2026: same wall time, an hour less between.
        (ny(2026, 3, 6, 16, 0), 1, ny(2026, 3, 9, 16, 0)),
        # ... and ends on Sun 1 Nov 2026.
        (ny(2026, 10, 30, 16, 0), 1, ny(2026, 11, 2, 16, 0)),
    ],
)
def test_answer_by_counts_working_days(start: datetime, days: int, expected: datetime) -> None:
    due = answer_by(start.astimezone(UTC), days, NY)
    assert due == expected
    assert due.tzinfo is not None and due.utcoffset() == timedelta(0)
    assert due.astimezone(NY).replace(tzinfo=None) == expected.replace(tzinfo=None)


def test_answer_by_across_dst_keeps_the_wall_time_not_the_hours() -> None:
    due = answer_by(ny(2026, 3, 6, 16, 0), 1, NY)
    assert due - ny(2026, 3, 6, 16, 0) == timedelta(hours=71)  # not 72: the clocks moved
    madrid = answer_by(datetime(2026, 3, 27, 15, 0, tzinfo=MADRID), 1, MADRID)
    assert madrid.astimezone(MADRID) == datetime(2026, 3, 30, 15, 0, tzinfo=MADRID)
    assert madrid.astimezone(UTC).hour == 13  # CEST (+2) on Monday, CET (+1) on Friday


def test_answer_by_refuses_a_naive_start_and_negative_days() -> None:
    with pytest.raises(ValueError, match="timezone"):
        answer_by(datetime(2026, 4, 14, 10, 0), 1, NY)
    with pytest.raises(ValueError, match="negative"):
        answer_by(ny(2026, 4, 14, 10, 0), -1, NY)


ZONES = [NY, MADRID, ZoneInfo("Australia/Sydney"), ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata")]


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=1, max_value=20),
    zone=st.sampled_from(ZONES),
)
def test_answer_by_properties(start: datetime, days: int, zone: ZoneInfo) -> None:
    due = answer_by(start, days, zone)
    local_start, local_due = start.astimezone(zone), due.astimezone(zone)
    assert due > start
    assert local_due.weekday() < 5
    weekend = local_start.weekday() >= 5
    expected_wall = (9, 0) if weekend else (local_start.hour, local_start.minute)
    if (
        local_due.utcoffset()
        == datetime.combine(local_due.date(), local_due.time(), zone).utcoffset()
    ):
        assert (local_due.hour, local_due.minute) == expected_wall
    # Exactly ``days`` working days lie after the start day, up to the due day.
    counted, day = 0, local_start.date()
    if weekend:
        day += timedelta(days=7 - day.weekday())
    while day < local_due.date():
        day += timedelta(days=1)
        counted += day.weekday() < 5
    assert counted == days


def test_target_days_is_the_clinic_s_else_the_setting(db: Database, clock: FixedClock) -> None:
    clinic = Clinic.open(db, clock, question_answer_days=2)
    with db.transaction() as session:
        row = session.scalars(select(ClinicRow)).one()
        assert questions.target_days(row, clinic.settings) == 2
        row.question_answer_days = 3
        assert questions.target_days(row, clinic.settings) == 3


# -- a clinic with patients, threads and users -----------------------------------------


@pytest.fixture
def clinic(db: Database, clock: FixedClock) -> Clinic:
    clinic = Clinic.open(db, clock)
    with db.transaction() as session:
        now = clock.now()
        for phone, name in ((PHONE, "Jane Roe"), (OTHER, "Juan Pérez")):
            patient = find_or_create_patient_by_phone(session, 1, phone, "sms", now=now)
            patient.name, patient.date_of_birth = name, date(1975, 3, 4)
        create_user(session, email="admin@clinic.test", role="admin", password=PASSWORD, now=now)
        create_user(session, email="staff@clinic.test", role="staff", password=PASSWORD, now=now)
        create_user(
            session,
            email="ruiz@clinic.test",
            role="doctor",
            password=PASSWORD,
            now=now,
            practitioner="Ruiz",
        )
        create_user(
            session,
            email="okafor@clinic.test",
            role="doctor",
            password=PASSWORD,
            now=now,
            practitioner="Okafor",
        )
    return clinic


def user(session: object, email: str) -> User:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    return session.scalars(select(User).where(User.email == email)).one()


def patient_id(clinic: Clinic, phone: str = PHONE) -> int:
    with clinic.db.transaction() as session:
        return session.scalars(select(Patient.id).where(Patient.phone == phone)).one()


def ask(
    clinic: Clinic,
    body: str = "Is it OK to take ibuprofen with amoxicillin?",
    *,
    doctor: str | None = "Ruiz",
    phone: str = PHONE,
    channel: str = "sms",
    media: list[dict[str, str]] | None = None,
    at: datetime | None = None,
) -> int:
    with clinic.db.transaction() as session:
        thread = questions.open_thread(
            session,
            patient_id=patient_id(clinic, phone),
            practitioner_id=clinic.practitioner(doctor) if doctor else None,
            channel=channel,
            address=phone,
            body=body,
            media=media or [],
            inbound_id=None,
            now=at or clinic.clock.now(),
            settings=clinic.settings,
        )
        return thread.id


def answer(clinic: Clinic, thread_id: int, body: str, *, by: str = "ruiz@clinic.test") -> None:
    with clinic.db.transaction() as session:
        questions.reply(
            session,
            thread_id,
            author=user(session, by),
            body=body,
            now=clinic.clock.now(),
            settings=clinic.settings,
        )


def outbox_rows(clinic: Clinic, channel: str | None = None) -> list[OutboxMessage]:
    with clinic.db.transaction() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if channel is not None:
            query = query.where(OutboxMessage.channel == channel)
        return list(session.scalars(query))


def thread(clinic: Clinic, thread_id: int) -> QuestionThread:
    with clinic.db.transaction() as session:
        found = session.get(QuestionThread, thread_id)
        assert found is not None
        _ = found.messages  # loaded while the session is open
        return found


def link_telegram(clinic: Clinic, email: str, chat_id: str) -> None:
    with clinic.db.transaction() as session:
        user(session, email).telegram_chat_id = chat_id


# -- opening, answering, following up ---------------------------------------------------


def test_a_question_is_due_one_working_day_later_and_the_answer_goes_back(
    clinic: Clinic,
) -> None:
    thread_id = ask(clinic)  # Tue 14 Apr, 9:00 AM in New York
    opened = thread(clinic, thread_id)
    assert opened.status == "open"
    assert opened.due_at == ny(2026, 4, 15, 9, 0)
    [first] = opened.messages
    assert (first.author, first.body) == ("patient", "Is it OK to take ibuprofen with amoxicillin?")

    clinic.clock.advance(timedelta(hours=3))
    answer(clinic, thread_id, "Yes, that is fine. Take it with food.")
    answered = thread(clinic, thread_id)
    assert answered.status == "answered"
    assert answered.answered_at == clinic.clock.now()
    assert [(m.author, m.user_id is not None) for m in answered.messages] == [
        ("patient", False),
        ("doctor", True),
    ]
    [row] = outbox_rows(clinic)
    assert (row.channel, row.address, row.purpose) == ("sms", PHONE, "clinical")
    text = row.payload["text"]
    assert text.startswith("Dr Ana Ruiz answered your question:\nYes, that is fine.")
    assert "just write here" in text


def test_the_answer_is_in_the_patient_s_language_and_from_staff_is_the_care_team(
    clinic: Clinic,
) -> None:
    with clinic.db.transaction() as session:
        session.scalars(select(Patient).where(Patient.phone == OTHER)).one().language = "es"
    thread_id = ask(clinic, "¿Puedo tomar ibuprofeno?", phone=OTHER, doctor=None)
    answer(clinic, thread_id, "Sí, con comida.", by="staff@clinic.test")
    [row] = outbox_rows(clinic)
    assert row.payload["text"].startswith(
        "El equipo de Riverside Family Clinic respondió a su pregunta:\nSí, con comida."
    )
    assert thread(clinic, thread_id).messages[-1].author == "staff"


def test_the_answer_goes_to_the_channel_the_patient_wrote_from_last(clinic: Clinic) -> None:
    thread_id = ask(clinic)
    with clinic.db.transaction() as session:
        session.add(
            ChannelIdentity(
                channel="whatsapp",
                address=PHONE,
                patient_id=patient_id(clinic),
                created_at=clinic.clock.now(),
            )
        )
        found = session.get(QuestionThread, thread_id)
        assert found is not None
        questions.add_patient_message(
            session,
            found,
            body="Also: and paracetamol?",
            media=[],
            inbound_id=None,
            channel="whatsapp",
            address=PHONE,
            now=clinic.clock.now(),
        )
    answer(clinic, thread_id, "Both are fine.")
    [row] = outbox_rows(clinic)
    assert (row.channel, row.address) == ("whatsapp", PHONE)


def test_an_opted_out_address_gets_the_answer_elsewhere_or_not_at_all(clinic: Clinic) -> None:
    thread_id = ask(clinic)
    with clinic.db.transaction() as session:
        sms = session.scalars(select(ChannelIdentity).where(ChannelIdentity.address == PHONE)).one()
        sms.opted_out_at = clinic.clock.now()
    answer(clinic, thread_id, "Fine.")
    clinic.dispatch()
    [row] = outbox_rows(clinic)
    assert (row.status, row.error) == ("suppressed", "no consent")  # nowhere else to write
    assert clinic.channels["sms"].calls == []

    # With a Telegram identity still subscribed, the next answer goes there.
    with clinic.db.transaction() as session:
        session.add(
            ChannelIdentity(
                channel="telegram",
                address="424242",
                patient_id=patient_id(clinic),
                created_at=clinic.clock.now(),
                last_inbound_at=clinic.clock.now(),
            )
        )
    second = ask(clinic, "Another one")
    answer(clinic, second, "Also fine.")
    clinic.dispatch()
    assert clinic.channels["telegram"].texts("424242") == [
        "Dr Ana Ruiz answered your question:\nAlso fine.\n\n"
        "To reply, just write here. For anything else, write MENU."
    ]


class TemplateChannel(RecordingChannel):
    """A WhatsApp sender that also records approved-template sends."""

    def __init__(self) -> None:
        super().__init__("whatsapp")
        self.templates: list[tuple[str, str, dict[str, str]]] = []

    async def send_template(self, address: str, sid: str, variables: dict[str, str]) -> str:
        self.templates.append((address, sid, variables))
        return f"template-{len(self.templates)}"


def test_a_whatsapp_answer_after_24_hours_goes_as_the_template(clinic: Clinic) -> None:
    with clinic.db.transaction() as session:
        session.add(
            ChannelIdentity(
                channel="whatsapp",
                address=OTHER,
                patient_id=patient_id(clinic, OTHER),
                created_at=clinic.clock.now(),
                last_inbound_at=clinic.clock.now(),
            )
        )
    early = ask(clinic, "Quick one", phone=OTHER, channel="whatsapp")
    late = ask(clinic, "Slow one", phone=OTHER, channel="whatsapp")
    whatsapp = TemplateChannel()
    template = "HX" + "1" * 32
    dispatcher = Dispatcher(
        clinic.db, {"whatsapp": whatsapp}, clinic.clock, whatsapp_template_sid=template
    )

    clinic.clock.advance(timedelta(hours=2))
    answer(clinic, early, "Within the window.")
    asyncio.run(dispatcher.run_once())
    assert [r.text.splitlines()[1] for _a, r in whatsapp.calls] == ["Within the window."]
    assert whatsapp.templates == []

    clinic.clock.advance(timedelta(hours=30))  # the patient has not written since
    answer(clinic, late, "Outside the window.")
    asyncio.run(dispatcher.run_once())
    [(address, sid, variables)] = whatsapp.templates
    assert (address, sid) == (OTHER, template)
    assert "Dr Ana Ruiz answered your question:\nOutside the window." in variables["1"]
    assert len(whatsapp.calls) == 1  # no free text outside the window
    sent = [r for r in outbox_rows(clinic) if r.channel == "whatsapp"]
    assert [(r.status, r.sent_via) for r in sent] == [("sent", None), ("sent", "template")]


def test_a_follow_up_reopens_an_answered_thread_with_a_new_target(clinic: Clinic) -> None:
    thread_id = ask(clinic)
    answer(clinic, thread_id, "Yes.")
    clinic.clock.set(ny(2026, 4, 17, 15, 0))  # Friday afternoon
    with clinic.db.transaction() as session:
        found = session.get(QuestionThread, thread_id)
        assert found is not None
        message = questions.add_patient_message(
            session,
            found,
            body="Thanks. And for how long?",
            media=[{"url": "https://example.test/p.jpg", "content_type": "image/jpeg"}],
            inbound_id=None,
            channel="sms",
            address=PHONE,
            now=clinic.clock.now(),
            settings=clinic.settings,
        )
        assert message.author == "patient"
    reopened = thread(clinic, thread_id)
    assert reopened.status == "open"
    assert reopened.due_at == ny(2026, 4, 20, 15, 0)  # Monday, same time
    assert reopened.messages[-1].media == [
        {"url": "https://example.test/p.jpg", "content_type": "image/jpeg"}
    ]
    # An open thread keeps the time the patient was first given.
    clinic.clock.advance(timedelta(hours=1))
    with clinic.db.transaction() as session:
        found = session.get(QuestionThread, thread_id)
        assert found is not None
        questions.add_patient_message(
            session,
            found,
            body="Sorry, one more",
            media=[],
            inbound_id=None,
            channel="sms",
            address=PHONE,
            now=clinic.clock.now(),
        )
    assert thread(clinic, thread_id).due_at == ny(2026, 4, 20, 15, 0)


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * (questions.MAX_BODY + 1), "longer than 4000"),
    ],
)
def test_a_bad_answer_is_refused_with_the_reason(clinic: Clinic, body: str, reason: str) -> None:
    thread_id = ask(clinic)
    with pytest.raises(QuestionError, match=reason):
        answer(clinic, thread_id, body)
    assert thread(clinic, thread_id).status == "open"
    assert outbox_rows(clinic, "sms") == []


def test_an_answer_of_exactly_the_limit_is_taken(clinic: Clinic) -> None:
    thread_id = ask(clinic)
    answer(clinic, thread_id, "y" * questions.MAX_BODY)
    assert thread(clinic, thread_id).status == "answered"


def test_closed_unknown_and_other_doctors_threads_are_refused(clinic: Clinic) -> None:
    thread_id = ask(clinic)
    with pytest.raises(QuestionError, match="not in your queue"):
        answer(clinic, thread_id, "Mine now", by="okafor@clinic.test")
    with pytest.raises(QuestionError, match="no question thread #999"):
        answer(clinic, 999, "Hello")
    with clinic.db.transaction() as session, pytest.raises(QuestionError, match="#999"):
        questions.close(session, 999, now=clinic.clock.now())
    with clinic.db.transaction() as session:
        questions.close(session, thread_id, now=clinic.clock.now())
    assert thread(clinic, thread_id).status == "closed"
    with pytest.raises(QuestionError, match="closed"):
        answer(clinic, thread_id, "Too late")
    with clinic.db.transaction() as session:
        found = session.get(QuestionThread, thread_id)
        assert found is not None
        with pytest.raises(QuestionError, match="closed"):
            questions.add_patient_message(
                session,
                found,
                body="hello?",
                media=[],
                inbound_id=None,
                channel="sms",
                address=PHONE,
                now=clinic.clock.now(),
            )
    with clinic.db.transaction() as session, pytest.raises(QuestionError, match="empty"):
        questions.open_thread(
            session,
            patient_id=patient_id(clinic),
            practitioner_id=None,
            channel="sms",
            address=PHONE,
            body="  ",
            media=[],
            inbound_id=None,
            now=clinic.clock.now(),
            settings=clinic.settings,
        )


# -- the inbox --------------------------------------------------------------------------


def test_the_inbox_puts_late_threads_first_and_scopes_doctors(clinic: Clinic) -> None:
    start = clinic.clock.now()
    old_ruiz = ask(clinic, "old one", at=start - timedelta(days=7))  # due 6 days ago
    triage = ask(clinic, "for anyone", doctor=None, at=start - timedelta(days=6))
    new_ruiz = ask(clinic, "new one", phone=OTHER)
    okafor = ask(clinic, "skin", doctor="Okafor", at=start - timedelta(hours=1))
    answered = ask(clinic, "answered one", at=start - timedelta(days=8))
    answer(clinic, answered, "done")

    now = clinic.clock.now()
    with clinic.db.transaction() as session:
        staff = questions.inbox(session, actor=user(session, "staff@clinic.test"), now=now)
        assert [r.thread.id for r in staff] == [old_ruiz, triage, okafor, new_ruiz]
        assert [r.late for r in staff] == [True, True, False, False]
        assert staff[0].thread.patient.name == "Jane Roe"  # loaded for the page

        ruiz = questions.inbox(session, actor=user(session, "ruiz@clinic.test"), now=now)
        assert [r.thread.id for r in ruiz] == [old_ruiz, new_ruiz]
        okafor_rows = questions.inbox(session, actor=user(session, "okafor@clinic.test"), now=now)
        assert [r.thread.id for r in okafor_rows] == [okafor]

        everything = questions.inbox(
            session, actor=user(session, "admin@clinic.test"), status=None, now=now
        )
        assert {r.thread.id for r in everything} == {old_ruiz, triage, new_ruiz, okafor, answered}
        done = questions.inbox(
            session, actor=user(session, "ruiz@clinic.test"), status="answered", now=now
        )
        [row] = done
        assert (row.thread.id, row.last_author, row.preview, row.late) == (
            answered,
            "doctor",
            "done",
            False,
        )
        assert (
            questions.inbox(session, actor=user(session, "staff@clinic.test"), now=now, limit=1)[
                0
            ].thread.id
            == old_ruiz
        )

        # A doctor account not linked to a practitioner sees nothing.
        loose = user(session, "okafor@clinic.test")
        loose.practitioner_id = None
        assert questions.inbox(session, actor=loose, now=now) == []


def test_is_late_only_for_open_threads_past_due(clinic: Clinic) -> None:
    thread_id = ask(clinic)
    found = thread(clinic, thread_id)
    assert not questions.is_late(found, found.due_at)
    assert questions.is_late(found, found.due_at + timedelta(seconds=1))
    found.status = "answered"
    assert not questions.is_late(found, found.due_at + timedelta(days=1))


def test_the_preview_is_one_short_line_with_photo_marks(clinic: Clinic) -> None:
    long = "word " * 100
    thread_id = ask(
        clinic,
        "line one\nline two " + long,
        media=[{"url": "https://x.test/1", "content_type": "image/png"}],
    )
    photo_only = ask(
        clinic,
        "",
        media=[{"url": "https://x.test/2", "content_type": "image/jpeg"}],
        doctor="Chen",
    )
    with clinic.db.transaction() as session:
        rows = {
            r.thread.id: r
            for r in questions.inbox(
                session, actor=user(session, "staff@clinic.test"), now=clinic.clock.now()
            )
        }
    preview = rows[thread_id].preview
    assert preview.startswith("line one line two word") and preview.endswith("… [photo]")
    assert "\n" not in preview and len(preview) <= questions.PREVIEW + len(" [photo]")
    assert rows[photo_only].preview == "[photo]"


def test_the_active_thread_is_open_or_answered_this_week(clinic: Clinic) -> None:
    pid = patient_id(clinic)
    thread_id = ask(clinic)
    with clinic.db.transaction() as session:
        found = questions.active_thread(session, patient_id=pid, now=clinic.clock.now())
        assert found is not None and found.id == thread_id
    answer(clinic, thread_id, "Yes.")
    with clinic.db.transaction() as session:
        later = clinic.clock.now() + timedelta(days=6)
        found = questions.active_thread(session, patient_id=pid, now=later)
        assert found is not None and found.id == thread_id
        assert (
            questions.active_thread(session, patient_id=pid, now=later + timedelta(days=2)) is None
        )
        questions.close(session, thread_id, now=clinic.clock.now())
    with clinic.db.transaction() as session:
        assert questions.active_thread(session, patient_id=pid, now=clinic.clock.now()) is None


# -- telling the doctors ----------------------------------------------------------------


def test_linked_doctors_get_the_question_with_reply_buttons(clinic: Clinic) -> None:
    link_telegram(clinic, "ruiz@clinic.test", "1001")
    link_telegram(clinic, "okafor@clinic.test", "1002")
    link_telegram(clinic, "staff@clinic.test", "1003")
    thread_id = ask(
        clinic,
        "Is this rash normal?",
        media=[{"url": "https://api.twilio.test/Media/ME1", "content_type": "image/jpeg"}],
    )
    [row] = outbox_rows(clinic, questions.DOCTOR_CHANNEL)
    assert (row.address, row.purpose) == ("1001", "alert")
    reply = Reply.from_json(row.payload)
    assert (
        reply.text
        == f"New question from Jane Roe (thread #{thread_id}): Is this rash normal? [photo]"
    )
    assert [(o.label, o.value) for o in reply.options] == [
        ("Reply", f"reply:{thread_id}"),
        ("Mark answered", f"close:{thread_id}"),
    ]
    # The Telegram channel renders them as buttons whose callback data is the value.
    markup = keyboard_for(reply.options)
    assert markup is not None
    assert [b.callback_data for line in markup.inline_keyboard for b in line] == [
        f"reply:{thread_id}",
        f"close:{thread_id}",
    ]

    # The triage queue goes to staff and admins with a chat, not to doctors.
    link_telegram(clinic, "admin@clinic.test", "1004")
    ask(clinic, "Anyone?", doctor=None)
    triage_rows = outbox_rows(clinic, questions.DOCTOR_CHANNEL)[1:]
    assert sorted(r.address for r in triage_rows) == ["1003", "1004"]


def test_doctor_notes_skip_inactive_and_unlinked_users_and_count_rows(clinic: Clinic) -> None:
    thread_id = ask(clinic)
    assert outbox_rows(clinic, questions.DOCTOR_CHANNEL) == []  # nobody linked yet
    link_telegram(clinic, "ruiz@clinic.test", "1001")
    with clinic.db.transaction() as session:
        second = create_user(
            session,
            email="ruiz2@clinic.test",
            role="doctor",
            password=PASSWORD,
            now=clinic.clock.now(),
            practitioner="Ruiz",
        )
        second.telegram_chat_id, second.active = "1005", False
    with clinic.db.transaction() as session:
        found = session.get(QuestionThread, thread_id)
        assert found is not None
        message = questions.add_patient_message(
            session,
            found,
            body="x" * 5000,
            media=[],
            inbound_id=None,
            channel="sms",
            address=PHONE,
            now=clinic.clock.now(),
        )
        assert len(message.body) == 5000  # the patient's words are kept whole
        assert questions.notify_doctors(session, found, message, clinic.clock.now()) == 1
    rows = outbox_rows(clinic, questions.DOCTOR_CHANNEL)
    assert [r.address for r in rows] == ["1001", "1001"]
    text = rows[0].payload["text"]
    assert text.startswith(f"New message from Jane Roe (thread #{thread_id}): xxx")
    assert len(text) < 3100 and text.endswith("…")  # within a Telegram message


def test_the_dispatcher_sends_doctor_notes_whatever_the_patient_consented(
    clinic: Clinic,
) -> None:
    link_telegram(clinic, "ruiz@clinic.test", "1001")
    ask(clinic)
    doctor_bot = RecordingChannel(questions.DOCTOR_CHANNEL)
    asyncio.run(
        Dispatcher(clinic.db, {questions.DOCTOR_CHANNEL: doctor_bot}, clinic.clock).run_once()
    )
    [(address, reply)] = doctor_bot.calls
    assert address == "1001" and reply.text.startswith("New question from Jane Roe")
    assert [r.status for r in outbox_rows(clinic, questions.DOCTOR_CHANNEL)] == ["sent"]


# -- odd input never breaks it ----------------------------------------------------------

ODD = [
    "",
    " ",
    "x" * 10_000,
    "😀🙏🏽👩‍⚕️" * 50,
    "<script>alert('x')</script><b>bold</b>",
    "{body} {who} {0} %s %(x)s",
    "\x00\x01 control \u202e reversed",
    "line\r\nbreaks\n\n\n",
]


@pytest.mark.parametrize("body", ODD)
def test_odd_answers_are_taken_or_refused_never_crash(clinic: Clinic, body: str) -> None:
    thread_id = ask(clinic)
    try:
        answer(clinic, thread_id, body)
    except QuestionError as exc:
        assert str(exc)
        return
    [row] = outbox_rows(clinic, "sms")
    assert body.replace("\x00", "").strip() in row.payload["text"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.text(max_size=300), reply_body=st.text(max_size=300))
def test_any_text_in_and_out_never_crashes(clinic: Clinic, body: str, reply_body: str) -> None:
    try:
        thread_id = ask(clinic, body)
    except QuestionError:
        assert not body.replace("\x00", "").strip()
        return
    try:
        answer(clinic, thread_id, reply_body)
    except QuestionError:
        assert not reply_body.replace("\x00", "").strip()
