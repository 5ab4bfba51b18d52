"""The availability editor: who may open and change what, the checks on hours
and time off (hostile input included), and that a change reaches patients:
the free-slot search and the booking conversation offer the new hours at once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import availability as hours
from core.clock import FixedClock
from core.db import Database
from core.models import (
    Appointment,
    AuditEntry,
    AvailabilityException,
    AvailabilityRule,
    Practitioner,
)
from core.slots import free_slots
from flows.engine import FlowEngine
from tests.clinic import TZ
from tests.dialogue import Chat
from tests.staff import StaffSite

NY = ZoneInfo(TZ)
# The clock is Tue 14 Apr 2026, 09:00 in New York; Saturday is the 18th.
SATURDAY = datetime(2026, 4, 18, tzinfo=NY)
RUIZ_WEEKDAYS = {d: [("09:00", "13:00"), ("14:00", "17:00")] for d in range(5)}
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def site(db: Database, clock: FixedClock) -> StaffSite:
    return StaffSite.open(db, clock)


def hours_form(days: dict[int, list[tuple[str, str]]]) -> dict[str, list[str]]:
    form: dict[str, list[str]] = {}
    for d, ranges in days.items():
        form[f"day{d}_start"] = [s for s, _ in ranges]
        form[f"day{d}_end"] = [e for _, e in ranges]
    return form


def rules(site: StaffSite, name: str) -> list[tuple[int, time, time]]:
    pid = site.clinic.practitioner(name)
    with site.db.transaction() as session:
        return [
            (r.weekday, r.start_time, r.end_time)
            for r in session.scalars(
                select(AvailabilityRule)
                .where(AvailabilityRule.practitioner_id == pid)
                .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time)
            )
        ]


def saturday_slots(site: StaffSite) -> list[str]:
    with site.db.transaction() as session:
        p = session.get(Practitioner, site.clinic.practitioner("Ruiz"))
        assert p is not None
        found = free_slots(
            session,
            p,
            now=site.clock.now(),
            start=SATURDAY,
            end=SATURDAY.replace(day=19),
            limit=50,
        )
        return [f"{s.start.astimezone(NY):%H:%M}" for s in found]


def audit_rows(site: StaffSite, entity: str) -> list[AuditEntry]:
    with site.db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.entity == entity).order_by(AuditEntry.id)
            )
        )


# -- access -----------------------------------------------------------------------


def test_each_role_on_each_route(site: StaffSite) -> None:
    ruiz = site.clinic.practitioner("Ruiz")
    with site.db.transaction() as session:
        off = AvailabilityException(
            practitioner_id=ruiz,
            kind="off",
            start_at=datetime(2026, 5, 1, 13, tzinfo=UTC),
            end_at=datetime(2026, 5, 1, 16, tzinfo=UTC),
        )
        session.add(off)
        session.flush()
        off_id = off.id
    base = f"/dashboard/availability/{ruiz}"
    time_off = {"from": "2026-05-04T09:00", "to": "2026-05-04T12:00", "reason": "Course"}
    # who -> (index, editor, POST hours, POST time off, POST delete)
    expected = {
        "admin@clinic.test": (200, 200, 303, 303, 303),
        "staff@clinic.test": (200, 200, 303, 303, 404),  # admin removed it already
        "ruiz@clinic.test": (200, 200, 303, 303, 404),
        "okafor@clinic.test": (200, 403, 403, 403, 403),
        None: (303, 303, 401, 401, 401),
    }
    for who, codes in expected.items():
        client = site.client(who)
        got = (
            client.get("/dashboard/availability").status_code,
            client.get(base).status_code,
            client.post(f"{base}/hours", data=hours_form(RUIZ_WEEKDAYS)).status_code,
            client.post(f"{base}/time-off", data=time_off).status_code,
            client.post(f"{base}/time-off/{off_id}/delete").status_code,
        )
        assert got == codes, who
    anonymous = site.anonymous().get(base)
    assert anonymous.headers["location"] == f"/login?next=%2Fdashboard%2Favailability%2F{ruiz}"


def test_a_doctor_sees_and_edits_only_their_own_hours(site: StaffSite) -> None:
    ruiz = site.client("ruiz@clinic.test")
    index = ruiz.get("/dashboard/availability")
    assert "Dr Ana Ruiz" in index.text
    assert "Dr Ben Okafor" not in index.text
    staff_index = site.client("staff@clinic.test").get("/dashboard/availability")
    assert "Dr Ana Ruiz" in staff_index.text and "Dr Ben Okafor" in staff_index.text
    assert "Mon</dt><dd>09:00–13:00, 14:00–17:00" in staff_index.text

    pid = site.clinic.practitioner("Ruiz")
    done = ruiz.post(
        f"/dashboard/availability/{pid}/hours", data=hours_form({0: [("08:00", "12:00")]})
    )
    assert done.status_code == 303
    assert rules(site, "Ruiz") == [(0, time(8), time(12))]
    okafor_before = rules(site, "Okafor")
    okafor_id = site.clinic.practitioner("Okafor")
    refused = ruiz.post(
        f"/dashboard/availability/{okafor_id}/hours", data=hours_form({0: [("08:00", "09:00")]})
    )
    assert refused.status_code == 403
    assert rules(site, "Okafor") == okafor_before
    assert ruiz.get("/dashboard/availability/999999").status_code == 403


def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(site: StaffSite) -> None:
    pid = site.clinic.practitioner("Ruiz")
    client = site.client("staff@clinic.test")
    before = rules(site, "Ruiz")
    url = f"/dashboard/availability/{pid}/hours"
    data = hours_form({5: [("09:00", "12:00")]})
    assert client.post(url, data=data, csrf=False).status_code == 403
    assert client.post(url, data={**data, "csrf_token": "forged"}).status_code == 403
    off = {"from": "2026-05-04T09:00", "to": "2026-05-04T12:00"}
    assert (
        client.post(f"/dashboard/availability/{pid}/time-off", data=off, csrf=False).status_code
        == 403
    )
    assert rules(site, "Ruiz") == before
    with site.db.transaction() as session:
        assert session.scalars(select(AvailabilityException)).first() is None


# -- weekly hours -----------------------------------------------------------------


def test_saturday_hours_added_by_staff_are_offered_to_patients(site: StaffSite) -> None:
    engine = FlowEngine(site.db, site.clinic.settings, site.clock)
    before = Chat(engine, address="+15555550181").say("book with Dr Ruiz on Saturday")
    assert "No free times then" in before
    assert saturday_slots(site) == []

    pid = site.clinic.practitioner("Ruiz")
    staff = site.client("staff@clinic.test")
    page = staff.get(f"/dashboard/availability/{pid}")
    # The editor shows the current hours in the fields it posts back.
    assert 'name="day0_start" value="09:00"' in page.text
    assert 'name="day4_end" value="17:00"' in page.text
    done = staff.post(
        f"/dashboard/availability/{pid}/hours",
        data=hours_form({**RUIZ_WEEKDAYS, 5: [("09:00", "12:00")]}),
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/dashboard/availability/{pid}?done=hours"
    assert "Weekly hours saved." in staff.get(done.headers["location"]).text

    assert saturday_slots(site) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    after = Chat(engine, address="+15555550182").say("book with Dr Ruiz on Saturday")
    assert "Free times on Sat 18 Apr" in after
    assert "1. 9:00 AM" in after and "11:30 AM" in after
    # The weekdays are as they were.
    assert len(rules(site, "Ruiz")) == 11

    [entry] = audit_rows(site, "availability")
    assert (entry.action, entry.entity_id, entry.patient_id) == ("update", pid, None)
    assert entry.user_email == "staff@clinic.test"
    assert entry.detail == {"change": "hours", "ranges": 11}


def test_bad_hours_get_messages_next_to_them_and_nothing_is_saved(site: StaffSite) -> None:
    pid = site.clinic.practitioner("Ruiz")
    before = rules(site, "Ruiz")
    huge = "9" * 10_000
    page = site.client("admin@clinic.test").post(
        f"/dashboard/availability/{pid}/hours",
        data=hours_form(
            {
                0: [("25:00", "26:00")],
                1: [("17:00", "09:00")],
                2: [("09:00", "13:00"), ("12:00", "15:00")],
                3: [(SCRIPT, "12:00")],
                4: [(huge, "12:00")],
                5: [("09:00", "")],
                6: [("10:00", "24:00")],  # fine on its own: until midnight
            }
        ),
    )
    assert page.status_code == 422
    text = page.text
    assert "Some hours need fixing; nothing was saved." in text
    assert "Start: Not a time of day: use 00:00 to 24:00." in text
    assert "The end must be after the start" in text
    assert "Overlaps 09:00–13:00 on the same day." in text
    assert text.count("Start: Not a time: use HH:MM, like 09:00.") == 2
    assert "Enter both a start and an end time." in text
    # What was typed is kept (escaped), so it can be corrected.
    assert 'value="25:00"' in text and 'value="17:00"' in text
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in text
    assert SCRIPT not in text
    assert 'name="day6_end" value="24:00"' in text
    assert rules(site, "Ruiz") == before
    assert audit_rows(site, "availability") == []


def test_hours_until_midnight_and_touching_ranges(site: StaffSite) -> None:
    pid = site.clinic.practitioner("Ruiz")
    client = site.client("staff@clinic.test")
    done = client.post(
        f"/dashboard/availability/{pid}/hours",
        data=hours_form({5: [("13:00", "24:00"), ("09:00", "13:00")], 6: [("22:00", "00:00")]}),
    )
    assert done.status_code == 303
    assert rules(site, "Ruiz") == [
        (5, time(9), time(13)),
        (5, time(13), time(0)),
        (6, time(22), time(0)),
    ]
    page = client.get(f"/dashboard/availability/{pid}")
    assert 'name="day5_end" value="24:00"' in page.text
    slots = saturday_slots(site)
    assert slots[0] == "09:00" and slots[-1] == "23:30" and len(slots) == 30


def test_dated_rules_are_kept_when_the_weekly_hours_are_saved(site: StaffSite) -> None:
    pid = site.clinic.practitioner("Ruiz")
    with site.db.transaction() as session:
        session.add(
            AvailabilityRule(
                practitioner_id=pid,
                weekday=6,
                start_time=time(10),
                end_time=time(12),
                valid_from=datetime(2026, 5, 1).date(),
                valid_until=datetime(2026, 5, 31).date(),
            )
        )
    client = site.client("staff@clinic.test")
    assert "Hours for set dates" in client.get(f"/dashboard/availability/{pid}").text
    client.post(f"/dashboard/availability/{pid}/hours", data=hours_form({0: [("09:00", "10:00")]}))
    assert rules(site, "Ruiz") == [(0, time(9), time(10)), (6, time(10), time(12))]


def test_appointments_left_outside_the_hours_are_kept_with_a_warning(site: StaffSite) -> None:
    monday = datetime(2026, 4, 20, 10, tzinfo=NY)
    appointment_id = site.clinic.book("+15555550191", monday, doctor="Ruiz")
    pid = site.clinic.practitioner("Ruiz")
    client = site.client("staff@clinic.test")
    without_monday = {d: r for d, r in RUIZ_WEEKDAYS.items() if d != 0}
    done = client.post(f"/dashboard/availability/{pid}/hours", data=hours_form(without_monday))
    assert done.headers["location"] == f"/dashboard/availability/{pid}?done=hours&outside=1"
    page = client.get(done.headers["location"])
    assert "1 upcoming appointment is now outside Dr Ana Ruiz's hours" in page.text
    with site.db.transaction() as session:
        appointment = session.get(Appointment, appointment_id)
        assert appointment is not None and appointment.status == "booked"
    # Put Monday back: nothing outside, no warning.
    again = client.post(f"/dashboard/availability/{pid}/hours", data=hours_form(RUIZ_WEEKDAYS))
    assert again.headers["location"] == f"/dashboard/availability/{pid}?done=hours"


# -- time off ---------------------------------------------------------------------


def test_time_off_removes_slots_and_removing_it_brings_them_back(site: StaffSite) -> None:
    pid = site.clinic.practitioner("Ruiz")
    client = site.client("staff@clinic.test")
    client.post(
        f"/dashboard/availability/{pid}/hours",
        data=hours_form({**RUIZ_WEEKDAYS, 5: [("09:00", "12:00")]}),
    )
    assert len(saturday_slots(site)) == 6

    done = client.post(
        f"/dashboard/availability/{pid}/time-off",
        data={"from": "2026-04-18T10:00", "to": "2026-04-18T11:00", "reason": SCRIPT},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/dashboard/availability/{pid}?done=time-off-added"
    assert saturday_slots(site) == ["09:00", "09:30", "11:00", "11:30"]
    whole_day = client.post(
        f"/dashboard/availability/{pid}/time-off", data={"from": "2026-04-18", "to": "2026-04-18"}
    )
    assert whole_day.status_code == 303
    assert saturday_slots(site) == []
    engine = FlowEngine(site.db, site.clinic.settings, site.clock)
    assert "No free times then" in Chat(engine, address="+15555550183").say(
        "book with Dr Ruiz on Saturday"
    )

    page = client.get(f"/dashboard/availability/{pid}")
    assert "Sat 18 Apr 2026 10:00" in page.text and "Sat 18 Apr 2026 11:00" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert SCRIPT not in page.text
    index = client.get("/dashboard/availability")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index.text and SCRIPT not in index.text

    with site.db.transaction() as session:
        offs = list(
            session.scalars(select(AvailabilityException).order_by(AvailabilityException.id))
        )
    assert [(o.start_at, o.end_at, o.reason) for o in offs] == [
        (datetime(2026, 4, 18, 14, tzinfo=UTC), datetime(2026, 4, 18, 15, tzinfo=UTC), SCRIPT),
        (datetime(2026, 4, 18, 4, tzinfo=UTC), datetime(2026, 4, 19, 4, tzinfo=UTC), None),
    ]
    for off in offs:
        gone = client.post(f"/dashboard/availability/{pid}/time-off/{off.id}/delete")
        assert gone.status_code == 303
    assert len(saturday_slots(site)) == 6
    again = client.post(f"/dashboard/availability/{pid}/time-off/{offs[0].id}/delete")
    assert again.status_code == 404
    changes = [e.detail["change"] for e in audit_rows(site, "availability")]
    assert changes == ["hours", "time_off_added", "time_off_added"] + ["time_off_removed"] * 2
    assert {e.patient_id for e in audit_rows(site, "availability")} == {None}


def test_time_off_over_a_booked_visit_warns(site: StaffSite) -> None:
    site.clinic.book("+15555550192", datetime(2026, 4, 21, 9, 30, tzinfo=NY), doctor="Ruiz")
    pid = site.clinic.practitioner("Ruiz")
    done = site.client("staff@clinic.test").post(
        f"/dashboard/availability/{pid}/time-off", data={"from": "2026-04-21", "to": "2026-04-21"}
    )
    assert done.headers["location"].endswith("?done=time-off-added&outside=1")


WRONG_TIME_OFF = [
    ("", "", "", "from", "Enter when the time off starts."),
    ("2026-02-30T09:00", "2026-03-01T09:00", "", "from", "No such date."),
    ("tomorrow", "2026-05-01T09:00", "", "from", "Not a date and time"),
    ("2026-05-01T09:00", "2026-05-01T09:00", "", "to", "The end must be after the start."),
    ("2026-05-01T09:00", "2026-04-30T09:00", "", "to", "The end must be after the start."),
    ("2026-05-01T09:00", "2027-05-03T09:00", "", "to", "At most a year at a time"),
    ("2026-04-01T09:00", "2026-04-02T09:00", "", "to", "That time is already past."),
    ("2206-05-01T09:00", "2206-05-02T09:00", "", "from", "check the year"),
    ("2026-05-01T25:00", "2026-05-02T09:00", "", "from", "Not a time of day"),
    ("2026-05-01T09:00", "2026-05-02T09:00", "x" * 10_000, "reason", "At most 200 characters."),
]


def test_wrong_time_off_gets_a_message_and_keeps_what_was_typed(site: StaffSite) -> None:
    pid = site.clinic.practitioner("Ruiz")
    client = site.client("staff@clinic.test")
    for start, end, reason, field, message in WRONG_TIME_OFF:
        page = client.post(
            f"/dashboard/availability/{pid}/time-off",
            data={"from": start, "to": end, "reason": reason},
        )
        assert page.status_code == 422, message
        before = page.text.split(message)[0]
        assert message in page.text
        assert re.findall(r'name="([^"]+)"', before)[-1] == field, message
        assert f'value="{start}"' in page.text
    with site.db.transaction() as session:
        assert session.scalars(select(AvailabilityException)).first() is None


# -- the rules, directly ------------------------------------------------------------


def test_check_hours_finds_overlaps_past_the_neighbouring_range() -> None:
    _, problems = hours.check_hours(
        {0: [("09:00", "17:00"), ("10:00", "11:00"), ("12:00", "13:00")]}
    )
    assert problems == {
        (0, 1): "Overlaps 09:00–17:00 on the same day.",
        (0, 2): "Overlaps 09:00–17:00 on the same day.",
    }
    too_many = [(f"{h:02d}:00", f"{h:02d}:30") for h in range(13)]
    _, problems = hours.check_hours({1: too_many})
    assert problems == {(1, 12): f"At most {hours.MAX_RANGES_PER_DAY} ranges a day."}
    ranges, problems = hours.check_hours({2: [("", ""), ("9:00", "9:30"), (" ", "")]})
    assert problems == {}
    assert ranges == [hours.WeeklyRange(2, time(9), time(9, 30))]
    assert hours.check_hours({3: [("24:00", "24:00")]})[1] == {
        (3, 0): "Start: Not a time of day: use 00:00 to 24:00."
    }
