"""Red flags: emergencies and crises spotted in any inbound text, before any flow.

``detect(text)`` returns one :class:`RedFlag` per rule that fires. The rules are
data (``redflags.toml``, next to this file, reviewed against NIH, CDC, NIMH,
AAP and ACOG public guidance; each rule names its source). An emergency missed
by a clinic's own bot is the worst failure this product can have, so every
choice below leans to flagging: a false positive costs one message.

How a message is read:

* Normalised: case folded, accents and apostrophes dropped ("Can't" ->
  "cant"), split into words, numbers ("38.5", "38,5") and punctuation (a
  clause break); common SMS spellings are mapped word for word ("cnt" ->
  "cant", "kms" -> "kill myself").
* Typos: a message word of 4+ letters that is not itself a rule word matches a
  rule word of 5+ letters with the same first letter within a Damerau (OSA)
  distance of 1, or 2 when both are 7+/8+ letters long ("bleding", "siezure",
  "embarasada"). Short words must be exact: "die"/"dye", "cut"/"cat". Real
  words one typo from a rule word never match (``not_typos``: "breast" is not
  "breath", "strike" is not "stroke").
* Phrases: a concept (chest pain, stroke sign, ...) is a list of phrases whose
  words must appear in order with small gaps (2 words, 5 after ``...``, none
  after ``+``);
  gaps never cross punctuation or clause words ("but", "and", "pero", "y").
* Negation: a negator ("no", "not", "don't", "without", "denies", "never",
  "sin", "ni", "nada", ...) up to 3 words before a concept, in the same clause,
  cancels that occurrence (not "never" when the clause says the symptom is new:
  "never had chest pain like this"); so does a negator inside a phrase gap ("my chest
  doesn't hurt"). A negation that is part of the phrase stays positive ("can't
  breathe", "no puedo respirar", "won't stop bleeding"). A negated concept
  passes its negation on across "or"/"ni" ("no fever or chest pain").
* History: a past marker in the same clause ("3 years ago", "last year", "hace
  años", "history of", "went away") cancels emergency occurrences (never the
  crisis ones: a past attempt is still something staff must see).
* Rules: a rule fires when all concepts of one of its alternatives have a live
  occurrence anywhere in the message. Both languages are always checked.

Compiled once on first use; a typical message is checked in tens of
microseconds. rapidfuzz is imported lazily. Nothing here logs message text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Final

__all__ = ["KINDS", "RULES_FILE", "RedFlag", "Rule", "detect", "rules"]

RULES_FILE: Final = Path(__file__).with_name("redflags.toml")
KINDS: Final = ("emergency", "crisis")

#: Longest text checked (characters); longer inbound text is checked in full
#: up to here, which still bounds the work for a pasted document.
MAX_CHARS: Final = 20_000
SHORT_GAP: Final = 2
LONG_GAP: Final = 5
LOOKBEHIND: Final = 2
FUZZY_MIN_KEYWORD: Final = 5
FUZZY_MIN_WORD: Final = 4

_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[a-z]+|[.;:!?()\[\]\n\r…]|,")
#: "OD'd" would fold to "odd"; read it before apostrophes are dropped.
_OD = re.compile(r"\bod['\u2019]d\b", re.IGNORECASE)
_BEFORE_TOKENS = (("w/o", " without "), ("w/", " with "), ("&", " and "), ("+", " and "))


@dataclass(frozen=True)
class RedFlag:
    """One rule that fired: ``matched`` is the (folded) text that fired it, for the staff alert."""

    rule: str
    kind: str
    matched: str


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    source: str
    past_cancels: bool
    when: tuple[tuple[str, ...], ...]


# -- compiled form -----------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    words: frozenset[str]
    special: str  # "", "#", "#fever", "#year"
    gap: int  # words allowed between the previous slot and this one
    not_after: frozenset[str]  # the word right after this one may not be one of these


@dataclass(frozen=True)
class _Pattern:
    concept: str
    slots: tuple[_Slot, ...]
    not_before: frozenset[str]


@dataclass(frozen=True)
class _Config:
    rules: tuple[Rule, ...]
    patterns: tuple[_Pattern, ...]
    by_first_word: Mapping[str, tuple[_Pattern, ...]]
    by_first_special: tuple[_Pattern, ...]
    vocabulary: frozenset[str]
    by_initial: Mapping[str, tuple[str, ...]]
    negators: frozenset[str]
    novelty_negators: frozenset[str]
    pseudo_after: frozenset[str]
    free_words: frozenset[str]
    coordinators: frozenset[str]
    clause_words: frozenset[str]
    not_typos: frozenset[str]
    sms: Mapping[str, tuple[str, ...]]
    window: int


@dataclass
class _Token:
    text: str
    forms: frozenset[str]
    punct: bool
    brk: bool  # punctuation or a clause word
    number: float | None
    clause: int


@dataclass
class _Occurrence:
    concept: str
    start: int
    end: int
    negated: bool
    past: bool = False


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("'", "").replace("\u2019", "").replace("`", "")


def _words(values: Iterable[str]) -> frozenset[str]:
    return frozenset(_fold(v).strip() for v in values)


def _compile_pattern(concept: str, text: str) -> _Pattern:
    slots: list[_Slot] = []
    not_before: frozenset[str] = frozenset()
    gap = SHORT_GAP
    for element in _fold(text).split():
        if element == "...":
            gap = LONG_GAP
            continue
        if element == "+":
            gap = 0
            continue
        if element.startswith("!"):
            excluded = frozenset(element[1:].split("|"))
            if slots:
                last = slots[-1]
                slots[-1] = _Slot(last.words, last.special, last.gap, last.not_after | excluded)
            else:
                not_before = excluded
            continue
        if element.startswith("#"):
            if element not in ("#", "#fever", "#year"):
                raise ValueError(f"redflags: unknown number slot {element!r} in {text!r}")
            slots.append(_Slot(frozenset(), element, gap, frozenset()))
        else:
            slots.append(_Slot(frozenset(element.split("|")), "", gap, frozenset()))
        gap = SHORT_GAP
    if not slots:
        raise ValueError(f"redflags: empty phrase in concept {concept!r}")
    return _Pattern(concept, tuple(slots), not_before)


def _load(path: Path) -> _Config:
    import tomllib  # lazy: only on the first check

    with path.open("rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    matching: dict[str, Any] = data["matching"]
    concepts: dict[str, dict[str, list[str]]] = data["concept"]
    patterns = tuple(
        _compile_pattern(name, phrase)
        for name, languages in concepts.items()
        for lang in ("en", "es")
        for phrase in languages.get(lang, ())
    )
    rules: list[Rule] = []
    for raw in data["rule"]:
        rule = Rule(
            id=str(raw["id"]),
            kind=str(raw["kind"]),
            source=str(raw["source"]),
            past_cancels=bool(raw.get("past_cancels", True)),
            when=tuple(tuple(str(c) for c in alt) for alt in raw["when"]),
        )
        if rule.kind not in KINDS:
            raise ValueError(f"redflags: rule {rule.id!r} has unknown kind {rule.kind!r}")
        missing = {c for alt in rule.when for c in alt} - set(concepts)
        if missing:
            raise ValueError(f"redflags: rule {rule.id!r} uses unknown concepts {sorted(missing)}")
        rules.append(rule)
    by_first: dict[str, list[_Pattern]] = {}
    special: list[_Pattern] = []
    for pattern in patterns:
        first = pattern.slots[0]
        if first.special:
            special.append(pattern)
        for word in first.words:
            by_first.setdefault(word, []).append(pattern)
    vocabulary = frozenset(w for p in patterns for s in p.slots for w in s.words)
    fuzzy_targets = sorted(w for w in vocabulary if len(w) >= FUZZY_MIN_KEYWORD and w.isalpha())
    by_initial: dict[str, list[str]] = {}
    for word in fuzzy_targets:
        by_initial.setdefault(word[0], []).append(word)
    sms = {_fold(k): tuple(_fold(str(v)).split()) for k, v in dict(matching.get("sms", {})).items()}
    return _Config(
        rules=tuple(rules),
        patterns=patterns,
        by_first_word={k: tuple(v) for k, v in by_first.items()},
        by_first_special=tuple(special),
        vocabulary=vocabulary,
        by_initial={k: tuple(v) for k, v in by_initial.items()},
        negators=_words(matching["negators"]),
        novelty_negators=_words(matching.get("novelty_negators", ())),
        pseudo_after=_words(matching["pseudo_after"]),
        free_words=_words(matching["free_words"]),
        coordinators=_words(matching["coordinators"]),
        clause_words=_words(matching["clause_words"]),
        not_typos=_words(matching["not_typos"]),
        sms=sms,
        window=int(matching["negation_window"]),
    )


@cache
def _config() -> _Config:
    return _load(RULES_FILE)


def rules() -> tuple[Rule, ...]:
    """The rule set, in report order (id, kind, source, alternatives)."""
    return _config().rules


# -- reading a message --------------------------------------------------------


@lru_cache(maxsize=1)
def _osa() -> Any:
    from rapidfuzz.distance import OSA  # lazy: keep `import core.nlu` cheap

    return OSA


@lru_cache(maxsize=32_768)
def _forms(word: str) -> frozenset[str]:
    """``word`` plus the rule words it is a plausible typo of."""
    config = _config()
    if (
        word in config.vocabulary
        or word in config.not_typos
        or len(word) < FUZZY_MIN_WORD
        or not word.isalpha()
    ):
        return frozenset((word,))
    candidates = config.by_initial.get(word[0], ())
    if not candidates:
        return frozenset((word,))
    osa = _osa()
    near = [word]
    for keyword in candidates:
        allowed = 2 if len(keyword) >= 8 and len(word) >= 7 else 1
        if abs(len(keyword) - len(word)) <= allowed and (
            osa.distance(word, keyword, score_cutoff=allowed) <= allowed
        ):
            near.append(keyword)
    return frozenset(near)


def _number(text: str) -> float | None:
    if not text[0].isdigit():
        return None
    try:
        return float(text.replace(",", "."))
    except ValueError:  # pragma: no cover - the token regex only yields digits
        return None


def _tokenize(text: str, config: _Config) -> list[_Token]:
    folded = _fold(_OD.sub(" overdosed ", text[:MAX_CHARS]))
    for before, after in _BEFORE_TOKENS:
        folded = folded.replace(before, after)
    raw: list[str] = []
    for piece in _TOKEN.findall(folded):
        raw.extend(config.sms.get(piece, (piece,)))
    out: list[_Token] = []
    clause = 0
    index = 0
    while index < len(raw):
        word = raw[index]
        if word == "can" and index + 1 < len(raw) and raw[index + 1] == "not":
            word, index = "cant", index + 1  # "can not" reads as "cant", not a negation
        index += 1
        punct = not (word[0].isalnum())
        brk = punct or word in config.clause_words
        if brk:
            clause += 1
        number = _number(word) if not punct else None
        forms = frozenset() if punct else (_forms(word) if number is None else frozenset((word,)))
        out.append(_Token(word, forms, punct, brk, number, clause))
    return out


def _is_fever(value: float) -> bool:
    return 38.0 <= value <= 43.0 or 100.4 <= value <= 109.0


def _slot_matches(slot: _Slot, token: _Token) -> bool:
    if token.punct:
        return False
    if slot.special:
        if token.number is None:
            return False
        if slot.special == "#fever":
            return _is_fever(token.number)
        if slot.special == "#year":
            return token.number.is_integer() and 1900 <= token.number <= 2099
        return True
    return not slot.words.isdisjoint(token.forms)


def _after_ok(slot: _Slot, tokens: Sequence[_Token], index: int) -> bool:
    """The word right after position ``index`` is not excluded by the slot."""
    if not slot.not_after or index + 1 >= len(tokens):
        return True
    return tokens[index + 1].text not in slot.not_after


def _match(
    pattern: _Pattern, tokens: Sequence[_Token], start: int, negators: frozenset[str]
) -> tuple[int, bool] | None:
    """(end, a negator sat in a gap) for ``pattern`` starting at ``start``, or None."""
    first = pattern.slots[0]
    if not (_slot_matches(first, tokens[start]) and _after_ok(first, tokens, start)):
        return None
    if pattern.not_before:
        for back in range(start - 1, max(-1, start - 1 - LOOKBEHIND), -1):
            if tokens[back].punct:
                break
            if tokens[back].text in pattern.not_before:
                return None

    def rest(slot_index: int, pos: int, gap_negated: bool) -> tuple[int, bool] | None:
        if slot_index == len(pattern.slots):
            return pos, gap_negated
        slot = pattern.slots[slot_index]
        negated = gap_negated
        for index in range(pos, min(len(tokens), pos + slot.gap + 1)):
            token = tokens[index]
            if _slot_matches(slot, token) and _after_ok(slot, tokens, index):
                found = rest(slot_index + 1, index + 1, negated)
                if found is not None:
                    return found
            if token.brk:
                return None  # gaps never cross a clause break
            negated = negated or token.text in negators
        return None

    return rest(1, start + 1, False)


def _negated_before(tokens: Sequence[_Token], start: int, config: _Config) -> str:
    """The negator that cancels a concept starting at ``start``, or ""."""
    counted = 0
    index = start - 1
    while index >= 0 and counted < config.window:
        token = tokens[index]
        if token.brk:
            return ""
        if token.text in config.negators:
            after = tokens[index + 1].text if index + 1 < len(tokens) else ""
            if after not in config.pseudo_after:
                return token.text
        if token.text not in config.free_words:
            counted += 1
        index -= 1
    return ""


def _occurrences(tokens: Sequence[_Token], config: _Config) -> list[_Occurrence]:
    found: list[_Occurrence] = []
    novel: list[int] = []
    seen: set[tuple[str, int]] = set()
    for start, token in enumerate(tokens):
        if token.punct:
            continue
        candidates: list[_Pattern] = []
        for form in token.forms:
            candidates.extend(config.by_first_word.get(form, ()))
        if token.number is not None:
            candidates.extend(config.by_first_special)
        for pattern in candidates:
            if (pattern.concept, start) in seen:
                continue
            result = _match(pattern, tokens, start, config.negators)
            if result is None:
                continue
            end, gap_negated = result
            negator = _negated_before(tokens, start, config)
            if negator in config.novelty_negators and not gap_negated:
                novel.append(len(found))  # "never had pain like this": decided below
            negated = gap_negated or bool(negator)
            if not negated:
                seen.add((pattern.concept, start))  # a later phrase may still find it live
            found.append(_Occurrence(pattern.concept, start, end, negated))
    new_clauses = {tokens[o.start].clause for o in found if o.concept == "novelty"}
    for index in novel:
        if tokens[found[index].start].clause in new_clauses:
            found[index].negated = False
    found.sort(key=lambda o: (o.start, o.end))
    _carry_negation(found, tokens, config)
    past_clauses = {tokens[o.start].clause for o in found if o.concept == "past"}
    for occurrence in found:
        occurrence.past = tokens[occurrence.start].clause in past_clauses
    return found


def _carry_negation(
    found: Sequence[_Occurrence], tokens: Sequence[_Token], config: _Config
) -> None:
    """Carry a negation across "or"/"ni" to the next concept: "no fever or chest pain"."""
    joining = config.coordinators | config.free_words
    for index, occurrence in enumerate(found):
        if occurrence.negated:
            continue
        for earlier in found[:index]:
            if not earlier.negated or earlier.end > occurrence.start:
                continue
            between = [t.text for t in tokens[earlier.end : occurrence.start]]
            if (
                between
                and all(w in joining for w in between)
                and any(w in config.coordinators for w in between)
            ):
                occurrence.negated = True
                break


def detect(text: str) -> tuple[RedFlag, ...]:
    """The red flags in ``text``, one per rule that fires, in rule-file order; never raises
    on odd input (non-str, empty, emoji, huge)."""
    if not isinstance(text, str) or not text.strip():
        return ()
    config = _config()
    tokens = _tokenize(text, config)
    if not tokens:
        return ()
    by_concept: dict[str, list[_Occurrence]] = {}
    for occurrence in _occurrences(tokens, config):
        if not occurrence.negated:
            by_concept.setdefault(occurrence.concept, []).append(occurrence)
    flags: list[RedFlag] = []
    for rule in config.rules:
        for alternative in rule.when:
            live = [
                next(
                    (o for o in by_concept.get(c, ()) if not (o.past and rule.past_cancels)),
                    None,
                )
                for c in alternative
            ]
            if all(o is not None for o in live):
                matched = " + ".join(
                    " ".join(t.text for t in tokens[o.start : o.end]) for o in live if o
                )
                flags.append(RedFlag(rule.id, rule.kind, matched))
                break
    return tuple(flags)
