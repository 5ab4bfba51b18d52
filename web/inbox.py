"""The question inbox: threads for the care team to answer, one thread with
its reply box, and closing a thread.

- ``GET /dashboard/inbox?status=open|answered|closed|all``: a doctor sees
  their practitioner's threads, staff and admins all of them (the triage
  queue too); late threads first and highlighted.
- ``GET /dashboard/inbox/{id}``: the messages, the patient's photos, the
  patient in brief and a reply form. Photos and attachments load through the
  media proxy (``/dashboard/media/{message id}/{index}``, bots.media), never
  from the provider's URL: that needs the provider's credentials, the page's
  CSP allows images from this site only, and a third-party image would tell
  the provider the doctor's address. HTMX posts it and swaps the thread in place; without
  JavaScript it is a normal POST answered with 303 back to the thread.
- ``POST /dashboard/inbox/{id}/reply`` and ``/close``.

A doctor opening another practitioner's thread gets 403. Every view of a
thread (and of the list, which shows names and previews) is audited, and so
are replies and closing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import questions
from core.models import Clinic, QuestionThread, User
from core.users import can_see_practitioner
from web.auth import PRIVATE_HEADERS, TEMPLATES, Auth, Forbidden, Staff, render

STATUS_FILTERS = ("open", "answered", "closed", "all")
PREVIEW = 120


@dataclass(frozen=True)
class RowView:
    id: int
    patient: str
    practitioner: str
    status: str
    late: bool
    waiting_since: str
    due: str
    last_author: str
    preview: str


# Shown inline (as <img>, and by the media proxy with Content-Disposition:
# inline); every other type is a download. Never SVG: it can carry script.
INLINE_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass(frozen=True)
class MediaView:
    content_type: str
    url: str | None  # the media proxy; None when nothing was stored to fetch it by
    is_image: bool


@dataclass(frozen=True)
class MessageView:
    id: int
    author: str  # patient, doctor, staff
    who: str
    at: str
    body: str
    media: list[MediaView]


def _zone(session: Session, clinic_id: int | None, fallback: str) -> ZoneInfo:
    clinic = session.get(Clinic, clinic_id) if clinic_id is not None else None
    return ZoneInfo((clinic.timezone if clinic is not None else None) or fallback or "UTC")


def _when(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%a %d %b %Y, %H:%M")


def media_path(message_id: int, index: int) -> str:
    """The media proxy's URL for the ``index``-th attachment of a message."""
    return f"/dashboard/media/{message_id}/{index}"


def media_reference(item: object) -> str | None:
    """What the provider knows an attachment by: a Twilio media URL, a Telegram file id."""
    if not isinstance(item, dict):
        return None
    for key in ("url", "reference"):
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def media_type(item: object) -> str:
    """The stored content type, lower case and without parameters ("" if none)."""
    value = item.get("content_type") if isinstance(item, dict) else None
    return value.split(";", 1)[0].strip().lower() if isinstance(value, str) else ""


def _media_views(message_id: int, media: list[Any]) -> list[MediaView]:
    # The index is the position in the stored list, as the proxy reads it.
    views = []
    for index, item in enumerate(media or []):
        if not isinstance(item, dict):
            continue
        kind = media_type(item) or "attachment"
        url = media_path(message_id, index) if media_reference(item) else None
        views.append(MediaView(kind, url, kind in INLINE_IMAGE_TYPES and url is not None))
    return views


def _thread(session: Session, staff: Staff, thread_id: int) -> QuestionThread | None:
    """The thread, if it exists; Forbidden when it is not in the user's queue."""
    thread = session.get(QuestionThread, thread_id)
    if thread is None:
        return None
    if not can_see_practitioner(staff, thread.practitioner_id):
        raise Forbidden("This question is for another practitioner.")
    return thread


def _thread_context(
    session: Session, staff: Staff, thread: QuestionThread, now: datetime, fallback_zone: str
) -> dict[str, Any]:
    zone = _zone(session, thread.clinic_id, fallback_zone)
    patient = thread.patient
    author_ids = {m.user_id for m in thread.messages if m.user_id is not None}
    names = (
        {
            u.id: (u.name or u.email)
            for u in session.scalars(select(User).where(User.id.in_(author_ids)))
        }
        if author_ids
        else {}
    )
    patient_name = patient.name or f"Patient #{patient.id}"
    messages = [
        MessageView(
            id=m.id,
            author=m.author,
            who=patient_name if m.author == "patient" else names.get(m.user_id or 0, m.author),
            at=_when(m.created_at, zone),
            body=m.body or "",
            media=_media_views(m.id, m.media),
        )
        for m in thread.messages
    ]
    return {
        "thread": thread,
        "messages": messages,
        "late": questions.is_late(thread, now),
        "due": _when(thread.due_at, zone),
        "answered_at": _when(thread.answered_at, zone) if thread.answered_at else None,
        "patient_name": patient_name,
        "patient_dob": patient.date_of_birth.isoformat() if patient.date_of_birth else None,
        "practitioner": thread.practitioner.name if thread.practitioner else "Triage queue",
        "max_body": questions.MAX_BODY,
    }


def _render_block(
    request: Request, template: str, block: str, staff: Staff, status_code: int, **context: Any
) -> HTMLResponse:
    """One block of a page, for an HTMX swap (same context as ``render``)."""
    page = TEMPLATES.get_template(template)
    values = {"request": request, "staff": staff, "csrf": staff.csrf, **context}
    html = "".join(page.blocks[block](page.new_context(values)))
    return HTMLResponse(html, status_code=status_code, headers=PRIVATE_HEADERS)


