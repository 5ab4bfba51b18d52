"""Prescriptions over the REST API (``/api/v1``): a doctor issues, the
prescriber's refill queue and its answers, and the FHIR R4 export.

Every endpoint here needs a bearer token (``web.api_auth``): a user's token
from ``telemed users token`` acts with that user's role, or the legacy
``TELEMED_API_TOKEN`` acts as an admin integration. Issuing, cancelling and
answering refills take an admin token or a doctor's, and a doctor acts only
as their own practitioner for their own patients; staff tokens may read.
Every read is audited. Bad input is a 4xx with the reason, never a 500. The
pickup code is not in any answer: it goes to the patient only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import prescriptions as rx
from core.clock import Clock
from core.db import Database
from core.models import ChannelIdentity, Patient, Practitioner, Prescription, RefillRequest
from core.patients import find_or_create_patient_by_phone
from core.phones import InvalidPhone, to_e164
from core.settings import Settings
from web.api_auth import (
    AUTH_ERRORS,
    ApiUser,
    Caller,
    check_patient,
    check_practitioner,
    record,
    roles,
)

MAX_ID = 2**31 - 1
FHIR_JSON = "application/fhir+json"
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
# Who may prescribe, cancel and answer refills; a doctor only as their own practitioner.
Prescriber = Annotated[ApiUser, Depends(roles("admin", "doctor"))]


# -- bodies and answers ---------------------------------------------------------------


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    medicine: str = Field(min_length=1, max_length=200, examples=["Amoxicillin"])
    strength: str | None = Field(default=None, max_length=64, examples=["500 mg"])
    form: str | None = Field(default=None, max_length=64, examples=["capsule"])
    dose: str = Field(min_length=1, max_length=300, examples=["1 capsule 3 times a day for 7 days"])
    quantity: int = Field(ge=1, le=rx.MAX_QUANTITY)
    refills: int = Field(default=0, ge=0, le=rx.MAX_REFILLS)


class PrescriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    patient_phone: str | None = Field(
        default=None, max_length=32, description="E.164, e.g. +15555550123"
    )
    practitioner_id: int = Field(ge=1, le=MAX_ID)
    items: list[ItemIn] = Field(min_length=1, max_length=rx.MAX_ITEMS)
    expires_days: int = Field(default=30, ge=1, le=rx.MAX_EXPIRES_DAYS)
    appointment_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    notes: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def one_patient(self) -> PrescriptionIn:
        if (self.patient_id is None) == (self.patient_phone is None):
            raise ValueError("give exactly one of patient_id and patient_phone")
        return self


class ItemOut(BaseModel):
    id: int
    medicine: str
    strength: str | None
    form: str | None
    dose: str
    quantity: int
    refills: int


class PrescriptionOut(BaseModel):
    id: int
    status: str = Field(description="issued, sent, ready, dispensed, cancelled or expired")
    patient_id: int
    practitioner_id: int
    appointment_id: int | None
    pharmacy_id: int | None
    issued_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    dispensed_at: datetime | None
    cancelled_at: datetime | None
    refills_left: int
    items: list[ItemOut]
    notified: bool | None = Field(
        default=None, description="on issue: whether a message to the patient was queued"
    )


class RefillOut(BaseModel):
    id: int
    prescription_id: int
    patient_id: int
    practitioner_id: int
    channel: str
    status: str = Field(description="requested, approved or denied")
    note: str | None
    requested_at: datetime
    answered_at: datetime | None
    renewal_id: int | None = Field(
        default=None, description="on approval: the new prescription issued"
    )


class RefillAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    note: str | None = Field(default=None, max_length=1000)


# -- helpers --------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    return value.astimezone(zone) if value is not None else None


def prescription_out(p: Prescription, now: datetime) -> PrescriptionOut:
    zone = _zone(p.practitioner.timezone)
    return PrescriptionOut(
        id=p.id,
        status=rx.effective_status(p, now),
        patient_id=p.patient_id,
        practitioner_id=p.practitioner_id,
        appointment_id=p.appointment_id,
        pharmacy_id=p.pharmacy_id,
        issued_at=p.issued_at.astimezone(zone),
        expires_at=p.expires_at.astimezone(zone),
        sent_at=_local(p.sent_at, zone),
        dispensed_at=_local(p.dispensed_at, zone),
        cancelled_at=_local(p.cancelled_at, zone),
        refills_left=rx.refills_left(p),
        items=[
            ItemOut(
                id=i.id,
                medicine=i.medicine,
                strength=i.strength,
                form=i.form,
                dose=i.dose,
                quantity=i.quantity,
                refills=i.refills,
            )
            for i in p.items
        ],
    )


def refill_out(r: RefillRequest, renewal_id: int | None = None) -> RefillOut:
    return RefillOut(
        id=r.id,
        prescription_id=r.prescription_id,
        patient_id=r.patient_id,
        practitioner_id=r.practitioner_id,
        channel=r.channel,
        status=r.status,
        note=r.note,
        requested_at=r.requested_at,
        answered_at=r.answered_at,
        renewal_id=renewal_id,
    )


def _patient_by_phone(session: Session, clinic_id: int, phone: str, now: datetime) -> Patient:
    """The clinic's patient with this number (or who writes from it), else a new one."""
    patient = session.scalars(
        select(Patient)
        .where(Patient.clinic_id == clinic_id, Patient.phone == phone)
        .order_by(Patient.id)
    ).first()
    if patient is not None:
        return patient
    identity = session.scalars(
        select(ChannelIdentity).where(
            ChannelIdentity.address == phone,
            ChannelIdentity.channel.in_(("sms", "whatsapp")),
            ChannelIdentity.patient_id.is_not(None),
        )
    ).first()
    if (
        identity is not None
        and identity.patient is not None
        and identity.patient.clinic_id == clinic_id
    ):
        return identity.patient
    return find_or_create_patient_by_phone(session, clinic_id, phone, "sms", now=now)


