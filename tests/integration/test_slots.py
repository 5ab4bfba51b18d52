"""Free-slot computation against a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.clock import FixedClock
from core.db import Database
from core.models import (
    Appointment,
    AvailabilityException,
    AvailabilityRule,
    Clinic,
    Patient,
    Practitioner,
)
from core.scheduling import Slot, free_slots, is_slot_free, nearest_free_slots

NY = "America/New_York"
MADRID = "Europe/Madrid"


def at(tz: str, y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A wall-clock time in ``tz``, as UTC."""
    return datetime(y, m, d, h, mi, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def make_practitioner(
    db: Database,
    *,
    tz: str = NY,
    blocks: Iterable[tuple[time, time]] = ((time(9), time(17)),),
    weekdays: Iterable[int] = range(5),
    slot: int = 30,
    before: int = 0,
    after: int = 0,
    notice: int = 0,
    horizon: int = 60,
    valid_from: date | None = None,
    valid_until: date | None = None,
) -> int:
    with db.transaction() as s:
        clinic = Clinic(name="Test clinic", timezone=tz)
        s.add(clinic)
        s.flush()
        p = Practitioner(
            clinic_id=clinic.id,
            name="Dr Test",
            specialty="General practice",
            timezone=tz,
            slot_minutes=slot,
            buffer_before_minutes=before,
            buffer_after_minutes=after,
            min_notice_minutes=notice,
            horizon_days=horizon,
        )
        s.add(p)
        s.flush()
        blocks = list(blocks)
        for weekday in weekdays:
            for start, end in blocks:
                s.add(
                    AvailabilityRule(
                        practitioner_id=p.id,
                        weekday=weekday,
                        start_time=start,
                        end_time=end,
                        valid_from=valid_from,
                        valid_until=valid_until,
                    )
                )
        s.add(Patient(clinic_id=clinic.id, name="Pat"))
        return p.id


def add_exception(db: Database, pid: int, kind: str, start: datetime, end: datetime) -> None:
    with db.transaction() as s:
        s.add(AvailabilityException(practitioner_id=pid, kind=kind, start_at=start, end_at=end))


def add_appointment(
    db: Database,
    pid: int,
    start: datetime,
    end: datetime,
    *,
    status: str = "booked",
    hold_expires_at: datetime | None = None,
) -> None:
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        patient = s.query(Patient).filter_by(clinic_id=p.clinic_id).first()
        assert patient is not None
        s.add(
            Appointment(
                clinic_id=p.clinic_id,
                practitioner_id=pid,
                patient_id=patient.id,
                start_at=start,
                end_at=end,
                status=status,
                hold_expires_at=hold_expires_at,
            )
        )


def slots(db: Database, pid: int, clock: FixedClock, **kwargs: object) -> list[Slot]:
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        return free_slots(s, p, now=clock.now(), **kwargs)  # type: ignore[arg-type]


def starts(found: list[Slot]) -> list[datetime]:
    return [slot.start for slot in found]


def local_clock(found: list[Slot], tz: str = NY) -> list[str]:
    return [f"{slot.start.astimezone(ZoneInfo(tz)):%a %H:%M}" for slot in found]


# Sunday 2026-04-12 08:00 in New York; the following Monday is 2026-04-13.
SUNDAY = at(NY, 2026, 4, 12, 8)


@pytest.fixture
def sunday() -> FixedClock:
    return FixedClock(SUNDAY)


def test_weekly_hours(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    found = slots(db, pid, sunday, limit=20)
    assert len(found) == 20
    assert found[0] == Slot(pid, at(NY, 2026, 4, 13, 9), at(NY, 2026, 4, 13, 9, 30))
    assert found[0].start == datetime(2026, 4, 13, 13, 0, tzinfo=UTC)
    assert local_clock(found[:16]) == [
        f"Mon {h:02d}:{m:02d}" for h in range(9, 17) for m in (0, 30)
    ]
    assert local_clock(found[16:]) == ["Tue 09:00", "Tue 09:30", "Tue 10:00", "Tue 10:30"]
    assert all(
        slot.start.tzinfo is UTC and slot.end - slot.start == timedelta(minutes=30)
        for slot in found
    )
    # No weekend hours.
    assert slots(db, pid, sunday, start=at(NY, 2026, 4, 18), end=at(NY, 2026, 4, 20)) == []


def test_two_blocks_a_day(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(12)), (time(13), time(17))))
    found = slots(db, pid, sunday, limit=14)
    assert local_clock(found) == [
        "Mon 09:00",
        "Mon 09:30",
        "Mon 10:00",
        "Mon 10:30",
        "Mon 11:00",
        "Mon 11:30",
        "Mon 13:00",
        "Mon 13:30",
        "Mon 14:00",
        "Mon 14:30",
        "Mon 15:00",
        "Mon 15:30",
        "Mon 16:00",
        "Mon 16:30",
    ]


