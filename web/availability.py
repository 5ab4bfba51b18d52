"""The availability editor: practitioners' weekly hours and time off.

Staff and admins edit any practitioner of their clinic; a doctor views and
edits their own hours only (403 otherwise). The rules live in
``core.availability``; this module turns forms into its calls and its
problems back into the page (422, with what was typed kept).

Form fields of ``POST .../hours``: ``day0_start`` / ``day0_end`` ...
``day6_start`` / ``day6_end`` (Monday is 0), repeated once per range, in
order; a row left blank is ignored, so the page offers spare empty rows.
``POST .../time-off``: ``from``, ``to`` (``YYYY-MM-DDTHH:MM`` in the
practitioner's zone, or a bare date) and ``reason``.

After a change the browser is sent back to the editor (303) with a fixed
notice chosen by ``done`` in the query (never text from the query itself),
and a warning when upcoming appointments now fall outside the hours: they
are never moved or cancelled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import availability as hours
from core.models import AvailabilityException, AvailabilityRule, Practitioner
from core.users import can_see_practitioner
from web.auth import Auth, Forbidden, Staff, render
from web.forms import form_lists

MAX_ID = 2**31 - 1
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
SPARE_ROWS = 2  # empty rows offered under each day's ranges
NOTICES = {
    "hours": "Weekly hours saved.",
    "time-off-added": "Time off added.",
    "time-off-removed": "Time off removed.",
}


def zone_of(p: Practitioner) -> ZoneInfo:
    try:
        return ZoneInfo(p.timezone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def local(value: datetime, zone: ZoneInfo) -> str:
    return f"{value.astimezone(zone):%a %d %b %Y %H:%M}"


@dataclass
class Row:
    start: str = ""
    end: str = ""
    error: str | None = None


@dataclass
class Day:
    index: int
    name: str
    rows: list[Row] = field(default_factory=list)


def _visible(staff: Staff, p: Practitioner) -> bool:
    if not can_see_practitioner(staff, p.id):
        return False
    # Staff tied to one clinic work on that clinic's practitioners.
    return staff.role != "staff" or staff.clinic_id is None or staff.clinic_id == p.clinic_id


def _practitioner(session: Session, staff: Staff, practitioner_id: int) -> Practitioner:
    """The practitioner this user may edit, else 403 (404 only for those who
    could see any practitioner)."""
    if not can_see_practitioner(staff, practitioner_id):
        raise Forbidden("You can view and edit only your own hours.")
    p = session.get(Practitioner, practitioner_id)
    if p is None:
        raise Forbidden("There is no such practitioner.")
    if not _visible(staff, p):
        raise Forbidden("This practitioner is not in your clinic.")
    return p


def _days_from_rules(rules: list[AvailabilityRule]) -> list[Day]:
    days = [Day(i, name) for i, name in enumerate(hours.WEEKDAYS)]
    for rule in rules:
        if hours.is_open_ended(rule) and 0 <= rule.weekday <= 6:
            days[rule.weekday].rows.append(
                Row(
                    hours.format_clock(rule.start_time),
                    hours.format_clock(rule.end_time, end=True),
                )
            )
    return days


def _with_spares(days: list[Day]) -> list[Day]:
    for day in days:
        day.rows += [Row() for _ in range(SPARE_ROWS)]
    return days


def _summary(rules: list[AvailabilityRule]) -> list[tuple[str, str]]:
    """``[("Mon", "09:00–13:00, 14:00–17:00"), ...]`` for the days with hours."""
    by_day: dict[int, list[str]] = {}
    for rule in rules:
        label = hours.format_range(rule.start_time, rule.end_time)
        if not hours.is_open_ended(rule):
            since = f"{rule.valid_from:%d %b %Y}" if rule.valid_from else "…"
            until = f"{rule.valid_until:%d %b %Y}" if rule.valid_until else "…"
            label += f" ({since} – {until})"
        by_day.setdefault(rule.weekday, []).append(label)
    return [(hours.WEEKDAYS[d][:3], ", ".join(by_day[d])) for d in sorted(by_day) if 0 <= d <= 6]


def _exception_view(e: AvailabilityException, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": "Time off" if e.kind == "off" else "Extra hours",
        "start": local(e.start_at, zone),
        "end": local(e.end_at, zone),
        "reason": e.reason or "",
    }


def availability_router(auth: Auth) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def editor(
        request: Request,
        staff: Staff,
        practitioner_id: int,
        *,
        days: list[Day] | None = None,
        hours_error: str | None = None,
        time_off: dict[str, str] | None = None,
        time_off_errors: dict[str, str] | None = None,
        notice: str | None = None,
        warning: int = 0,
        status_code: int = 200,
    ) -> HTMLResponse:
        now = auth.clock.now()
        with auth.db.transaction() as session:
            p = _practitioner(session, staff, practitioner_id)
            zone = zone_of(p)
            rules = hours.weekly_rules(session, p.id)
            if days is None:
                days = _with_spares(_days_from_rules(rules))
            # Dated rules (from the API or an import) are kept by a save: shown, not edited.
            dated = _summary([r for r in rules if not hours.is_open_ended(r)])
            exceptions = [
                _exception_view(e, zone) for e in hours.upcoming_exceptions(session, [p.id], now)
            ]
            return render(
                request,
                "dash/availability_edit.html",
                staff,
                status_code=status_code,
                practitioner=p,
                zone=p.timezone,
                days=days,
                dated=dated,
                exceptions=exceptions,
                hours_error=hours_error,
                time_off=time_off or {"from": "", "to": "", "reason": ""},
                time_off_errors=time_off_errors or {},
                notice=notice,
                warning=warning,
            )

    @router.get("/dashboard/availability")
    def index(request: Request, staff: Staff = Depends(auth.page)) -> HTMLResponse:
        now = auth.clock.now()
        with auth.db.transaction() as session:
            query = select(Practitioner).order_by(Practitioner.name, Practitioner.id)
            if staff.is_doctor:
                query = query.where(Practitioner.id == (staff.practitioner_id or 0))
            practitioners = [p for p in session.scalars(query) if _visible(staff, p)]
            ids = [p.id for p in practitioners]
            rules: dict[int, list[AvailabilityRule]] = {}
            if ids:
                for rule in session.scalars(
                    select(AvailabilityRule)
                    .where(AvailabilityRule.practitioner_id.in_(ids))
                    .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time)
                ):
                    rules.setdefault(rule.practitioner_id, []).append(rule)
            off: dict[int, list[dict[str, Any]]] = {}
            zones = {p.id: zone_of(p) for p in practitioners}
            for e in hours.upcoming_exceptions(session, ids, now):
                off.setdefault(e.practitioner_id, []).append(
                    _exception_view(e, zones[e.practitioner_id])
                )
            rows = [
                {
                    "p": p,
                    "summary": _summary(rules.get(p.id, [])),
                    "off": off.get(p.id, [])[:5],
                    "more_off": max(0, len(off.get(p.id, [])) - 5),
                }
                for p in practitioners
            ]
            return render(request, "dash/availability.html", staff, rows=rows)

    @router.get("/dashboard/availability/row")
    def spare_row(
        request: Request,
        day: Annotated[int, Query(ge=0, le=6)],
        staff: Staff = Depends(auth.page),
    ) -> HTMLResponse:
        """One more empty range row for a day (the editor's "add a range")."""
        return render(request, "dash/_avail_row.html", staff, day=Day(day, ""), row=Row())

    @router.get("/dashboard/availability/{practitioner_id}")
    def edit(
        request: Request,
        practitioner_id: IdPath,
        done: str | None = None,
        outside: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        staff: Staff = Depends(auth.page),
    ) -> HTMLResponse:
        return editor(
            request,
            staff,
            practitioner_id,
            notice=NOTICES.get(done or ""),
            warning=outside,
        )

    @router.post("/dashboard/availability/{practitioner_id}/hours")
    async def save_hours(
        request: Request, practitioner_id: IdPath, staff: Staff = Depends(auth.page)
    ) -> Response:
        await auth.form(request)
        lists = await form_lists(request)
        submitted: dict[int, list[tuple[str, str]]] = {}
        for d in range(7):
            starts = lists.get(f"day{d}_start", [])
            ends = lists.get(f"day{d}_end", [])
            width = max(len(starts), len(ends))
            starts = starts + [""] * (width - len(starts))
            ends = ends + [""] * (width - len(ends))
            submitted[d] = list(zip(starts, ends, strict=True))
        ranges, problems = hours.check_hours(submitted)
        if problems:
            days = []
            for d, name in enumerate(hours.WEEKDAYS):
                day = Day(d, name)
                for i, (start, end) in enumerate(submitted[d]):
                    if start.strip() or end.strip():
                        day.rows.append(Row(start, end, problems.get((d, i))))
                days.append(day)
            return editor(
                request,
                staff,
                practitioner_id,
                days=_with_spares(days),
                hours_error="Some hours need fixing; nothing was saved.",
                status_code=422,
            )
        now = auth.clock.now()
        with auth.db.transaction() as session:
            p = _practitioner(session, staff, practitioner_id)
            hours.replace_hours(session, p.id, ranges)
            outside = hours.appointments_outside_hours(session, p, now)
            auth.audit(
                session,
                staff,
                "update",
                "availability",
                entity_id=p.id,
                detail={"change": "hours", "ranges": len(ranges)},
            )
        return _back(practitioner_id, "hours", outside)

    @router.post("/dashboard/availability/{practitioner_id}/time-off")
    async def add_time_off(
        request: Request, practitioner_id: IdPath, staff: Staff = Depends(auth.page)
    ) -> Response:
        fields = await auth.form(request)
        typed = {key: fields.get(key, "") for key in ("from", "to", "reason")}
        now = auth.clock.now()
        with auth.db.transaction() as session:
            p = _practitioner(session, staff, practitioner_id)
            off, problems = hours.check_time_off(
                typed["from"], typed["to"], typed["reason"], zone_of(p), now
            )
            if off is not None:
                row = hours.add_time_off(session, p.id, off)
                outside = hours.appointments_outside_hours(session, p, now)
                auth.audit(
                    session,
                    staff,
                    "update",
                    "availability",
                    entity_id=p.id,
                    detail={"change": "time_off_added", "exception_id": row.id},
                )
        if off is None:
            return editor(
                request,
                staff,
                practitioner_id,
                time_off=typed,
                time_off_errors=problems,
                status_code=422,
            )
        return _back(practitioner_id, "time-off-added", outside)

    @router.post("/dashboard/availability/{practitioner_id}/time-off/{exception_id}/delete")
    async def remove_time_off(
        request: Request,
        practitioner_id: IdPath,
        exception_id: IdPath,
        staff: Staff = Depends(auth.page),
    ) -> Response:
        await auth.form(request)
        now = auth.clock.now()
        with auth.db.transaction() as session:
            p = _practitioner(session, staff, practitioner_id)
            removed = hours.remove_time_off(session, p.id, exception_id)
            if removed:
                auth.audit(
                    session,
                    staff,
                    "update",
                    "availability",
                    entity_id=p.id,
                    detail={"change": "time_off_removed", "exception_id": exception_id},
                )
                outside = hours.appointments_outside_hours(session, p, now)
        if not removed:
            return editor(
                request,
                staff,
                practitioner_id,
                notice="That time off was already removed.",
                status_code=404,
            )
        return _back(practitioner_id, "time-off-removed", outside)

    return router


def _back(practitioner_id: int, done: str, outside: int) -> RedirectResponse:
    url = f"/dashboard/availability/{practitioner_id}?done={done}"
    if outside:
        url += f"&outside={outside}"
    return RedirectResponse(url, status_code=303)
