"""Open now, from OpenStreetMap ``opening_hours``: across midnight, public holidays."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from core.pharmacies import open_now

NY = "America/New_York"
ZONE = ZoneInfo(NY)


def at(day: int, hour: int, minute: int = 0, month: int = 7) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=ZONE)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(5, 17, 59), False),  # Saturday, before opening
        (at(5, 18, 0), True),
        (at(5, 23, 59), True),
        (at(6, 0, 30), True),  # after midnight: Saturday's hours still run
        (at(6, 1, 59), True),
        (at(6, 2, 0), False),
        (at(6, 12, 0), False),
    ],
)
def test_across_midnight(when: datetime, expected: bool) -> None:
    assert open_now("Mo-Su 18:00-02:00", when, NY, country="US") is expected


def test_across_midnight_ends_with_the_week() -> None:
    # Open Fr-Sa nights only: Sunday 01:00 belongs to Saturday night, Monday 01:00 to nothing.
    hours = "Fr-Sa 22:00-03:00"
    assert open_now(hours, at(6, 1), NY, country="US") is True
    assert open_now(hours, at(7, 1), NY, country="US") is False


def test_public_holiday_closes_with_a_country() -> None:
    hours = "Mo-Fr 08:00-20:00; PH off"
    july_4 = at(4, 12)  # a Friday, Independence Day
    assert open_now(hours, july_4, NY, country="US") is False
    assert open_now(hours, at(3, 12), NY, country="US") is True
    # Not a holiday in France: the country decides.
    assert open_now(hours, july_4, NY, country="FR") is True
    assert open_now(hours, at(14, 12), "Europe/Paris", country="fr") is False  # 14 juillet


def test_public_holiday_country_from_coordinates() -> None:
    hours = "Mo-Fr 08:00-20:00; PH off"
    assert open_now(hours, at(4, 12), NY, country=None, coords=(40.71, -74.0)) is False


def test_special_hours_on_public_holidays() -> None:
    hours = "Mo-Fr 09:00-18:00; PH 10:00-14:00"
    christmas = datetime(2025, 12, 25, 15, tzinfo=ZONE)
    assert open_now(hours, christmas, NY, country="US") is False
    assert open_now(hours, christmas.replace(hour=11), NY, country="US") is True


def test_time_zone_conversion() -> None:
    # 23:30 UTC is 19:30 in New York (EDT): open until 20:00 there.
    when = datetime(2025, 7, 3, 23, 30, tzinfo=UTC)
    assert open_now("Mo-Fr 08:00-20:00", when, NY, country="US") is True
    assert open_now("Mo-Fr 08:00-20:00", when, "Europe/Berlin", country="DE") is False
    # A naive time is wall time in the given zone.
    assert open_now("Mo-Fr 08:00-20:00", datetime(2025, 7, 3, 19, 30), NY, country="US") is True


def test_always_and_closed() -> None:
    assert open_now("24/7", at(6, 3), NY, country="US") is True
    assert open_now("Mo-Sa 09:00-19:00; Su off", at(6, 12), NY, country="US") is False


@pytest.mark.parametrize("hours", [None, "", "  ", "ask the pharmacist", "Mo-Fr 25:00-26:99"])
def test_unknown_or_unparseable_is_none(hours: str | None) -> None:
    assert open_now(hours, at(3, 12), NY, country="US") is None


def test_unknown_state_is_none() -> None:
    assert open_now("Mo-Fr 08:00-20:00 unknown", at(3, 12), NY, country="US") is None


def test_bad_country_or_zone_still_answers() -> None:
    assert open_now("24/7", at(3, 12), "Not/AZone", country="US") is True
    assert open_now("Mo-Fr 08:00-20:00; PH off", at(3, 12), NY, country="XX") is True