def test_touching_blocks_merge_and_slots_fit_inside(db: Database, sunday: FixedClock) -> None:
    # 40-minute slots over 09:00-12:00 + 12:00-13:00: one block, aligned at 09:00.
    pid = make_practitioner(db, blocks=((time(9), time(12)), (time(12), time(13))), slot=40)
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14), limit=50)
    assert local_clock(found) == [
        "Mon 09:00",
        "Mon 09:40",
        "Mon 10:20",
        "Mon 11:00",
        "Mon 11:40",
        "Mon 12:20",
    ]


def test_off_exception_whole_day(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    add_exception(db, pid, "off", at(NY, 2026, 4, 14), at(NY, 2026, 4, 15))  # all Tuesday
    found = slots(db, pid, sunday, start=at(NY, 2026, 4, 14), limit=3)
    assert local_clock(found) == ["Wed 09:00", "Wed 09:30", "Wed 10:00"]


def test_off_exception_partial_afternoon(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    add_exception(db, pid, "off", at(NY, 2026, 4, 13, 14), at(NY, 2026, 4, 13, 17))
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14), limit=50)
    assert local_clock(found)[-1] == "Mon 13:30"
    assert len(found) == 10


def test_off_exception_not_on_the_grid_restarts_the_block(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(12)),))
    add_exception(db, pid, "off", at(NY, 2026, 4, 13, 10, 15), at(NY, 2026, 4, 13, 10, 50))
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14), limit=50)
    # 09:00-10:15 fits two slots; the block restarts at 10:50.
    assert local_clock(found) == ["Mon 09:00", "Mon 09:30", "Mon 10:50", "Mon 11:20"]


def test_extra_hours_on_a_saturday(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    add_exception(db, pid, "extra", at(NY, 2026, 4, 18, 10), at(NY, 2026, 4, 18, 12))
    found = slots(db, pid, sunday, start=at(NY, 2026, 4, 17, 16), limit=7)
    assert local_clock(found) == [
        "Fri 16:00",
        "Fri 16:30",
        "Sat 10:00",
        "Sat 10:30",
        "Sat 11:00",
        "Sat 11:30",
        "Mon 09:00",
    ]


def test_extra_hours_extend_a_working_day(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    add_exception(db, pid, "extra", at(NY, 2026, 4, 13, 17), at(NY, 2026, 4, 13, 18))
    found = slots(db, pid, sunday, start=at(NY, 2026, 4, 13, 16), limit=5)
    assert local_clock(found) == ["Mon 16:00", "Mon 16:30", "Mon 17:00", "Mon 17:30", "Tue 09:00"]


def test_buffers(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(12)),), before=10, after=10)
    add_appointment(db, pid, at(NY, 2026, 4, 13, 10), at(NY, 2026, 4, 13, 10, 30))
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14), limit=50)
    # 09:30 would end at 10:00 with 10 minutes after it; 10:30 would start 10 minutes
    # after the appointment ends, but needs 10 minutes before: both touch it.
    assert local_clock(found) == ["Mon 09:00", "Mon 11:00", "Mon 11:30"]


def test_a_buffer_after_protects_both_sides_whatever_the_booking_order(
    db: Database, sunday: FixedClock
) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(12)),), after=15)
    add_appointment(db, pid, at(NY, 2026, 4, 13, 10), at(NY, 2026, 4, 13, 10, 30))
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14), limit=50)
    # 09:30 would need 15 minutes after it; 10:30 falls in the appointment's 15 minutes.
    assert local_clock(found) == ["Mon 09:00", "Mon 11:00", "Mon 11:30"]


def test_without_buffers_neighbours_are_free(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(12)),))
    add_appointment(db, pid, at(NY, 2026, 4, 13, 10), at(NY, 2026, 4, 13, 10, 30))
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14), limit=50)
    assert local_clock(found) == ["Mon 09:00", "Mon 09:30", "Mon 10:30", "Mon 11:00", "Mon 11:30"]


def test_an_odd_length_staff_appointment_blocks_what_it_touches(
    db: Database, sunday: FixedClock
) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(12)),))
    add_appointment(db, pid, at(NY, 2026, 4, 13, 9, 45), at(NY, 2026, 4, 13, 10, 35))
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14), limit=50)
    assert local_clock(found) == ["Mon 09:00", "Mon 11:00", "Mon 11:30"]


