"""Pages for people, not programs: the pharmacy's pickup page and the
patient's printable prescription.

``/pharmacy``: staff type the pickup code the patient shows them and see the
prescription (with the patient's name and date of birth, to check their ID),
then mark it ready for pickup or dispensed; the patient is told each. Wrong
codes are counted per client address; too many in a while answer 429.

``/rx/{page_token}``: the patient's page, in their language, with the items,
the pickup code and a QR code of it, to print or show on a phone.

Forms carry an HMAC (``TELEMED_SECRET_KEY``) over what they act on and the
status they were shown for, with an expiry, so a form works once and cannot
be made up. Pages with patient data are never cached.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from core import prescriptions as rx
from core.clock import Clock
from core.db import Database
from core.i18n import format_day, t
from core.logs import get_logger
from core.models import Prescription
from core.settings import Settings
from web.forms import form_fields

log = get_logger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
FORM_TTL_S = 30 * 60
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}
STATUS_WORDS = {
    "issued": "Issued (no pharmacy chosen yet)",
    "sent": "Sent to a pharmacy",
    "ready": "Ready for pickup",
    "dispensed": "Dispensed",
    "cancelled": "Cancelled",
    "expired": "Expired",
}


def qr_svg(text: str) -> Markup:
    """``text`` as a QR code, inline SVG (generated here, so safe to embed)."""
    import segno

    qr = segno.make(text, error="m", micro=False)
    return Markup(qr.svg_inline(scale=6, border=2, title="QR code"))  # noqa: S704


MAX_FORM_BYTES = 4096


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def pharmacy_router(db: Database, clock: Clock, settings: Settings) -> APIRouter:
    """``/pharmacy``, ``/pharmacy/ready``, ``/pharmacy/dispense`` and ``/rx/{token}``."""
    router = APIRouter(include_in_schema=False)
    secret = settings.secret_key

    def form_token(*parts: object) -> str:
        expires = int(time.time()) + FORM_TTL_S
        return f"{expires}.{rx.sign(secret, *parts, expires)}"

    def token_ok(token: str, *parts: object) -> bool:
        expires_text, _, signature = (token or "").partition(".")
        if not expires_text.isdigit() or int(expires_text) < time.time():
            return False
        return rx.signature_ok(secret, signature, *parts, int(expires_text))

    def page(
        request: Request, status_code: int = 200, headers: dict[str, str] | None = None, **ctx: Any
    ) -> HTMLResponse:
        context = {
            "lookup_token": form_token("lookup"),
            "message": None,
            "error": None,
            "rx": None,
            "done": None,
            **ctx,
        }
        return TEMPLATES.TemplateResponse(
            request,
            "pharmacy.html",
            context,
            status_code=status_code,
            headers={**PRIVATE_HEADERS, **(headers or {})},
        )

    def details(p: Prescription, now: datetime) -> dict[str, Any]:
        zone = _zone(p.practitioner.clinic.timezone)
        status = rx.effective_status(p, now)
        dob = p.patient.date_of_birth
        return {
            "id": p.id,
            "code": p.pickup_code,
            "code_display": rx.format_code(p.pickup_code),
            "status": status,
            "status_words": STATUS_WORDS.get(status, status),
            "patient_name": p.patient.name or "(name not given)",
            "date_of_birth": dob.strftime("%d %b %Y") if dob else "(not given)",
            "prescriber": p.practitioner.name,
            "clinic": p.practitioner.clinic.name,
            "pharmacy": p.pharmacy.name if p.pharmacy is not None else None,
            "issued": p.issued_at.astimezone(zone).strftime("%d %b %Y"),
            "expires": p.expires_at.astimezone(zone).strftime("%d %b %Y"),
            "notes": p.notes,
            "items": [
                {
                    "label": rx.item_label(i),
                    "dose": i.dose,
                    "quantity": i.quantity,
                    "refills": i.refills,
                }
                for i in p.items
            ],
            "can_ready": status in ("issued", "sent"),
            "can_dispense": status in rx.DISPENSABLE,
            "ready_token": form_token("ready", p.id, p.pickup_code, status),
            "dispense_token": form_token("dispense", p.id, p.pickup_code, status),
        }

    @router.get("/pharmacy", response_class=HTMLResponse)
    def pharmacy_form(request: Request) -> HTMLResponse:
        return page(request)

    @router.post("/pharmacy", response_class=HTMLResponse)
    async def pharmacy_post(request: Request) -> HTMLResponse:
        fields = await form_fields(request, MAX_FORM_BYTES)
        return await run_in_threadpool(
            pharmacy_lookup, request, fields.get("code", ""), fields.get("token", "")
        )

    def pharmacy_lookup(request: Request, code: str, token: str) -> HTMLResponse:
        if not token_ok(token, "lookup"):
            return page(request, 400, error="The form expired. Please type the code again.")
        if not code.strip():
            return page(request, 422, error="Please type the pickup code.")
        source = request.client.host if request.client is not None else "unknown"
        now = clock.now()
        with db.transaction() as session:
            try:
                prescription = rx.lookup_code(session, source, code[:64], now)
            except rx.TooManyAttempts as exc:
                minutes = exc.minutes
                return page(
                    request,
                    429,
                    headers={"Retry-After": str(minutes * 60)},
                    error=(
                        "Too many wrong codes from this computer. "
                        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
                    ),
                )
            except rx.CodeUnknown:
                return page(
                    request,
                    404,
                    error="No prescription has that code. Check it with the patient and try again.",
                )
            except rx.CodeUsed as exc:
                when = ""
                if exc.prescription is not None and exc.prescription.dispensed_at is not None:
                    when = f" on {exc.prescription.dispensed_at.strftime('%d %b %Y')}"
                return page(request, 409, error=f"This prescription was already dispensed{when}.")
            except rx.PrescriptionCancelled:
                return page(
                    request,
                    409,
                    error="This prescription was cancelled by the prescriber. "
                    "Do not dispense; the patient can ask their doctor.",
                )
            except rx.PrescriptionExpired:
                return page(
                    request,
                    409,
                    error="This prescription has expired. "
                    "The patient can ask their doctor for a new one.",
                )
            return page(request, rx=details(prescription, now))

    def act(request: Request, action: str, fields: dict[str, str]) -> HTMLResponse:
        prescription_id, code = fields.get("prescription_id", ""), fields.get("code", "")
        status, token = fields.get("status", ""), fields.get("token", "")
        if not prescription_id.isdigit() or not token_ok(
            token, action, int(prescription_id), rx.normalize_code(code), status
        ):
            return page(
                request, 400, error="The form expired or was changed. Please type the code again."
            )
        now = clock.now()
        with db.transaction() as session:
            try:
                current = rx.get(session, int(prescription_id))
                if rx.effective_status(current, now) != status:
                    rx.find_by_code(session, current.pickup_code, now)  # explains used/expired
                    return page(
                        request,
                        409,
                        error="This prescription changed since the page was shown "
                        f"(now: {STATUS_WORDS.get(current.status, current.status)}).",
                        rx=details(current, now),
                    )
                if action == "dispense":
                    prescription = rx.dispense(session, current.id, now)
                    event, done = "dispensed", "Marked dispensed. The patient has been told."
                else:
                    prescription = rx.mark_ready(session, current.id, now)
                    event = "ready_for_pickup"
                    done = "Marked ready for pickup. The patient has been told."
            except rx.CodeUsed as exc:
                p = exc.prescription
                when = ""
                if p is not None and p.dispensed_at is not None:
                    when = f" on {p.dispensed_at.strftime('%d %b %Y')}"
                return page(request, 409, error=f"This prescription was already dispensed{when}.")
            except rx.PrescriptionError as exc:
                return page(request, 409, error=f"Not done: {exc}.")
            rx.patient_notice(session, prescription, event, now)
            return page(request, done=done, rx=details(prescription, now))

    @router.post("/pharmacy/dispense", response_class=HTMLResponse)
    async def pharmacy_dispense(request: Request) -> HTMLResponse:
        fields = await form_fields(request, MAX_FORM_BYTES)
        return await run_in_threadpool(act, request, "dispense", fields)

    @router.post("/pharmacy/ready", response_class=HTMLResponse)
    async def pharmacy_ready(request: Request) -> HTMLResponse:
        fields = await form_fields(request, MAX_FORM_BYTES)
        return await run_in_threadpool(act, request, "ready", fields)

    @router.get("/rx/{page_token}", response_class=HTMLResponse)
    def patient_page(request: Request, page_token: str) -> HTMLResponse:
        now = clock.now()
        with db.transaction() as session:
            p = rx.by_page_token(session, page_token)
            if p is None:
                return HTMLResponse(
                    "<!doctype html><title>Not found</title><p>Not found.</p>",
                    404,
                    headers=PRIVATE_HEADERS,
                )
            identity = rx.recipient(session, p.patient_id)
            lang = rx.language_for(identity, p)
            clinic = p.practitioner.clinic
            tz = p.patient.timezone or clinic.timezone or "UTC"
            status = rx.effective_status(p, now)
            usable = status in rx.ACTIVE

            def day(value: datetime) -> str:
                return format_day(value, lang, tz, pattern="fmt.date")

            context = {
                "lang": lang,
                "title": t(lang, "rx.page.title"),
                "clinic": clinic.name,
                "prescriber": t(
                    lang, "rx.page.from", practitioner=p.practitioner.name, clinic=clinic.name
                ),
                "patient": t(lang, "rx.page.patient", name=p.patient.name)
                if p.patient.name
                else None,
                "issued": t(lang, "rx.page.issued", date=day(p.issued_at)),
                "expires": t(lang, "rx.page.expires", date=day(p.expires_at)),
                "pharmacy": t(lang, "rx.page.pharmacy", pharmacy=p.pharmacy.name)
                if p.pharmacy is not None and usable
                else None,
                "ready": t(lang, "rx.page.ready") if status == "ready" else None,
                "items": [
                    {
                        "label": rx.item_label(i),
                        "dose": i.dose,
                        "quantity": t(lang, "rx.page.quantity", quantity=i.quantity),
                        "refills": t(lang, "rx.page.refills", refills=i.refills)
                        if i.refills
                        else None,
                    }
                    for i in p.items
                ],
                "usable": usable,
                "code_label": t(lang, "rx.page.code"),
                "code_help": t(lang, "rx.page.code_help"),
                "code": rx.format_code(p.pickup_code) if usable else None,
                "qr": qr_svg(p.pickup_code) if usable else None,
                "status_note": None
                if usable
                else t(lang, f"rx.page.status.{status}", clinic=clinic.name),
                "print": t(lang, "rx.page.print"),
            }
        return TEMPLATES.TemplateResponse(request, "rx.html", context, headers=PRIVATE_HEADERS)

    return router
