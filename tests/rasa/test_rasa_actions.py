"""The Rasa action server: Rasa's real action calls to /webhook, checked by the
events and responses it answers and by what lands in the database."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bots.app import build_senders
from bots.dispatcher import Dispatcher
from bots.rasa_actions.turn import Runtime, use_runtime
from core.clock import FixedClock
from core.db import Database
from core.models import (
    Alert,
    Appointment,
    ChannelIdentity,
    Patient,
    Practitioner,
)
from core.patients import find_or_create_patient_by_phone
from core.settings import Settings
from core.waitlist import join
from tests.fakes.rasa_server import TOKEN, FakeRasa
from tests.fakes.server import running
from tests.rasa.conftest import ActionServer, Reply, make_server

# Wednesday 15 April 2026, New York (the clock is Tuesday 09:00 there).
WED_10 = datetime(2026, 4, 15, 14, 0, tzinfo=UTC)
EXPECTED_ACTIONS = {
    "action_find_slots",
    "action_book_appointment",
    "action_reschedule_appointment",
    "action_cancel_appointment",
    "action_my_appointments",
    "action_find_pharmacy",
    "action_intake_status",
    "validate_registration_form",
}
MARIA = {"patient_name": "Maria Lopez", "date_of_birth": "1980-12-31"}


def _payload(button: dict[str, str]) -> tuple[str, dict[str, str]]:
    intent, _, entities = button["payload"].lstrip("/").partition("{")
    return intent, json.loads("{" + entities) if entities else {}


def _count(rasa: ActionServer, model: type, *where: object) -> int:
    assert rasa.clinic is not None
    with rasa.clinic.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _appointments(rasa: ActionServer) -> list[Appointment]:
    assert rasa.clinic is not None
    with rasa.clinic.db.transaction() as session:
        rows = list(session.scalars(select(Appointment).order_by(Appointment.id)))
        for a in rows:
            _ = a.patient, a.practitioner
        return rows


def _book(rasa: ActionServer, start: datetime, sender: str = "rasa-conv-1", **slots: str) -> Reply:
    okafor = rasa.clinic.practitioner("Okafor") if rasa.clinic else 0
    return rasa.call(
        "action_book_appointment",
        {"practitioner_id": str(okafor), "start_time": start.isoformat(), **MARIA, **slots},
        text="/choose_time",
        intent="choose_time",
        sender=sender,
    )


# -- the server's surface ------------------------------------------------------------


def test_health_and_the_list_of_actions(rasa: ActionServer) -> None:
    assert rasa.get("/health").json() == {"status": "ok"}
    listed = rasa.get("/actions", token="rasa-test-token")
    assert listed.status_code == 200
    assert {a["name"] for a in listed.json()} == EXPECTED_ACTIONS


def test_unknown_action_gets_rasas_404(rasa: ActionServer) -> None:
    reply = rasa.call("action_order_pizza")
    assert reply.status == 404
    assert reply.body["action_name"] == "action_order_pizza"
    assert "action_order_pizza" in reply.body["error"]


def test_a_call_without_the_domain_gets_449_so_rasa_resends_it(rasa: ActionServer) -> None:
    reply = rasa.call("action_my_appointments", domain=None)
    assert reply.status == 449
    assert reply.body["action_name"] == "action_my_appointments"
    # With the domain, the same call is answered.
    assert rasa.call("action_my_appointments").status == 200


def test_the_token_is_required_on_webhook_and_actions(rasa: ActionServer) -> None:
    assert rasa.get("/actions").status_code == 401
    assert rasa.get("/actions", token="wrong").status_code == 401
    rasa.token = None
    assert rasa.call("action_my_appointments").status == 401
    rasa.token = "wrong"
    assert rasa.call("action_my_appointments").status == 401
    bearer = rasa.post(
        "/webhook",
        json={"next_action": "action_my_appointments", "tracker": {"sender_id": "x"}, "domain": {}},
        headers={"Authorization": "Bearer rasa-test-token"},
    )
    assert bearer.status_code == 200
    assert rasa.get("/health").status_code == 200  # the probe needs no token


def test_malformed_calls_get_400_not_500(rasa: ActionServer) -> None:
    token = {"token": "rasa-test-token"}
    bodies: list[bytes] = [
        b"{not json",
        b"[]",
        b'"text"',
        json.dumps({"tracker": {"sender_id": "x"}}).encode(),
        json.dumps({"next_action": "action_my_appointments"}).encode(),
        json.dumps({"next_action": "action_my_appointments", "tracker": []}).encode(),
        json.dumps(
            {"next_action": "action_my_appointments", "tracker": {"sender_id": "x", "slots": []}}
        ).encode(),
        b"\xff\xfe",
    ]
    for body in bodies:
        answer = rasa.post("/webhook", content=body, params=token)
        assert answer.status_code == 400, body
        assert "error" in answer.json()


# -- booking -------------------------------------------------------------------------


def test_find_slots_offers_free_times_as_buttons(rasa: ActionServer) -> None:
    reply = rasa.call(
        "action_find_slots",
        {"specialty": "skin doctor", "time": "wednesday morning"},
        text="I need a skin doctor wednesday morning",
    )
    assert reply.status == 200
    assert "Dr Ben Okafor" in reply.text
    okafor = rasa.clinic.practitioner("Okafor") if rasa.clinic else 0
    assert reply.slots["practitioner_id"] == str(okafor)
    assert reply.slots["start_time"] is None
    assert 1 <= len(reply.buttons) <= 6
    for button in reply.buttons:
        intent, entities = _payload(button)
        assert intent == "choose_time"
        start = datetime.fromisoformat(entities["start_time"])
        assert WED_10 <= start < WED_10 + timedelta(hours=2)  # 10:00-12:00 New York
        assert entities["practitioner_id"] == str(okafor)
    assert reply.buttons[0]["title"] == "10:00 AM"


def test_duckling_values_are_read_with_their_grain(rasa: ActionServer) -> None:
    okafor = rasa.clinic.practitioner("Okafor") if rasa.clinic else 0
    # A day (Duckling's grain "day"): that day's times.
    day = rasa.call(
        "action_find_slots",
        {"practitioner_id": str(okafor), "time": "2026-04-16T00:00:00.000-04:00"},
        entities=[
            {
                "entity": "time",
                "value": "2026-04-16T00:00:00.000-04:00",
                "extractor": "DucklingEntityExtractor",
                "additional_info": {"grain": "day", "value": "2026-04-16T00:00:00.000-04:00"},
            }
        ],
    )
    starts = [datetime.fromisoformat(_payload(b)[1]["start_time"]) for b in day.buttons]
    assert starts and all(s.date().isoformat() == "2026-04-16" for s in starts)
    # An interval: from/to.
    interval = rasa.call(
        "action_find_slots",
        {
            "practitioner_id": str(okafor),
            "time": {
                "from": "2026-04-15T14:00:00.000-04:00",
                "to": "2026-04-15T16:00:00.000-04:00",
            },
        },
    )
    starts = [datetime.fromisoformat(_payload(b)[1]["start_time"]) for b in interval.buttons]
    assert starts and all(
        WED_10 + timedelta(hours=4) <= s < WED_10 + timedelta(hours=6) for s in starts
    )
    # An exact moment that is free is offered alone.
    exact = rasa.call(
        "action_find_slots",
        {"practitioner_id": str(okafor), "time": "2026-04-15T10:20:00.000-04:00"},
    )
    assert [_payload(b)[1]["start_time"] for b in exact.buttons] == [
        (WED_10 + timedelta(minutes=20)).isoformat()
    ]


def test_a_new_sender_registers_then_books_and_it_is_a_real_appointment(
    rasa: ActionServer,
) -> None:
    okafor = rasa.clinic.practitioner("Okafor") if rasa.clinic else 0
    pick = {"practitioner_id": str(okafor), "start_time": WED_10.isoformat()}
    # Unregistered: the registration form first, nothing booked or held.
    first = rasa.call("action_book_appointment", pick, text="/choose_time", intent="choose_time")
    assert first.followups == ["registration_form"]
    assert "full name and date of birth" in first.text
    assert _count(rasa, Appointment) == 0
    # The form's validation reads the answers as the service's own booking does.
    form = "validate_registration_form"
    asking_name = {"requested_slot": "patient_name"}
    bad = rasa.call(form, asking_name, extracted={"patient_name": "12345"}, text="12345")
    assert bad.slots["patient_name"] is None
    assert "full name" in bad.text
    name = rasa.call(
        form, asking_name, extracted={"patient_name": "  maria   Lopez "}, text="maria Lopez"
    )
    assert name.slots["patient_name"] == "maria Lopez"
    asking_dob = {"requested_slot": "date_of_birth", "patient_name": "maria Lopez"}
    future = rasa.call(
        form, asking_dob, extracted={"date_of_birth": "12/31/2090"}, text="12/31/2090"
    )
    assert future.slots["date_of_birth"] is None
    assert "future" in future.text
    dob = rasa.call(form, asking_dob, extracted={"date_of_birth": "12/31/1980"}, text="12/31/1980")
    assert dob.slots["date_of_birth"] == "1980-12-31"
    # Then the booking.
    booked = rasa.call(
        "action_book_appointment",
        {**pick, "patient_name": "maria Lopez", "date_of_birth": "1980-12-31"},
        text="/choose_time",
        intent="choose_time",
    )
    assert booked.status == 200
    assert booked.text.startswith("Booked: Dr Ben Okafor, Wed 15 Apr, 10:00 AM")
    [appointment] = _appointments(rasa)
    assert appointment.status == "booked"
    assert appointment.start_at == WED_10
    assert appointment.channel == "rasa"
    assert appointment.patient.name == "maria Lopez"
    assert appointment.patient.date_of_birth is not None
    assert booked.slots["appointment_id"] == str(appointment.id)
    assert booked.slots["start_time"] is None
    # Rasa retrying the call, or the button tapped twice: still one appointment.
    again = rasa.call(
        "action_book_appointment",
        {**pick, **MARIA},
        text="/choose_time",
        intent="choose_time",
    )
    assert again.text.startswith("Booked:")
    assert _count(rasa, Appointment) == 1
    mine = rasa.call("action_my_appointments", text="my appointments")
    assert "Dr Ben Okafor, Wed 15 Apr, 10:00 AM" in mine.text


def test_a_taken_time_offers_the_nearest_and_books_nothing(rasa: ActionServer) -> None:
    assert _book(rasa, WED_10, sender="first").text.startswith("Booked:")
    late = _book(rasa, WED_10, sender="second")
    assert "was just taken" in late.text
    assert late.buttons, "the nearest free times are offered"
    assert all(_payload(b)[1]["start_time"] != WED_10.isoformat() for b in late.buttons)
    assert _count(rasa, Appointment) == 1


def test_bookings_through_rasa_get_the_services_reminders(rasa_phone: ActionServer) -> None:
    """Phone-number sender ids (Rasa's Twilio connector): the Rasa booking is
    the SMS patient's, and the scheduler's reminders go to that number."""
    rasa, clinic = rasa_phone, rasa_phone.clinic
    assert clinic is not None
    booked = _book(rasa, WED_10, sender="+1 (555) 555-0140")
    assert booked.text.startswith("Booked:")
    [appointment] = _appointments(rasa)
    assert appointment.channel == "sms"
    clinic.tick()  # plans the reminders
    planned = clinic.notifications(appointment.id)
    assert planned, "reminders planned for the Rasa booking"
    first = min(n.due_at for n in planned)
    clinic.clock.set(first)
    sent = clinic.run()
    assert [(c, a) for c, a, _ in sent] == [("sms", "+15555550140")]
    assert "Okafor" in sent[0][2].text


def test_rasa_only_patients_get_their_reminders_through_rasa(
    server_loop: Any, db: Database, clock: FixedClock
) -> None:
    """Rasa's own sender ids: the reminder goes back through Rasa's
    trigger_intent API (channels/rasa.py) to the same conversation."""
    with running(FakeRasa(), "rasa") as fake_rasa:
        rasa = make_server(server_loop, db, clock, rasa_url=fake_rasa.base_url, rasa_token=TOKEN)
        try:
            booked = _book(rasa, WED_10, sender="webchat-77")
            assert booked.text.startswith("Booked:")
            clinic = rasa.clinic
            assert clinic is not None
            clinic.tick()
            [appointment] = _appointments(rasa)
            clock.set(min(n.due_at for n in clinic.notifications(appointment.id)))
            clinic.tick()
            dispatcher = Dispatcher(db, build_senders(clinic.settings), clock)
            assert asyncio.run(dispatcher.run_once()) == 1
        finally:
            use_runtime(None)
    [message] = fake_rasa.messages("webchat-77")
    assert "Reminder from Riverside Family Clinic" in message
    assert "Dr Ben Okafor" in message


def test_a_cancel_through_rasa_frees_the_slot_for_the_waitlist(rasa: ActionServer) -> None:
    clinic = rasa.clinic
    assert clinic is not None
    booked = _book(rasa, WED_10)
    appointment_id = booked.slots["appointment_id"]
    # Someone else waits for Dr Okafor on Wednesday.
    okafor_id = clinic.practitioner("Okafor")
    with clinic.db.transaction() as session:
        okafor = session.get(Practitioner, okafor_id)
        assert okafor is not None
        # A patient who wrote in by SMS earlier (their identity carries consent).
        waiting = find_or_create_patient_by_phone(
            session, okafor.clinic_id, "+15555550199", "sms", now=clinic.clock.now()
        )
        join(
            session,
            clinic_id=okafor.clinic_id,
            patient_id=waiting.id,
            channel="sms",
            address="+15555550199",
            practitioner=okafor,
            earliest=WED_10 - timedelta(hours=1),
            latest=WED_10 + timedelta(hours=8),
            now=clinic.clock.now(),
        )
    # "cancel" alone asks which and to confirm: nothing is cancelled yet.
    ask = rasa.call("action_cancel_appointment", {"appointment_id": appointment_id}, text="cancel")
    assert "Cancel your visit: Dr Ben Okafor, Wed 15 Apr, 10:00 AM?" in ask.text
    yes, no = ask.buttons
    assert _payload(yes) == ("cancel", {"appointment_id": appointment_id})
    assert no["payload"] == "/deny"
    assert _appointments(rasa)[0].status == "booked"
    # The button, tapped: cancelled.
    done = rasa.call(
        "action_cancel_appointment",
        {"appointment_id": appointment_id},
        text=yes["payload"],
        intent="cancel",
        entities=[{"entity": "appointment_id", "value": appointment_id}],
    )
    assert done.text == "Cancelled: Dr Ben Okafor, Wed 15 Apr, 10:00 AM."
    assert done.slots["appointment_id"] is None
    assert _appointments(rasa)[0].status == "cancelled"
    # The scheduler's next tick offers the freed time to the waitlist.
    sent = clinic.run()
    offers = [(c, a, r.text) for c, a, r in sent if a == "+15555550199"]
    assert offers, sent
    assert "10:00" in offers[0][2]


def test_reschedule_moves_the_visit_and_frees_the_old_time(rasa: ActionServer) -> None:
    booked = _book(rasa, WED_10)
    old_id = booked.slots["appointment_id"]
    offer = rasa.call(
        "action_reschedule_appointment", {"time": "thursday afternoon"}, text="move it to thursday"
    )
    assert "Your visit now: Dr Ben Okafor, Wed 15 Apr, 10:00 AM" in offer.text
    assert offer.buttons
    intent, entities = _payload(offer.buttons[0])
    assert intent == "choose_new_time"
    assert entities["appointment_id"] == old_id
    new_start = datetime.fromisoformat(entities["start_time"])
    assert new_start.date().isoformat() == "2026-04-16"
    moved = rasa.call(
        "action_reschedule_appointment",
        {"appointment_id": old_id, "start_time": entities["start_time"]},
        text=offer.buttons[0]["payload"],
        intent="choose_new_time",
    )
    assert moved.text.startswith("Changed: Dr Ben Okafor, Thu 16 Apr")
    old, new = _appointments(rasa)
    assert (old.status, old.cancel_reason) == ("cancelled", "rescheduled")
    assert new.status == "booked"
    assert new.start_at == new_start
    assert new.rescheduled_from_id == old.id


# -- identity ------------------------------------------------------------------------


def test_phone_sender_ids_are_the_same_patient_as_their_sms(rasa_phone: ActionServer) -> None:
    clinic = rasa_phone.clinic
    assert clinic is not None
    clinic.book("+15555550123", WED_10 + timedelta(hours=1), doctor="Ruiz")
    for sender in ("+15555550123", "(555) 555-0123", "+1 555 555 0123"):
        mine = rasa_phone.call("action_my_appointments", sender=sender)
        assert "Dr Ana Ruiz, Wed 15 Apr, 11:00 AM" in mine.text, sender
    # The WhatsApp connector's ids are that number's WhatsApp identity.
    whatsapp = rasa_phone.call("action_my_appointments", sender="whatsapp:+15555550123")
    assert whatsapp.text == "You have no upcoming appointments."
    assert _count(rasa_phone, ChannelIdentity, ChannelIdentity.channel == "whatsapp") == 0
    # A Rasa id that is no phone number names nobody here.
    stranger = rasa_phone.call("action_book_appointment", {**MARIA}, sender="web-4f1c2a")
    assert "can't tell who you are" in stranger.text
    assert _count(rasa_phone, ChannelIdentity, ChannelIdentity.address == "web-4f1c2a") == 0
    assert _count(rasa_phone, Appointment, Appointment.channel != "sms") == 0


def test_an_unknown_sender_has_nothing_and_leaves_no_row(rasa: ActionServer) -> None:
    for action in ("action_my_appointments", "action_cancel_appointment", "action_intake_status"):
        reply = rasa.call(action, sender="never-seen-before")
        assert reply.text == "You have no upcoming appointments.", action
    reschedule = rasa.call("action_reschedule_appointment", sender="never-seen-before")
    assert reschedule.text == "You have no upcoming appointments."
    assert _count(rasa, ChannelIdentity) == 0
    too_long = rasa.call("action_book_appointment", sender="x" * 65)
    assert "can't tell who you are" in too_long.text


# -- red flags -----------------------------------------------------------------------


def test_red_flags_win_over_booking(rasa: ActionServer) -> None:
    okafor = rasa.clinic.practitioner("Okafor") if rasa.clinic else 0
    slots = {"practitioner_id": str(okafor), "start_time": WED_10.isoformat(), **MARIA}
    text = "book me in, I have crushing chest pain and can't breathe"
    reply = rasa.call("action_book_appointment", slots, text=text)
    assert "This may be an emergency. Call 911" in reply.text
    assert reply.body["events"] == []
    assert _count(rasa, Appointment) == 0
    assert _count(rasa, Alert, Alert.kind == "red_flag", Alert.channel == "rasa") == 1
    # Rasa runs a second action on the same message: the answer again, one alert.
    second = rasa.call("action_find_slots", slots, text=text)
    assert "emergency" in second.text
    assert _count(rasa, Alert) == 1


def test_red_flags_win_inside_the_registration_form(rasa: ActionServer) -> None:
    text = "my chest hurts so much and my left arm is numb"
    reply = rasa.call(
        "validate_registration_form",
        {"requested_slot": "patient_name"},
        extracted={"patient_name": text},
        text=text,
    )
    assert "This may be an emergency" in reply.text
    assert reply.slots == {"patient_name": None}  # the words were no name
    assert _count(rasa, Alert, Alert.kind == "red_flag") == 1


def test_red_flags_are_answered_even_with_the_database_down(
    server_loop: Any, clock: FixedClock
) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=1"
    use_runtime(Runtime(Settings(database_url=url), Database(url), clock))
    try:
        loop, client = server_loop
        reply = ActionServer(loop, client).call(
            "action_book_appointment", text="crushing chest pain, can't breathe"
        )
    finally:
        use_runtime(None)
    assert reply.status == 200
    assert reply.text.startswith("This may be an emergency. Call 911 now")
    assert "alerted" not in reply.text  # no alert could be recorded: no such promise


def test_crisis_words_get_the_crisis_line_in_spanish(rasa: ActionServer) -> None:
    reply = rasa.call(
        "action_my_appointments", {"language": "es"}, text="ya no quiero vivir, quiero matarme"
    )
    assert "988" in reply.text
    assert reply.text.startswith("No tiene")
    assert _count(rasa, Alert, Alert.kind == "red_flag") == 1


# -- bad input -----------------------------------------------------------------------


def test_unparseable_time_gets_a_clarifying_answer_and_no_state(rasa: ActionServer) -> None:
    reply = rasa.call(
        "action_find_slots",
        {"practitioner": "Okafor", "time": "when pigs fly"},
        text="when pigs fly",
    )
    assert reply.status == 200
    assert "didn't catch a day" in reply.text
    assert reply.slots["time"] is None
    assert not reply.buttons
    for value in ("2026-13-45T99:00", {"from": "soon", "to": None}, {"from": None, "to": None}):
        odd = rasa.call("action_find_slots", {"practitioner": "Okafor", "time": value})
        assert odd.status == 200, value
        assert odd.slots["time"] is None, value
    past = rasa.call("action_find_slots", {"practitioner": "Okafor", "time": "2026-04-01T10:00:00"})
    assert "already passed" in past.text
    assert _count(rasa, Appointment) == 0


def test_missing_slots_ask_for_what_is_missing(rasa: ActionServer) -> None:
    who = rasa.call("action_find_slots", text="I want an appointment")
    assert "Who would you like to see?" in who.text
    assert [_payload(b)[0] for b in who.buttons] == ["book"] * 4
    nobody = rasa.call("action_find_slots", {"practitioner": "Dr Zzyzx"}, text="Dr Zzyzx")
    assert "couldn't find a doctor or specialty called 'Dr Zzyzx'" in nobody.text
    assert nobody.slots["practitioner"] is None
    # A booking with no time picked offers the times instead of guessing one.
    no_time = rasa.call("action_book_appointment", {"practitioner": "Okafor", **MARIA})
    assert no_time.buttons and _payload(no_time.buttons[0])[0] == "choose_time"
    bad_time = rasa.call(
        "action_book_appointment", {"practitioner": "Okafor", "start_time": "tomorrow-ish", **MARIA}
    )
    assert "Please pick" in bad_time.text
    assert bad_time.buttons
    assert _count(rasa, Appointment) == 0


def test_what_the_patient_says_now_wins_over_remembered_slots(rasa: ActionServer) -> None:
    clinic = rasa.clinic
    assert clinic is not None
    okafor, ruiz = clinic.practitioner("Okafor"), clinic.practitioner("Ruiz")
    remembered = {"practitioner_id": str(okafor), "practitioner": "Ruiz"}
    now_ruiz = rasa.call(
        "action_find_slots",
        remembered,
        text="actually Dr Ruiz please",
        entities=[{"entity": "practitioner", "value": "Ruiz"}],
    )
    assert now_ruiz.slots["practitioner_id"] == str(ruiz)
    tapped = rasa.call(
        "action_find_slots",
        {"practitioner_id": str(okafor), "practitioner": "Ruiz"},
        text=f'/book{{"practitioner_id": "{okafor}"}}',
        entities=[{"entity": "practitioner_id", "value": str(okafor)}],
    )
    assert tapped.slots["practitioner_id"] == str(okafor)
    # Two visits, and an appointment_id left from an earlier turn: which one?
    first = _book(rasa, WED_10)
    _book(rasa, WED_10 + timedelta(days=1))
    which = rasa.call(
        "action_reschedule_appointment",
        {"appointment_id": first.slots["appointment_id"]},
        text="move my appointment",
    )
    assert "Which appointment do you want to change?" in which.text
    assert len(which.buttons) == 2


def test_a_name_two_practitioners_share_asks_which(rasa: ActionServer) -> None:
    clinic = rasa.clinic
    assert clinic is not None
    ruiz_id = clinic.practitioner("Ruiz")
    with clinic.db.transaction() as session:
        ruiz = session.get(Practitioner, ruiz_id)
        assert ruiz is not None
        session.add(
            Practitioner(
                clinic_id=ruiz.clinic_id,
                name="Dr Ana Ramos",
                specialty="Neurology",
                timezone=ruiz.timezone,
                slot_minutes=30,
                active=True,
            )
        )
    reply = rasa.call(
        "action_book_appointment",
        {"practitioner": "Ana", "start_time": WED_10.isoformat(), **MARIA},
        text="book with Ana",
    )
    assert "A few match that. Which one?" in reply.text
    titles = sorted(b["title"] for b in reply.buttons)
    assert titles == ["Dr Ana Ramos (Neurology)", "Dr Ana Ruiz (General practice)"]
    assert reply.slots["practitioner_id"] is None
    assert _count(rasa, Appointment) == 0
    assert _count(rasa, Patient) == 0


def test_odd_slot_values_never_break_an_action(rasa: ActionServer) -> None:
    odd_values: list[object] = [None, "", 3, 2.0, True, [], ["Okafor"], {"x": 1}, "x" * 5000]
    for value in odd_values:
        for action in ("action_find_slots", "action_book_appointment", "action_find_pharmacy"):
            slots = {
                "practitioner": value,
                "practitioner_id": value,
                "time": value,
                "start_time": value,
                "location": value,
                "latitude": value,
                "longitude": value,
                "appointment_id": value,
            }
            reply = rasa.call(action, slots, text=str(value)[:100])
            assert reply.status == 200, (action, value)
            assert reply.texts, (action, value)


# -- pharmacy, intake, language ------------------------------------------------------


def test_find_pharmacy_by_location_or_town(rasa: ActionServer) -> None:
    near = rasa.call("action_find_pharmacy", {"latitude": 40.7075, "longitude": -74.0021})
    assert near.text.startswith("Pharmacies nearest you:")
    assert "1. Riverside Pharmacy, 0.0 km" in near.text
    assert near.slots["latitude"] is None
    town = rasa.call("action_find_pharmacy", {"location": "10038"}, text="10038")
    assert "Riverside Pharmacy" in town.text
    nowhere = rasa.call("action_find_pharmacy", {"location": "Atlantis"}, text="Atlantis")
    assert "couldn't find" in nowhere.text or "Did you mean" in nowhere.text
    ask = rasa.call("action_find_pharmacy", text="where is a pharmacy")
    assert "Where are you?" in ask.text


def test_intake_status_follows_the_next_visit(rasa: ActionServer) -> None:
    _book(rasa, WED_10)
    status = rasa.call("action_intake_status", text="did I answer the questions?")
    assert "haven't answered" in status.text
    assert "Wed 15 Apr, 10:00 AM" in status.text
    assert status.slots["intake_status"] == "none"


def test_answers_come_in_the_trackers_language(rasa: ActionServer) -> None:
    _book(rasa, WED_10)
    es = rasa.call("action_my_appointments", {"language": "es"}, text="mis citas")
    assert es.text.startswith("Sus próximas citas") or "citas" in es.text
    assert "Okafor" in es.text
    who = rasa.call("action_find_slots", {"language": "es"}, text="quiero una cita")
    assert "¿A quién quiere ver?" in who.text
    assert "Medicina general" in " ".join(b["title"] for b in who.buttons)


def test_an_unreachable_database_is_an_apology_not_a_500(
    server_loop: Any, clock: FixedClock
) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=1"
    use_runtime(Runtime(Settings(database_url=url), Database(url), clock))
    try:
        loop, client = server_loop
        reply = ActionServer(loop, client).call("action_my_appointments", text="my appointments")
    finally:
        use_runtime(None)
    assert reply.status == 200
    assert "can't reach the clinic's booking system" in reply.text
