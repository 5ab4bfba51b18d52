"""Dashboard users: passwords (argon2), logins with a rate limit, server-side
sessions, API tokens for integrations, and who may see which patient.

Roles: ``admin`` sees and changes everything and reads the audit log;
``staff`` run the clinic's day (schedule, inbox, availability); ``doctor``
sees their own practitioner's patients, schedule and questions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, union
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from core.models import (
    USER_ROLES,
    ApiToken,
    Appointment,
    Clinic,
    CodeAttempt,
    Practitioner,
    Prescription,
    QuestionThread,
    User,
    UserSession,
)

MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 would hash a megabyte; nobody types one
SESSION_HOURS = 12
# Failed logins allowed per window, per e-mail and per client address.
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_FAILS_PER_EMAIL = 5
LOGIN_FAILS_PER_SOURCE = 20
_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']{1,190}\.[^@\s<>\"'.]{2,}$")

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both cases take as long.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def use_cheap_hashing() -> None:
    """For test suites only: argon2 at its lowest cost, as Django's test
    settings swap in a fast hasher; production keeps argon2's defaults."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    _DUMMY_HASH = _hasher.hash("not-a-real-password")


class Actor(Protocol):
    """A user as the web layer holds one between transactions (or a ``User`` row)."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def practitioner_id(self) -> int | None: ...


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


class TooManyAttempts(Exception):
    """Too many failed logins lately for this e-mail or client."""


@dataclass(frozen=True)
class Login:
    user: User
    token: str  # the cookie value; only its hash is stored
    csrf_token: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


def valid_email(email: str) -> bool:
    return bool(_EMAIL.match(email))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is longer than {MAX_PASSWORD} characters")


def create_user(
    session: Session,
    *,
    email: str,
    role: str,
    password: str,
    now: datetime,
    name: str = "",
    practitioner: str | int | None = None,
) -> User:
    """A new dashboard user. A doctor names their practitioner (id or name);
    without one, a doctor whose e-mail or name matches a practitioner's is linked."""
    address = normalize_email(email)
    if not valid_email(address):
        raise UserError(f"{email!r} is not an e-mail address")
    if role not in USER_ROLES:
        raise UserError(f"role must be one of {', '.join(USER_ROLES)}")
    check_password_rules(password)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise UserError(f"a user with e-mail {address} already exists")
    linked = _practitioner(session, practitioner) if practitioner is not None else None
    if role == "doctor" and linked is None:
        raise UserError("a doctor needs --practitioner (the id or name of their practitioner)")
    clinic_id = (
        linked.clinic_id
        if linked is not None
        else session.scalar(select(Clinic.id).order_by(Clinic.id).limit(1))
    )
    user = User(
        clinic_id=clinic_id,
        email=address,
        name=name.strip() or (linked.name if linked is not None else ""),
        role=role,
        password_hash=hash_password(password),
        practitioner_id=linked.id if linked is not None else None,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def _practitioner(session: Session, ref: str | int) -> Practitioner:
    text = str(ref).strip()
    if text.isdigit():
        found = session.get(Practitioner, int(text))
        if found is None:
            raise UserError(f"no practitioner with id {text}")
        return found
    matches = list(
        session.scalars(
            select(Practitioner).where(func.lower(Practitioner.name).contains(text.lower()))
        )
    )
    if len(matches) != 1:
        why = "no practitioner" if not matches else f"{len(matches)} practitioners"
        raise UserError(f"{why} named {text!r}; give the id (telemed practitioners)")
    return matches[0]


def set_password(user: User, password: str) -> None:
    check_password_rules(password)
    user.password_hash = hash_password(password)


# -- logging in --------------------------------------------------------------------


def _fails(session: Session, source: str, since: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(CodeAttempt)
            .where(
                CodeAttempt.source == source,
                CodeAttempt.ok.is_(False),
                CodeAttempt.attempted_at >= since,
            )
        )
        or 0
    )


def login(
    session: Session,
    *,
    email: str,
    password: str,
    client: str,
    now: datetime,
    hours: int = SESSION_HOURS,
) -> Login | None:
    """Checks the password and starts a session; None when it does not match.

    Raises TooManyAttempts (before checking anything) when the e-mail or the
    client address has failed too often within LOGIN_WINDOW.
    """
    address = normalize_email(email)[:254]
    by_email, by_client = f"login:{address}"[:64], f"login-ip:{client}"[:64]
    since = now - LOGIN_WINDOW
    if (
        _fails(session, by_email, since) >= LOGIN_FAILS_PER_EMAIL
        or _fails(session, by_client, since) >= LOGIN_FAILS_PER_SOURCE
    ):
        raise TooManyAttempts
    user = session.scalar(select(User).where(User.email == address))
    ok = _verify(user.password_hash if user is not None else _DUMMY_HASH, password)
    ok = ok and user is not None and user.active
    session.add_all(
        [
            CodeAttempt(source=by_email, ok=ok, attempted_at=now),
            CodeAttempt(source=by_client, ok=ok, attempted_at=now),
        ]
    )
    if not ok or user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=token_hash(token),
            csrf_token=csrf,
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
            last_seen_at=now,
            ip=client[:64],
        )
    )
    session.flush()
    return Login(user=user, token=token, csrf_token=csrf)


def _verify(stored: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_for(session: Session, token: str | None, now: datetime) -> UserSession | None:
    """The live session behind a cookie value, or None (unknown, expired, user disabled)."""
    if not token or len(token) > 128:
        return None
    found = session.scalar(select(UserSession).where(UserSession.token_hash == token_hash(token)))
    if found is None or found.expires_at <= now or not found.user.active:
        return None
    if now - found.last_seen_at > timedelta(minutes=1):
        found.last_seen_at = now
    return found


def logout(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))


def issue_api_token(session: Session, user: User, *, label: str, now: datetime) -> str:
    token = "tm_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(token_hash=token_hash(token), user_id=user.id, label=label[:100], created_at=now)
    )
    session.flush()
    return token


def api_token_user(session: Session, token: str, now: datetime) -> User | None:
    if not token or len(token) > 128:
        return None
    found = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None or not found.user.active:
        return None
    if found.last_used_at is None or now - found.last_used_at > timedelta(minutes=1):
        found.last_used_at = now
    return found.user


# -- who sees what -----------------------------------------------------------------


def doctor_patient_ids(practitioner_id: int) -> Select[tuple[int]]:
    """Patients a practitioner has seen, will see, prescribed for or been asked by."""
    return select(
        union(
            select(Appointment.patient_id).where(Appointment.practitioner_id == practitioner_id),
            select(Prescription.patient_id).where(Prescription.practitioner_id == practitioner_id),
            select(QuestionThread.patient_id).where(
                QuestionThread.practitioner_id == practitioner_id
            ),
        ).subquery()
    )


def can_see_patient(session: Session, user: Actor, patient_id: int) -> bool:
    if user.role in ("admin", "staff"):
        return True
    if user.practitioner_id is None:
        return False
    ids = doctor_patient_ids(user.practitioner_id).subquery()
    found = session.scalar(select(func.count()).select_from(ids).where(ids.c[0] == patient_id))
    return bool(found)


def can_see_practitioner(user: Actor, practitioner_id: int | None) -> bool:
    """A doctor works in their own practitioner's schedule and queue only."""
    return user.role in ("admin", "staff") or (
        practitioner_id is not None and user.practitioner_id == practitioner_id
    )
