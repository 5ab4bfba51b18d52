"""The dashboard's core pages: the day's schedule (``/dashboard``), an
appointment and its buttons, patients and their record, the reports, and the
audit log (admins only).

Queries live in core.dashboard; handlers read parameters, check who may see
what (a doctor only their own practitioner's schedule and patients), write the
audit entry in the same transaction and render. Bad parameters get a message
in the page (404, 409 or 422), never a 500.

The schedule's buttons share one form (its CSRF token and return address),
each posting to its own ``formaction``. With HTMX the post happens in the
background and the answer is the appointment's row, with HX-Retarget naming
it (always 200: HTMX swaps nothing on an error status, so the row carries
the message). Without JavaScript the post comes back to the page (303), or
shows the message with a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from core import alerts, dashboard, metrics, reminders, scheduling
from core.audit import ACTIONS as AUDIT_ACTIONS
from core.cancellations import cancel_for_clinic
from core.dashboard import InputError
from core.intake import LEVELS
from core.models import APPOINTMENT_STATUSES, Alert, Appointment, Clinic, Patient
from core.users import can_see_patient, can_see_practitioner
from web import charts
from web.auth import PRIVATE_HEADERS, Auth, Forbidden, Staff, render, safe_next

# What the pages call buttons, statuses, visit types and triage levels.
LABELS = {
    "check-in": "Check in",
    "complete": "Complete",
    "no-show": "No-show",
    "cancel": "Cancel appointment",
    **{status: status.replace("_", "-") for status in APPOINTMENT_STATUSES},
    "in_person": "in person",
    "video": "video",
    **{level: level.replace("_", "-") for level in LEVELS},
}
ANOTHER_DOCTOR = "This is another practitioner's appointment."


def _local(zone: ZoneInfo) -> Callable[..., str]:
    """``local(value, fmt)`` for templates: a stored UTC time in the clinic's zone."""

    def local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(zone).strftime(fmt) if value is not None else ""

    return local


