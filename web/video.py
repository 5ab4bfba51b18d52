"""Video visits on the web: the participant's ``/v/{token}`` page, and the
dashboard's "start video" and "revoke the patient's link".

``GET /v/{token}`` (public: the token is the key) says, in the patient's
language, when the link opens, that the visit ended or was cancelled, or
that the link is not valid (revoked, forged, unknown: 404; when nobody is
known, in English and Spanish). In the window it opens the call: Jitsi
through its IFrame API (the Jitsi origin is allowed in this page's CSP only),
with a Jitsi token when ``JITSI_APP_ID``/``JITSI_APP_SECRET`` are set; or
Twilio Video through its JavaScript SDK with an access token made here
(core does not import twilio). The page's script is ``/static/video.js``,
configured through data- attributes (pages allow no inline script).

Opening the page records ``opened_at``. Joining the call is checking in (a
checked-in visit never becomes a no-show), but a GET is not joining:
messaging apps fetch links to draw previews. So the page's script posts
``/v/{token}/joined`` when the call is joined (Jitsi's
``videoConferenceJoined``, Twilio's ``connect``), and that checks the
patient in.

``GET /dashboard/appointments/{id}/video`` sends a user who may see that
practitioner's schedule to their own link (audited);
``POST /dashboard/appointments/{id}/video/revoke`` kills the patient's link
and, with ``resend=1``, sends them a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core import scheduling, video
from core import users as accounts
from core.i18n import format_clock, format_when, t
from core.logs import get_logger
from core.models import Appointment, VideoLink
from core.settings import Settings
from web.auth import TEMPLATES, Auth, Forbidden, Staff, render

log = get_logger(__name__)

TWILIO_VIDEO_SDK = "https://sdk.twilio.com/js/video/releases/2.34.0/twilio-video.min.js"
TWILIO_ORIGINS = "https://*.twilio.com wss://*.twilio.com"
# The early page reloads itself this often while the link opens within this long.
REFRESH_S = 60
REFRESH_WITHIN_S = 2 * 3600
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


def csp(*, script: str = "", frame: str = "", connect: str = "") -> str:
    """The dashboard's policy, opened to one provider's origins for the call page."""
    return "; ".join(
        (
            "default-src 'self'",
            "img-src 'self' data:",
            "style-src 'self' 'unsafe-inline'",
            f"script-src 'self' {script}".strip(),
            "frame-src " + (frame or "'none'"),
            f"connect-src 'self' {connect}".strip(),
            "media-src 'self' blob: mediastream:",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        )
    )


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class VideoNotSetUp(Exception):
    """A provider setting is missing (start-up refuses this; kept for safety)."""


def twilio_token(
    settings: Settings, *, identity: str, room: str, not_before: datetime, expires: datetime
) -> str:
    """A Twilio access token with a VideoGrant for ``room``, valid from the
    link's opening to the visit's end."""
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VideoGrant

    sid, key, secret = (
        settings.twilio_account_sid,
        settings.twilio_api_key_sid,
        settings.twilio_api_key_secret,
    )
    if not (sid and key and secret):
        raise VideoNotSetUp("TELEMED_TWILIO_ACCOUNT_SID / _API_KEY_SID / _API_KEY_SECRET unset")
    token = AccessToken(
        sid,
        key,
        secret,
        identity=identity,
        nbf=int(not_before.timestamp()),
        valid_until=int(expires.timestamp()),
    )
    token.add_grant(VideoGrant(room=room))
    return str(token.to_jwt())


def video_router(auth: Auth) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    settings = auth.settings

    def page(
        request: Request,
        status_code: int,
        *,
        lang: str,
        blocks: list[dict[str, Any]],
        policy: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            "video_page.html",
            {
                "lang": lang,
                "title": t(lang, "video.page.title"),
                "blocks": blocks,
                "call": None,
                "refresh": None,
                **context,
            },
            status_code=status_code,
            headers={**HEADERS, "Content-Security-Policy": policy or csp()},
        )

    def invalid(request: Request, langs: tuple[str, ...]) -> HTMLResponse:
        blocks = [
            {
                "lang": lang,
                "heading": t(lang, "video.page.invalid"),
                "lines": [t(lang, "video.page.invalid_help")],
            }
            for lang in langs
        ]
        return page(request, 404, lang=langs[0], blocks=blocks)

    def call_context(
        link: VideoLink, lang: str, display_name: str, other: str
    ) -> tuple[dict[str, Any], str]:
        """The data- attributes of the call, and the page's CSP."""
        appointment = link.appointment
        room = video.room_name(appointment.id, settings.secret_key)
        opens, closes = video.window(appointment, settings.video_early_minutes)
        who = (
            f"patient-{appointment.patient_id}"
            if link.role == "patient"
            else f"practitioner-{appointment.practitioner_id}"
        )
        base = {
            "provider": settings.video_provider,
            "name": display_name,
            "heading": t(lang, "video.page.with", practitioner=other),
            "allow": t(lang, "video.page.allow"),
            "needs_script": t(lang, "video.page.needs_script"),
            "failed": t(lang, "video.page.failed"),
            "joined": f"/v/{video.token_of(link, settings.secret_key)}/joined",
            "new_tab": None,
            "new_tab_label": t(lang, "video.page.new_tab"),
        }
        if settings.video_provider == "twilio":
            token = twilio_token(
                settings, identity=who, room=room, not_before=opens, expires=closes
            )
            call = base | {"room": room, "token": token, "script_src": TWILIO_VIDEO_SDK}
            policy = csp(script=origin(TWILIO_VIDEO_SDK), connect=TWILIO_ORIGINS)
            return call, policy
        jitsi = settings.jitsi_base_url
        domain, _tenant = video.jitsi_domain(jitsi)
        token = None
        if settings.jitsi_app_id and settings.jitsi_app_secret:
            token = video.jitsi_jwt(
                app_id=settings.jitsi_app_id,
                app_secret=settings.jitsi_app_secret,
                base_url=jitsi,
                room=room,
                user_id=who,
                name=display_name,
                email=None,
                moderator=link.role == "practitioner",
                not_before=opens,
                expires=closes,
            )
        room_path = video.jitsi_room_path(jitsi, room)
        call = base | {
            "domain": domain,
            "room": room_path,
            "jwt": token or "",
            "script_src": f"{jitsi}/external_api.js",
            "new_tab": f"{origin(jitsi)}/{room_path}" + (f"?jwt={token}" if token else ""),
        }
        return call, csp(script=origin(jitsi), frame=origin(jitsi))

    def show(request: Request, token: str) -> HTMLResponse:
        now = auth.clock.now()
        with auth.db.transaction() as session:
            link = video.resolve(session, token, settings.secret_key)
            if link is None:
                return invalid(request, ("en", "es"))
            appointment = link.appointment
            clinic = appointment.practitioner.clinic
            if link.role == "patient":
                lang, tz = video.patient_language(session, appointment)
                name = appointment.patient.name or t(lang, "video.page.patient")
                other = appointment.practitioner.name
            else:
                lang, tz = "en", clinic.timezone or "UTC"
                name = appointment.practitioner.name
                other = appointment.patient.name or t(lang, "video.page.patient")
            state = video.state(link, now, settings.video_early_minutes)
            if state == "revoked":
                return invalid(request, (lang,))
            common = {"clinic": clinic.name}
            if state in ("ended", "cancelled"):
                block = {"lang": lang, "heading": t(lang, f"video.page.{state}"), "lines": []}
                return page(request, 410, lang=lang, blocks=[block], **common)
            if state == "early":
                opens, _closes = video.window(appointment, settings.video_early_minutes)
                return early(request, appointment, lang, tz, other, opens, now, common)
            video.mark_opened(link, now)
            try:
                call, policy = call_context(link, lang, name, other)
            except VideoNotSetUp as exc:
                log.error("video_not_set_up", reason=str(exc))
                block = {"lang": lang, "heading": t(lang, "video.page.not_set_up"), "lines": []}
                return page(request, 503, lang=lang, blocks=[block], **common)
        return page(request, 200, lang=lang, blocks=[], policy=policy, call=call, **common)

    def early(
        request: Request,
        appointment: Appointment,
        lang: str,
        tz: str,
        other: str,
        opens: datetime,
        now: datetime,
        common: dict[str, Any],
    ) -> HTMLResponse:
        zone = ZoneInfo(tz)
        if appointment.start_at.astimezone(zone).date() == now.astimezone(zone).date():
            heading = t(
                lang,
                "video.page.early",
                practitioner=other,
                time=format_clock(appointment.start_at, lang, tz),
            )
        else:
            heading = t(
                lang,
                "video.page.early_day",
                practitioner=other,
                when=format_when(appointment.start_at, lang, tz),
            )
        block = {
            "lang": lang,
            "heading": heading,
            "lines": [t(lang, "video.page.come_back", opens=format_clock(opens, lang, tz))],
        }
        soon = (opens - now).total_seconds() <= REFRESH_WITHIN_S
        return page(
            request, 200, lang=lang, blocks=[block], refresh=REFRESH_S if soon else None, **common
        )

    @router.get("/v/{token}", response_class=HTMLResponse)
    def visit_page(request: Request, token: str) -> HTMLResponse:
        return show(request, token)

    @router.post("/v/{token}/joined")
    def joined(token: str) -> Response:
        """The page joined the call: the patient is here (checked in)."""
        now = auth.clock.now()
        with auth.db.transaction() as session:
            link = video.resolve(session, token, settings.secret_key)
            if link is None or video.state(link, now, settings.video_early_minutes) != "open":
                return Response("not an open video link", 404, headers=HEADERS)
            video.mark_opened(link, now)
            appointment = link.appointment
            if link.role == "patient" and appointment.checked_in_at is None:
                scheduling.check_in(session, appointment.id, now=now)
        return Response(status_code=204, headers=HEADERS)

    # -- the dashboard's side ------------------------------------------------------

    def visit_for(session: Session, staff: Staff, appointment_id: int) -> Appointment:
        appointment = session.get(Appointment, appointment_id)
        if appointment is None:
            raise _Problem(404, "There is no such appointment.")
        if not accounts.can_see_practitioner(staff, appointment.practitioner_id):
            raise Forbidden("This appointment is another practitioner's.")
        if appointment.visit_type != "video":
            raise _Problem(409, "This appointment is an in-person visit, not a video visit.")
        return appointment

    def problem_page(request: Request, staff: Staff, exc: _Problem, appointment_id: int) -> Any:
        return render(
            request,
            "dash/video.html",
            staff,
            status_code=exc.status,
            error=exc.reason,
            message=None,
            appointment_id=appointment_id,
        )

    @router.get("/dashboard/appointments/{appointment_id}/video")
    def start(request: Request, appointment_id: int, staff: Staff = Depends(auth.page)) -> Response:
        now = auth.clock.now()
        try:
            with auth.db.transaction() as session:
                appointment = visit_for(session, staff, appointment_id)
                link = video.link_for(session, appointment, "practitioner", now)
                if link.revoked_at is not None:
                    # The doctor's own link was withdrawn; a user allowed here gets a new one.
                    link = video.reissue(session, appointment, "practitioner", settings, now)
                auth.audit(
                    session,
                    staff,
                    "view",
                    "video_visit",
                    entity_id=appointment.id,
                    patient_id=appointment.patient_id,
                )
                token = video.token_of(link, settings.secret_key)
        except _Problem as exc:
            return problem_page(request, staff, exc, appointment_id)
        return RedirectResponse(
            f"/v/{token}", status_code=303, headers={"Cache-Control": "no-store"}
        )

    @router.post("/dashboard/appointments/{appointment_id}/video/revoke")
    async def revoke(
        request: Request, appointment_id: int, staff: Staff = Depends(auth.page)
    ) -> Response:
        fields = await auth.form(request)
        return await run_in_threadpool(revoke_now, request, staff, appointment_id, fields)

    def revoke_now(
        request: Request, staff: Staff, appointment_id: int, fields: dict[str, str]
    ) -> Response:
        now = auth.clock.now()
        resend = fields.get("resend") == "1"
        try:
            with auth.db.transaction() as session:
                appointment = visit_for(session, staff, appointment_id)
                video.revoke(session, appointment.id, role="patient", now=now)
                message = "The patient's video link was revoked; the old link no longer works."
                if resend:
                    link = video.reissue(session, appointment, "patient", settings, now)
                    queued = video.queue_resend(session, appointment, link, settings, now)
                    message += (
                        " A new link is on its way to the patient."
                        if queued is not None
                        else " A new link was made; the patient will get it with the visit's"
                        " reminders (nothing was sent now: the visit is not planned yet,"
                        " is over, or was cancelled)."
                    )
                auth.audit(
                    session,
                    staff,
                    "update",
                    "video_link",
                    entity_id=appointment.id,
                    patient_id=appointment.patient_id,
                    detail={"revoked": "patient", "resend": resend},
                )
        except _Problem as exc:
            return problem_page(request, staff, exc, appointment_id)
        return render(
            request,
            "dash/video.html",
            staff,
            error=None,
            message=message,
            appointment_id=appointment_id,
        )

    return router


class _Problem(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
