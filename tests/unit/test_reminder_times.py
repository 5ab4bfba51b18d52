"""When reminders go out: offsets, DST, quiet hours (core.reminders.plan_offsets)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.reminders import Planned, plan_offsets
from core.settings import Settings, SettingsError, load_settings, parse_quiet_hours

NY = ZoneInfo("America/New_York")
QUIET = (time(21), time(8))
DEFAULT = (timedelta(hours=72), timedelta(hours=24), timedelta(hours=2))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


def plan(start: datetime, booked: datetime, offsets=DEFAULT, quiet=QUIET) -> dict[int, Planned]:  # type: ignore[no-untyped-def]
    return {
        int(p.offset.total_seconds() // 3600): p
        for p in plan_offsets(start, NY, offsets, quiet, booked_at=booked)
    }


def test_default_offsets_keep_the_visit_wall_clock_time() -> None:
    visit = local(2026, 4, 17, 10, 0)  # Friday 10:00
    got = plan(visit, booked=local(2026, 4, 13, 9, 0))
    assert got[72].due_at == local(2026, 4, 14, 10, 0)
    assert got[24].due_at == local(2026, 4, 16, 10, 0)
    assert got[2].due_at == local(2026, 4, 17, 8, 0)
    # Each may go out until quiet hours begin that evening (or the visit).
    assert got[72].send_by == local(2026, 4, 14, 21, 0)
    assert got[2].send_by == visit


def test_spring_forward_day_reminders_stay_at_the_same_local_time() -> None:
    # DST starts in New York on Sunday 8 March 2026 at 02:00.
    visit = local(2026, 3, 8, 10, 0)  # Sunday 10:00 EDT
    got = plan(visit, booked=local(2026, 3, 1, 9, 0))
    assert got[24].due_at == local(2026, 3, 7, 10, 0)  # Saturday 10:00 EST
    assert visit - got[24].due_at == timedelta(hours=23)  # one real hour shorter
    assert got[72].due_at == local(2026, 3, 5, 10, 0)
    assert visit - got[72].due_at == timedelta(hours=71)
    # Two hours is a duration, not a wall-clock time: 08:00 EDT.
    assert got[2].due_at == local(2026, 3, 8, 8, 0)
    assert visit - got[2].due_at == timedelta(hours=2)


def test_fall_back_day_reminders_stay_at_the_same_local_time() -> None:
    # DST ends in New York on Sunday 1 November 2026 at 02:00.
    visit = local(2026, 11, 1, 10, 0)  # Sunday 10:00 EST
    got = plan(visit, booked=local(2026, 10, 20, 9, 0))
    assert got[24].due_at == local(2026, 10, 31, 10, 0)  # Saturday 10:00 EDT
    assert visit - got[24].due_at == timedelta(hours=25)


def test_quiet_hours_are_read_in_local_time_across_the_dst_change() -> None:
    # Sunday 8 March 08:30 EDT: two exact hours before is 06:30 EDT (quiet),
    # which moves to 08:00 EDT, still half an hour before the visit.
    visit = local(2026, 3, 8, 8, 30)
    got = plan(visit, booked=local(2026, 3, 1, 9, 0), offsets=(timedelta(hours=2),))
    assert got[2].due_at == local(2026, 3, 8, 8, 0)
    assert got[2].reason == "quiet_hours_moved"


def test_a_reminder_in_quiet_hours_moves_to_the_morning_when_still_useful() -> None:
    visit = local(2026, 4, 17, 8, 30)
    got = plan(visit, booked=local(2026, 4, 10, 9, 0))
    assert got[2].due_at == local(2026, 4, 17, 8, 0)
    assert got[2].reason == "quiet_hours_moved"


def test_too_late_in_the_morning_it_moves_to_the_evening_before() -> None:
    visit = local(2026, 4, 17, 8, 15)  # 08:00 would be only 15 minutes before
    got = plan(visit, booked=local(2026, 4, 10, 9, 0))
    assert got[2].due_at == local(2026, 4, 16, 20, 30)  # just before quiet hours
    assert got[2].send_by == local(2026, 4, 16, 21, 0)
    assert got[24].due_at == local(2026, 4, 16, 8, 15)


def test_a_reminder_that_cannot_move_anywhere_useful_is_skipped() -> None:
    visit = local(2026, 4, 17, 8, 15)
    got = plan(visit, booked=local(2026, 4, 16, 22, 0))  # booked late the evening before
    assert got[2].due_at is None and got[2].reason == "quiet_hours"
    assert got[24].reason == "passed_before_booking"


def test_booked_inside_the_24h_window_only_later_reminders_are_planned() -> None:
    booked = local(2026, 4, 14, 9, 0)
    visit = local(2026, 4, 15, 8, 30)  # 23.5 hours later
    got = plan(visit, booked=booked)
    assert got[72].due_at is None and got[72].reason == "passed_before_booking"
    assert got[24].due_at is None and got[24].reason == "passed_before_booking"
    assert got[2].due_at == local(2026, 4, 15, 8, 0)


def test_without_quiet_hours_night_reminders_stay_put() -> None:
    visit = local(2026, 4, 17, 8, 15)
    got = plan(visit, booked=local(2026, 4, 10, 9, 0), quiet=None)
    assert got[2].due_at == local(2026, 4, 17, 6, 15)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("21:00-08:00", (time(21), time(8))),
        (" 13:30 - 14:00 ", (time(13, 30), time(14))),
        ("", None),
    ],
)
def test_quiet_hours_setting_parses(value: str, expected: object) -> None:
    assert parse_quiet_hours(value) == expected


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("TELEMED_REMINDER_OFFSETS", "72x,24h", "TELEMED_REMINDER_OFFSETS"),
        ("TELEMED_REMINDER_OFFSETS", "0h", "TELEMED_REMINDER_OFFSETS"),
        ("TELEMED_REMINDER_OFFSETS", ",", "TELEMED_REMINDER_OFFSETS"),
        ("TELEMED_QUIET_HOURS", "9pm-8am", "TELEMED_QUIET_HOURS"),
        ("TELEMED_QUIET_HOURS", "25:00-08:00", "TELEMED_QUIET_HOURS"),
        ("TELEMED_RISK_REMINDER_OFFSETS", "soon", "TELEMED_RISK_REMINDER_OFFSETS"),
        ("TELEMED_REMINDERS_PER_DAY", "0", "TELEMED_REMINDERS_PER_DAY"),
    ],
)
def test_a_bad_reminder_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_reminder_offsets_accept_minutes_hours_days() -> None:
    settings = Settings(reminder_offsets="3d, 90m ,2h")
    assert settings.reminder_offset_list == (
        timedelta(days=3),
        timedelta(hours=2),
        timedelta(minutes=90),
    )