def _percent(share: float) -> str:
    return f"{share * 100:.1f}".rstrip("0").rstrip(".") + "%"


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def dashboard_router(auth: Auth) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def zone_of(clinic: Clinic | None) -> ZoneInfo:
        return dashboard.zone_named(
            clinic.timezone if clinic is not None else None, auth.settings.clinic_timezone
        )

    def notice(
        request: Request, staff: Staff, status_code: int, title: str, message: str, back: str = ""
    ) -> HTMLResponse:
        return render(
            request,
            "dash/_core_notice.html",
            staff,
            status_code=status_code,
            title=title,
            message=message,
            back=back or "/dashboard",
        )

    # -- the day ---------------------------------------------------------------

    @router.get("/dashboard")
    def today(
        request: Request,
        day: str | None = None,
        practitioner: str | None = None,
        staff: Staff = Depends(auth.page),
    ) -> HTMLResponse:
        now = auth.clock.now()
        error: str | None = None
        view: dashboard.DayView | None = None
        with auth.db.transaction() as session:
            clinic = dashboard.clinic_of(session, staff.clinic_id)
            zone = zone_of(clinic)
            current = now.astimezone(zone).date()
            wanted, chosen = current, None
            try:
                wanted = dashboard.parse_date(day, "The day") or current
                dashboard.day_bounds(wanted, zone)
                if practitioner:
                    chosen = dashboard.parse_id(practitioner)
                    if chosen is None:
                        raise InputError("The practitioner must be a practitioner's number.")
            except InputError as exc:
                error = str(exc)
            if chosen is not None and not can_see_practitioner(staff, chosen):
                raise Forbidden("You see your own schedule only.")
            if error is None and clinic is not None:
                view = dashboard.day_view(
                    session,
                    staff,
                    clinic_id=clinic.id,
                    day=wanted,
                    zone=zone,
                    now=now,
                    practitioner_id=chosen,
                )
                if chosen is not None and not view.practitioners:
                    return notice(
                        request, staff, 404, "Not found", f"There is no practitioner {chosen}."
                    )
                auth.audit(
                    session,
                    staff,
                    "view",
                    "schedule",
                    detail={"day": wanted.isoformat(), "practitioner": chosen},
                )
        if error is None and clinic is None:
            error = "There is no clinic yet: run `telemed demo` or set one up."

        def link(to: date | None) -> str:
            query: dict[str, Any] = {"day": to.isoformat()} if to is not None else {}
            if chosen is not None:
                query["practitioner"] = chosen
            return "/dashboard" + ("?" + urlencode(query) if query else "")

        def step(days: int) -> date | None:
            try:
                return wanted + timedelta(days=days)
            except OverflowError:
                return None

        previous, following = step(-1), step(1)
        return render(
            request,
            "dash/today.html",
            staff,
            status_code=422 if error else 200,
            error=error,
            view=view,
            day_value=wanted.isoformat() if error is None else "",
            is_today=wanted == current,
            practitioner=chosen,
            here=link(wanted) if error is None else "/dashboard",
            prev_url=link(previous) if previous else None,
            next_url=link(following) if following else None,
            today_url=link(None),
            labels=LABELS,
        )

    # -- one appointment -----------------------------------------------------------

    @router.get("/dashboard/appointments/{appointment_id}")
    def appointment_page(
        request: Request, appointment_id: str, staff: Staff = Depends(auth.page)
    ) -> HTMLResponse:
        ident = dashboard.parse_id(appointment_id)
        missing = "There is no such appointment."
        if ident is None:
            return notice(request, staff, 404, "Not found", missing)
        now = auth.clock.now()
        with auth.db.transaction() as session:
            detail = dashboard.appointment_detail(session, ident, now=now)
            if detail is None:
                return notice(request, staff, 404, "Not found", missing)
            appointment = detail.appointment
            if not can_see_practitioner(staff, appointment.practitioner_id):
                raise Forbidden(ANOTHER_DOCTOR)
            zone = zone_of(appointment.practitioner.clinic)
            auth.audit(
                session,
                staff,
                "view",
                "appointment",
                entity_id=ident,
                patient_id=appointment.patient_id,
            )
        return render(
            request,
            "dash/appointment.html",
            staff,
            detail=detail,
            a=appointment,
            local=_local(zone),
            zone=zone.key,
            labels=LABELS,
        )

    def appointment_action(
        name: str, change: Callable[[Session, int, datetime], object]
    ) -> Callable[..., Any]:
        async def handler(
            request: Request, appointment_id: str, staff: Staff = Depends(auth.page)
        ) -> Response:
            fields = await auth.form(request)
            ident = dashboard.parse_id(appointment_id)
            if ident is None:
                return notice(request, staff, 404, "Not found", "There is no such appointment.")
            now = auth.clock.now()
            error: str | None = None
            row: dashboard.ScheduleRow | None = None
            as_row = _is_htmx(request) and fields.get("view") == "row"
            with auth.db.transaction() as session:
                found = session.get(Appointment, ident)
                if found is None:
                    return notice(request, staff, 404, "Not found", "There is no such appointment.")
                if not can_see_practitioner(staff, found.practitioner_id):
                    raise Forbidden(ANOTHER_DOCTOR)
                patient_id = found.patient_id
                try:
                    change(session, ident, now)
                except scheduling.SchedulingError as exc:
                    error = f"Not done: {exc}."
                else:
                    auth.audit(
                        session,
                        staff,
                        "update",
                        "appointment",
                        entity_id=ident,
                        patient_id=patient_id,
                        detail={"action": name},
                    )
                if as_row:
                    zone = zone_of(dashboard.clinic_of(session, found.clinic_id))
                    row = dashboard.schedule_row(session, ident, zone, now)
            back = f"/dashboard/appointments/{ident}"
            if as_row:
                answer = render(
                    request,
                    "dash/_appointment_row.html",
                    staff,
                    row=row,
                    error=error,
                    labels=LABELS,
                )
                # The schedule's one form posted; this row is what changes.
                answer.headers["HX-Retarget"] = f"#appointment-{ident}"
                answer.headers["HX-Reswap"] = "outerHTML"
                return answer
            if error is not None:
                return notice(request, staff, 409, "Not done", error, back=back)
            return RedirectResponse(safe_next(fields.get("next") or back), status_code=303)

        return handler

    def no_show(session: Session, ident: int, now: datetime) -> object:
        return reminders.mark_no_show(
            session, ident, reminders.policies(session, auth.settings), now
        )

    changes: dict[str, Callable[[Session, int, datetime], object]] = {
        "check-in": lambda session, ident, now: scheduling.check_in(session, ident, now=now),
        "complete": lambda session, ident, now: scheduling.complete(session, ident, now=now),
        "no-show": no_show,
        "cancel": lambda session, ident, now: cancel_for_clinic(
            session, ident, now=now, default_language=auth.settings.default_language
        ),
    }
    # One route per button (not /{action}): other pages own other POSTs under
    # /dashboard/appointments/{id}/ (the video visit's).
    for path, change in changes.items():
        router.add_api_route(
            f"/dashboard/appointments/{{appointment_id}}/{path}",
            appointment_action(path.replace("-", "_"), change),
            methods=["POST"],
            name=f"appointment_{path.replace('-', '_')}",
        )

    @router.post("/dashboard/alerts/{alert_id}/ack")
    async def acknowledge(
        request: Request, alert_id: str, staff: Staff = Depends(auth.page)
    ) -> Response:
        fields = await auth.form(request)
        ident = dashboard.parse_id(alert_id)
        missing = "There is no such alert."
        if ident is None:
            return notice(request, staff, 404, "Not found", missing)
        with auth.db.transaction() as session:
            alert = session.get(Alert, ident)
            if alert is None:
                return notice(request, staff, 404, "Not found", missing)
            if staff.is_doctor and (
                alert.patient_id is None or not can_see_patient(session, staff, alert.patient_id)
            ):
                raise Forbidden("This alert is about another practitioner's patient.")
            alerts.acknowledge(session, ident, now=auth.clock.now())
            auth.audit(
                session, staff, "update", "alert", entity_id=ident, patient_id=alert.patient_id
            )
        if _is_htmx(request):
            return HTMLResponse("", headers=PRIVATE_HEADERS)  # the alert leaves the list
        return RedirectResponse(safe_next(fields.get("next")), status_code=303)

    # -- patients --------------------------------------------------------------------

    @router.get("/dashboard/patients")
    def patients(
        request: Request, q: str | None = None, staff: Staff = Depends(auth.page)
    ) -> HTMLResponse:
        with auth.db.transaction() as session:
            found = dashboard.search_patients(session, staff, q)
            # Not the search words: they may be a name or a phone number.
            auth.audit(session, staff, "view", "patients", detail={"results": len(found)})
        return render(
            request,
            "dash/patients.html",
            staff,
            patients=found,
            q=(q or "")[: dashboard.MAX_SEARCH],
        )

    @router.get("/dashboard/patients/{patient_id}")
    def patient_page(
        request: Request, patient_id: str, staff: Staff = Depends(auth.page)
    ) -> HTMLResponse:
        ident = dashboard.parse_id(patient_id)
        missing = "There is no such patient."
        if ident is None:
            return notice(request, staff, 404, "Not found", missing, back="/dashboard/patients")
        now = auth.clock.now()
        with auth.db.transaction() as session:
            if session.get(Patient, ident) is None:
                return notice(request, staff, 404, "Not found", missing, back="/dashboard/patients")
            if not can_see_patient(session, staff, ident):
                raise Forbidden("This is another practitioner's patient.")
            record = dashboard.patient_record(session, ident, now=now)
            assert record is not None
            zone = zone_of(dashboard.clinic_of(session, record.patient.clinic_id))
            auth.audit(session, staff, "view", "patient", entity_id=ident, patient_id=ident)
        return render(
            request,
            "dash/patient.html",
            staff,
            record=record,
            p=record.patient,
            local=_local(zone),
            zone=zone.key,
        )

    # -- reports -----------------------------------------------------------------------

    @router.get("/dashboard/reports")
    def reports(
        request: Request, weeks: str | None = None, staff: Staff = Depends(auth.page)
    ) -> HTMLResponse:
        try:
            count = dashboard.parse_weeks(weeks)
        except InputError as exc:
            return render(
                request, "dash/reports.html", staff, status_code=422, error=str(exc), weeks=""
            )
        now = auth.clock.now()
        with auth.db.transaction() as session:
            clinic = dashboard.clinic_of(session, staff.clinic_id)
            zone = zone_of(clinic)
            rows = metrics.weekly_report(session, now=now, zone=zone, weeks=count)
        labels = [row.week_start.strftime("%d %b") for row in rows]
        no_shows = charts.line_chart(
            "no-show-chart",
            f"No-show rate by week, last {count} weeks",
            labels,
            [charts.Series("No-show rate", [row.no_show_rate for row in rows])],
            fmt=_percent,
        )
        sent = charts.bar_chart(
            "reminder-chart",
            f"Reminders sent and answered by week, last {count} weeks",
            labels,
            [
                charts.Series("Sent", [row.reminders_sent for row in rows]),
                charts.Series("Answered", [row.reminders_answered for row in rows]),
            ],
            fmt=lambda value: f"{value:.0f}",
            whole=True,
        )
        return render(
            request,
            "dash/reports.html",
            staff,
            rows=rows,
            weeks=count,
            zone=zone.key,
            no_show_chart=no_shows,
            reminder_chart=sent,
        )

    # -- the audit log -------------------------------------------------------------------

    @router.get("/dashboard/audit")
    def audit_log(request: Request, staff: Staff = Depends(auth.roles("admin"))) -> HTMLResponse:
        params = {key: value[:300] for key, value in request.query_params.items()}
        shown = {
            k: params.get(k, "") for k in ("user", "patient", "action", "entity", "from", "to")
        }
        entries: list[Any] = []
        more, page = False, 1
        with auth.db.transaction() as session:
            zone = zone_of(dashboard.clinic_of(session, staff.clinic_id))
            try:
                wanted = dashboard.audit_filter(params)
                page = wanted.page
                entries, more = dashboard.audit_page(session, wanted, zone)
                error = None
            except InputError as exc:
                error = str(exc)

        def page_url(number: int) -> str:
            query = {k: v for k, v in shown.items() if v}
            return "/dashboard/audit?" + urlencode({**query, "page": number})

        return render(
            request,
            "dash/audit.html",
            staff,
            status_code=422 if error else 200,
            error=error,
            entries=entries,
            shown=shown,
            actions=AUDIT_ACTIONS,
            page=page,
            older_url=page_url(page + 1) if more else None,
            newer_url=page_url(page - 1) if page > 1 else None,
            local=_local(zone),
            zone=zone.key,
        )

    return router
