"""A questionnaire as data: a FHIR R4 Questionnaire file read into frozen dataclasses.

The file is plain FHIR (so it exports as it is): texts per language through
the standard ``translation`` extension on ``_text`` / ``_display``, integer
ranges through the ``minValue`` / ``maxValue`` extensions, durations as
``quantity`` items with ``questionnaire-unitOption`` units, and skip logic
through ``enableWhen`` / ``enableBehavior``. Only what the text-message
intake needs is read; the rest stays in ``raw`` for the export.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT_OPTION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption"
DEFAULT = "general"
# The item types the text intake can ask; anything else in a file is an error
# at load time, not a surprise in a conversation.
TYPES = ("boolean", "choice", "integer", "quantity", "string", "text", "date")


class QuestionnaireError(ValueError):
    """The file is not a questionnaire this intake can ask."""


@dataclass(frozen=True)
class Choice:
    code: str
    system: str | None
    texts: Mapping[str, str]  # language -> display

    def display(self, lang: str) -> str:
        return self.texts.get(lang) or self.texts["en"]


@dataclass(frozen=True)
class EnableWhen:
    question: str
    operator: str  # exists, =, !=, >, <, >=, <=
    answer: Any  # bool, int, str (a code or text), or a date string


@dataclass(frozen=True)
class Item:
    link_id: str
    type: str
    texts: Mapping[str, str]
    label: str  # short English name for the doctor's summary (the item's code display)
    required: bool = False
    options: tuple[Choice, ...] = ()
    enable_when: tuple[EnableWhen, ...] = ()
    enable_behavior: str = "all"
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None
    units: tuple[str, ...] = ()  # UCUM codes offered for a duration

    def text(self, lang: str) -> str:
        return self.texts.get(lang) or self.texts["en"]

    @property
    def free_text(self) -> bool:
        return self.type in ("string", "text")

    def option(self, code: str) -> Choice | None:
        return next((o for o in self.options if o.code == code), None)


@dataclass(frozen=True)
class Questionnaire:
    id: str
    url: str
    version: str
    titles: Mapping[str, str]
    items: tuple[Item, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"

    def item(self, link_id: str | None) -> Item | None:
        return next((i for i in self.items if i.link_id == link_id), None)

    def enabled(self, item: Item, answers: Mapping[str, Any]) -> bool:
        """FHIR enableWhen: an unanswered question satisfies no condition but
        ``exists = false``."""
        if not item.enable_when:
            return True
        results = [_holds(cond, answers.get(cond.question)) for cond in item.enable_when]
        return any(results) if item.enable_behavior == "any" else all(results)

    def enabled_items(self, answers: Mapping[str, Any]) -> list[Item]:
        return [i for i in self.items if self.enabled(i, answers)]

    def next_item(self, answers: Mapping[str, Any], after: str | None = None) -> Item | None:
        """The first enabled, not yet answered item after ``after`` (from the
        start when None). "Not answered" recorded as None counts as answered."""
        start = 0
        if after is not None:
            index = next((n for n, i in enumerate(self.items) if i.link_id == after), None)
            start = 0 if index is None else index + 1
        for item in self.items[start:]:
            if item.link_id not in answers and self.enabled(item, answers):
                return item
        return None

    def question_count(self, answers: Mapping[str, Any] | None = None) -> int:
        """How many questions are asked given ``answers`` so far: the "6 quick
        questions" of the invitation (conditional items count once enabled)."""
        return len(self.enabled_items(answers or {}))

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.raw))


def _holds(cond: EnableWhen, answer: Any) -> bool:
    if cond.operator == "exists":
        return (answer is not None) == bool(cond.answer)
    if answer is None:
        return False
    if isinstance(answer, dict):  # a duration: compare its number
        answer = answer.get("value")
    try:
        if cond.operator == "=":
            return bool(answer == cond.answer)
        if cond.operator == "!=":
            return bool(answer != cond.answer)
        if cond.operator == ">":
            return bool(answer > cond.answer)
        if cond.operator == "<":
            return bool(answer < cond.answer)
        if cond.operator == ">=":
            return bool(answer >= cond.answer)
        if cond.operator == "<=":
            return bool(answer <= cond.answer)
    except TypeError:
        return False
    raise QuestionnaireError(f"unknown enableWhen operator {cond.operator!r}")


