"""A channel identity proves who it is before any record is shown.

An identity is verified when the patient gave their name and date of birth
on it (registration), or later answers their date of birth correctly. Three
wrong dates of birth in a row lock record access for that identity (not for
the patient's other identities) and alert staff; only staff unlock it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from core.models import Alert, ChannelIdentity, Patient

MAX_FAILURES = 3


@dataclass(frozen=True)
class Check:
    ok: bool
    locked: bool = False
    tries_left: int = 0


def is_verified(identity: ChannelIdentity) -> bool:
    return (
        identity.patient_id is not None
        and identity.verified_at is not None
        and identity.locked_at is None
    )


def check_dob(
    session: Session, identity: ChannelIdentity, given: date, *, clinic_id: int, now: datetime
) -> Check:
    """Compare ``given`` with the date of birth on file for the identity's patient."""
    if identity.locked_at is not None:
        return Check(ok=False, locked=True)
    patient = session.get(Patient, identity.patient_id) if identity.patient_id else None
    if patient is not None and patient.date_of_birth is not None and given == patient.date_of_birth:
        identity.verified_at, identity.verify_failures = now, 0
        return Check(ok=True)
    return _failed(session, identity, clinic_id=clinic_id, now=now, rule="dob_mismatch_x3")


CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)


def _hash(secret: str, identity_id: int, code: str) -> str:
    return hmac.new(secret.encode(), f"{identity_id}:{code}".encode(), hashlib.sha256).hexdigest()


def start_code(identity: ChannelIdentity, *, secret: str, now: datetime) -> str:
    """A one-time code for a patient with no date of birth on file: the caller
    sends it to the number on file; only its hash is kept."""
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    identity.otp_hash = _hash(secret, identity.id, code)
    identity.otp_expires_at = now + CODE_TTL
    return code


def check_code(
    session: Session,
    identity: ChannelIdentity,
    given: str,
    *,
    secret: str,
    clinic_id: int,
    now: datetime,
) -> Check:
    if identity.locked_at is not None:
        return Check(ok=False, locked=True)
    code = "".join(c for c in given if c.isdigit())
    expires, expected = identity.otp_expires_at, identity.otp_hash
    if (
        expires is not None
        and expected is not None
        and now < expires
        and hmac.compare_digest(expected, _hash(secret, identity.id, code))
    ):
        identity.verified_at, identity.verify_failures = now, 0
        identity.otp_hash = identity.otp_expires_at = None
        return Check(ok=True)
    return _failed(session, identity, clinic_id=clinic_id, now=now, rule="code_mismatch_x3")


def _failed(
    session: Session, identity: ChannelIdentity, *, clinic_id: int, now: datetime, rule: str
) -> Check:
    identity.verify_failures = (identity.verify_failures or 0) + 1
    if identity.verify_failures < MAX_FAILURES:
        return Check(ok=False, tries_left=MAX_FAILURES - identity.verify_failures)
    identity.locked_at = now
    session.add(
        Alert(
            clinic_id=clinic_id,
            kind="identity_locked",
            level="urgent",
            patient_id=identity.patient_id,
            channel=identity.channel,
            address=identity.address,
            rules=[rule],
            text="",
            status="open",
            created_at=now,
        )
    )
    return Check(ok=False, locked=True)


def unlock(identity: ChannelIdentity) -> None:
    """Staff: let the identity try again (after checking who it is by phone)."""
    identity.locked_at, identity.verify_failures = None, 0
