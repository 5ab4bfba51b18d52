"""The red-flag safety net: a table of patient-style messages, English and Spanish.

Every emergency row must fire its rule; at most 5% of the non-emergency rows
(near-misses, negations, everyday complaints, booking chatter) may fire
anything. Rows are written the way patients text: typos, no punctuation,
capitals, emoji, run-on sentences, both languages mixed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.nlu import (
    RedFlag,
    detect_language,
    detect_red_flag_details,
    detect_red_flags,
    understand,
)
from core.nlu.redflags import KINDS, rules

# (message, rule that must fire)
EMERGENCIES: list[tuple[str, str]] = [
    # chest pain / heart attack (CDC, AHA)
    ("my chest hurts and I cant breathe", "chest_pain"),
    ("Chest pain and sweating really bad", "chest_pain"),
    ("i have crushing chest pain", "chest_pain"),
    ("feels like an elephant sitting on my chest", "chest_pain"),
    ("pressure in my chest going down my left arm", "chest_pain"),
    ("CHEST PAIN", "chest_pain"),
    ("chset pain since this morning and im all sweaty", "chest_pain"),
    ("tightness in my chest, short of breath", "chest_pain"),
    ("I think I'm having a heart attack", "chest_pain"),
    ("my husband's chest feels heavy and he's clammy", "chest_pain"),
    ("left arm hurts and I'm sweating a lot, feel dizzy", "chest_pain"),
    ("no fever but my chest is really tight", "chest_pain"),
    ("me duele el pecho y no puedo respirar", "chest_pain"),
    ("dolor de pecho muy fuerte 😰", "chest_pain"),
    ("tengo un dolor fuerte en el pecho que me baja al brazo", "chest_pain"),
    ("siento presion en el pecho y estoy sudando", "chest_pain"),
    ("creo que mi papa esta teniendo un infarto", "chest_pain"),
    ("Me aprieta el pecho", "chest_pain"),
    ("dolor en el pexo desde hace una hora", "chest_pain"),
    # stroke (NIH / CDC BE-FAST)
    ("my moms face is drooping on one side", "stroke"),
    ("his face looks droopy and he's talking funny", "stroke"),
    ("I think my dad is having a stroke", "stroke"),
    ("sudden numbness on my left side", "stroke"),
    ("cant lift my right arm and my speech is slurred", "stroke"),
    ("she's slurring her words all of a sudden", "stroke"),
    ("worst headache of my life came on out of nowhere", "stroke"),
    ("sudden severe headache and I cant see out of my left eye", "stroke"),
    ("her mouth is crooked and she cant talk", "stroke"),
    ("suddenly lost vision in one eye", "stroke"),
    ("my grandpa suddenly got confused and cant walk straight", "stroke"),
    ("mi mama tiene la cara caida de un lado", "stroke"),
    ("creo que es un derrame cerebral", "stroke"),
    ("mi esposo habla raro y no puede mover el brazo", "stroke"),
    ("de repente un dolor de cabeza horrible, el peor de mi vida", "stroke"),
    ("se le durmio un lado del cuerpo", "stroke"),
    ("tiene la boca torcida", "stroke"),
    ("Stroke symptoms please help", "stroke"),
    # breathing
    ("I can't breathe", "breathing"),
    ("cnt breath help", "breathing"),
    ("my son is gasping for air", "breathing"),
    ("having a lot of trouble breathing", "breathing"),
    ("it's really hard to breathe right now", "breathing"),
    ("her lips are turning blue", "breathing"),
    ("severe shortness of breath", "breathing"),
    ("short of breath and its getting worse", "breathing"),
    ("asthma attack and my inhaler is not helping", "breathing"),
    ("my baby is choking", "breathing"),
    ("NO PUEDO RESPIRAR", "breathing"),
    ("me estoy ahogando", "breathing"),
    ("mi hijo tiene mucha dificultad para respirar", "breathing"),
    ("me cuesta mucho respirar", "breathing"),
    ("casi no puedo respirar", "breathing"),
    ("ni siquiera puedo respirar", "breathing"),
    ("tiene los labios morados", "breathing"),
    # suicide / self-harm (NIMH)
    ("I want to kill myself", "suicide"),
    ("I feel like ending it all", "suicide"),
    ("i dont want to be here anymore", "suicide"),
    ("I'm a burden to everyone", "suicide"),
    ("quiero terminar con todo", "suicide"),
    ("i just want to die", "suicide"),
    ("thinking about ending my life", "suicide"),
    ("everyone would be better off without me", "suicide"),
    ("I dont want to live anymore", "suicide"),
    ("im suicidal", "suicide"),
    ("kms", "suicide"),
    ("no reason to live", "suicide"),
    ("I can't go on like this", "suicide"),
    ("quiero suicidarme", "suicide"),
    ("ya no quiero vivir", "suicide"),
    ("me quiero morir", "suicide"),
    ("estoy pensando en quitarme la vida", "suicide"),
    ("quiero acabar con todo", "suicide"),
    ("I've been cutting myself again", "self_harm"),
    ("I want to hurt myself", "self_harm"),
    ("self harm urges are back", "self_harm"),
    ("me estoy cortando las venas", "self_harm"),
    ("quiero hacerme daño", "self_harm"),
    # bleeding
    ("I cut my hand and it won't stop bleeding", "bleeding"),
    ("bleeding really heavily from a cut on my leg", "bleeding"),
    ("there is a lot of blood", "bleeding"),
    ("he's throwing up blood", "bleeding"),
    ("coughing up blood", "bleeding"),
    ("nosebleed for an hour wont stop", "bleeding"),
    ("blood everywhere please help", "bleeding"),
    ("bleding alot from my head", "bleeding"),
    ("no para de sangrar", "bleeding"),
    ("esta sangrando mucho de la herida", "bleeding"),
    ("estoy vomitando sangre", "bleeding"),
    ("tengo una hemorragia", "bleeding"),
    # anaphylaxis
    ("my throat is closing up after eating peanuts", "anaphylaxis"),
    ("allergic reaction my lips are swelling", "anaphylaxis"),
    ("got stung by a bee and now my face is swollen and I'm wheezing", "anaphylaxis"),
    ("my tongue is swollen", "anaphylaxis"),
    ("we just used his epipen", "anaphylaxis"),
    ("hives all over and hard to breathe", "anaphylaxis"),
    ("se me esta cerrando la garganta", "anaphylaxis"),
    ("reaccion alergica, tengo los labios hinchados", "anaphylaxis"),
    ("tengo la lengua hinchada", "anaphylaxis"),
    # seizure
    ("my son is having a seizure", "seizure"),
    ("she had a siezure and is still shaking", "seizure"),
    ("convulsing right now", "seizure"),
    ("my daughter is having a fit", "seizure"),
    ("mi hijo esta convulsionando", "seizure"),
    ("le dio una convulsion", "seizure"),
    ("tuvo un ataque epileptico", "seizure"),
    # unconscious
    ("my dad passed out and wont wake up", "unconscious"),
    ("she's unconscious", "unconscious"),
    ("my husband collapsed", "unconscious"),
    ("I can't wake him up", "unconscious"),
    ("he's not breathing", "unconscious"),
    ("she fainted at work", "unconscious"),
    ("unresponsive", "unconscious"),
    ("mi abuela se desmayo", "unconscious"),
    ("mi papa no reacciona", "unconscious"),
    ("perdio el conocimiento", "unconscious"),
    ("el bebe no respira", "unconscious"),
    # overdose / poisoning
    ("I took too many pills", "overdose"),
    ("my toddler drank bleach", "overdose"),
    ("he overdosed", "overdose"),
    ("se tomo todas las pastillas", "overdose"),
    ("mi hijo se trago cloro", "overdose"),
    # infant fever (AAP)
    ("my baby has a fever of 39", "infant_fever"),
    ("my 2 month old has a temp of 100.8", "infant_fever"),
    ("newborn feels hot temperature 38.2", "infant_fever"),
    ("6 week old with fever", "infant_fever"),
    ("bby has a fevr", "infant_fever"),
    ("mi bebe tiene fiebre", "infant_fever"),
    ("mi bebé de 2 meses tiene 38.5 de temperatura", "infant_fever"),
    ("recien nacido con calentura", "infant_fever"),
    # pregnancy
    ("I'm 12 weeks pregnant and bleeding", "pregnancy_bleeding"),
    ("pregnant and spotting a lot", "pregnancy_bleeding"),
    ("im pregnant and i have really bad cramps", "pregnancy_pain"),
    ("30 weeks pregnant severe pain in my stomach", "pregnancy_pain"),
    ("estoy embarazada y estoy sangrando", "pregnancy_bleeding"),
    ("embarasada con sangrado", "pregnancy_bleeding"),
    ("estoy embarazada y me duele mucho la panza", "pregnancy_pain"),
    ("tengo 8 meses de embarazo y un dolor muy fuerte", "pregnancy_pain"),
    # second batch, written before tuning (58/63 caught, 0/51 flagged before the fixes)
    ("pain in my chest that spreads to my jaw", "chest_pain"),
    ("Chest feels tight like someone is squeezing it", "chest_pain"),
    ("my wife says her chest hurts and she feels like throwing up", "chest_pain"),
    ("I have chest pains", "chest_pain"),
    ("heart pain", "chest_pain"),
    ("dolor en el pecho y brazo izquierdo", "chest_pain"),
    ("Tengo dolor de pecho", "chest_pain"),
    ("me duele el corazon", "chest_pain"),
    ("one side of his face is drooping", "stroke"),
    ("my smile is crooked all of a sudden", "stroke"),
    ("grandma cant move her left arm", "stroke"),
    ("his words are coming out jumbled", "stroke"),
    ("my mom is slurring", "stroke"),
    ("thunderclap headache", "stroke"),
    ("se le cayo la cara de un lado", "stroke"),
    ("no puede hablar bien de repente", "stroke"),
    ("perdi la vista de un ojo de repente", "stroke"),
    ("i cant catch my breath", "breathing"),
    ("struggling to breathe", "breathing"),
    ("breathing is really difficult", "breathing"),
    ("hes turning blue", "breathing"),
    ("me falta mucho el aire", "breathing"),
    ("no me entra el aire", "breathing"),
    ("le cuesta respirar al niño", "breathing"),
    ("I'm going to end it all tonight", "suicide"),
    ("I wish I was dead", "suicide"),
    ("I have a plan to kill myself", "suicide"),
    ("thinking of suicide", "suicide"),
    ("don't see any point in living", "suicide"),
    ("no le encuentro sentido a la vida, quiero morirme", "suicide"),
    ("pienso en matarme", "suicide"),
    ("voy a quitarme la vida", "suicide"),
    ("me he estado cortando", "self_harm"),
    ("i burn myself with cigarettes", "self_harm"),
    ("the wound is gushing blood", "bleeding"),
    ("bleeding through the bandage nonstop", "bleeding"),
    ("I'm vomiting blood", "bleeding"),
    ("sangra muchisimo", "bleeding"),
    ("sale mucha sangre de la herida", "bleeding"),
    ("my throat feels tight and my lips are swollen after the shrimp", "anaphylaxis"),
    ("anaphylactic reaction", "anaphylaxis"),
    ("me pico una abeja y se me hincha la cara y no puedo respirar", "anaphylaxis"),
    ("he's seizing", "seizure"),
    ("my daughter had a seizure just now", "seizure"),
    ("grand mal seizure", "seizure"),
    ("esta temblando sin parar y no responde", "seizure"),
    ("he blacked out", "unconscious"),
    ("my mom collapsed on the floor", "unconscious"),
    ("she isn't responding", "unconscious"),
    ("mi mama esta inconsciente", "unconscious"),
    ("no puedo despertarlo", "unconscious"),
    ("my 3 week old has 38.3", "infant_fever"),
    ("baby is burning up", "infant_fever"),
    ("my infant has a high temperature", "infant_fever"),
    ("mi bebita tiene calentura", "infant_fever"),
    ("tengo 10 semanas de embarazo y estoy manchando", "pregnancy_bleeding"),
    ("estoy embarazada y tengo sangrado", "pregnancy_bleeding"),
    ("pregnant, bleeding heavily", "pregnancy_bleeding"),
    ("I'm pregnant and have severe pain in my belly", "pregnancy_pain"),
    ("embarazada con dolores muy fuertes", "pregnancy_pain"),
    ("my son swallowed a bunch of pills", "overdose"),
    ("i took a whole bottle of tylenol", "overdose"),
    ("sobredosis", "overdose"),
    # negation traps: "never ... like this" is new, "not sure"/"no se" is doubt, "no," answers
    ("never had chest pain like this before", "chest_pain"),
    ("nunca habia tenido un dolor de pecho asi", "chest_pain"),
    ("my friend said she wants to kill herself", "suicide"),
    ("he says he wants to die", "suicide"),
    ("chestpain n sweaty", "chest_pain"),
    ("I OD'd on my meds", "overdose"),
    ("no, I have chest pain", "chest_pain"),
    ("not sure but I think im having a stroke", "stroke"),
    ("no se si es un infarto", "chest_pain"),
    ("no se me quita el dolor de pecho", "chest_pain"),
    # mixed languages, run-ons
    ("hola my chest hurts mucho", "chest_pain"),
    ("help!!! mi hijo no respira", "unconscious"),
    ("sorry to bother but i think im having a stroke my face feels numb", "stroke"),
]

# Near-misses, negations, everyday complaints and booking chatter: nothing may fire.
NON_EMERGENCIES: list[str] = [
    "I want to end my gym membership",
    "ending the call now, thanks",
    "quiero terminar con la fisioterapia",
    # negations
    "no chest pain, just a cough",
    "I don't have any chest pain",
    "no fever or chest pain",
    "I'm not having trouble breathing",
    "I have no trouble breathing",
    "no shortness of breath",
    "denies chest pain",
    "my chest doesn't hurt anymore",
    "I'm not suicidal, just tired",
    "I don't want to hurt myself",
    "no bleeding",
    "not pregnant",
    "baby has no fever",
    "no tengo dolor de pecho",
    "no me duele el pecho",
    "sin fiebre",
    "el bebe no tiene fiebre",
    "no tengo dificultad para respirar",
    "sin dolor de pecho ni falta de aire",
    "no estoy sangrando",
    "nunca he tenido convulsiones",
    # history / resolved
    "I had a stroke 3 years ago and need a refill",
    "my dad had a heart attack last year",
    "had chest pain last year, now fine",
    "the chest pain went away",
    "history of seizures, need to renew my meds",
    "tuve un infarto hace 5 años",
    "mi mama tuvo un derrame cerebral el año pasado",
    # near-misses
    "my chest is sore from coughing",
    "chest congestion and runny nose",
    "heartburn after eating",
    "my breast is sore",
    "I need a refill of my seizure medication",
    "can I get my anti seizure meds refilled",
    "refill for my epipen please",
    "I almost fainted but I'm ok now",
    "I feel a bit faint when I stand up too fast",
    "a little short of breath when I climb stairs",
    "I cut myself shaving",
    "my gums bleed when I brush",
    "a bit of blood when I blow my nose",
    "I need a blood test",
    "how much is the blood test",
    "lots of blood work to do this week",
    "this headache is killing me",
    "I'm dying to see the new baby",
    "I can't talk right now, call me later",
    "I can't talk to my boss about this",
    "I can't make it on tuesday",
    "cant go on thursday, can we move it",
    "my phone is going to die",
    "I'm so tired I could die lol",
    "the app is not responding",
    "the doctor is not responding to my messages",
    "el doctor no me responde",
    "my arm fell asleep",
    "my leg is numb from sitting",
    "food poisoning I think, stomach ache",
    "I'm 39 weeks pregnant, when should I come in",
    "my baby has a rash",
    "my baby needs her vaccines",
    "my 2 year old has a fever",
    "fever and sore throat",
    "I have a fever of 38",
    "tengo fiebre y dolor de garganta",
    "dolor de cabeza desde ayer",
    "I have a headache",
    "bad headache from stress",
    "my throat is swollen and it hurts to swallow",
    "I'm allergic to penicillin",
    "seasonal allergies are bad",
    "im pregnant and need to book my ultrasound",
    "estoy embarazada, quiero una cita",
    "me corte el pelo",
    "quiero cortarme el pelo",
    "me quiero morir de la risa jaja",
    "no puedo hablar ahora",
    "no puedo ir mañana",
    "perdi el sentido del gusto",
    "I have trouble breathing through my nose",
    "no puedo respirar por la nariz, tengo congestion",
    "I lost my balance and twisted my ankle",
    "I'm confused about my appointment time",
    "what are the signs of a stroke",
    "my dad's blood pressure is high",
    "stroke rehab appointment",
    # everyday complaints
    "I have a rash on my arm",
    "sore throat for 3 days",
    "lower back pain",
    "my knee hurts",
    "I have a cough",
    "runny nose and sneezing",
    "stomach ache and diarrhea",
    "I feel nauseous",
    "ear infection I think",
    "my eye is red and itchy",
    "pink eye",
    "I twisted my ankle",
    "toothache",
    "UTI symptoms burning when I pee",
    "I have a cold",
    "migraine again, need my usual meds",
    "tengo gripe",
    "me duele la espalda",
    "me duele la rodilla",
    "tengo tos",
    "me duele el estomago",
    "tengo diarrea",
    "dolor de muela",
    "tengo una alergia en la piel",
    "mi hijo tiene piojos",
    # second batch, written before tuning
    "my heart is racing a bit after coffee",
    "I have a heavy cold",
    "my chest xray results?",
    "can I get a copy of my blood test results",
    "I'm short on time today, can we do a video visit",
    "I need an appointment for my pregnancy checkup",
    "im pregnant, is tylenol safe",
    "my baby is teething and cranky",
    "baby has a cough",
    "my throat hurts",
    "I pulled a muscle in my back",
    "i feel down lately",
    "I'm stressed out about work",
    "the medication makes me dizzy",
    "I get headaches sometimes",
    "nose bleed earlier, stopped now",
    "a small cut on my finger",
    "I'm sweating a lot at night, menopause?",
    "me duele la cabeza un poco",
    "tengo mucha tos",
    "mi bebe tiene gases",
    "me siento cansada",
    "tuve sangrado de nariz pero ya paro",
    "tengo la presion alta",
    "necesito un chequeo",
    "no puedo dormir",
    "I can't sleep",
    "can't stop coughing",
    "I can't hear well in my left ear",
    "my leg hurts when I walk",
    "I'm out of my blood pressure pills",
    "no fever today, feeling better",
    "no, not yet",
    "no thanks",
    "is dr smith available",
    "my kid has a stomach bug",
    "its not urgent but my ankle is swollen",
    "allergies acting up, itchy eyes",
    "I have hives on my arms",
    "my face is swollen from a tooth infection",
    "wheezing a little with this cold",
    "I'm a little out of breath after running",
    "I feel weak and tired",
    "tengo la cara hinchada por la muela",
    "me salieron ronchas",
    "perdi mi cita de ayer",
    "quiero cambiar mi cita",
    "se me acabaron las pastillas",
    "tengo una herida pequeña",
    "the blood draw left a bruise",
    "I bled a little after the blood draw",
    "I have never had chest pain",
    "never had a seizure before",
    "this feels odd",
    "no appetite today",
    # booking chatter
    "book me for tuesday",
    "cancel my appointment",
    "1",
    "yes",
    "no",
    "STOP",
    "menu",
    "can I see the doctor tomorrow at 3",
    "reschedule to friday please",
    "what time is my appointment",
    "thanks!",
    "ok 👍",
    "hi",
    "quiero una cita para mañana",
    "cancelar mi cita",
    "gracias",
    "sí",
    "necesito renovar mi receta",
    "where is the pharmacy",
    "I need a refill of my inhaler",
    "can my husband come with me",
    "is the clinic open on saturday",
    "do you take insurance",
    "hola buenas tardes",
    "a que hora abren",
]

MAX_FALSE_POSITIVE_RATE = 0.05


def _fired(text: str) -> tuple[str, ...]:
    return tuple(flag.rule for flag in detect_red_flag_details(text))


def test_table_is_big_enough_and_bilingual() -> None:
    assert len(EMERGENCIES) + len(NON_EMERGENCIES) >= 150
    known = {rule.id for rule in rules()}
    assert {rule for _text, rule in EMERGENCIES} == known, "every rule has emergency rows"
    spanish = [t for t, _ in EMERGENCIES if detect_language(t) == "es"]
    assert len(spanish) >= 40, "Spanish emergencies"
    assert sum(detect_language(t) == "es" for t in NON_EMERGENCIES) >= 30, "Spanish non-emergencies"


@pytest.mark.parametrize(("text", "rule"), EMERGENCIES, ids=[t for t, _ in EMERGENCIES])
def test_every_emergency_is_caught(text: str, rule: str) -> None:
    fired = _fired(text)
    assert rule in fired, f"MISSED emergency {text!r}: expected {rule!r}, fired {fired}"


def test_false_positives_stay_under_five_percent() -> None:
    flagged = {text: _fired(text) for text in NON_EMERGENCIES}
    flagged = {text: fired for text, fired in flagged.items() if fired}
    rate = len(flagged) / len(NON_EMERGENCIES)
    assert rate <= MAX_FALSE_POSITIVE_RATE, (
        f"{len(flagged)}/{len(NON_EMERGENCIES)} non-emergencies flagged ({rate:.1%}): {flagged}"
    )


# Some non-emergencies must never fire, whatever the rate: the negations the issue names.
@pytest.mark.parametrize(
    "text",
    ["no chest pain", "sin fiebre", "no me duele el pecho", "book me for tuesday", "1", "yes"],
)
def test_clear_negations_and_chatter_never_fire(text: str) -> None:
    assert _fired(text) == ()


def test_negation_inside_the_phrase_is_still_an_emergency() -> None:
    assert "breathing" in _fired("can't breathe")
    assert "breathing" in _fired("no puedo respirar")
    assert "bleeding" in _fired("it won't stop bleeding")
    assert "suicide" in _fired("I don't want to live")


def test_clause_breaks_end_a_negation() -> None:
    assert _fired("no fever but chest pain") == ("chest_pain",)
    assert _fired("sin fiebre pero me duele el pecho") == ("chest_pain",)
    assert _fired("no fever, my baby is 3 weeks old and has a temp of 38.4") == ("infant_fever",)


def test_history_never_cancels_a_crisis() -> None:
    assert "suicide" in _fired("I tried to kill myself 2 years ago and I feel that way again")


def test_red_flag_details() -> None:
    flags = detect_red_flag_details("I want to kill myself and my chest hurts")
    assert [f.rule for f in flags] == ["suicide", "chest_pain"]
    assert all(isinstance(f, RedFlag) and f.kind in KINDS for f in flags)
    assert flags[0].kind == "crisis" and flags[1].kind == "emergency"
    assert flags[0].matched == "kill myself"
    assert flags[1].matched == "chest hurts"


def test_rules_name_their_source_and_kind() -> None:
    for rule in rules():
        assert rule.source.strip(), rule.id
        assert rule.kind in KINDS
    assert {r.id for r in rules() if r.kind == "crisis"} == {"suicide", "self_harm"}


def test_detect_red_flags_is_sorted_unique_ids_in_any_language() -> None:
    text = "me duele el pecho and I can't breathe"
    assert detect_red_flags(text, "en") == ("breathing", "chest_pain")
    assert detect_red_flags(text, "es") == ("breathing", "chest_pain")
    assert detect_red_flags("quiero suicidarme", "en") == ("suicide",)


def test_understand_reports_emergency() -> None:
    u = understand("my baby has a fever of 39 and wont wake up", lang="en")
    assert u.emergency is True
    assert u.red_flags == ("infant_fever", "unconscious")
    data = u.to_json()
    assert data["emergency"] is True and data["red_flags"] == ["infant_fever", "unconscious"]
    quiet = understand("book me for tuesday", lang="en")
    assert quiet.emergency is False and quiet.red_flags == ()


@pytest.mark.parametrize(
    "text", ["", " ", "x" * 50_000, "\x00", "👍" * 300, "?" * 50, "\ud800", "38.5", "#!|..."]
)
def test_never_raises(text: str) -> None:
    assert isinstance(detect_red_flags(text, "en"), tuple)


def test_non_string_is_quiet() -> None:
    assert detect_red_flag_details(None) == ()  # type: ignore[arg-type]


def test_an_emergency_deep_in_a_long_message_is_found() -> None:
    text = "hi, about my appointment next week. " * 100 + "also my chest hurts a lot"
    assert "chest_pain" in _fired(text)


def test_cli_understand_json_reports_red_flags(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TELEMED_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "bots.cli", "understand", "no puedo respirar", "--json"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) == {"text", "language", "intent", "when", "emergency", "red_flags"}
    assert data["emergency"] is True
    assert data["red_flags"] == ["breathing"]
