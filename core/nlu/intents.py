"""What a patient's message asks for: keyword and phrase rules per language.

``classify_intent(text, lang)`` returns one of :data:`INTENTS`. The rules are
data, not code: :data:`WHOLE_MESSAGE` lists messages that mean something only
on their own ("STOP", "yes", "menu"), and :data:`PHRASES` lists, per language,
ordered ``(intent, patterns)`` rules matched anywhere in the message.

A pattern is words separated by spaces; ``a|b`` means either word; up to
:data:`MAX_GAP` other words may sit between consecutive pattern words ("see
doctor" matches "see a doctor"). A pattern starting with ``^`` must start the
message and applies only to short messages (<= :data:`SHORT_REPLY_WORDS`
words): "yes please", "no gracias". Matching ignores case, accents and
punctuation.

Typos: in the message's own language, a pattern word of 6+ letters also
matches a message word of 5+ letters with the same first letter within a
Damerau (OSA) distance of 1, or 2 for pattern words of 8+ letters
("apointment", "cancle", "resheduel"); rules are still tried in order, so
"cancle my appointment" is ``cancel``. Real words one typo away from a keyword
("cancer") never match fuzzily (:data:`NOT_TYPOS`). Anchored patterns are
never fuzzy.

The message's own language is tried first, then the other one, so a Spanish
message from a patient whose profile says English is still understood.
Carrier opt-out/opt-in keywords (STOP, CANCEL, ALTO, START, ...) count only as
the whole message and are never fuzzy: "cancel my appointment" is ``cancel``,
a lone "cancel" is ``opt_out``. A date or time alone ("tomorrow at 3") is
``other``: the caller uses the parsed ``when``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from typing import Final

__all__ = [
    "INTENTS",
    "NOT_TYPOS",
    "PHRASES",
    "WHOLE_MESSAGE",
    "classify_intent",
    "fold",
    "tokens",
]

INTENTS: Final = (
    "book",
    "reschedule",
    "cancel",
    "confirm",
    "deny",
    "my_appointments",
    "ask_doctor",
    "pharmacy",
    "refill",
    "help",
    "menu",
    "opt_out",
    "opt_in",
    "other",
)

MAX_GAP: Final = 2
SHORT_REPLY_WORDS: Final = 5


def _w(words: str) -> list[str]:
    return words.split()


FUZZY_MIN_PATTERN_LEN: Final = 6
FUZZY_MIN_WORD_LEN: Final = 5

#: Real words one typo away from a keyword: never corrected.
NOT_TYPOS: Final = frozenset(
    _w(
        "cancer cancers chance chances changes charge booked looking cooking reschedules "
        "cancero visita visitas"
    )
)

#: Messages that, on their own (case, accents and punctuation folded), mean the intent.
#: Checked in this order, before any phrase rule; the carrier keywords come first.
WHOLE_MESSAGE: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    (
        "opt_out",
        frozenset(
            _w("stop stopall unsubscribe end quit cancel revoke optout alto baja parar detener")
        ),
    ),
    ("opt_in", frozenset(_w("start unstop alta"))),
    (
        "confirm",
        frozenset(
            [
                *_w("yes y yeah yea yep yup sure ok okay k kk confirm confirmed correct"),
                *_w("perfect great fine si claro correcto vale confirmo confirmar confirmado"),
                *_w("perfecto dale listo bien"),
                "sounds good",
                "that works",
                "works for me",
                "de acuerdo",
                "esta bien",
                "me parece bien",
                "\U0001f44d",
            ]
        ),
    ),
    (
        "deny",
        frozenset(
            [
                *_w("no n nope nah negative"),
                "not really",
                "para nada",
                "no puedo",
                "\U0001f44e",
            ]
        ),
    ),
    ("help", frozenset(["help", "ayuda", "info", "help me", "ayudame", "socorro"])),
    (
        "menu",
        frozenset(
            [
                *_w("menu inicio restart home back volver reiniciar opciones options"),
                "main menu",
                "start over",
                "menu principal",
                "empezar de nuevo",
                "volver al inicio",
                "go back",
            ]
        ),
    ),
)

_DOCTOR_EN = "doctor|doctors|dr|doc|physician|nurse"
_DOCTOR_ES = "medico|medica|doctor|doctora|dr|dra|enfermera|enfermero"

#: Ordered (intent, patterns) rules per language; the first rule that matches wins.
PHRASES: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "en": (
        (
            "reschedule",
            (
                "reschedule",
                "rescheduling",
                "rebook",
                "postpone",
                "push back appointment|appt|visit|it",
                "move appointment|appt|visit|it",
                "change appointment|appt|visit|time|date|day|booking",
                "different time|day|date",
                "another time|day|date",
                "later time|date",
                "earlier time|date",
            ),
        ),
        (
            "cancel",
            (
                "cancel",
                "canceled",
                "cancelled",
                "cancellation",
                "cancelation",
                "call off",
                "cant make it",
                "cannot make it",
                "wont make it",
            ),
        ),
        ("confirm", ("confirm", "confirmed", "confirming")),
        (
            "book",
            (
                "book",
                "booking",
                "schedule",
                "make appointment|appt",
                "new appointment|appt",
                "set up appointment|appt",
                "get appointment|appt",
            ),
        ),
        (
            "my_appointments",
            (
                "my appointment|appointments|appt|appts|visit|visits|booking|bookings",
                "when is my",
                "what time is my",
                "upcoming appointment|appointments",
                "next appointment",
                "do i have appointment|appointments|appt",
                "list appointments",
                "show appointments",
                "check appointment|appointments",
            ),
        ),
        (
            "ask_doctor",
            (
                f"question {_DOCTOR_EN}",
                f"questions {_DOCTOR_EN}",
                f"ask {_DOCTOR_EN}",
                f"message {_DOCTOR_EN}",
                f"talk {_DOCTOR_EN}",
                f"speak {_DOCTOR_EN}",
                f"write {_DOCTOR_EN}",
                f"contact {_DOCTOR_EN}",
            ),
        ),
        (
            "refill",
            (
                "refill",
                "refills",
                "renew prescription|prescriptions|meds|medication|medicine",
                "renewal",
                "more medicine|medication|meds|pills|insulin|inhaler",
                "ran out",
                "run out",
                "running out",
                "out of medicine|medication|meds|pills",
                "prescription",
                "prescriptions",
            ),
        ),
        ("pharmacy", ("pharmacy", "pharmacies", "farmacy", "drugstore", "drug store", "chemist")),
        (
            "help",
            (
                "help",
                "how does this work",
                "how does it work",
                "what can you do",
                "dont understand",
                "do not understand",
                "confused",
            ),
        ),
        ("confirm", ("^yes|yeah|yep|yup|sure|ok|okay|confirm|correct",)),
        ("deny", ("^no|nope|nah",)),
        (
            "book",
            (
                "appointment",
                "appt",
                f"see {_DOCTOR_EN}|someone|specialist",
                "need doctor|dr|physician",
                "visit",
                "consultation",
                "checkup",
                "check up",
                "video call|visit|consultation",
            ),
        ),
        ("menu", ("menu", "start over", "main menu")),
    ),
    "es": (
        (
            "reschedule",
            (
                "reprogramar",
                "reagendar",
                "reprogramacion",
                "posponer",
                "aplazar",
                "atrasar cita|turno",
                "adelantar cita|turno",
                "cambiar cita|turno|hora|dia|fecha|consulta",
                "cambio cita|turno|hora|dia|fecha",
                "mover cita|turno|consulta",
                "otro dia",
                "otra hora|fecha",
            ),
        ),
        (
            "cancel",
            (
                "cancelar",
                "cancela",
                "cancelo",
                "cancelacion",
                "anular",
                "anula",
                "anulo",
                "no podre ir",
                "no voy a poder ir",
            ),
        ),
        ("confirm", ("confirmo", "confirmar", "confirmado", "confirmada")),
        (
            "book",
            (
                "reservar",
                "reserva",
                "agendar",
                "pedir cita|turno|hora|consulta",
                "sacar cita|turno",
                "hacer cita|turno",
                "programar cita|turno",
                "nueva cita",
                "solicitar cita|turno|consulta",
            ),
        ),
        (
            "my_appointments",
            (
                "mis citas|turnos|consultas",
                "mi cita|turno|consulta",
                "cuando es mi",
                "a que hora es mi",
                "proxima cita",
                "tengo cita|turno|citas",
                "ver citas",
            ),
        ),
        (
            "ask_doctor",
            (
                f"pregunta {_DOCTOR_ES}",
                f"preguntas {_DOCTOR_ES}",
                f"preguntar {_DOCTOR_ES}",
                f"preguntarle {_DOCTOR_ES}",
                f"duda {_DOCTOR_ES}",
                f"hablar {_DOCTOR_ES}",
                f"mensaje {_DOCTOR_ES}",
                f"consultar {_DOCTOR_ES}",
            ),
        ),
        (
            "refill",
            (
                "renovar receta|recetas|medicamento|medicina|medicacion",
                "renovacion receta",
                "resurtir",
                "reponer medicamento|medicina",
                "mas medicamento|medicamentos|medicina|medicinas|pastillas",
                "se me acabo|acabaron",
                "se acabo medicamento|medicina|pastillas",
                "receta",
                "recetas",
            ),
        ),
        ("pharmacy", ("farmacia", "farmacias", "botica", "drogueria")),
        ("help", ("ayuda", "ayudame", "no entiendo", "como funciona", "que puedo hacer")),
        ("confirm", ("^si|claro|vale|correcto|ok|perfecto|bueno",)),
        ("deny", ("^no",)),
        (
            "book",
            (
                "cita",
                "turno",
                "consulta",
                f"ver {_DOCTOR_ES}|especialista",
                "necesito medico|medica|doctor|doctora",
                "videollamada",
                "revision",
                "chequeo",
            ),
        ),
        ("menu", ("menu", "inicio", "menu principal", "empezar de nuevo", "volver al inicio")),
    ),
}

_TOKEN = re.compile(r"[a-z0-9]+|[\U0001f300-\U0001faff]")
_QUESTION_ONLY = re.compile(r"^[\s?¿]*\?[\s?¿]*$")

Slot = tuple[str, ...]


class _Pattern:
    __slots__ = ("anchored", "slots")

    def __init__(self, text: str) -> None:
        self.anchored = text.startswith("^")
        self.slots: tuple[Slot, ...] = tuple(
            tuple(fold(alt) for alt in slot.split("|")) for slot in text.lstrip("^").split()
        )


def fold(text: str) -> str:
    """Lower case, no accents, apostrophes dropped ("Don't" -> "dont")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("'", "").replace("\u2019", "")


