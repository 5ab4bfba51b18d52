"""The default intake as data: loading, answer reading per type, skip logic,
triage rules, the doctor's summary and the FHIR R4 export.

fhir.resources 8 models R5 at its top level and R4B under
``fhir.resources.R4B`` (there is no plain R4 package); Questionnaire and
QuestionnaireResponse are the same in R4 and R4B, so R4B validates the export.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse as FhirQuestionnaireResponse,
)

from core import intake, nlu
from core.intake import answers as answer_mod
from core.intake.questionnaire import QuestionnaireError, parse
from core.intake.triage import assess, evaluate
from core.models import IntakeResponse

TODAY = date(2026, 4, 14)  # a Tuesday
Q = intake.load()


def item(link_id: str) -> intake.Item:
    found = Q.item(link_id)
    assert found is not None
    return found


def read(link_id: str, text: str, lang: str = "en") -> intake.Parsed:
    return intake.parse_answer(item(link_id), text, lang, TODAY)


# -- the questionnaire ------------------------------------------------------------


def test_default_questionnaire_items_and_texts() -> None:
    assert Q.id == "general-intake"
    assert [i.link_id for i in Q.items] == [
        "reason",
        "onset",
        "severity",
        "fever",
        "medicines",
        "allergies",
        "sex",
        "pregnant",
        "notes",
    ]
    assert {i.type for i in Q.items} == {"text", "quantity", "integer", "boolean", "choice"}
    for i in Q.items:
        assert i.text("en") and i.text("es") and i.text("en") != i.text("es"), i.link_id
    assert (item("severity").min_value, item("severity").max_value) == (0, 10)
    assert item("onset").units == ("h", "d", "wk", "mo", "a")
    assert item("sex").options[0].display("es") == "Femenino"
    # The invitation's count: the questions asked before any answer enables more.
    assert Q.question_count() == 8
    assert Q.question_count({"sex": "female"}) == 9


def test_enable_when_asks_pregnancy_only_when_relevant() -> None:
    answers: dict[str, Any] = {"reason": "x", "onset": {}, "severity": 2, "fever": False}
    answers |= {"medicines": None, "allergies": "none"}
    assert Q.next_item(answers) == item("sex")
    assert Q.next_item({**answers, "sex": "male"}, after="sex") == item("notes")
    assert Q.next_item({**answers, "sex": "unknown"}, after="sex") == item("notes")
    assert Q.next_item({**answers, "sex": "female"}, after="sex") == item("pregnant")
    assert Q.next_item({**answers, "sex": "other"}, after="sex") == item("pregnant")
    assert Q.next_item({}) == item("reason")


def test_a_condition_on_a_later_item_is_refused() -> None:
    raw = {
        "resourceType": "Questionnaire",
        "id": "x",
        "url": "http://x/q",
        "item": [
            {
                "linkId": "a",
                "type": "boolean",
                "text": "A?",
                "enableWhen": [{"question": "b", "operator": "=", "answerBoolean": True}],
            },
            {"linkId": "b", "type": "boolean", "text": "B?"},
        ],
    }
    with pytest.raises(QuestionnaireError):
        parse(raw)
    with pytest.raises(QuestionnaireError):
        parse({**raw, "item": [{"linkId": "a", "type": "attachment", "text": "Photo?"}]})


# -- reading answers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3 days", {"value": 3, "unit": "d"}),
        ("for about 2 weeks", {"value": 2, "unit": "wk"}),
        ("2 semanas", {"value": 2, "unit": "wk"}),
        ("tres días", {"value": 3, "unit": "d"}),
        ("desde hace 4 meses", {"value": 4, "unit": "mo"}),
        ("a week", {"value": 1, "unit": "wk"}),
        ("since yesterday", {"value": 1, "unit": "d"}),
        ("desde ayer", {"value": 1, "unit": "d"}),
        ("since this morning", {"value": 1, "unit": "d", "comparator": "<"}),
        ("since Saturday", {"value": 3, "unit": "d"}),
        ("2-3 days", {"value": 3, "unit": "d"}),
        ("5 hours", {"value": 5, "unit": "h"}),
    ],
)
def test_durations(text: str, value: dict[str, Any]) -> None:
    assert read("onset", text).value == value


def test_duration_problems() -> None:
    assert read("onset", "3").problem == "intake.error.no_unit"
    assert read("onset", "3").values == {"value": 3}
    assert read("onset", "blue").problem == "intake.error.unclear"
    assert read("onset", "idk").problem == "intake.error.needed"  # required


@pytest.mark.parametrize(
    ("text", "value"),
    [("7", 7), ("7/10", 7), ("about 6", 6), ("siete", 7), ("6-7", 7), ("0", 0), ("10", 10)],
)
def test_severity_scale(text: str, value: int) -> None:
    assert read("severity", text).value == value


def test_severity_out_of_range_and_unclear() -> None:
    assert read("severity", "12").problem == "intake.error.range"
    assert read("severity", "12").values == {"min": 0, "max": 10, "value": 12}
    assert read("severity", "-1").problem == "intake.error.range"
    assert read("severity", "very bad").problem == "intake.error.unclear"
    assert read("severity", "3 or 9 maybe 5").problem == "intake.error.unclear"


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", True), ("Sí", True), ("si", True), ("no fever", False), ("nope", False), ("1", True)],
)
def test_yes_no_in_either_language(text: str, value: bool) -> None:
    assert read("fever", text, "en").value is value
    assert read("fever", text, "es").value is value


def test_choices() -> None:
    assert read("sex", "female").value == "female"
    assert read("sex", "Masculino", "en").value == "male"  # the other language's label
    assert read("sex", "2").value == "male"
    assert read("sex", "5").problem == "intake.error.unclear"
    assert read("pregnant", "not sure").value == "UNK"  # an option, not a skip
    assert read("pregnant", "no sé", "es").value == "UNK"
    assert read("pregnant", "yes").value == "Y"


def test_free_text_skip_and_gibberish() -> None:
    assert read("reason", "Cough and sore throat").value == "Cough and sore throat"
    assert read("reason", "asdfgh").problem == "intake.error.unclear"
    assert read("reason", "???").problem == "intake.error.unclear"
    assert read("reason", "idk").problem == "intake.error.needed"  # required: explain
    assert read("medicines", "skip").skipped  # optional: not answered
    assert read("notes", "no sé", "es").skipped
    assert read("medicines", "none").value == "none"
    assert len(read("reason", "ache " * 300).value) == 500  # cut to maxLength
    photo = intake.parse_answer(item("reason"), "", "en", TODAY, has_media=True)
    assert photo.problem == "intake.error.photo"


def test_dates() -> None:
    raw = {
        "resourceType": "Questionnaire",
        "id": "d",
        "url": "http://x/d",
        "item": [{"linkId": "when", "type": "date", "text": "When?"}],
    }
    when = parse(raw).items[0]
    assert intake.parse_answer(when, "03/15/2026", "en", TODAY).value == "2026-03-15"
    assert intake.parse_answer(when, "15/03/2026", "es", TODAY).value == "2026-03-15"
    assert intake.parse_answer(when, "2026-04-01", "en", TODAY).value == "2026-04-01"
    assert intake.parse_answer(when, "March 3", "en", TODAY).value == "2026-03-03"
    assert intake.parse_answer(when, "ayer", "es", TODAY).value == "2026-04-13"
    assert intake.parse_answer(when, "12/31/2026", "en", TODAY).problem == "intake.error.future"
    assert intake.parse_answer(when, "soon", "en", TODAY).problem == "intake.error.unclear"


def test_pause_resume_words() -> None:
    assert intake.is_pause("Later") and intake.is_pause("más tarde") and intake.is_pause("luego")
    assert intake.is_resume("QUESTIONS") and intake.is_resume("preguntas")
    assert not intake.is_pause("later today my head hurts")


# -- triage -----------------------------------------------------------------------

MILD = {
    "reason": "runny nose",
    "onset": {"value": 1, "unit": "d"},
    "severity": 2,
    "fever": False,
    "sex": "male",
}


def test_triage_levels_and_rules() -> None:
    assert evaluate(MILD) == intake.Triage("self_care", ("mild_and_recent",))
    assert evaluate({**MILD, "severity": 5}) == intake.Triage("routine", ())
    assert evaluate({**MILD, "severity": 8, "fever": True}).rules == ("severe_with_fever",)
    assert evaluate({**MILD, "severity": 8, "fever": True}).level == "urgent"
    assert evaluate({**MILD, "severity": 10}).rules == ("very_severe",)
    long_fever = {**MILD, "fever": True, "onset": {"value": 1, "unit": "wk"}}
    assert evaluate(long_fever).rules == ("fever_3_days_or_more",)
    pregnant = {**MILD, "sex": "female", "pregnant": "Y", "fever": True}
    assert evaluate(pregnant).rules == ("pregnant_with_fever",)
    # Mild but maybe pregnant, or a small child: not self-care.
    assert evaluate({**MILD, "sex": "female", "pregnant": "UNK"}).level == "routine"
    assert evaluate(MILD, {"age_months": 20}).level == "routine"
    assert evaluate({**MILD, "fever": True}, {"age_months": 2}).rules == ("infant_fever",)
    assert evaluate({**MILD, "fever": True}, {"age_months": 2}).level == "emergency"
    # Unanswered items never fire a rule.
    assert evaluate({**MILD, "fever": None}).level == "routine"


def test_red_flags_in_free_text_make_an_emergency(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(text: str, lang: str) -> tuple[str, ...]:
        return ("chest_pain",) if "chest" in text.lower() else ()

    monkeypatch.setattr(nlu, "detect_red_flags", fake)
    result = assess(Q, {**MILD, "notes": "some chest pressure"}, "en")
    assert result == intake.Triage("emergency", ("red_flag:chest_pain",))
    assert assess(Q, MILD, "en").level == "self_care"


# -- summary and FHIR -------------------------------------------------------------


def row(answers: dict[str, Any], **more: Any) -> IntakeResponse:
    now = datetime(2026, 4, 14, 13, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": 7,
        "appointment_id": 3,
        "patient_id": 5,
        "questionnaire": "general-intake",
        "version": "1",
        "language": "es",
        "status": "completed",
        "item": None,
        "answers": answers,
        "tries": 0,
        "triage_level": "urgent",
        "triage_rules": ["severe_with_fever"],
        "started_at": now,
        "updated_at": now,
        "completed_at": now,
    }
    values.update(more)
    return IntakeResponse(**values)


FULL = {
    "reason": "Tos y fiebre",
    "onset": {"value": 1, "unit": "d", "comparator": "<"},
    "severity": 8,
    "fever": True,
    "medicines": None,
    "allergies": "penicilina",
    "sex": "female",
    "pregnant": "N",
    "notes": None,
}


def test_summary_for_the_doctor() -> None:
    text = intake.summary(Q, FULL, intake.Triage("urgent", ("severe_with_fever",)))
    assert text.splitlines() == [
        "Triage: URGENT (same day) (severe_with_fever)",
        "Reason for visit: Tos y fiebre",
        "Duration: < 1 day",
        "Severity (0-10): 8/10",
        "Fever or chills: yes",
        "Current medicines: not answered",
        "Allergies: penicilina",
        "Sex at birth: Female",
        "Could be pregnant: No",
        "Anything else: not answered",
    ]


def test_questionnaire_is_valid_fhir_r4() -> None:
    data = intake.questionnaire_json()
    model = FhirQuestionnaire.model_validate(data)
    assert model.id == "general-intake"
    assert len(model.item) == 9
    pregnant = model.item[7]
    assert pregnant.enableBehavior == "any" and len(pregnant.enableWhen) == 2
    translations = data["item"][0]["_text"]["extension"]
    assert translations[0]["url"] == "http://hl7.org/fhir/StructureDefinition/translation"


def test_response_is_valid_fhir_r4() -> None:
    data = intake.response_json(row(FULL))
    model = FhirQuestionnaireResponse.model_validate(data)
    assert model.status == "completed"
    assert model.questionnaire == Q.canonical
    assert model.subject.reference == "Patient/5"
    by_id = {i.linkId: i for i in model.item}
    assert by_id["severity"].answer[0].valueInteger == 8
    assert by_id["fever"].answer[0].valueBoolean is True
    assert by_id["onset"].answer[0].valueQuantity.comparator == "<"
    assert by_id["onset"].answer[0].valueQuantity.code == "d"
    assert by_id["sex"].answer[0].valueCoding.code == "female"
    assert by_id["pregnant"].answer[0].valueCoding.code == "N"
    assert by_id["medicines"].answer is None  # not answered: data-absent-reason
    assert data["item"][0]["text"].startswith("¿Cuál")  # in the patient's language
    appointment = data["extension"][0]
    assert appointment["valueReference"] == {"reference": "Appointment/3"}


def test_in_progress_response_is_valid_fhir_r4() -> None:
    data = intake.response_json(
        row({"reason": "rash"}, status="in-progress", triage_level=None, completed_at=None)
    )
    model = FhirQuestionnaireResponse.model_validate(data)
    assert model.status == "in-progress" and [i.linkId for i in model.item] == ["reason"]
    empty = intake.response_json(row({}, status="in-progress", completed_at=None))
    assert FhirQuestionnaireResponse.model_validate(empty).item is None


def test_answer_module_constants() -> None:
    assert answer_mod.MAX_TRIES == 3
