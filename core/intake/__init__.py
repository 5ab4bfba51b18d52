"""Structured symptom intake before a visit: questionnaires as data (FHIR R4
Questionnaire files), answer reading with helpful re-asks, triage rules as
data, the doctor's summary and the FHIR export. Pure functions over the
stored ``IntakeResponse`` rows; the conversation lives in ``flows.intake``.
"""

from core.intake.answers import (
    MAX_TRIES,
    Parsed,
    expect_key,
    is_pause,
    is_resume,
    is_skip,
    parse_answer,
)
from core.intake.questionnaire import (
    Choice,
    EnableWhen,
    Item,
    Questionnaire,
    QuestionnaireError,
    by_id,
    load,
    parse,
)
from core.intake.summary import questionnaire_json, response_json, summary
from core.intake.triage import LEVELS, Triage, assess, evaluate

__all__ = [
    "LEVELS",
    "MAX_TRIES",
    "Choice",
    "EnableWhen",
    "Item",
    "Parsed",
    "Questionnaire",
    "QuestionnaireError",
    "Triage",
    "assess",
    "by_id",
    "evaluate",
    "expect_key",
    "is_pause",
    "is_resume",
    "is_skip",
    "load",
    "parse",
    "parse_answer",
    "questionnaire_json",
    "response_json",
    "summary",
]