def inbox_router(auth: Auth) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    settings = auth.settings

    def thread_page(
        request: Request,
        staff: Staff,
        thread_id: int,
        *,
        error: str | None = None,
        draft: str = "",
        status_code: int = 200,
        fragment: bool = False,
    ) -> HTMLResponse:
        """The thread (audited as a view), whole or as the HTMX fragment."""
        now = auth.clock.now()
        with auth.db.transaction() as session:
            thread = _thread(session, staff, thread_id)
            if thread is None:
                return render(
                    request,
                    "dash/thread.html",
                    staff,
                    status_code=404,
                    thread=None,
                    thread_id=thread_id,
                )
            context = _thread_context(session, staff, thread, now, settings.clinic_timezone)
            auth.audit(
                session,
                staff,
                "view",
                "question",
                entity_id=thread.id,
                patient_id=thread.patient_id,
            )
        context.update(error=error, draft=draft, thread_id=thread_id)
        if fragment:
            return _render_block(
                request, "dash/thread.html", "thread", staff, status_code, **context
            )
        return render(request, "dash/thread.html", staff, status_code=status_code, **context)

    @router.get("/dashboard/inbox")
    def inbox_page(
        request: Request, status: str = "open", staff: Staff = Depends(auth.page)
    ) -> HTMLResponse:
        chosen = status if status in STATUS_FILTERS else "open"
        now = auth.clock.now()
        with auth.db.transaction() as session:
            rows = questions.inbox(
                session, actor=staff, status=None if chosen == "all" else chosen, now=now
            )
            zone = _zone(session, staff.clinic_id, settings.clinic_timezone)
            # The list shows names and question text: a view of patient data.
            auth.audit(
                session,
                staff,
                "view",
                "question",
                detail={"list": chosen, "threads": len(rows)},
            )
            views = [
                RowView(
                    id=row.thread.id,
                    patient=row.thread.patient.name or f"Patient #{row.thread.patient_id}",
                    practitioner=(
                        row.thread.practitioner.name if row.thread.practitioner else "Triage queue"
                    ),
                    status=row.thread.status,
                    late=row.late,
                    # Waiting for the care team since the patient's last message.
                    waiting_since=(
                        _when(row.last_at, zone) if row.last_author == "patient" else "—"
                    ),
                    due=_when(row.thread.due_at, zone),
                    last_author=row.last_author,
                    preview=row.preview[:PREVIEW],
                )
                # Late first (stable: within each group the order inbox() gave).
                for row in sorted(rows, key=lambda r: not r.late)
            ]
        return render(
            request,
            "dash/inbox.html",
            staff,
            rows=views,
            status=chosen,
            filters=STATUS_FILTERS,
            late_count=sum(1 for v in views if v.late),
        )

    @router.get("/dashboard/inbox/{thread_id}")
    def thread_view(
        request: Request, thread_id: int, staff: Staff = Depends(auth.page)
    ) -> HTMLResponse:
        return thread_page(request, staff, thread_id)

    @router.post("/dashboard/inbox/{thread_id}/reply")
    async def reply(
        request: Request, thread_id: int, staff: Staff = Depends(auth.page)
    ) -> Response:
        fields = await auth.form(request)
        body = fields.get("body", "")
        fragment = bool(request.headers.get("hx-request"))
        error = None
        try:
            with auth.db.transaction() as session:
                thread = _thread(session, staff, thread_id)
                if thread is None:
                    raise questions.QuestionError(f"no question thread #{thread_id}")
                message = questions.reply(
                    session,
                    thread_id,
                    author=staff,
                    body=body,
                    now=auth.clock.now(),
                    settings=settings,
                )
                auth.audit(
                    session,
                    staff,
                    "create",
                    "question",
                    entity_id=thread_id,
                    patient_id=thread.patient_id,
                    detail={"message_id": message.id},
                )
        except questions.QuestionError as exc:
            error = str(exc)
        if error is not None:
            # HTMX swaps only 2xx answers: the fragment with the message comes as 200.
            return thread_page(
                request,
                staff,
                thread_id,
                error=f"Not sent: {error}.",
                draft=body,
                status_code=200 if fragment else 422,
                fragment=fragment,
            )
        if fragment:
            return thread_page(request, staff, thread_id, fragment=True)
        return RedirectResponse(f"/dashboard/inbox/{thread_id}", status_code=303)

    @router.post("/dashboard/inbox/{thread_id}/close")
    async def close(
        request: Request, thread_id: int, staff: Staff = Depends(auth.page)
    ) -> Response:
        await auth.form(request)
        fragment = bool(request.headers.get("hx-request"))
        with auth.db.transaction() as session:
            thread = _thread(session, staff, thread_id)
            if thread is not None:
                questions.close(session, thread_id, now=auth.clock.now())
                auth.audit(
                    session,
                    staff,
                    "update",
                    "question",
                    entity_id=thread_id,
                    patient_id=thread.patient_id,
                    detail={"status": "closed"},
                )
        if thread is None or fragment:
            return thread_page(request, staff, thread_id, fragment=True)
        return RedirectResponse(f"/dashboard/inbox/{thread_id}", status_code=303)

    return router