def tokens(text: str) -> list[str]:
    """The folded words (and emoji) of ``text``."""
    return _TOKEN.findall(fold(text))


@cache
def _rules(lang: str) -> tuple[tuple[str, tuple[_Pattern, ...]], ...]:
    return tuple(
        (intent, tuple(_Pattern(p) for p in patterns)) for intent, patterns in PHRASES[lang]
    )


@lru_cache(maxsize=1)
def _distance() -> Callable[[str, str], int]:
    from rapidfuzz.distance import OSA  # lazy: keep `import core.nlu` cheap

    def distance(a: str, b: str) -> int:
        return int(OSA.distance(a, b))

    return distance


def _typo_of(word: str, keyword: str) -> bool:
    if (
        len(keyword) < FUZZY_MIN_PATTERN_LEN
        or len(word) < FUZZY_MIN_WORD_LEN
        or word[0] != keyword[0]
        or word in NOT_TYPOS
    ):
        return False
    allowed = 2 if len(keyword) >= 8 else 1
    return abs(len(word) - len(keyword)) <= allowed and _distance()(word, keyword) <= allowed


def _word_matches(word: str, slot: Slot, fuzzy: bool) -> bool:
    return word in slot or (fuzzy and any(_typo_of(word, keyword) for keyword in slot))


