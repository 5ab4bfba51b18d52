"""Dashboard access: the login page, session cookies, CSRF, roles, and the
page renderer every dashboard page goes through.

- The session cookie is HttpOnly, SameSite=Lax, and Secure when PUBLIC_URL is
  https; only its hash is stored (core.users), so a database leak is no login.
- Every POST carries the session's CSRF token, as the ``csrf_token`` field or
  the ``X-CSRF-Token`` header (HTMX sends it from ``hx-headers`` on <body>);
  missing or wrong: 403. The login form, before any session, uses a
  double-submit cookie.
- Anonymous visitors are sent to ``/login?next=...``; HTMX requests get an
  ``HX-Redirect`` instead of a redirect they would swap into the page.
- A role that may not open a page gets 403.

Pages use ``Auth.page`` (a dependency giving a ``Staff``), ``Auth.form`` (the
form fields, CSRF-checked) and ``render``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from core import audit
from core import users as accounts
from core.clock import Clock
from core.db import Database
from core.logs import get_logger
from core.settings import Settings
from web.forms import form_fields

log = get_logger(__name__)

COOKIE = "telemed_session"
LOGIN_CSRF_COOKIE = "telemed_login_csrf"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"
# Pages with patient data: never cached, never framed, never indexed.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


@dataclass(frozen=True)
class Staff:
    """The logged-in user, as a page handler sees them (no database session needed)."""

    id: int
    email: str
    name: str
    role: str
    practitioner_id: int | None
    clinic_id: int | None
    csrf: str
    ip: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_doctor(self) -> bool:
        return self.role == "doctor"


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class Forbidden(Exception):
    def __init__(self, reason: str = "You do not have access to this page.") -> None:
        super().__init__(reason)
        self.reason = reason


def client_ip(request: Request) -> str:
    # Behind a proxy this is the proxy; uvicorn --proxy-headers fixes it up
    # when the proxy is trusted (see docs/deploy.md).
    return request.client.host if request.client is not None else "unknown"


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect to somewhere else."""
    if not value:
        return "/dashboard"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "/dashboard"
    return value


def render(
    request: Request,
    template: str,
    staff: Staff | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A dashboard page (or an HTMX fragment) with the private headers."""
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"staff": staff, "csrf": staff.csrf if staff else "", **context},
        status_code=status_code,
        headers=PRIVATE_HEADERS,
    )


class Auth:
    """Dependencies for pages: ``page`` (any logged-in user), ``roles(...)``,
    ``form`` (CSRF-checked form fields) and ``audit`` for the log."""

    def __init__(self, db: Database, clock: Clock, settings: Settings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings

    async def page(self, request: Request) -> Staff:
        token = request.cookies.get(COOKIE)
        now = self.clock.now()
        with self.db.transaction() as session:
            found = accounts.session_for(session, token, now)
            if found is None:
                raise LoginRequired(_here(request))
            user = found.user
            staff = Staff(
                id=user.id,
                email=user.email,
                name=user.name,
                role=user.role,
                practitioner_id=user.practitioner_id,
                clinic_id=user.clinic_id,
                csrf=found.csrf_token,
                ip=client_ip(request),
            )
        request.state.staff = staff
        return staff

    def roles(self, *allowed: str) -> Callable[[Request], Awaitable[Staff]]:
        async def dependency(request: Request) -> Staff:
            staff = await self.page(request)
            if staff.role not in allowed:
                raise Forbidden()
            return staff

        return dependency

    async def form(self, request: Request) -> dict[str, str]:
        """The posted form, after checking the CSRF token against the session's."""
        staff: Staff | None = getattr(request.state, "staff", None)
        if staff is None:
            staff = await self.page(request)
        fields = await form_fields(request)
        sent = request.headers.get("x-csrf-token") or fields.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent.encode(), staff.csrf.encode()):
            raise Forbidden("The form had expired or did not come from this site. Reload it.")
        fields.pop("csrf_token", None)
        return fields

    def audit(
        self,
        session: Any,
        staff: Staff,
        action: str,
        entity: str,
        *,
        entity_id: int | None = None,
        patient_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        audit.record(
            session,
            user=staff,
            action=action,
            entity=entity,
            entity_id=entity_id,
            patient_id=patient_id,
            ip=staff.ip,
            detail=detail,
            now=self.clock.now(),
        )


def _here(request: Request) -> str:
    path = request.url.path
    return path + ("?" + request.url.query if request.url.query else "")


def install(app: FastAPI, db: Database, clock: Clock, settings: Settings) -> Auth:
    """Adds /login, /logout, /static and the handlers that turn LoginRequired
    and Forbidden into a redirect and a 403 page."""
    auth = Auth(db, clock, settings)
    app.state.auth = auth
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        target = "/login?next=" + quote(exc.next_url, safe="")
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method != "GET" or request.url.path.startswith("/api/"):
            return Response("login required", status_code=401, headers={"Location": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        staff = getattr(request.state, "staff", None)
        return render(request, "dash/forbidden.html", staff, status_code=403, reason=exc.reason)

    app.include_router(_login_router(auth))
    return auth


def _login_router(auth: Auth) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def login_page(
        request: Request,
        *,
        next_url: str,
        error: str | None = None,
        status_code: int = 200,
        email: str = "",
    ) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = render(
            request,
            "dash/login.html",
            None,
            status_code=status_code,
            login_csrf=token,
            next_url=next_url,
            error=error,
            email=email[:254],
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            max_age=3600,
            httponly=True,
            secure=auth.settings.secure_cookies,
            samesite="strict",
            path="/login",
        )
        return response

    @router.get("/login")
    def login_form(request: Request, next: str | None = None) -> HTMLResponse:
        return login_page(request, next_url=safe_next(next))

    @router.post("/login")
    async def login_post(request: Request) -> Response:
        fields = await form_fields(request)
        next_url = safe_next(fields.get("next"))
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        sent = fields.get("csrf_token", "")
        if not cookie or not sent or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return login_page(
                request,
                next_url=next_url,
                error="The form had expired. Please try again.",
                status_code=403,
            )
        email, password = fields.get("email", ""), fields.get("password", "")
        if not email.strip() or not password:
            return login_page(
                request, next_url=next_url, error="Enter your e-mail and password.", status_code=422
            )
        now = auth.clock.now()
        try:
            with auth.db.transaction() as session:
                done = accounts.login(
                    session,
                    email=email,
                    password=password,
                    client=client_ip(request),
                    now=now,
                    hours=auth.settings.session_hours,
                )
                if done is not None:
                    audit.record(
                        session,
                        user=done.user,
                        action="login",
                        entity="user",
                        entity_id=done.user.id,
                        ip=client_ip(request),
                        now=now,
                    )
        except accounts.TooManyAttempts:
            return login_page(
                request,
                next_url=next_url,
                error="Too many failed attempts. Wait 15 minutes and try again.",
                status_code=429,
                email=email,
            )
        if done is None:
            return login_page(
                request,
                next_url=next_url,
                error="That e-mail and password do not match.",
                status_code=401,
                email=email,
            )
        log.info("login", user_id=done.user.id)
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(
            COOKIE,
            done.token,
            max_age=auth.settings.session_hours * 3600,
            httponly=True,
            secure=auth.settings.secure_cookies,
            samesite="lax",
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        staff = await auth.page(request)
        await auth.form(request)
        with auth.db.transaction() as session:
            accounts.logout(session, request.cookies.get(COOKIE))
            auth.audit(session, staff, "logout", "user", entity_id=staff.id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router
