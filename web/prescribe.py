"""The prescription form for doctors (admins may use it too; staff may not),
the confirmation page, and the prescriber's refill queue.

- A doctor prescribes only as their own practitioner (a ``practitioner_id``
  in the form is ignored for them) and only for a patient they may see
  (``core.users.can_see_patient``): otherwise 403. An admin picks the
  practitioner.
- The fields are checked with the REST API's own models
  (``web.prescriptions.PrescriptionIn`` / ``ItemIn``: the same limits as
  ``core.prescriptions``), and problems go next to each field (422, with
  what was typed kept). Form-only rule: no HTML markup in a prescription's
  text, which is printed and read by pharmacists.
- Issuing goes through ``core.prescriptions.issue`` and ``patient_notice``
  exactly as the API does: the patient is told on their last channel, with
  no medicine named. The pickup code is never shown here: it is the
  patient's.

Form fields of ``POST /dashboard/prescriptions``: ``patient_id``,
``appointment_id`` (optional), ``practitioner_id`` (admins), repeated item
rows ``medicine``, ``strength``, ``form``, ``dose``, ``quantity``,
``refills`` (a row left blank is ignored), ``expires_days`` and ``notes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import prescriptions as rx
from core.models import (
    Appointment,
    Notification,
    OutboxMessage,
    Patient,
    Practitioner,
    Prescription,
    RefillRequest,
)
from core.users import can_see_patient, doctor_patient_ids
from web.auth import Auth, Forbidden, Staff, render
from web.forms import form_lists
from web.prescriptions import MAX_ID, PrescriptionIn

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
ITEM_FIELDS = ("medicine", "strength", "form", "dose", "quantity", "refills")
TEXT_FIELDS = ("medicine", "strength", "form", "dose")
REQUIRED = {
    "medicine": "Enter the medicine.",
    "dose": "Enter the dose instructions.",
    "quantity": "Enter the quantity.",
}
DEFAULT_ROWS = 3
DEFAULT_EXPIRES_DAYS = 30
PATIENT_CHOICES = 500
# Anything shaped like a tag or an HTML entity: prescriptions are plain text.
MARKUP = re.compile(r"<\s*[A-Za-z/!?]|&#?[A-Za-z0-9]+;")
DELIVERY = {
    "pending": "waiting to be sent",
    "sending": "being sent",
    "accepted": "accepted by the provider",
    "queued": "queued at the provider",
    "scheduled": "queued at the provider",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "not delivered",
    "failed": "not delivered",
    "canceled": "not delivered",
}
REFILL_NOTICES = {
    "approved": "Refill approved: a new prescription was issued.",
    "denied": "Refill denied.",
}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return f"{value.astimezone(zone):%a %d %b %Y %H:%M}" if value is not None else ""


def _id(text: str | None) -> int | None:
    """A positive database id from a form or query value, else None."""
    text = (text or "").strip()
    if not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


@dataclass
class ItemRow:
    values: dict[str, str] = field(default_factory=lambda: dict.fromkeys(ITEM_FIELDS, ""))
    errors: dict[str, str] = field(default_factory=dict)


def _patient_label(p: Patient) -> str:
    name = p.name or "(no name yet)"
    born = f", born {p.date_of_birth:%d %b %Y}" if p.date_of_birth else ""
    return f"{name}{born} · #{p.id}"


# -- checking the form ----------------------------------------------------------------


def _message(error: ErrorDetails, name: str) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in ("missing", "string_too_short") and name in REQUIRED:
        return REQUIRED[name]
    if kind == "string_too_long":
        return f"At most {ctx.get('max_length')} characters."
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "Enter a whole number."
    if kind == "greater_than_equal":
        return f"At least {ctx.get('ge')}."
    if kind == "less_than_equal":
        return f"At most {ctx.get('le')}."
    return str(error["msg"])


def _item_rows(lists: dict[str, list[str]]) -> list[ItemRow]:
    """The typed item rows, blank ones dropped (the form offers spares)."""
    width = max((len(lists.get(name, [])) for name in ITEM_FIELDS), default=0)
    rows = []
    for i in range(width):
        values = {name: _nth(lists.get(name, []), i) for name in ITEM_FIELDS}
        if any(v.strip() for v in values.values()):
            rows.append(ItemRow(values))
    return rows


def _nth(values: list[str], i: int) -> str:
    return values[i] if i < len(values) else ""


@dataclass
class Checked:
    body: PrescriptionIn | None
    rows: list[ItemRow]
    # Form-level problems by field: "medicines" (the list as a whole),
    # "expires_days", "notes", "patient_id", "practitioner_id", "form"...
    errors: dict[str, str]


def check_form(
    rows: list[ItemRow],
    *,
    patient_id: int,
    practitioner_id: int,
    appointment_id: int | None,
    expires_days: str,
    notes: str,
) -> Checked:
    """The form's values through the API's ``PrescriptionIn``; its errors
    mapped onto the fields they belong to."""
    items: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {}
        for name in ITEM_FIELDS:
            value = row.values[name].strip()
            if value:
                item[name] = value
            elif name in ("strength", "form"):
                item[name] = None
        items.append(item)
    data: dict[str, Any] = {
        "patient_id": patient_id,
        "practitioner_id": practitioner_id,
        "appointment_id": appointment_id,
        "items": items,
        "notes": notes.strip() or None,
    }
    if expires_days.strip():
        data["expires_days"] = expires_days.strip()
    errors: dict[str, str] = {}
    body: PrescriptionIn | None = None
    try:
        body = PrescriptionIn.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            if len(loc) >= 3 and loc[0] == "items" and isinstance(loc[1], int):
                name = str(loc[2])
                if loc[1] < len(rows) and name in ITEM_FIELDS:
                    rows[loc[1]].errors.setdefault(name, _message(error, name))
                    continue
            if loc == ("items",):
                errors.setdefault(
                    "medicines",
                    "Add at least one medicine."
                    if error["type"] == "too_short"
                    else f"At most {rx.MAX_ITEMS} medicines on one prescription.",
                )
                continue
            name = str(loc[0]) if loc else "form"
            errors.setdefault(name, _message(error, name))
    for row in rows:
        for name in TEXT_FIELDS:
            if name not in row.errors and MARKUP.search(row.values[name]):
                row.errors[name] = "Plain text only: remove the HTML (< > or &…;)."
    if "notes" not in errors and MARKUP.search(notes):
        errors["notes"] = "Plain text only: remove the HTML (< > or &…;)."
    if errors or any(row.errors for row in rows):
        return Checked(None, rows, errors)
    return Checked(body, rows, errors)


# -- who may prescribe what -----------------------------------------------------------


def _own_practitioner(session: Session, staff: Staff) -> Practitioner:
    p = session.get(Practitioner, staff.practitioner_id) if staff.practitioner_id else None
    if p is None or not p.active:
        raise Forbidden(
            "Your account is not linked to an active practitioner, so it cannot prescribe."
        )
    return p


def _patient(session: Session, staff: Staff, patient_id: int | None) -> Patient | None:
    """The patient, when this user may prescribe for them; 403 for a doctor
    asking for anyone else (existing or not, so ids cannot be probed)."""
    if patient_id is None:
        return None
    patient = session.get(Patient, patient_id)
    if staff.is_doctor and (patient is None or not can_see_patient(session, staff, patient_id)):
        raise Forbidden("You can prescribe only for your own patients.")
    return patient


def _appointment(session: Session, staff: Staff, appointment_id: int | None) -> Appointment | None:
    if appointment_id is None:
        return None
    appointment = session.get(Appointment, appointment_id)
    if staff.is_doctor and (
        appointment is None or appointment.practitioner_id != staff.practitioner_id
    ):
        raise Forbidden("You can prescribe only from your own appointments.")
    return appointment


def _patient_choices(session: Session, staff: Staff) -> list[tuple[int, str]]:
    query = select(Patient).order_by(Patient.name, Patient.id).limit(PATIENT_CHOICES)
    if staff.is_doctor:
        assert staff.practitioner_id is not None
        query = query.where(Patient.id.in_(doctor_patient_ids(staff.practitioner_id)))
    return [(p.id, _patient_label(p)) for p in session.scalars(query)]


def _notification_status(session: Session, prescription: Prescription) -> dict[str, str] | None:
    """How the "you have a new prescription" message to the patient is doing."""
    for notice in session.scalars(
        select(Notification)
        .where(
            Notification.patient_id == prescription.patient_id,
            Notification.kind == "prescription",
        )
        .order_by(Notification.id)
    ):
        data = notice.data or {}
        if data.get("prescription_id") != prescription.id or data.get("event") != "issued":
            continue
        sent = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == notice.channel,
                OutboxMessage.address == notice.address,
                OutboxMessage.purpose == "clinical",
                OutboxMessage.created_at == notice.queued_at,
            )
            .order_by(OutboxMessage.id)
        ).first()
        status = sent.status if sent is not None else "pending"
        return {
            "channel": {"sms": "SMS", "whatsapp": "WhatsApp", "telegram": "Telegram"}.get(
                notice.channel, notice.channel
            ),
            "status": DELIVERY.get(status, status),
            "failed": "yes" if status in ("failed", "undelivered", "canceled") else "",
        }
    return None


# -- pages ----------------------------------------------------------------------------


def prescribe_router(auth: Auth) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    prescriber = auth.roles("admin", "doctor")

    def form_page(
        request: Request,
        session: Session,
        staff: Staff,
        *,
        patient: Patient | None,
        appointment: Appointment | None,
        practitioner_id: int | None,
        rows: list[ItemRow],
        expires_days: str,
        notes: str,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        practitioners: list[tuple[int, str]] = []
        own_name = ""
        if staff.is_doctor:
            own = _own_practitioner(session, staff)
            own_name, practitioner_id = own.name, own.id
        else:
            practitioners = [
                (p.id, f"{p.name} ({p.specialty})")
                for p in session.scalars(
                    select(Practitioner)
                    .where(Practitioner.active.is_(True))
                    .order_by(Practitioner.name)
                )
            ]
        if patient is not None:
            auth.audit(
                session,
                staff,
                "view",
                "patient",
                entity_id=patient.id,
                patient_id=patient.id,
                detail={"page": "prescribe"},
            )
            choices: list[tuple[int, str]] = []
        else:
            choices = _patient_choices(session, staff)
            auth.audit(
                session,
                staff,
                "view",
                "patient",
                detail={"page": "prescribe", "listed": len(choices)},
            )
        zone = (
            _zone(appointment.practitioner.timezone) if appointment is not None else ZoneInfo("UTC")
        )
        shown = rows + [ItemRow() for _ in range(max(0, DEFAULT_ROWS - len(rows)))]
        return render(
            request,
            "dash/prescribe.html",
            staff,
            status_code=status_code,
            patient={"id": patient.id, "label": _patient_label(patient)} if patient else None,
            choices=choices,
            appointment=(
                {"id": appointment.id, "when": _when(appointment.start_at, zone)}
                if appointment is not None
                else None
            ),
            practitioners=practitioners,
            practitioner_id=practitioner_id,
            own_name=own_name,
            rows=shown,
            max_items=rx.MAX_ITEMS,
            max_quantity=rx.MAX_QUANTITY,
            max_refills=rx.MAX_REFILLS,
            max_expires=rx.MAX_EXPIRES_DAYS,
            expires_days=expires_days,
            notes=notes,
            errors=errors or {},
        )

    @router.get("/dashboard/prescriptions/new")
    def new(
        request: Request,
        patient_id: str | None = None,
        appointment_id: str | None = None,
        staff: Staff = Depends(prescriber),
    ) -> HTMLResponse:
        with auth.db.transaction() as session:
            appointment = _appointment(session, staff, _id(appointment_id))
            pid = appointment.patient_id if appointment is not None else _id(patient_id)
            patient = _patient(session, staff, pid)
            errors = {}
            if (patient_id or appointment_id) and patient is None:
                errors["patient_id"] = "No such patient or appointment: choose the patient."
            return form_page(
                request,
                session,
                staff,
                patient=patient,
                appointment=appointment,
                practitioner_id=appointment.practitioner_id if appointment else None,
                rows=[],
                expires_days=str(DEFAULT_EXPIRES_DAYS),
                notes="",
                errors=errors,
                status_code=404 if errors else 200,
            )

    @router.get("/dashboard/prescriptions/item-row")
    def item_row(request: Request, staff: Staff = Depends(prescriber)) -> HTMLResponse:
        """One more empty medicine row (the form's "add another medicine")."""
        return render(
            request,
            "dash/_rx_item.html",
            staff,
            row=ItemRow(),
            max_quantity=rx.MAX_QUANTITY,
            max_refills=rx.MAX_REFILLS,
        )

    @router.post("/dashboard/prescriptions")
    async def create(request: Request, staff: Staff = Depends(prescriber)) -> Response:
        fields = await auth.form(request)
        lists = await form_lists(request)
        rows = _item_rows(lists)
        expires_days = fields.get("expires_days", "")
        notes = fields.get("notes", "")
        now = auth.clock.now()
        with auth.db.transaction() as session:
            errors: dict[str, str] = {}
            appointment_id = _id(fields.get("appointment_id"))
            if fields.get("appointment_id", "").strip() and appointment_id is None:
                errors["appointment_id"] = "Not an appointment number."
            appointment = _appointment(session, staff, appointment_id)
            if appointment_id is not None and appointment is None:
                errors["appointment_id"] = "No such appointment."
            patient_id = _id(fields.get("patient_id"))
            patient = _patient(session, staff, patient_id)
            if patient is None:
                errors["patient_id"] = "Choose the patient."
            if staff.is_doctor:
                # Always as themselves: a practitioner_id in the form is not theirs to set.
                practitioner: Practitioner | None = _own_practitioner(session, staff)
            else:
                practitioner = session.get(Practitioner, _id(fields.get("practitioner_id")) or 0)
                if practitioner is None or not practitioner.active:
                    errors["practitioner_id"] = "Choose the prescriber."
                    practitioner = None
            checked = check_form(
                rows,
                patient_id=patient.id if patient else 1,
                practitioner_id=practitioner.id if practitioner else 1,
                appointment_id=appointment.id if appointment else None,
                expires_days=expires_days,
                notes=notes,
            )
            errors = {**checked.errors, **errors}
            if not errors and checked.body is not None:
                assert patient is not None and practitioner is not None
                body = checked.body
                try:
                    prescription = rx.issue(
                        session,
                        practitioner_id=practitioner.id,
                        patient_id=patient.id,
                        items=[rx.ItemSpec(**item.model_dump()) for item in body.items],
                        now=now,
                        expires_days=body.expires_days,
                        appointment_id=body.appointment_id,
                        notes=body.notes,
                    )
                except rx.PrescriptionError as exc:
                    errors["form"] = str(exc)
                else:
                    rx.patient_notice(session, prescription, "issued", now)
                    auth.audit(
                        session,
                        staff,
                        "create",
                        "prescription",
                        entity_id=prescription.id,
                        patient_id=patient.id,
                        detail={"items": len(body.items)},
                    )
                    return RedirectResponse(
                        f"/dashboard/prescriptions/{prescription.id}", status_code=303
                    )
            if not errors and not any(r.errors for r in checked.rows):
                errors["form"] = "Check the prescription."
            return form_page(
                request,
                session,
                staff,
                patient=patient,
                appointment=appointment,
                practitioner_id=practitioner.id if practitioner else None,
                rows=checked.rows,
                expires_days=expires_days,
                notes=notes,
                errors={**errors, "summary": "Some fields need fixing; nothing was issued."},
                status_code=422,
            )

    @router.get("/dashboard/prescriptions/{prescription_id}")
    def show(
        request: Request, prescription_id: IdPath, staff: Staff = Depends(prescriber)
    ) -> HTMLResponse:
        now = auth.clock.now()
        with auth.db.transaction() as session:
            prescription = session.get(Prescription, prescription_id)
            if prescription is None:
                if staff.is_doctor:
                    raise Forbidden("You can see only your own patients' prescriptions.")
                raise Forbidden("There is no such prescription.")
            if staff.is_doctor and not can_see_patient(session, staff, prescription.patient_id):
                raise Forbidden("You can see only your own patients' prescriptions.")
            zone = _zone(prescription.practitioner.timezone)
            auth.audit(
                session,
                staff,
                "view",
                "prescription",
                entity_id=prescription.id,
                patient_id=prescription.patient_id,
            )
            return render(
                request,
                "dash/_rx_show.html",
                staff,
                show={
                    "id": prescription.id,
                    "status": rx.effective_status(prescription, now),
                    "patient": _patient_label(prescription.patient),
                    "patient_id": prescription.patient_id,
                    "practitioner": prescription.practitioner.name,
                    "issued": _when(prescription.issued_at, zone),
                    "expires": _when(prescription.expires_at, zone),
                    "zone": prescription.practitioner.timezone,
                    "appointment_id": prescription.appointment_id,
                    "notes": prescription.notes or "",
                    "refills_left": rx.refills_left(prescription),
                    "items": [
                        {
                            "label": rx.item_label(item),
                            "dose": item.dose,
                            "quantity": item.quantity,
                            "refills": item.refills,
                        }
                        for item in prescription.items
                    ],
                    "notice": _notification_status(session, prescription),
                },
            )

    @router.get("/dashboard/refills")
    def refills(
        request: Request, done: str | None = None, staff: Staff = Depends(prescriber)
    ) -> HTMLResponse:
        return refill_page(request, staff, notice=REFILL_NOTICES.get(done or ""))

    def refill_page(
        request: Request,
        staff: Staff,
        *,
        notice: str | None = None,
        error: str | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        with auth.db.transaction() as session:
            own = _own_practitioner(session, staff).id if staff.is_doctor else None
            queue = rx.refill_queue(session, practitioner_id=own)
            rows = []
            for refill in queue:
                prescription = rx.get(session, refill.prescription_id)
                zone = _zone(prescription.practitioner.timezone)
                rows.append(
                    {
                        "id": refill.id,
                        "requested": _when(refill.requested_at, zone),
                        "patient": _patient_label(prescription.patient),
                        "practitioner": prescription.practitioner.name,
                        "prescription_id": prescription.id,
                        "status": rx.effective_status(prescription, auth.clock.now()),
                        "items": [rx.item_label(i) for i in prescription.items],
                        "refills_left": rx.refills_left(prescription),
                    }
                )
            for patient_id in sorted({r.patient_id for r in queue}):
                auth.audit(session, staff, "view", "refill", patient_id=patient_id)
            return render(
                request,
                "dash/_rx_refills.html",
                staff,
                status_code=status_code,
                refills=rows,
                notice=notice,
                refill_error=error,
            )

    @router.post("/dashboard/refills/{refill_id}/answer")
    async def answer(
        request: Request, refill_id: IdPath, staff: Staff = Depends(prescriber)
    ) -> Response:
        fields = await auth.form(request)
        decision = fields.get("decision", "")
        if decision not in ("approve", "deny"):
            return refill_page(request, staff, error="Choose approve or deny.", status_code=422)
        approve = decision == "approve"
        now = auth.clock.now()
        problem: str | None = None
        with auth.db.transaction() as session:
            refill = session.get(RefillRequest, refill_id)
            if refill is None or (
                staff.is_doctor and refill.practitioner_id != staff.practitioner_id
            ):
                raise Forbidden("You can answer only refills of your own prescriptions.")
            try:
                result = rx.answer_refill(session, refill_id, approve, fields.get("note"), now)
            except rx.PrescriptionError as exc:
                problem = str(exc)
            else:
                subject = result.renewal or rx.get(session, result.refill.prescription_id)
                event = "refill_approved" if approve else "refill_denied"
                rx.patient_notice(session, subject, event, now, refill=result.refill)
                auth.audit(
                    session,
                    staff,
                    "update",
                    "refill",
                    entity_id=refill_id,
                    patient_id=refill.patient_id,
                    detail={"approved": approve},
                )
        if problem is not None:
            return refill_page(request, staff, error=problem, status_code=409)
        return RedirectResponse(
            f"/dashboard/refills?done={'approved' if approve else 'denied'}", status_code=303
        )

    return router
