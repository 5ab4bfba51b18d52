"""detect_language: Spanish vs English markers, None without a signal."""

from __future__ import annotations

import pytest

from core.nlu import detect_language

ROWS: list[tuple[str, str | None]] = [
    ("hola", "es"),
    ("quiero una cita", "es"),
    ("mañana a las 3", "es"),
    ("¿cuándo?", "es"),
    ("gracias", "es"),
    ("sí", "es"),
    ("martes", "es"),
    ("cita", "es"),
    ("OK gracias", "es"),
    ("mi hijo tiene fiebre", "es"),
    ("a las 5", "es"),
    ("por favor", "es"),
    ("buenas tardes, necesito cambiar mi cita", "es"),
    ("¡Hola!", "es"),
    ("el próximo lunes por la mañana", "es"),
    ("hello", "en"),
    ("yes", "en"),
    ("I want an appointment", "en"),
    ("tomorrow at 3", "en"),
    ("thanks", "en"),
    ("tuesday", "en"),
    ("appointment", "en"),
    ("ok thanks", "en"),
    ("my son has a fever", "en"),
    ("at 5", "en"),
    ("can I move my appointment to next monday please", "en"),
    ("Hola, I need help with my appointment", "en"),
    ("1", None),
    ("ok", None),
    ("👍", None),
    ("no", None),
    ("doctor", None),
    ("", None),
    ("   ", None),
    ("x" * 2000, None),
    ("Dr. Ruiz", None),
    ("?", None),
]


@pytest.mark.parametrize(("text", "expected"), ROWS)
def test_detect_language(text: str, expected: str | None) -> None:
    assert detect_language(text) == expected