def _texts(element: Mapping[str, Any], name: str) -> dict[str, str]:
    """``{"en": text, "es": ...}`` from an element and its translation extensions."""
    texts = {"en": str(element.get(name) or "")}
    for ext in (element.get(f"_{name}") or {}).get("extension", []):
        if ext.get("url") != TRANSLATION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", [])}
        lang = parts.get("lang", {}).get("valueCode")
        content = parts.get("content", {}).get("valueString")
        if lang and content:
            texts[str(lang)[:2]] = str(content)
    return texts


def _extension(element: Mapping[str, Any], url: str) -> list[Mapping[str, Any]]:
    return [e for e in element.get("extension", []) if e.get("url") == url]


def _enable_answer(cond: Mapping[str, Any]) -> Any:
    for key, value in cond.items():
        if key.startswith("answer"):
            if key == "answerCoding":
                return value.get("code")
            if key == "answerQuantity":
                return value.get("value")
            return value
    raise QuestionnaireError(f"enableWhen on {cond.get('question')!r} has no answer")


def _item(raw: Mapping[str, Any]) -> Item:
    kind = str(raw["type"])
    link_id = str(raw["linkId"])
    if kind not in TYPES:
        raise QuestionnaireError(f"item {link_id!r}: type {kind!r} cannot be asked by text")
    options = tuple(
        Choice(
            code=str(o["valueCoding"]["code"]),
            system=o["valueCoding"].get("system"),
            texts=_texts(o["valueCoding"], "display"),
        )
        for o in raw.get("answerOption", [])
        if "valueCoding" in o
    )
    if kind == "choice" and not options:
        raise QuestionnaireError(f"choice item {link_id!r} has no coded answerOption")
    codes = raw.get("code") or []
    mins = _extension(raw, MIN_VALUE)
    maxs = _extension(raw, MAX_VALUE)
    return Item(
        link_id=link_id,
        type=kind,
        texts=_texts(raw, "text"),
        label=str(codes[0].get("display") if codes else link_id),
        required=bool(raw.get("required", False)),
        options=options,
        enable_when=tuple(
            EnableWhen(str(c["question"]), str(c["operator"]), _enable_answer(c))
            for c in raw.get("enableWhen", [])
        ),
        enable_behavior=str(raw.get("enableBehavior", "all")),
        min_value=int(mins[0]["valueInteger"]) if mins else None,
        max_value=int(maxs[0]["valueInteger"]) if maxs else None,
        max_length=int(raw["maxLength"]) if "maxLength" in raw else None,
        units=tuple(str(e["valueCoding"]["code"]) for e in _extension(raw, UNIT_OPTION)),
    )


def parse(raw: Mapping[str, Any]) -> Questionnaire:
    if raw.get("resourceType") != "Questionnaire":
        raise QuestionnaireError("not a FHIR Questionnaire")
    items = tuple(_item(i) for i in raw.get("item", []))
    ids = [i.link_id for i in items]
    if len(set(ids)) != len(ids):
        raise QuestionnaireError("duplicate linkId")
    for item in items:
        for cond in item.enable_when:
            if cond.question not in ids[: ids.index(item.link_id)]:
                # A text conversation asks in order: a condition on a later item
                # could never be known when the item comes up.
                raise QuestionnaireError(f"{item.link_id!r} depends on a later item")
    return Questionnaire(
        id=str(raw["id"]),
        url=str(raw["url"]),
        version=str(raw.get("version", "1")),
        titles=_texts(raw, "title"),
        items=items,
        raw=raw,
    )


@cache
def load(name: str = DEFAULT) -> Questionnaire:
    """A questionnaire shipped in this package, by file name (``general``)."""
    with (_HERE / f"{name}.json").open(encoding="utf-8") as fh:
        raw: dict[str, Any] = json.load(fh)
    return parse(raw)


# Questionnaire id (as stored in intake_responses.questionnaire) -> file name.
FILES = {"general-intake": "general"}


def by_id(questionnaire_id: str) -> Questionnaire:
    return load(FILES[questionnaire_id])
