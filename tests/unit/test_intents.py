"""classify_intent: phrase rules per language, typos, carrier keywords; and understand()."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.nlu import classify_intent, detect_red_flags, understand
from core.nlu.intents import INTENTS

ROWS: list[tuple[str, str, str]] = [
    ("I'd like to book an appointment", "en", "book"),
    ("book an appointment", "en", "book"),
    ("Book", "en", "book"),
    ("i want to make an appointment", "en", "book"),
    ("need to see a doctor", "en", "book"),
    ("can I see the doctor tomorrow", "en", "book"),
    ("I need an appointment", "en", "book"),
    ("appointment please", "en", "book"),
    ("schedule a visit", "en", "book"),
    ("book tomorrow at 3", "en", "book"),
    ("I need a checkup", "en", "book"),
    ("apointment", "en", "book"),
    ("I need an appoinment", "en", "book"),
    ("can i get an appt", "en", "book"),
    ("video consultation please", "en", "book"),
    ("quiero una cita", "es", "book"),
    ("reservar", "es", "book"),
    ("necesito una cita para mañana", "es", "book"),
    ("quiero pedir cita", "es", "book"),
    ("agendar una consulta", "es", "book"),
    ("necesito ver al médico", "es", "book"),
    ("necesito un médico", "es", "book"),
    ("quisiera sacar turno", "es", "book"),
    ("reserbar", "es", "book"),
    ("can I move my appointment", "en", "reschedule"),
    ("change my appointment to friday", "en", "reschedule"),
    ("reschedule", "en", "reschedule"),
    ("I need to reschedule", "en", "reschedule"),
    ("resheduel", "en", "reschedule"),
    ("I need to reschedual", "en", "reschedule"),
    ("can we do a different time", "en", "reschedule"),
    ("postpone please", "en", "reschedule"),
    ("cambiar mi cita", "es", "reschedule"),
    ("reprogramar", "es", "reschedule"),
    ("quiero reprogamar", "es", "reschedule"),
    ("puedo cambiar la hora", "es", "reschedule"),
    ("otro día por favor", "es", "reschedule"),
    ("aplazar la cita", "es", "reschedule"),
    ("cancel my appointment", "en", "cancel"),
    ("please cancel", "en", "cancel"),
    ("cancle my appointment", "en", "cancel"),
    ("I want to cancel tomorrow's visit", "en", "cancel"),
    ("no, I need to cancel", "en", "cancel"),
    ("cancelar la cita", "es", "cancel"),
    ("anular", "es", "cancel"),
    ("quiero cancelar", "es", "cancel"),
    ("canselar mi cita", "es", "cancel"),
    ("cancelar", "es", "cancel"),
    ("yes", "en", "confirm"),
    ("y", "en", "confirm"),
    ("Y", "en", "confirm"),
    ("yeah", "en", "confirm"),
    ("Yes!", "en", "confirm"),
    ("yes please", "en", "confirm"),
    ("confirm", "en", "confirm"),
    ("ok", "en", "confirm"),
    ("OK", "en", "confirm"),
    ("sounds good", "en", "confirm"),
    ("I confirm my appointment", "en", "confirm"),
    ("👍", "en", "confirm"),
    ("sí", "es", "confirm"),
    ("si", "es", "confirm"),
    ("Sí, por favor", "es", "confirm"),
    ("correcto", "es", "confirm"),
    ("vale", "es", "confirm"),
    ("de acuerdo", "es", "confirm"),
    ("confirmo", "es", "confirm"),
    ("no", "en", "deny"),
    ("No.", "en", "deny"),
    ("nope", "en", "deny"),
    ("no thanks", "en", "deny"),
    ("no gracias", "es", "deny"),
    ("no puedo", "es", "deny"),
    ("No", "es", "deny"),
    ("my appointments", "en", "my_appointments"),
    ("when is my appointment", "en", "my_appointments"),
    ("what time is my appt", "en", "my_appointments"),
    ("do I have an appointment tomorrow", "en", "my_appointments"),
    ("show my upcoming appointments", "en", "my_appointments"),
    ("my apointment", "en", "my_appointments"),
    ("mis citas", "es", "my_appointments"),
    ("cuándo es mi cita", "es", "my_appointments"),
    ("cuando es mi cita", "es", "my_appointments"),
    ("¿tengo cita mañana?", "es", "my_appointments"),
    ("question for the doctor", "en", "ask_doctor"),
    ("ask dr ruiz", "en", "ask_doctor"),
    ("I have a question for my doctor", "en", "ask_doctor"),
    ("can I talk to a doctor", "en", "ask_doctor"),
    ("pregunta para el médico", "es", "ask_doctor"),
    ("quiero hablar con la doctora", "es", "ask_doctor"),
    ("tengo una duda para el doctor", "es", "ask_doctor"),
    ("pharmacy near me", "en", "pharmacy"),
    ("where is the nearest pharmacy", "en", "pharmacy"),
    ("farmacy", "en", "pharmacy"),
    ("farmacia cercana", "es", "pharmacy"),
    ("farmasia", "es", "pharmacy"),
    ("¿dónde hay una farmacia?", "es", "pharmacy"),
    ("refill", "en", "refill"),
    ("I need a refill", "en", "refill"),
    ("I need more of my medicine", "en", "refill"),
    ("I ran out of my pills", "en", "refill"),
    ("prescription renewal", "en", "refill"),
    ("perscription refill", "en", "refill"),
    ("refil please", "en", "refill"),
    ("renovar receta", "es", "refill"),
    ("necesito renovar mi receta", "es", "refill"),
    ("se me acabaron las pastillas", "es", "refill"),
    ("help", "en", "help"),
    ("HELP", "en", "help"),
    ("?", "en", "help"),
    ("??", "en", "help"),
    ("I don't understand", "en", "help"),
    ("how does this work", "en", "help"),
    ("ayuda", "es", "help"),
    ("no entiendo", "es", "help"),
    ("¿?", "es", "help"),
    ("menu", "en", "menu"),
    ("main menu", "en", "menu"),
    ("start over", "en", "menu"),
    ("menú", "es", "menu"),
    ("inicio", "es", "menu"),
    ("volver al inicio", "es", "menu"),
    ("STOP", "en", "opt_out"),
    ("stop", "en", "opt_out"),
    ("Stop.", "en", "opt_out"),
    ("STOPALL", "en", "opt_out"),
    ("UNSUBSCRIBE", "en", "opt_out"),
    ("END", "en", "opt_out"),
    ("QUIT", "en", "opt_out"),
    ("CANCEL", "en", "opt_out"),
    ("cancel", "en", "opt_out"),
    ("REVOKE", "en", "opt_out"),
    ("OPTOUT", "en", "opt_out"),
    ("ALTO", "es", "opt_out"),
    ("BAJA", "es", "opt_out"),
    ("PARAR", "es", "opt_out"),
    ("DETENER", "es", "opt_out"),
    ("START", "en", "opt_in"),
    ("unstop", "en", "opt_in"),
    ("ALTA", "es", "opt_in"),
    ("tomorrow at 3", "en", "other"),
    ("mañana a las 4", "es", "other"),
    ("1", "en", "other"),
    ("2", "en", "other"),
    ("", "en", "other"),
    ("hello", "en", "other"),
    ("hola", "es", "other"),
    ("I have cancer", "en", "other"),
    ("stop sending me messages", "en", "other"),
    ("the end of the week", "en", "other"),
    ("is it ok to take ibuprofen with food and water", "en", "other"),
    ("my chest hurts", "en", "other"),
]


@pytest.mark.parametrize(("text", "lang", "intent"), ROWS)
def test_intent(text: str, lang: str, intent: str) -> None:
    assert classify_intent(text, lang) == intent


def test_table_covers_every_intent() -> None:
    assert len(ROWS) >= 80
    assert {intent for _, _, intent in ROWS} == set(INTENTS)


@pytest.mark.parametrize(
    ("text", "wrong_lang", "intent"),
    [
        ("quiero una cita", "en", "book"),
        ("cancelar la cita", "en", "cancel"),
        ("cancel my appointment", "es", "cancel"),
        ("pharmacy near me", "es", "pharmacy"),
    ],
)
def test_other_language_is_tried_second(text: str, wrong_lang: str, intent: str) -> None:
    assert classify_intent(text, wrong_lang) == intent


@pytest.mark.parametrize("text", ["cancel", "CANCEL", "Cancel!", " stop ", "Baja."])
def test_carrier_keywords_only_as_whole_message(text: str) -> None:
    assert classify_intent(text, "en") == "opt_out"
    assert classify_intent(f"please {text.strip()} my appointment", "en") != "opt_out"


@pytest.mark.parametrize("text", ["cancle", "stpo", "unsubscirbe"])
def test_carrier_keywords_are_never_fuzzy(text: str) -> None:
    assert classify_intent(text, "en") != "opt_out"


@pytest.mark.parametrize("text", ["x" * 5000, "\x00", "👍" * 300, "?" * 50, "\ud800"])
def test_never_raises(text: str) -> None:
    assert classify_intent(text, "en") in INTENTS
    assert classify_intent(text, "es") in INTENTS


# --- understand(): the object `telemed understand --json` prints

NOW = datetime(2026, 3, 10, 9, 15, tzinfo=ZoneInfo("America/New_York"))


def test_understand_contract_shape() -> None:
    u = understand("quiero una cita mañana a las 4", now=NOW, tz="America/New_York")
    assert u.to_json() == {
        "text": "quiero una cita mañana a las 4",
        "language": "es",
        "intent": "book",
        "when": {"start": "2026-03-11T16:00:00-04:00", "end": None, "grain": "hour"},
        "emergency": False,
        "red_flags": [],
    }
    json.dumps(u.to_json())


@pytest.mark.parametrize(
    ("text", "lang", "language", "intent", "has_when"),
    [
        ("book tomorrow at 3", None, "en", "book", True),
        ("1", None, "en", "other", False),
        ("ok", None, "en", "confirm", False),
        ("STOP", None, "en", "opt_out", False),
        ("hola", None, "es", "other", False),
        ("tomorrow at 3", "es", "es", "other", True),  # parsed in English as a fallback
        ("cancel my appointment", "es-MX", "es", "cancel", False),
        ("mañana", "fr", "es", "other", True),  # unsupported lang: detected instead
    ],
)
def test_understand(
    text: str, lang: str | None, language: str, intent: str, has_when: bool
) -> None:
    u = understand(text, lang, now=NOW, tz="America/New_York")
    assert (u.language, u.intent, u.when is not None) == (language, intent, has_when)
    assert u.emergency is False and u.red_flags == ()


def test_red_flags_are_reported_by_rule_id() -> None:
    assert detect_red_flags("my chest hurts and I can't breathe", "en") == (
        "breathing",
        "chest_pain",
    )


def test_understand_defaults() -> None:
    u = understand("tomorrow")
    assert u.when is not None and u.when.start.utcoffset() is not None
    with pytest.raises(ValueError):
        understand("tomorrow", tz="Not/AZone")