def _http_error(exc: rx.PrescriptionError) -> HTTPException:
    if isinstance(exc, rx.PrescriptionNotFound | rx.RefillNotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, rx.InvalidTransition | rx.RefillAnswered | rx.CodeUsed):
        return HTTPException(409, str(exc))
    if isinstance(exc, rx.PrescriptionCancelled | rx.PrescriptionExpired):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


# -- router ---------------------------------------------------------------------------


def prescriptions_router(db: Database, clock: Clock, settings: Settings) -> APIRouter:
    """Routes for ``/prescriptions`` and ``/refills``; include with prefix ``/api/v1``."""

    router = APIRouter()
    errors: dict[int | str, dict[str, Any]] = dict(AUTH_ERRORS)

    @router.post(
        "/prescriptions",
        status_code=201,
        response_model=PrescriptionOut,
        response_model_exclude_none=True,
        responses={**errors, 422: {"description": "invalid prescription, with the reason"}},
        tags=["prescriptions"],
    )
    def issue_prescription(body: PrescriptionIn, user: Prescriber) -> PrescriptionOut:
        """Issue a prescription; the patient is told (no medicine named) on the
        channel they used last, and can then see it after proving who they are.
        Admin tokens, or a doctor's as their own practitioner for their own patients."""
        now = clock.now()
        check_practitioner(user, body.practitioner_id, "prescriptions of another practitioner")
        with db.transaction() as session:
            practitioner = session.get(Practitioner, body.practitioner_id)
            if practitioner is None or not practitioner.active:
                raise HTTPException(422, f"unknown practitioner {body.practitioner_id}")
            if body.patient_phone is not None:
                try:
                    phone = to_e164(body.patient_phone, settings.default_region)
                except InvalidPhone:
                    raise HTTPException(
                        422, "patient_phone is not a phone number (E.164, like +15555550123)"
                    ) from None
                patient_id = _patient_by_phone(session, practitioner.clinic_id, phone, now).id
            else:
                assert body.patient_id is not None
                patient_id = body.patient_id
            if user.is_doctor:
                check_patient(session, user, patient_id)
            try:
                prescription = rx.issue(
                    session,
                    practitioner_id=body.practitioner_id,
                    patient_id=patient_id,
                    items=[rx.ItemSpec(**item.model_dump()) for item in body.items],
                    now=now,
                    expires_days=body.expires_days,
                    appointment_id=body.appointment_id,
                    notes=body.notes,
                )
            except rx.PrescriptionError as exc:
                raise _http_error(exc) from None
            notice = rx.patient_notice(session, prescription, "issued", now)
            _audit(session, user, "create", prescription)
            out = prescription_out(prescription, now)
            out.notified = notice is not None
            return out

    @router.get(
        "/prescriptions/{prescription_id}",
        response_model=PrescriptionOut,
        response_model_exclude_none=True,
        responses={**errors, 404: {"description": "unknown prescription"}},
        tags=["prescriptions"],
    )
    def get_prescription(prescription_id: IdPath, user: Caller) -> PrescriptionOut:
        """One prescription, with its items and status."""
        now = clock.now()
        with db.transaction() as session:
            prescription = _readable(session, user, prescription_id)
            _audit(session, user, "view", prescription)
            return prescription_out(prescription, now)

    @router.get(
        "/prescriptions/{prescription_id}/fhir",
        response_class=JSONResponse,
        responses={
            **errors,
            200: {"content": {FHIR_JSON: {}}, "description": "a FHIR R4 Bundle (collection)"},
            404: {"description": "unknown prescription"},
        },
        tags=["prescriptions"],
    )
    def prescription_fhir(prescription_id: IdPath, user: Caller) -> JSONResponse:
        """The prescription as FHIR R4: a collection Bundle of one
        MedicationRequest per item (grouped by ``groupIdentifier``)."""
        with db.transaction() as session:
            prescription = _readable(session, user, prescription_id)
            _audit(session, user, "export", prescription)
            return JSONResponse(rx.bundle_json(prescription), media_type=FHIR_JSON)

    @router.post(
        "/prescriptions/{prescription_id}/cancel",
        response_model=PrescriptionOut,
        response_model_exclude_none=True,
        responses={
            **errors,
            404: {"description": "unknown prescription"},
            409: {"description": "already dispensed, cancelled or expired"},
        },
        tags=["prescriptions"],
    )
    def cancel_prescription(prescription_id: IdPath, user: Prescriber) -> PrescriptionOut:
        """Withdraw a prescription not yet dispensed; its code stops working.
        Admin tokens, or the prescriber's doctor token."""
        now = clock.now()
        with db.transaction() as session:
            prescription = _readable(session, user, prescription_id)
            check_practitioner(
                user, prescription.practitioner_id, "another prescriber's prescription"
            )
            try:
                cancelled = rx.cancel(session, prescription_id, now)
            except rx.PrescriptionError as exc:
                raise _http_error(exc) from None
            _audit(session, user, "update", cancelled)
            return prescription_out(cancelled, now)

    @router.get(
        "/refills",
        response_model=list[RefillOut],
        response_model_exclude_none=True,
        responses=errors,
        tags=["refills"],
    )
    def list_refills(
        user: Caller,
        status: Annotated[Literal["requested", "approved", "denied"], Query()] = "requested",
        practitioner_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[RefillOut]:
        """Refill requests, oldest first: with ``status=requested``, the queue
        (of one prescriber with ``practitioner_id``; a doctor's token: their own)."""
        if user.is_doctor:
            check_practitioner(user, practitioner_id or user.practitioner_id, "that refill queue")
            practitioner_id = user.practitioner_id
        with db.transaction() as session:
            rows = rx.refill_queue(
                session, status=status, practitioner_id=practitioner_id, limit=limit
            )
            record(
                session,
                user,
                clock,
                "view",
                "refill",
                detail={"count": len(rows), "patient_ids": sorted({r.patient_id for r in rows})},
            )
            return [refill_out(r) for r in rows]

    @router.post(
        "/refills/{refill_id}/answer",
        response_model=RefillOut,
        response_model_exclude_none=True,
        responses={
            **errors,
            404: {"description": "unknown refill request"},
            409: {"description": "already answered, or the prescription cannot be refilled"},
        },
        tags=["refills"],
    )
    def answer_refill(refill_id: IdPath, body: RefillAnswerIn, user: Prescriber) -> RefillOut:
        """Approve (a new prescription is issued from the items with refills
        left) or deny; the answer goes to the patient where they asked.
        Admin tokens, or the prescriber's doctor token."""
        now = clock.now()
        with db.transaction() as session:
            refill = session.get(RefillRequest, refill_id)
            if refill is not None:
                check_practitioner(user, refill.practitioner_id, "another prescriber's refills")
            try:
                answer = rx.answer_refill(session, refill_id, body.approve, body.note, now)
                subject = answer.renewal or rx.get(session, answer.refill.prescription_id)
            except rx.PrescriptionError as exc:
                raise _http_error(exc) from None
            event = "refill_approved" if body.approve else "refill_denied"
            rx.patient_notice(session, subject, event, now, refill=answer.refill)
            record(
                session,
                user,
                clock,
                "update",
                "refill",
                entity_id=refill_id,
                patient_id=answer.refill.patient_id,
                detail={"approve": body.approve},
            )
            return refill_out(
                answer.refill, answer.renewal.id if answer.renewal is not None else None
            )

    def _readable(session: Session, user: ApiUser, prescription_id: int) -> Prescription:
        try:
            prescription = rx.get(session, prescription_id)
        except rx.PrescriptionError as exc:
            raise _http_error(exc) from None
        check_patient(session, user, prescription.patient_id)
        return prescription

    def _audit(session: Session, user: ApiUser, action: str, p: Prescription) -> None:
        record(
            session, user, clock, action, "prescription", entity_id=p.id, patient_id=p.patient_id
        )

    return router