def test_min_notice(db: Database) -> None:
    pid = make_practitioner(db, notice=120)
    clock = FixedClock(at(NY, 2026, 4, 13, 9, 10))
    found = slots(db, pid, clock, limit=2)
    assert local_clock(found) == ["Mon 11:30", "Mon 12:00"]  # first start >= 11:10
    clock.set(at(NY, 2026, 4, 13, 9, 30))
    assert local_clock(slots(db, pid, clock, limit=1)) == ["Mon 11:30"]  # exactly 120 minutes


def test_never_in_the_past_even_without_notice(db: Database) -> None:
    pid = make_practitioner(db)
    clock = FixedClock(at(NY, 2026, 4, 13, 10, 5))
    assert local_clock(slots(db, pid, clock, limit=1)) == ["Mon 10:30"]


def test_horizon(db: Database) -> None:
    pid = make_practitioner(db, horizon=2)
    clock = FixedClock(at(NY, 2026, 4, 13, 8))  # Monday
    found = slots(db, pid, clock, limit=100)
    assert len(found) == 32  # Monday and Tuesday; Wednesday 09:00 is past now + 2 days
    assert local_clock(found)[-1] == "Tue 16:30"
    clock.set(at(NY, 2026, 4, 13, 9))  # now + 2 days is Wednesday 09:00: included
    assert local_clock(slots(db, pid, clock, limit=100))[-1] == "Wed 09:00"


def test_window_bounds_slot_starts(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    window = {"start": at(NY, 2026, 4, 14, 10), "end": at(NY, 2026, 4, 14, 12)}
    assert local_clock(slots(db, pid, sunday, limit=10, **window)) == [
        "Tue 10:00",
        "Tue 10:30",
        "Tue 11:00",
        "Tue 11:30",
    ]
    # A window starting between slots takes the next one; a one-minute window is one time.
    off_grid = at(NY, 2026, 4, 14, 10, 10)
    assert local_clock(slots(db, pid, sunday, start=off_grid, limit=1)) == ["Tue 10:30"]
    exact = at(NY, 2026, 4, 14, 11)
    one = slots(db, pid, sunday, start=exact, end=exact + timedelta(minutes=1))
    assert starts(one) == [exact]
    # Windows before the notice or after the horizon are empty.
    assert slots(db, pid, sunday, start=at(NY, 2026, 4, 1), end=at(NY, 2026, 4, 12)) == []
    assert slots(db, pid, sunday, start=at(NY, 2026, 8, 1)) == []
    assert slots(db, pid, sunday, limit=0) == []


def test_expired_hold_is_free_live_hold_is_not(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(11)),))
    now = sunday.now()
    add_appointment(
        db,
        pid,
        at(NY, 2026, 4, 13, 9),
        at(NY, 2026, 4, 13, 9, 30),
        status="held",
        hold_expires_at=now,  # expires exactly now: free
    )
    add_appointment(
        db,
        pid,
        at(NY, 2026, 4, 13, 9, 30),
        at(NY, 2026, 4, 13, 10),
        status="held",
        hold_expires_at=now - timedelta(minutes=1),
    )
    add_appointment(
        db,
        pid,
        at(NY, 2026, 4, 13, 10),
        at(NY, 2026, 4, 13, 10, 30),
        status="held",
        hold_expires_at=now + timedelta(minutes=1),
    )
    add_appointment(
        db, pid, at(NY, 2026, 4, 13, 10, 30), at(NY, 2026, 4, 13, 11), status="cancelled"
    )
    found = slots(db, pid, sunday, end=at(NY, 2026, 4, 14))
    assert local_clock(found) == ["Mon 09:00", "Mon 09:30", "Mon 10:30"]
    # Two minutes later the live hold has lapsed too.
    sunday.advance(timedelta(minutes=2))
    assert len(slots(db, pid, sunday, end=at(NY, 2026, 4, 14))) == 4


def test_confirmed_and_booked_are_busy_completed_is_not(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(10, 30)),))
    add_appointment(db, pid, at(NY, 2026, 4, 13, 9), at(NY, 2026, 4, 13, 9, 30))
    add_appointment(
        db, pid, at(NY, 2026, 4, 13, 9, 30), at(NY, 2026, 4, 13, 10), status="confirmed"
    )
    add_appointment(db, pid, at(NY, 2026, 4, 13, 10), at(NY, 2026, 4, 13, 10, 30), status="no_show")
    assert local_clock(slots(db, pid, sunday, end=at(NY, 2026, 4, 14))) == ["Mon 10:00"]


