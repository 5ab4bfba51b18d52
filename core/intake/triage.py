"""Triage as data: rules in ``triage.json`` give each finished intake a level.

Levels, highest first: ``emergency`` (call the emergency number now),
``urgent`` (be seen today), ``routine`` (keep the appointment) and
``self_care`` (mild: advice while waiting). The intake's level is the highest
level of the rules that fired, else the file's default; the rules reported
are those that set it, so staff see why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from core import nlu
from core.intake.answers import duration_days
from core.intake.questionnaire import Questionnaire

LEVELS = ("emergency", "urgent", "routine", "self_care")
_RANK = {level: n for n, level in enumerate(LEVELS)}
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class Triage:
    level: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    id: str
    level: str
    all: tuple[Mapping[str, Any], ...]
    none: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class RuleSet:
    questionnaire: str
    default: str
    rules: tuple[Rule, ...]


def parse_rules(raw: Mapping[str, Any]) -> RuleSet:
    rules = []
    for r in raw["rules"]:
        if r["level"] not in LEVELS:
            raise ValueError(f"rule {r['id']!r}: unknown level {r['level']!r}")
        rules.append(
            Rule(str(r["id"]), str(r["level"]), tuple(r.get("all", ())), tuple(r.get("none", ())))
        )
    return RuleSet(str(raw["questionnaire"]), str(raw.get("default", "routine")), tuple(rules))


@cache
def load_rules(name: str = "triage") -> RuleSet:
    with (_HERE / f"{name}.json").open(encoding="utf-8") as fh:
        return parse_rules(json.load(fh))


def red_flags(texts: Iterable[str], lang: str) -> tuple[str, ...]:
    """The red-flag rules (``core.nlu.detect_red_flags``) that fire on any of
    ``texts``, in either language: a Spanish sentence in an English intake
    still counts."""
    found: list[str] = []
    for text in texts:
        for language in dict.fromkeys((lang, "es" if lang == "en" else "en")):
            for flag in nlu.detect_red_flags(text, language):
                # The matcher may hand back rule names or objects naming their rule.
                name = str(getattr(flag, "rule", flag))
                if name not in found:
                    found.append(name)
    return tuple(found)


def free_texts(q: Questionnaire, answers: Mapping[str, Any]) -> list[str]:
    return [
        str(answers[i.link_id])
        for i in q.items
        if i.free_text and isinstance(answers.get(i.link_id), str)
    ]


def _compare(actual: Any, op: str, expected: Any) -> bool:
    try:
        if op == "=":
            return bool(actual == expected)
        if op == "!=":
            return bool(actual != expected)
        if op == "in":
            return actual in expected
        if op == ">":
            return bool(actual > expected)
        if op == ">=":
            return bool(actual >= expected)
        if op == "<":
            return bool(actual < expected)
        if op == "<=":
            return bool(actual <= expected)
    except TypeError:
        return False
    raise ValueError(f"unknown operator {op!r}")


def _holds(cond: Mapping[str, Any], answers: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    if "context" in cond:
        actual = context.get(cond["context"])
    else:
        actual = answers.get(cond["item"])
        if "days" in cond:
            actual = duration_days(actual)
            if actual is None:
                return False
            return _compare(actual, cond["op"], cond["days"])
    if actual is None:
        return False  # unanswered or unknown: never evidence either way
    return _compare(actual, cond["op"], cond.get("value"))


def evaluate(
    answers: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
    rules: RuleSet | None = None,
) -> Triage:
    """The level and the rules that set it. ``context`` holds facts beside the
    answers: ``age_months`` (from the date of birth) and ``red_flags`` (how
    many red-flag rules fired on the patient's words)."""
    rules = rules or load_rules()
    context = context or {}
    fired = [
        r
        for r in rules.rules
        if all(_holds(c, answers, context) for c in r.all)
        and not any(_holds(c, answers, context) for c in r.none)
    ]
    if not fired:
        return Triage(rules.default, ())
    level = min((r.level for r in fired), key=_RANK.__getitem__)
    return Triage(level, tuple(r.id for r in fired if r.level == level))


def assess(
    q: Questionnaire,
    answers: Mapping[str, Any],
    lang: str,
    *,
    age_months: int | None = None,
    other_texts: Iterable[str] = (),
) -> Triage:
    """Triage of a whole intake: its free-text answers (and ``other_texts``,
    e.g. messages said during it) run through the red-flag matcher, the
    patient's age through the age rules. A red flag is reported per matcher
    rule (``red_flag:chest_pain``) so staff see what was said."""
    flags = red_flags([*free_texts(q, answers), *other_texts], lang)
    context: dict[str, Any] = {"red_flags": len(flags)}
    if age_months is not None:
        context["age_months"] = age_months
    result = evaluate(answers, context)
    if "red_flag" in result.rules:
        named = [f"red_flag:{f}" for f in flags]
        rules = [r for r in result.rules if r != "red_flag"]
        result = Triage(result.level, (*named, *rules))
    return result
