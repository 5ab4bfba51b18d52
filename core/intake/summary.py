"""The doctor's short summary of an intake, and its FHIR R4 export.

The summary is English plain text (the clinic's working language in this
service), a few lines a doctor reads before the visit: the triage level and
what set it first, then one line per question asked.

``questionnaire_json`` and ``response_json`` build plain dicts (no FHIR
library at runtime); the tests validate them with ``fhir.resources``.
R4 has no element linking a QuestionnaireResponse to an Appointment
(``basedOn`` takes CarePlan or ServiceRequest, ``encounter`` an Encounter),
so the appointment rides in an extension, :data:`APPOINTMENT_EXT`; the
triage level and rules ride in :data:`TRIAGE_EXT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.intake.answers import UNIT_NAMES, describe_duration
from core.intake.questionnaire import Item, Questionnaire
from core.intake.triage import Triage
from core.models import IntakeResponse

FHIR_BASE = "http://telemed.example.org/fhir"
APPOINTMENT_EXT = f"{FHIR_BASE}/StructureDefinition/intake-appointment"
TRIAGE_EXT = f"{FHIR_BASE}/StructureDefinition/intake-triage"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
UCUM = "http://unitsofmeasure.org"
LEVEL_NAMES = {
    "emergency": "EMERGENCY",
    "urgent": "URGENT (same day)",
    "routine": "routine",
    "self_care": "self-care advice",
}


def render_value(item: Item, value: Any) -> str:
    """An answer as the doctor reads it (English)."""
    if value is None:
        return "not answered"
    if item.type == "boolean":
        return "yes" if value else "no"
    if item.type == "choice":
        option = item.option(str(value))
        return option.display("en") if option else str(value)
    if item.type == "quantity":
        return describe_duration(value)
    if item.type == "integer" and item.max_value is not None:
        return f"{value}/{item.max_value}"
    return str(value)


def summary(q: Questionnaire, answers: Mapping[str, Any], triage: Triage | None) -> str:
    lines = []
    if triage is not None:
        why = ", ".join(triage.rules) or "no rule fired"
        lines.append(f"Triage: {LEVEL_NAMES.get(triage.level, triage.level)} ({why})")
    for item in q.enabled_items(answers):
        if item.link_id in answers:
            lines.append(f"{item.label}: {render_value(item, answers[item.link_id])}")
    return "\n".join(lines)


def questionnaire_json(q: Questionnaire | None = None) -> dict[str, Any]:
    """The questionnaire as FHIR R4 JSON (the shipped file, as it is)."""
    from core.intake.questionnaire import load

    return (q or load()).to_json()


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _answer(item: Item, value: Any) -> dict[str, Any]:
    if item.type == "boolean":
        return {"valueBoolean": bool(value)}
    if item.type == "integer":
        return {"valueInteger": int(value)}
    if item.type == "date":
        return {"valueDate": str(value)}
    if item.type == "choice":
        option = item.option(str(value))
        coding: dict[str, Any] = {"code": str(value)}
        if option is not None:
            if option.system:
                coding["system"] = option.system
            coding["display"] = option.display("en")
        return {"valueCoding": coding}
    if item.type == "quantity":
        quantity: dict[str, Any] = {
            "value": value["value"],
            "unit": UNIT_NAMES.get(str(value["unit"]), str(value["unit"])),
            "system": UCUM,
            "code": value["unit"],
        }
        if value.get("comparator"):
            quantity["comparator"] = value["comparator"]
        return {"valueQuantity": quantity}
    return {"valueString": str(value)}


def response_json(row: IntakeResponse, q: Questionnaire | None = None) -> dict[str, Any]:
    """An intake as a FHIR R4 QuestionnaireResponse.

    Items come in questionnaire order, only those asked. One answered "not
    answered" (skipped, or three unreadable tries) carries no answer and a
    ``data-absent-reason`` of ``asked-unknown``.
    """
    from core.intake.questionnaire import by_id

    q = q or by_id(row.questionnaire)
    answers = dict(row.answers or {})
    items = []
    for item in q.enabled_items(answers):
        if item.link_id not in answers:
            continue
        entry: dict[str, Any] = {"linkId": item.link_id, "text": item.text(row.language)}
        value = answers[item.link_id]
        if value is None:
            entry["extension"] = [{"url": DATA_ABSENT, "valueCode": "asked-unknown"}]
        else:
            entry["answer"] = [_answer(item, value)]
        items.append(entry)
    extensions: list[dict[str, Any]] = [
        {
            "url": APPOINTMENT_EXT,
            "valueReference": {"reference": f"Appointment/{row.appointment_id}"},
        }
    ]
    if row.triage_level:
        extensions.append(
            {
                "url": TRIAGE_EXT,
                "extension": [{"url": "level", "valueCode": row.triage_level}]
                + [{"url": "rule", "valueString": str(r)} for r in row.triage_rules or []],
            }
        )
    patient = {"reference": f"Patient/{row.patient_id}"}
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": f"intake-{row.id}",
        "language": row.language,
        "extension": extensions,
        "questionnaire": q.canonical,
        "status": row.status,
        "subject": patient,
        "authored": _iso(row.completed_at or row.updated_at),
        "author": patient,  # the patient answered, by text message
        "source": patient,
        "item": items,
    }
    if not items:
        del resource["item"]
    return resource
