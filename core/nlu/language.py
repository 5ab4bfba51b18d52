"""English or Spanish? A small marker-counting heuristic for short patient messages.

``detect_language(text)`` scores Spanish and English marker words (and Spanish
letters/punctuation ñ ¿ ¡ and accented vowels) and returns the language with
the higher score, or None when there is no signal or the scores tie ("1",
"ok", "no", "doctor", an emoji). Words common to both languages are not
markers. Extend :data:`MARKERS` to tune it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, Literal

__all__ = ["MARKERS", "detect_language"]

Language = Literal["en", "es"]

_ES_WORDS = """
    quiero queria necesito necesita tengo tiene puedo puede podria quisiera cita citas
    manana hoy ayer tarde noche dia dias semana semanas mes proximo proxima pasado
    lunes martes miercoles jueves viernes sabado domingo
    enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre
    hola buenos buenas gracias favor porfa porfavor ayuda medico medica doctora receta farmacia
    cancelar cambiar reservar reprogramar anular agendar turno consulta
    el la los las del al de que mi mis su sus una unos unas es esta estoy estan son por para
    con sin pero muy mas cuando cuanto donde como porque tambien ahora despues antes hasta
    dolor fiebre cabeza pecho estomago duele tos si vale claro correcto bien bueno
    quien puedes hacer ver hablar pregunta preguntar nada algo todo otra otro
    tarde temprano mediodia hora horas
    """
_EN_WORDS = """
    i im ive id my me you your we our the is are was am be been do does did have has
    want need would like could can cant please pls thanks thank hello hi hey
    appointment appointments appt book booking cancel reschedule change move
    tomorrow today tonight yesterday morning afternoon evening night noon week month next
    monday tuesday wednesday thursday friday saturday sunday
    january february march april june july august september october november december
    what when where how why who which there this that it with and or of to for at on in from
    yes yeah yep nope sure help pharmacy refill prescription medicine doctor's pain fever
    headache chest feel feeling sick not any some time after before about just get see
    """

#: Marker words per language (folded: lower case, no accents).
MARKERS: Final[dict[Language, frozenset[str]]] = {
    "es": frozenset(_ES_WORDS.split()),
    "en": frozenset(_EN_WORDS.split()),
}
_ES_STRONG_CHARS: Final = frozenset("ñ¿¡")
_ES_ACCENTS: Final = frozenset("áéíóúü")
_WORD = re.compile(r"[a-z]+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("'", "")


def detect_language(text: str) -> Language | None:
    """The language of ``text``: "en", "es", or None when there is no signal either way."""
    if not isinstance(text, str):
        return None
    text = unicodedata.normalize("NFC", text[:2000])
    lowered = text.lower()
    es = 2.0 * sum(1 for ch in lowered if ch in _ES_STRONG_CHARS)
    es += 1.0 * sum(1 for ch in lowered if ch in _ES_ACCENTS)
    en = 0.0
    for word in _WORD.findall(_fold(text.replace("\u2019", "'"))):
        if word in MARKERS["es"]:
            es += 1.0
        if word in MARKERS["en"]:
            en += 1.0
    if es == en:
        return None
    return "es" if es > en else "en"