def test_far_free_slots_behind_a_fully_booked_fortnight(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, blocks=((time(9), time(12)),))
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        patient = s.query(Patient).filter_by(clinic_id=p.clinic_id).one()
        day = date(2026, 4, 13)
        for _ in range(20):  # every slot of the next 20 days
            for half_hour in range(6):
                start = at(NY, day.year, day.month, day.day, 9) + timedelta(minutes=30 * half_hour)
                s.add(
                    Appointment(
                        clinic_id=p.clinic_id,
                        practitioner_id=pid,
                        patient_id=patient.id,
                        start_at=start,
                        end_at=start + timedelta(minutes=30),
                    )
                )
            day += timedelta(days=1)
    found = slots(db, pid, sunday, limit=2)
    assert [f"{s.start.astimezone(ZoneInfo(NY)):%Y-%m-%d %H:%M}" for s in found] == [
        "2026-05-04 09:00",
        "2026-05-04 09:30",
    ]


def test_rule_validity_dates(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, valid_from=date(2026, 4, 15), valid_until=date(2026, 4, 16))
    found = slots(db, pid, sunday, limit=100)
    assert {f"{s.start.astimezone(ZoneInfo(NY)):%a}" for s in found} == {"Wed", "Thu"}
    assert len(found) == 32


# -- daylight saving time ---------------------------------------------------------


def first_of_day(db: Database, pid: int, clock: FixedClock, tz: str, day: date) -> list[Slot]:
    lo = at(tz, day.year, day.month, day.day)
    nxt = day + timedelta(days=1)
    hi = at(tz, nxt.year, nxt.month, nxt.day)
    return slots(db, pid, clock, start=lo, end=hi, limit=100)


def test_dst_new_york_spring_forward(db: Database) -> None:
    pid = make_practitioner(db, tz=NY)
    clock = FixedClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    before = first_of_day(db, pid, clock, NY, date(2026, 3, 2))
    after = first_of_day(db, pid, clock, NY, date(2026, 3, 9))  # Monday after 2026-03-08
    assert before[0].start == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert after[0].start == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # 09:00 EDT
    assert after[-1].end == datetime(2026, 3, 9, 21, 0, tzinfo=UTC)  # 17:00 EDT
    assert len(before) == len(after) == 16


def test_dst_new_york_fall_back(db: Database) -> None:
    pid = make_practitioner(db, tz=NY)
    clock = FixedClock(datetime(2026, 10, 25, 12, tzinfo=UTC))
    before = first_of_day(db, pid, clock, NY, date(2026, 10, 26))
    after = first_of_day(db, pid, clock, NY, date(2026, 11, 2))
    assert before[0].start == datetime(2026, 10, 26, 13, 0, tzinfo=UTC)
    assert after[0].start == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_dst_madrid(db: Database) -> None:
    pid = make_practitioner(db, tz=MADRID)
    clock = FixedClock(datetime(2026, 3, 20, 12, tzinfo=UTC))
    before = first_of_day(db, pid, clock, MADRID, date(2026, 3, 23))
    after = first_of_day(db, pid, clock, MADRID, date(2026, 3, 30))  # after 2026-03-29
    assert before[0].start == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert after[0].start == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST
    clock.set(datetime(2026, 10, 20, 12, tzinfo=UTC))
    autumn = first_of_day(db, pid, clock, MADRID, date(2026, 10, 26))  # after 2026-10-25
    assert autumn[0].start == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_hours_across_the_dst_night_count_real_time(db: Database) -> None:
    # Sunday 01:00-04:00 local: two real hours on 2026-03-08, four on 2026-11-01.
    pid = make_practitioner(db, tz=NY, blocks=((time(1), time(4)),), weekdays=(6,), horizon=300)
    clock = FixedClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    spring = first_of_day(db, pid, clock, NY, date(2026, 3, 8))
    assert [f"{s.start:%H:%M}" for s in spring] == ["06:00", "06:30", "07:00", "07:30"]
    autumn = first_of_day(db, pid, clock, NY, date(2026, 11, 1))
    assert len(autumn) == 8
    assert autumn[0].start == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
    assert autumn[-1].end == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


# -- nearest, is_slot_free --------------------------------------------------------


