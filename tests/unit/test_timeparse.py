"""parse_when: what a patient means by a date/time, English and Spanish.

Every row is (text, lang, expected start, expected end or None, expected grain)
with a fixed ``now``. The main table uses Tuesday 2026-03-10 09:15 in
America/New_York (two days after the US DST change, so offsets are -04:00);
other tables cover the DST change itself, Europe/Madrid (EU change on
2026-03-29), UTC and an afternoon ``now``.
"""

from __future__ import annotations

import random
import string
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.nlu import When, parse_when

NY = "America/New_York"
NOW = datetime(2026, 3, 10, 9, 15, tzinfo=ZoneInfo(NY))  # a Tuesday

Row = tuple[str, str, str, str | None, str]


def d(day: int, hm: str = "00:00", month: int = 3, off: str = "-04:00") -> str:
    """ISO timestamp in 2026 (helper to keep the tables readable)."""
    return f"2026-{month:02d}-{day:02d}T{hm}:00{off}"


MAIN: list[Row] = [
    # --- days
    ("tomorrow", "en", d(11), None, "day"),
    ("Tomorrow", "en", d(11), None, "day"),
    ("TOMORROW", "en", d(11), None, "day"),
    ("today", "en", d(10), None, "day"),
    ("the day after tomorrow", "en", d(12), None, "day"),
    ("yesterday", "en", d(9), None, "day"),
    ("tmrw", "en", d(11), None, "day"),
    ("tmr", "en", d(11), None, "day"),
    ("tmw", "en", d(11), None, "day"),
    ("tomorow", "en", d(11), None, "day"),
    ("tommorow", "en", d(11), None, "day"),
    ("2moro", "en", d(11), None, "day"),
    ("2morrow", "en", d(11), None, "day"),
    ("2day", "en", d(10), None, "day"),
    ("ｔｏｍｏｒｒｏｗ", "en", d(11), None, "day"),
    ("mañana", "es", d(11), None, "day"),
    ("manana", "es", d(11), None, "day"),
    ("MAÑANA", "es", d(11), None, "day"),
    ("mñn", "es", d(11), None, "day"),
    ("pasado mañana", "es", d(12), None, "day"),
    ("pasado manana", "es", d(12), None, "day"),
    ("hoy", "es", d(10), None, "day"),
    # --- weekdays (today is Tuesday: a bare "tuesday" is next week's)
    ("tuesday", "en", d(17), None, "day"),
    ("next tuesday", "en", d(17), None, "day"),
    ("next tues", "en", d(17), None, "day"),
    ("monday", "en", d(16), None, "day"),
    ("mon", "en", d(16), None, "day"),
    ("next monday", "en", d(16), None, "day"),
    ("wednesday", "en", d(11), None, "day"),
    ("wed", "en", d(11), None, "day"),
    ("wensday", "en", d(11), None, "day"),
    ("thursday", "en", d(12), None, "day"),
    ("thurs", "en", d(12), None, "day"),
    ("thrusday", "en", d(12), None, "day"),
    ("friday", "en", d(13), None, "day"),
    ("this friday", "en", d(13), None, "day"),
    ("next week friday", "en", d(20), None, "day"),
    ("sat", "en", d(14), None, "day"),
    ("saturday", "en", d(14), None, "day"),
    ("sunday", "en", d(15), None, "day"),
    ("el martes", "es", d(17), None, "day"),
    ("martes", "es", d(17), None, "day"),
    ("el martes que viene", "es", d(17), None, "day"),
    ("el próximo lunes", "es", d(16), None, "day"),
    ("proximo lunes", "es", d(16), None, "day"),
    ("miercoles", "es", d(11), None, "day"),
    ("el jueves", "es", d(12), None, "day"),
    ("el viernes", "es", d(13), None, "day"),
    ("sábado", "es", d(14), None, "day"),
    ("sabado", "es", d(14), None, "day"),
    ("domingo", "es", d(15), None, "day"),
    # --- parts of day -> clinic ranges, end exclusive
    ("morning", "en", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("mornings", "en", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("morning please", "en", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("this morning", "en", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("in the morning", "en", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("tomorrow morning", "en", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("tmrw morning", "en", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("monday morning", "en", d(16, "08:00"), d(16, "12:00"), "hour"),
    ("afternoon", "en", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("this afternoon", "en", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("in the afternoon", "en", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("tomorrow afternoon", "en", d(11, "12:00"), d(11, "17:00"), "hour"),
    ("friday afternoon", "en", d(13, "12:00"), d(13, "17:00"), "hour"),
    ("next monday afternoon", "en", d(16, "12:00"), d(16, "17:00"), "hour"),
    ("evening", "en", d(10, "17:00"), d(10, "21:00"), "hour"),
    ("this evening", "en", d(10, "17:00"), d(10, "21:00"), "hour"),
    ("tonight", "en", d(10, "17:00"), d(10, "21:00"), "hour"),
    ("tomorrow evening", "en", d(11, "17:00"), d(11, "21:00"), "hour"),
    ("por la mañana", "es", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("en la mañana", "es", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("mañana por la mañana", "es", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("mañana en la mañana", "es", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("por la tarde", "es", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("en la tarde", "es", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("esta tarde", "es", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("la tarde", "es", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("tarde", "es", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("por las tardes", "es", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("hoy por la tarde", "es", d(10, "12:00"), d(10, "17:00"), "hour"),
    ("mañana por la tarde", "es", d(11, "12:00"), d(11, "17:00"), "hour"),
    ("mañana en la tarde", "es", d(11, "12:00"), d(11, "17:00"), "hour"),
    ("el viernes por la tarde", "es", d(13, "12:00"), d(13, "17:00"), "hour"),
    ("esta noche", "es", d(10, "17:00"), d(10, "21:00"), "hour"),
    ("en la noche", "es", d(10, "17:00"), d(10, "21:00"), "hour"),
    # --- relative days and hours
    ("in 3 days", "en", d(13), None, "day"),
    ("in two days", "en", d(12), None, "day"),
    ("3 days from now", "en", d(13), None, "day"),
    ("in a week", "en", d(17), None, "day"),
    ("in 2 weeks", "en", d(24), None, "day"),
    ("a week from today", "en", d(17), None, "day"),
    ("dentro de 2 días", "es", d(12), None, "day"),
    ("dentro de 3 días", "es", d(13), None, "day"),
    ("en 3 días", "es", d(13), None, "day"),
    ("dentro de una semana", "es", d(17), None, "day"),
    ("in 2 hours", "en", d(10, "11:15"), None, "minute"),
    ("in an hour", "en", d(10, "10:15"), None, "minute"),
    ("dentro de 3 horas", "es", d(10, "12:15"), None, "minute"),
    ("en una hora", "es", d(10, "10:15"), None, "minute"),
    # --- clock times; bare hours read in clinic hours, past times move on
    ("at 10", "en", d(10, "10:00"), None, "hour"),
    ("10:30", "en", d(10, "10:30"), None, "minute"),
    ("3pm", "en", d(10, "15:00"), None, "hour"),
    ("3 pm", "en", d(10, "15:00"), None, "hour"),
    ("at 3:30", "en", d(10, "15:30"), None, "minute"),
    ("1:30", "en", d(10, "13:30"), None, "minute"),
    ("at 11", "en", d(10, "11:00"), None, "hour"),
    ("at 12", "en", d(10, "12:00"), None, "hour"),
    ("at 7", "en", d(10, "19:00"), None, "hour"),
    ("at 8", "en", d(11, "08:00"), None, "hour"),
    ("at 9", "en", d(11, "09:00"), None, "hour"),
    ("8am", "en", d(11, "08:00"), None, "hour"),
    ("7am", "en", d(11, "07:00"), None, "hour"),
    ("at four", "en", d(10, "16:00"), None, "hour"),
    ("at two thirty", "en", d(10, "14:30"), None, "minute"),
    ("half past 3", "en", d(10, "15:30"), None, "minute"),
    ("quarter to 4", "en", d(10, "15:45"), None, "minute"),
    ("at 15:00", "en", d(10, "15:00"), None, "minute"),
    ("17h", "en", d(10, "17:00"), None, "minute"),
    ("noon", "en", d(10, "12:00"), None, "hour"),
    ("around 3", "en", d(10, "15:00"), None, "hour"),
    ("3 o'clock", "en", d(10, "15:00"), None, "hour"),
    ("today at 10", "en", d(10, "10:00"), None, "hour"),
    ("tomorrow at 4", "en", d(11, "16:00"), None, "hour"),
    ("tmrw at 4", "en", d(11, "16:00"), None, "hour"),
    ("tomorrow at 10:30", "en", d(11, "10:30"), None, "minute"),
    ("at 10 tomorrow", "en", d(11, "10:00"), None, "hour"),
    ("10am tomorrow", "en", d(11, "10:00"), None, "hour"),
    ("TOMORROW AT 3PM", "en", d(11, "15:00"), None, "hour"),
    ("at noon tomorrow", "en", d(11, "12:00"), None, "hour"),
    ("friday at 1", "en", d(13, "13:00"), None, "hour"),
    ("next monday at 10am", "en", d(16, "10:00"), None, "hour"),
    ("on the 15th at 2", "en", d(15, "14:00"), None, "hour"),
    ("on march 20th at 11am", "en", d(20, "11:00"), None, "hour"),
    ("this afternoon at 3", "en", d(10, "15:00"), None, "hour"),
    ("at 3 this afternoon", "en", d(10, "15:00"), None, "hour"),
    ("a las 5", "es", d(10, "17:00"), None, "hour"),
    ("a las 17:00", "es", d(10, "17:00"), None, "minute"),
    ("a las 10 y media", "es", d(10, "10:30"), None, "minute"),
    ("a las 4 y cuarto", "es", d(10, "16:15"), None, "minute"),
    ("a las cuatro y media", "es", d(10, "16:30"), None, "minute"),
    ("a las 3 de la tarde", "es", d(10, "15:00"), None, "hour"),
    ("a las 5 pm", "es", d(10, "17:00"), None, "hour"),
    ("a la 1", "es", d(10, "13:00"), None, "hour"),
    ("a la una", "es", d(10, "13:00"), None, "hour"),
    ("a las dos", "es", d(10, "14:00"), None, "hour"),
    ("a las 8", "es", d(11, "08:00"), None, "hour"),
    ("a las 9", "es", d(11, "09:00"), None, "hour"),
    ("hoy a las 5", "es", d(10, "17:00"), None, "hour"),
    ("mañana a las 4", "es", d(11, "16:00"), None, "hour"),
    ("MAÑANA A LAS 4", "es", d(11, "16:00"), None, "hour"),
    ("mañana a las 9", "es", d(11, "09:00"), None, "hour"),
    ("mañana a las 10 de la mañana", "es", d(11, "10:00"), None, "hour"),
    ("el lunes a las 10", "es", d(16, "10:00"), None, "hour"),
    ("el lunes a las 3", "es", d(16, "15:00"), None, "hour"),
    ("el 20 de marzo a las 10", "es", d(20, "10:00"), None, "hour"),
    ("mediodía", "es", d(10, "12:00"), None, "hour"),
    ("al mediodía", "es", d(10, "12:00"), None, "hour"),
    # --- open ranges: "after" has no end, "before" starts at clinic opening
    ("after 3", "en", d(10, "15:00"), None, "hour"),
    ("after 3pm", "en", d(10, "15:00"), None, "hour"),
    ("after 10", "en", d(10, "10:00"), None, "hour"),
    ("after 9", "en", d(10, "09:00"), None, "hour"),
    ("any time after 2", "en", d(10, "14:00"), None, "hour"),
    ("tomorrow after 3", "en", d(11, "15:00"), None, "hour"),
    ("after 5pm tomorrow", "en", d(11, "17:00"), None, "hour"),
    ("after 2pm on friday", "en", d(13, "14:00"), None, "hour"),
    ("después de las 4", "es", d(10, "16:00"), None, "hour"),
    ("despues de las 4", "es", d(10, "16:00"), None, "hour"),
    ("a partir de las 4", "es", d(10, "16:00"), None, "hour"),
    ("luego de las 3", "es", d(10, "15:00"), None, "hour"),
    ("desde las 4", "es", d(10, "16:00"), None, "hour"),
    ("before noon", "en", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("before 3pm", "en", d(10, "08:00"), d(10, "15:00"), "hour"),
    ("before 3", "en", d(10, "08:00"), d(10, "15:00"), "hour"),
    ("until 5", "en", d(10, "08:00"), d(10, "17:00"), "hour"),
    ("till 5pm", "en", d(10, "08:00"), d(10, "17:00"), "hour"),
    ("before friday", "en", d(10), d(13), "day"),
    ("antes del mediodía", "es", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("antes de las 12", "es", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("antes de las 3", "es", d(10, "08:00"), d(10, "15:00"), "hour"),
    ("hasta las 5", "es", d(10, "08:00"), d(10, "17:00"), "hour"),
    ("hasta el mediodía", "es", d(10, "08:00"), d(10, "12:00"), "hour"),
    ("antes del viernes", "es", d(10), d(13), "day"),
    ("hasta mañana", "es", d(11), None, "day"),  # "see you tomorrow", not a range
    # --- ranges end exclusive at the time the patient said
    ("from 2 to 4", "en", d(10, "14:00"), d(10, "16:00"), "hour"),
    ("between 2 and 4", "en", d(10, "14:00"), d(10, "16:00"), "hour"),
    ("from 2 to 4pm", "en", d(10, "14:00"), d(10, "16:00"), "hour"),
    ("2-4pm", "en", d(10, "14:00"), d(10, "16:00"), "hour"),
    ("from 10 to 12", "en", d(10, "10:00"), d(10, "12:00"), "hour"),
    ("between 9am and 11am", "en", d(10, "09:00"), d(10, "11:00"), "hour"),
    ("from 9:30 to 11", "en", d(10, "09:30"), d(10, "11:00"), "minute"),
    ("from 9:30 to 11:15", "en", d(10, "09:30"), d(10, "11:15"), "minute"),
    ("tomorrow between 2 and 4", "en", d(11, "14:00"), d(11, "16:00"), "hour"),
    ("between 2 and 4 on friday", "en", d(13, "14:00"), d(13, "16:00"), "hour"),
    ("de 2 a 4", "es", d(10, "14:00"), d(10, "16:00"), "hour"),
    ("entre las 2 y las 4", "es", d(10, "14:00"), d(10, "16:00"), "hour"),
    ("de 2 a 4 de la tarde", "es", d(10, "14:00"), d(10, "16:00"), "hour"),
    ("de 10 a 12", "es", d(10, "10:00"), d(10, "12:00"), "hour"),
    ("entre las 9 y las 11", "es", d(10, "09:00"), d(10, "11:00"), "hour"),
    ("de 9:30 a 11", "es", d(10, "09:30"), d(10, "11:00"), "minute"),
    ("mañana de 2 a 4", "es", d(11, "14:00"), d(11, "16:00"), "hour"),
    ("mañana entre las 10 y las 12", "es", d(11, "10:00"), d(11, "12:00"), "hour"),
    ("el jueves de 10 a 12", "es", d(12, "10:00"), d(12, "12:00"), "hour"),
    # --- weeks, months, weekends
    ("next week", "en", d(16), None, "week"),
    ("nxt week", "en", d(16), None, "week"),
    ("this week", "en", d(9), None, "week"),
    ("la semana que viene", "es", d(16), None, "week"),
    ("la próxima semana", "es", d(16), None, "week"),
    ("la semana próxima", "es", d(16), None, "week"),
    ("esta semana", "es", d(9), None, "week"),
    ("next month", "en", d(1, month=4), None, "month"),
    ("el mes que viene", "es", d(1, month=4), None, "month"),
    ("el próximo mes", "es", d(1, month=4), None, "month"),
    ("this weekend", "en", d(14), d(16), "day"),
    ("weekend", "en", d(14), d(16), "day"),
    ("este fin de semana", "es", d(14), d(16), "day"),
    ("end of the week", "en", d(13), d(16), "day"),
    # --- dates
    ("dec 3", "en", d(3, month=12, off="-05:00"), None, "day"),
    ("december 3rd", "en", d(3, month=12, off="-05:00"), None, "day"),
    ("3rd of december", "en", d(3, month=12, off="-05:00"), None, "day"),
    ("12/3", "en", d(3, month=12, off="-05:00"), None, "day"),
    ("3 de diciembre", "es", d(3, month=12, off="-05:00"), None, "day"),
    ("the 15th", "en", d(15), None, "day"),
    ("the 20th", "en", d(20), None, "day"),
    ("the 3rd", "en", d(3, month=4), None, "day"),
    ("on the 3rd", "en", d(3, month=4), None, "day"),
    ("march 20", "en", d(20), None, "day"),
    ("20th march", "en", d(20), None, "day"),
    ("3/20", "en", d(20), None, "day"),
    ("el 15", "es", d(15), None, "day"),
    ("el día 15", "es", d(15), None, "day"),
    ("15 de marzo", "es", d(15), None, "day"),
    ("el 30 de marzo", "es", d(30), None, "day"),
    ("lunes 16", "es", d(16), None, "day"),
    ("el lunes 16 de marzo", "es", d(16), None, "day"),
    ("16/03", "es", d(16), None, "day"),
    ("16/3", "es", d(16), None, "day"),
    # --- now
    ("now", "en", d(10, "09:15"), None, "minute"),
    ("asap", "en", d(10, "09:15"), None, "minute"),
    ("ahora", "es", d(10, "09:15"), None, "minute"),
    ("as soon as possible", "en", d(10, "09:15"), None, "minute"),
    ("lo antes posible", "es", d(10, "09:15"), None, "minute"),
    ("cuanto antes", "es", d(10, "09:15"), None, "minute"),
    # --- inside sentences: the first expression wins
    ("book tomorrow at 3", "en", d(11, "15:00"), None, "hour"),
    ("can I come tomorrow at 10?", "en", d(11, "10:00"), None, "hour"),
    (
        "I want to book an appointment for next tuesday at 2:30pm please",
        "en",
        d(17, "14:30"),
        None,
        "minute",
    ),
    ("quiero una cita mañana a las 4", "es", d(11, "16:00"), None, "hour"),
    ("monday or tuesday", "en", d(16), None, "day"),
    ("👍 tomorrow at 3", "en", d(11, "15:00"), None, "hour"),
    ("tomorrow\nat 3", "en", d(11, "15:00"), None, "hour"),
    ("tomorrow\u200b at 3", "en", d(11, "15:00"), None, "hour"),
    ("a\x00b tomorrow", "en", d(11), None, "day"),
]

NOT_TIMES: list[tuple[str, str]] = [
    ("1", "en"),
    ("2", "en"),
    ("3", "es"),
    ("7", "en"),
    ("10", "en"),
    ("12", "es"),
    ("0", "en"),
    ("1.", "en"),
    ("#2", "en"),
    ("(3)", "es"),
    ("option 3", "en"),
    ("opción 2", "es"),
    ("yes", "en"),
    ("ok", "en"),
    ("si", "es"),
    ("vale", "es"),
    ("hola", "es"),
    ("hello", "en"),
    ("x", "en"),
    ("", "en"),
    ("", "es"),
    ("   ", "en"),
    ("\x00", "en"),
    ("👍", "en"),
    ("👍" * 500, "es"),
    ("x" * 2000, "en"),
    ("x" * 2000, "es"),
    ("good morning", "en"),
    ("good afternoon", "en"),
    ("buenas tardes", "es"),
    ("buenos días", "es"),
    ("buenas noches", "es"),
    ("llego tarde", "es"),
    ("I need 2 pills", "en"),
    ("I have had a headache for 3 days", "en"),
    ("take 2 pills at night", "en"),
    ("my number is 555 1234", "en"),
    ("I am 30 years old", "en"),
    ("call me", "en"),
]


def _check(when: When | None, start: str, end: str | None, grain: str) -> None:
    assert when is not None
    assert (when.start.isoformat(), when.end.isoformat() if when.end else None, when.grain) == (
        start,
        end,
        grain,
    )


@pytest.mark.parametrize(("text", "lang", "start", "end", "grain"), MAIN)
def test_main_table(text: str, lang: str, start: str, end: str | None, grain: str) -> None:
    _check(parse_when(text, lang, NOW, NY), start, end, grain)


@pytest.mark.parametrize(("text", "lang"), NOT_TIMES)
def test_not_times(text: str, lang: str) -> None:
    assert parse_when(text, lang, NOW, NY) is None


# Friday 2026-03-06 10:00 EST; the US changes to EDT on Sunday 2026-03-08 at 02:00.
BEFORE_DST = datetime(2026, 3, 6, 10, 0, tzinfo=ZoneInfo(NY))
DST: list[Row] = [
    ("monday at 10", "en", d(9, "10:00"), None, "hour"),
    ("el lunes a las 10", "es", d(9, "10:00"), None, "hour"),
    ("monday", "en", d(9), None, "day"),
    ("sunday", "en", d(8, off="-05:00"), None, "day"),
    ("sunday morning", "en", d(8, "08:00"), d(8, "12:00"), "hour"),
    ("in 3 days", "en", d(9), None, "day"),
    ("tomorrow at 2:30", "en", d(7, "14:30", off="-05:00"), None, "minute"),
    ("next week", "en", d(9), None, "week"),
]


@pytest.mark.parametrize(("text", "lang", "start", "end", "grain"), DST)
def test_across_us_dst_change(
    text: str, lang: str, start: str, end: str | None, grain: str
) -> None:
    _check(parse_when(text, lang, BEFORE_DST, NY), start, end, grain)


# 01:30 EST on the change night: 02:00-03:00 does not exist.
DST_NIGHT = datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo(NY))
DST_NIGHT_ROWS: list[Row] = [
    ("in 1 hour", "en", d(8, "03:30"), None, "minute"),
    ("at 3", "en", d(8, "15:00"), None, "hour"),
    ("today at 10", "en", d(8, "10:00"), None, "hour"),
]


@pytest.mark.parametrize(("text", "lang", "start", "end", "grain"), DST_NIGHT_ROWS)
def test_on_the_dst_night(text: str, lang: str, start: str, end: str | None, grain: str) -> None:
    _check(parse_when(text, lang, DST_NIGHT, NY), start, end, grain)


# Friday 2026-03-27 12:00 CET; Spain changes to CEST on Sunday 2026-03-29.
MADRID = "Europe/Madrid"
MADRID_NOW = datetime(2026, 3, 27, 12, 0, tzinfo=ZoneInfo(MADRID))
MADRID_ROWS: list[Row] = [
    ("el lunes a las 10", "es", d(30, "10:00", off="+02:00"), None, "hour"),
    ("mañana", "es", d(28, off="+01:00"), None, "day"),
    (
        "mañana por la mañana",
        "es",
        d(28, "08:00", off="+01:00"),
        d(28, "12:00", off="+01:00"),
        "hour",
    ),
    (
        "el domingo por la tarde",
        "es",
        d(29, "12:00", off="+02:00"),
        d(29, "17:00", off="+02:00"),
        "hour",
    ),
    ("a las 5", "es", d(27, "17:00", off="+01:00"), None, "hour"),
    ("tomorrow at 3", "en", d(28, "15:00", off="+01:00"), None, "hour"),
    ("la semana que viene", "es", d(30, off="+02:00"), None, "week"),
    ("el 30 de marzo", "es", d(30, off="+02:00"), None, "day"),
]


@pytest.mark.parametrize(("text", "lang", "start", "end", "grain"), MADRID_ROWS)
def test_madrid(text: str, lang: str, start: str, end: str | None, grain: str) -> None:
    _check(parse_when(text, lang, MADRID_NOW, MADRID), start, end, grain)


UTC_NOW = datetime(2026, 3, 10, 9, 15, tzinfo=ZoneInfo("UTC"))
UTC_ROWS: list[Row] = [
    ("tomorrow at 3", "en", d(11, "15:00", off="+00:00"), None, "hour"),
    ("mañana a las 10", "es", d(11, "10:00", off="+00:00"), None, "hour"),
    ("next monday", "en", d(16, off="+00:00"), None, "day"),
    ("in 2 hours", "en", d(10, "11:15", off="+00:00"), None, "minute"),
    ("today", "en", d(10, off="+00:00"), None, "day"),
]


@pytest.mark.parametrize(("text", "lang", "start", "end", "grain"), UTC_ROWS)
def test_utc(text: str, lang: str, start: str, end: str | None, grain: str) -> None:
    _check(parse_when(text, lang, UTC_NOW, "UTC"), start, end, grain)


# Later the same Tuesday, 16:00: what was still ahead at 09:15 has passed.
AFTERNOON = datetime(2026, 3, 10, 16, 0, tzinfo=ZoneInfo(NY))
AFTERNOON_ROWS: list[Row] = [
    ("at 9", "en", d(11, "09:00"), None, "hour"),
    ("in the morning", "en", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("before noon", "en", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("after 3", "en", d(11, "15:00"), None, "hour"),
    ("tonight", "en", d(10, "17:00"), d(10, "21:00"), "hour"),
    ("at 5", "en", d(10, "17:00"), None, "hour"),
    ("morning", "en", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("por la mañana", "es", d(11, "08:00"), d(11, "12:00"), "hour"),
    ("today", "en", d(10), None, "day"),
]


@pytest.mark.parametrize(("text", "lang", "start", "end", "grain"), AFTERNOON_ROWS)
def test_later_in_the_day(text: str, lang: str, start: str, end: str | None, grain: str) -> None:
    _check(parse_when(text, lang, AFTERNOON, NY), start, end, grain)


def test_phrase_table_is_large() -> None:
    rows = (
        len(MAIN)
        + len(NOT_TIMES)
        + len(DST)
        + len(DST_NIGHT_ROWS)
        + len(MADRID_ROWS)
        + len(UTC_ROWS)
        + len(AFTERNOON_ROWS)
    )
    assert rows >= 150
    assert len({(r[0], r[1]) for r in MAIN}) == len(MAIN), "duplicate rows"


def test_to_json() -> None:
    when = parse_when("from 2 to 4", "en", NOW, NY)
    assert when is not None
    assert when.to_json() == {
        "start": "2026-03-10T14:00:00-04:00",
        "end": "2026-03-10T16:00:00-04:00",
        "grain": "hour",
    }
    point = parse_when("tomorrow", "en", NOW, NY)
    assert point is not None
    assert point.to_json()["end"] is None


def test_result_is_in_the_requested_zone() -> None:
    when = parse_when("tomorrow at 3", "en", NOW, MADRID)
    assert when is not None
    assert when.start.tzinfo == ZoneInfo(MADRID)
    assert when.start.isoformat() == "2026-03-11T15:00:00+01:00"


def test_naive_now_is_wall_time_in_zone() -> None:
    when = parse_when("tomorrow at 3", "en", datetime(2026, 3, 10, 9, 15), NY)
    assert when is not None
    assert when.start.isoformat() == d(11, "15:00")


def test_unknown_language_reads_english() -> None:
    assert parse_when("tomorrow", "fr", NOW, NY) == parse_when("tomorrow", "en", NOW, NY)


def test_unknown_zone_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_when("tomorrow", "en", NOW, "Mars/Olympus_Mons")


@pytest.mark.parametrize(
    "text",
    [
        "monday " * 300,
        "mañana " * 300,
        "tomorrow at 3 " * 150,
        "10:30 " * 300,
        "a" * 100_000,
        "\ud800\udfff tomorrow",
    ],
)
def test_pathological_input_is_bounded(text: str) -> None:
    # Duckling is exponential in adjacent date words; the budget keeps this quick.
    for lang in ("en", "es"):
        parse_when(text, lang, NOW, NY)


_PIECES = [
    *string.printable,
    *"ñáéíóú¿¡👍\x00\u200b\ufeff\ud83d",
    *("tomorrow ", "mañana ", "monday ", "at ", "a las ", "after ", "from ", " to ", "3", "pm"),
]


def _random_texts(count: int, seed: int = 20260310) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(_PIECES, k=rng.randint(0, 40))) for _ in range(count)]


@pytest.mark.parametrize("text", _random_texts(150))
def test_never_raises(text: str) -> None:
    for lang in ("en", "es"):
        when = parse_when(text, lang, NOW, NY)
        if when is not None:
            assert when.start.tzinfo is not None
            assert when.end is None or when.end > when.start