def _matches(words: Sequence[str], pattern: _Pattern, fuzzy: bool) -> bool:
    """True when the slots occur in order with at most MAX_GAP words between them."""
    slots = pattern.slots
    if pattern.anchored and (len(words) > SHORT_REPLY_WORDS or fuzzy):
        return False

    def match_from(index: int, pos: int) -> bool:
        if index == len(slots):
            return True
        if index == 0:
            last = 1 if pattern.anchored else len(words)
        else:
            last = min(len(words), pos + MAX_GAP + 1)
        return any(
            _word_matches(words[i], slots[index], fuzzy) and match_from(index + 1, i + 1)
            for i in range(pos, last)
        )

    return match_from(0, 0)


def _language(lang: str) -> str:
    code = lang.strip().lower()[:2] if isinstance(lang, str) else ""
    return code if code in PHRASES else "en"


def classify_intent(text: str, lang: str) -> str:
    """One of INTENTS for ``text`` (see the module doc); never raises."""
    if not isinstance(text, str):
        return "other"
    text = text[:2000]
    words = tokens(text)
    joined = " ".join(words)
    for intent, messages in WHOLE_MESSAGE:
        if joined in messages:
            return intent
    if _QUESTION_ONLY.match(text):
        return "help"
    if not words:
        return "other"
    primary = _language(lang)
    other = "es" if primary == "en" else "en"
    present = frozenset(words)
    for language, fuzzy in ((primary, True), (other, False)):
        # Words with a typo stand in for the keyword they misspell; patterns
        # whose every slot cannot be met by these words are not tried at all.
        near = present | _typo_targets(present, language) if fuzzy else present
        index = _first_slot_index(language)
        exact = {id(p) for w in present for p in index.get(w, ())}
        typo = {id(p) for w in near for p in index.get(w, ())} if fuzzy else set()
        if not exact and not typo:
            continue
        for intent, patterns in _rules(language):
            if any(
                id(p) in exact and _possible(p, present) and _matches(words, p, False)
                for p in patterns
            ):
                return intent
            if fuzzy and any(
                id(p) in typo and _possible(p, near) and _matches(words, p, True) for p in patterns
            ):
                return intent
    return "other"


def _possible(pattern: _Pattern, present: frozenset[str]) -> bool:
    return all(not present.isdisjoint(slot) for slot in pattern.slots)


@cache
def _first_slot_index(lang: str) -> dict[str, tuple[_Pattern, ...]]:
    """Keyword -> the patterns whose first slot it can fill; a pattern none of
    whose first-slot words is in the message cannot match."""
    index: dict[str, list[_Pattern]] = {}
    for _intent, patterns in _rules(lang):
        for pattern in patterns:
            for keyword in pattern.slots[0] if pattern.slots else ():
                index.setdefault(keyword, []).append(pattern)
    return {k: tuple(v) for k, v in index.items()}


@cache
def _keywords(lang: str) -> frozenset[str]:
    return frozenset(
        kw
        for _intent, patterns in _rules(lang)
        for p in patterns
        for slot in p.slots
        for kw in slot
    )


def _typo_targets(present: frozenset[str], lang: str) -> frozenset[str]:
    return frozenset(
        kw for kw in _keywords(lang) if kw not in present and any(_typo_of(w, kw) for w in present)
    )