def test_nearest_free_slots_prefers_later_on_ties(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    wanted = at(NY, 2026, 4, 14, 10)
    add_appointment(db, pid, wanted, wanted + timedelta(minutes=30))
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        now = sunday.now()
        three = nearest_free_slots(s, p, wanted, now=now, limit=3)
        assert local_clock(three) == ["Tue 09:30", "Tue 10:30", "Tue 11:00"]
        one = nearest_free_slots(s, p, wanted, now=now, limit=1)
        assert local_clock(one) == ["Tue 10:30"]
        # Saturday morning: Friday 16:30 is nearer than Monday 09:00.
        weekend = nearest_free_slots(s, p, at(NY, 2026, 4, 18, 10), now=now, limit=1)
        assert local_clock(weekend) == ["Fri 16:30"]
        # Before the bookable range: the earliest slots.
        early = nearest_free_slots(s, p, at(NY, 2026, 4, 1, 10), now=now, limit=2)
        assert local_clock(early) == ["Mon 09:00", "Mon 09:30"]


def test_nearest_free_slots_with_few_slots_returns_what_exists(db: Database) -> None:
    pid = make_practitioner(db, horizon=1)
    clock = FixedClock(at(NY, 2026, 4, 13, 16))
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        found = nearest_free_slots(s, p, at(NY, 2026, 4, 13, 9), now=clock.now(), limit=5)
        assert local_clock(found) == [
            "Mon 16:00",
            "Mon 16:30",
            "Tue 09:00",
            "Tue 09:30",
            "Tue 10:00",
        ]


def test_is_slot_free(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db, notice=60)
    add_appointment(db, pid, at(NY, 2026, 4, 13, 10), at(NY, 2026, 4, 13, 10, 30))
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        now = sunday.now()
        assert is_slot_free(s, p, at(NY, 2026, 4, 13, 9), now=now)
        assert not is_slot_free(s, p, at(NY, 2026, 4, 13, 10), now=now)  # booked
        assert not is_slot_free(s, p, at(NY, 2026, 4, 13, 9, 15), now=now)  # off the grid
        assert not is_slot_free(s, p, at(NY, 2026, 4, 13, 8, 30), now=now)  # before hours
        assert not is_slot_free(s, p, at(NY, 2026, 4, 13, 16, 45), now=now)  # would end late
        assert not is_slot_free(s, p, at(NY, 2026, 4, 18, 10), now=now)  # Saturday
        assert not is_slot_free(s, p, at(NY, 2026, 4, 12, 8, 30), now=now)  # too soon
        assert not is_slot_free(s, p, at(NY, 2026, 7, 1, 10), now=now)  # beyond horizon
        with pytest.raises(ValueError, match="tz-aware"):
            is_slot_free(s, p, datetime(2026, 4, 13, 13), now=now)
        with pytest.raises(ValueError, match="tz-aware"):
            free_slots(s, p, now=datetime(2026, 4, 13, 13))


def test_free_slots_agree_with_is_slot_free(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(
        db, blocks=((time(9), time(12, 10)), (time(13, 5), time(17))), slot=25, before=5
    )
    add_appointment(db, pid, at(NY, 2026, 4, 13, 10, 3), at(NY, 2026, 4, 13, 10, 40))
    add_exception(db, pid, "off", at(NY, 2026, 4, 13, 15), at(NY, 2026, 4, 13, 15, 20))
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        now = sunday.now()
        found = set(starts(free_slots(s, p, now=now, end=at(NY, 2026, 4, 14), limit=100)))
        assert found
        minute = at(NY, 2026, 4, 13, 8)
        while minute < at(NY, 2026, 4, 13, 18):
            assert is_slot_free(s, p, minute, now=now) == (minute in found), minute
            minute += timedelta(minutes=5)


def test_round_the_clock_hours_run_on_across_days(db: Database) -> None:
    # 00:00-00:00 every day: one unbroken block, laid out a week at a time, across
    # the night Madrid moves to summer time (2026-03-29): an hour is an hour.
    pid = make_practitioner(db, tz=MADRID, blocks=((time(0), time(0)),), weekdays=range(7), slot=60)
    clock = FixedClock(datetime(2026, 3, 20, 0, tzinfo=UTC))
    found = slots(db, pid, clock, limit=24 * 20)
    assert len(found) == 24 * 20
    assert all(b.start - a.start == timedelta(hours=1) for a, b in itertools.pairwise(found))
    assert found[0].start == datetime(2026, 3, 20, 0, tzinfo=UTC)


def test_inactive_practitioner_has_no_free_slots(db: Database, sunday: FixedClock) -> None:
    pid = make_practitioner(db)
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        p.active = False
    with db.transaction() as s:
        p = s.get(Practitioner, pid)
        assert p is not None
        assert free_slots(s, p, now=sunday.now()) == []
        assert not is_slot_free(s, p, at(NY, 2026, 4, 13, 9), now=sunday.now())
