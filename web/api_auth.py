"""Who is calling the REST API (``/api/v1``): bearer tokens, roles, audit.

``Authorization: Bearer <token>`` where the token is either

- one issued by ``telemed users token --email E`` (``core.users.issue_api_token``):
  the call acts as that user, with their role and scope (a doctor token sees
  its own practitioner's patients only); revoking the token or disabling the
  user ends it at once;
- the legacy ``TELEMED_API_TOKEN`` setting, when set: an admin integration
  with no user row behind it (audit entries carry no user id).

Missing, unknown or revoked: 401 with ``WWW-Authenticate: Bearer`` and the
reason in ``detail``. A role the route does not allow: 403. A doctor asking
for another practitioner's patient, appointment, thread or schedule: 403 too
(never 404), so the answer is the same whether or not the row exists.

The scheme is declared with ``HTTPBearer(auto_error=False)`` so /openapi.json
documents it while the 401 body stays ours.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from core import audit
from core import users as accounts
from core.clock import Clock, SystemClock
from core.db import Database
from core.settings import Settings

MAX_ID = 2**31 - 1
SCHEME = "bearerAuth"
# The legacy integration acts as this (no user row; audit shows it in ``detail``).
INTEGRATION_EMAIL = "integration:TELEMED_API_TOKEN"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name=SCHEME,
    bearerFormat="opaque",
    description=(
        "A token from `telemed users token --email E` (acts as that user, with their "
        "role and scope), or the TELEMED_API_TOKEN setting (an admin integration)."
    ),
)


class Problem(BaseModel):
    """Every 4xx answer: what was wrong, in words."""

    detail: str


def problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


# OpenAPI ``responses`` for routes behind a token.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem("missing, unknown or revoked bearer token"),
    403: problem("the token's role (or, for a doctor, scope) does not allow this"),
}


@dataclass(frozen=True)
class ApiUser:
    """The caller, as a route sees it; satisfies ``core.users.Actor``."""

    id: int
    email: str
    role: str
    practitioner_id: int | None
    clinic_id: int | None
    ip: str
    integration: bool = False  # the legacy TELEMED_API_TOKEN (no user row)

    @property
    def is_doctor(self) -> bool:
        return self.role == "doctor"


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_clock(request: Request) -> Clock:
    clock: Clock | None = getattr(request.app.state, "clock", None)
    return clock if clock is not None else SystemClock()


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


def api_user(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> ApiUser:
    """The caller behind the bearer token, or 401."""
    if credentials is None or not credentials.credentials.strip():
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    given = credentials.credentials.strip()
    settings = get_settings(request)
    legacy = settings.api_token
    if legacy and hmac.compare_digest(given.encode(), legacy.encode()):
        return ApiUser(
            id=0,
            email=INTEGRATION_EMAIL,
            role="admin",
            practitioner_id=None,
            clinic_id=None,
            ip=client_ip(request),
            integration=True,
        )
    with get_db(request).transaction() as session:
        user = accounts.api_token_user(session, given, get_clock(request).now())
        if user is None:
            raise _unauthorized("unknown or revoked token, or its user is disabled")
        return ApiUser(
            id=user.id,
            email=user.email,
            role=user.role,
            practitioner_id=user.practitioner_id,
            clinic_id=user.clinic_id,
            ip=client_ip(request),
        )


def roles(*allowed: str) -> Callable[..., ApiUser]:
    """A dependency: the caller, when their role is one of ``allowed``; else 403."""

    def dependency(user: ApiUser = Depends(api_user)) -> ApiUser:
        if user.role not in allowed:
            raise HTTPException(
                403, f"this needs a token of role {' or '.join(allowed)}, not {user.role}"
            )
        return user

    return dependency


Caller = Annotated[ApiUser, Depends(api_user)]
ClinicCaller = Annotated[ApiUser, Depends(roles("admin", "staff"))]
DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def forbid_unless(allowed: bool, what: str) -> None:
    """403 for a doctor outside their own practitioner's scope."""
    if not allowed:
        raise HTTPException(403, f"this token may not see {what}")


def check_patient(session: Session, user: ApiUser, patient_id: int) -> None:
    forbid_unless(accounts.can_see_patient(session, user, patient_id), f"patient {patient_id}")


def check_practitioner(user: ApiUser, practitioner_id: int | None, what: str) -> None:
    forbid_unless(accounts.can_see_practitioner(user, practitioner_id), what)


def record(
    session: Session,
    user: ApiUser,
    clock: Clock,
    action: str,
    entity: str,
    *,
    entity_id: int | None = None,
    patient_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """An audit entry (source ``api``) in the caller's transaction."""
    extra = dict(detail or {})
    if user.integration:
        extra["via"] = "TELEMED_API_TOKEN"
    audit.record(
        session,
        user=None if user.integration else user,
        action=action,
        entity=entity,
        entity_id=entity_id,
        patient_id=patient_id,
        source="api",
        ip=user.ip,
        detail=extra,
        now=clock.now(),
    )
