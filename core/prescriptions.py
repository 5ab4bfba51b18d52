"""Electronic prescriptions: issue, route, pick up with a code, refill.

Life of a prescription (``Prescription.status``)::

    issued --route_to_pharmacy--> sent --mark_ready--> ready --dispense--> dispensed
      |                             |                    |
      +------ cancel / expire ------+--------------------+--> cancelled / expired

A pharmacy may also mark ready or dispense straight from ``issued``: the
patient can walk in with the printed page without choosing a pharmacy in the
chat first. The pickup code is what the pharmacy types; it is 8 characters
from an alphabet without look-alikes (no 0/O/1/I/L), drawn with ``secrets``,
unique over every prescription ever issued, and it works once: after
``dispense`` it answers "already used". Wrong codes are counted per source
(``check_rate`` / ``record_attempt``) so guessing is rate-limited.

Expiry is computed from ``expires_at`` wherever it matters; the tick job
``expire_overdue`` only makes the stored status agree.

A refill request (``request_refill``) is for an active prescription (sent,
ready or dispensed, not expired, not cancelled) with refills left; it lands
in the prescriber's queue (``refill_queue``). Approving it
(``answer_refill``) issues a successor prescription: the items that had
refills, each with one refill fewer, a new pickup code, routed to the same
pharmacy. So "refills left" of a prescription is the most refills any of its
items has, and every pickup has its own one-time code.

Privacy: the messages this module queues (``patient_notice``) name the
prescriber and the pharmacy, never a medicine, and the doctor's note on a
refill goes only to an identity that proved who it is. Logs carry ids and
counts, nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from core.i18n import format_day, normalize_language, t
from core.logs import get_logger
from core.messages import Option, Reply
from core.models import (
    Appointment,
    ChannelIdentity,
    CodeAttempt,
    Notification,
    Patient,
    Pharmacy,
    Practitioner,
    Prescription,
    PrescriptionItem,
    RefillRequest,
)

log = get_logger(__name__)

# No 0/O, 1/I/L: a code read aloud over the counter or off a cracked screen
# is still unambiguous. 31 symbols ** 8 = 8.5e11 codes.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
CODE_RETRIES = 8
_CODE_SEPARATORS = re.compile(r"[\s\-‐-―_.]+")

ACTIVE = ("issued", "sent", "ready")  # may still be picked up
DISPENSABLE = ("issued", "sent", "ready")
REFILLABLE = ("sent", "ready", "dispensed")
REFILL_STATUSES = ("requested", "approved", "denied")

MAX_ITEMS = 20
MAX_QUANTITY = 10_000
MAX_REFILLS = 12
MAX_EXPIRES_DAYS = 365
RATE_WINDOW = timedelta(minutes=15)
RATE_MAX_FAILURES = 5
ATTEMPTS_KEPT = timedelta(days=1)

NOTICE_EVENTS = ("issued", "ready_for_pickup", "dispensed", "refill_approved", "refill_denied")
SEE_IT = "rx:see"

# FHIR R4 MedicationRequest.status for each of ours.
FHIR_STATUS = {
    "issued": "active",
    "sent": "active",
    "ready": "active",
    "dispensed": "completed",
    "cancelled": "cancelled",
    "expired": "stopped",
}
GROUP_SYSTEM = "urn:telemed:prescription"


# -- errors ---------------------------------------------------------------------------


class PrescriptionError(Exception):
    """Something about a prescription that cannot be done, with the reason.

    ``reason`` is a short stable word a caller can map to its own text
    (``rx.error.<reason>`` in the message catalog for the patient-facing ones).
    """

    reason = "invalid"

    def __init__(self, message: str, *, prescription: Prescription | None = None) -> None:
        super().__init__(message)
        self.prescription = prescription


class PrescriptionNotFound(PrescriptionError):
    reason = "not_found"


class CodeUnknown(PrescriptionError):
    """No prescription has this pickup code (or it is not shaped like one)."""

    reason = "unknown"


class CodeUsed(PrescriptionError):
    """The prescription was dispensed already: its code is used up."""

    reason = "used"


class PrescriptionCancelled(PrescriptionError):
    reason = "cancelled"


class PrescriptionExpired(PrescriptionError):
    reason = "expired"


class InvalidTransition(PrescriptionError):
    """The prescription is not in a status that allows this."""

    reason = "status"


class RefillRefused(PrescriptionError):
    """A refill cannot be asked for; ``reason`` says why (``no_refills``,
    ``pending``, ``not_active``, ``expired``, ``cancelled``)."""

    def __init__(
        self, message: str, reason: str, *, prescription: Prescription | None = None
    ) -> None:
        super().__init__(message, prescription=prescription)
        self.reason = reason


class RefillNotFound(PrescriptionError):
    reason = "refill_not_found"


class RefillAnswered(PrescriptionError):
    reason = "refill_answered"


class TooManyAttempts(PrescriptionError):
    """Too many wrong codes from one source lately; try again after ``retry_after``."""

    reason = "rate_limited"

    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many wrong codes; try again in {self.minutes} minutes")

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after.total_seconds() / 60))


# -- items ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemSpec:
    """One line of a prescription as the doctor writes it."""

    medicine: str
    dose: str  # the instructions, e.g. "1 tablet 3 times a day for 7 days"
    quantity: int
    strength: str | None = None  # "500 mg"
    form: str | None = None  # "capsule"
    refills: int = 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ItemSpec:
        return cls(
            medicine=str(data["medicine"]),
            dose=str(data["dose"]),
            quantity=int(data["quantity"]),
            strength=None if data.get("strength") is None else str(data["strength"]),
            form=None if data.get("form") is None else str(data["form"]),
            refills=int(data.get("refills") or 0),
        )


def _clean(value: str | None, field: str, limit: int) -> str | None:
    """Whitespace collapsed; ``None`` for nothing; too long is an error."""
    text = " ".join((value or "").split())
    if len(text) > limit:
        raise PrescriptionError(f"{field} is longer than {limit} characters")
    return text or None


def _required(value: str | None, field: str, limit: int) -> str:
    text = _clean(value, field, limit)
    if text is None:
        raise PrescriptionError(f"{field} is required")
    return text


def _item_row(spec: ItemSpec | Mapping[str, Any], n: int) -> PrescriptionItem:
    item = spec if isinstance(spec, ItemSpec) else ItemSpec.from_mapping(spec)
    where = f"item {n}"
    if isinstance(item.quantity, bool) or not 1 <= item.quantity <= MAX_QUANTITY:
        raise PrescriptionError(f"{where}: quantity must be from 1 to {MAX_QUANTITY}")
    if isinstance(item.refills, bool) or not 0 <= item.refills <= MAX_REFILLS:
        raise PrescriptionError(f"{where}: refills must be from 0 to {MAX_REFILLS}")
    return PrescriptionItem(
        medicine=_required(item.medicine, f"{where}: medicine", 200),
        strength=_clean(item.strength, f"{where}: strength", 64),
        form=_clean(item.form, f"{where}: form", 64),
        dose=_required(item.dose, f"{where}: dose", 300),
        quantity=item.quantity,
        refills=item.refills,
    )


def item_label(item: PrescriptionItem) -> str:
    """``Amoxicillin 500 mg capsule``."""
    return " ".join(part for part in (item.medicine, item.strength, item.form) if part)


def refills_left(prescription: Prescription) -> int:
    return max((item.refills for item in prescription.items), default=0)


# -- codes ----------------------------------------------------------------------------


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str:
    """What the patient or the pharmacist typed -> the stored form:
    ``"ab cd-ef 23"`` -> ``"ABCDEF23"``."""
    return _CODE_SEPARATORS.sub("", text or "").upper()


def format_code(code: str) -> str:
    """The code as shown to people, in two groups: ``ABCD-EF23``."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}" if len(code) == CODE_LENGTH else code


def looks_like_code(text: str) -> bool:
    code = normalize_code(text)
    return len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code)


def _code_taken(session: Session, code: str) -> bool:
    return bool(session.scalar(select(exists().where(Prescription.pickup_code == code))))


# -- issuing --------------------------------------------------------------------------


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be tz-aware")
    return now.astimezone(UTC)


def issue(
    session: Session,
    *,
    practitioner_id: int,
    patient_id: int,
    items: Sequence[ItemSpec | Mapping[str, Any]],
    now: datetime,
    expires_days: int = 30,
    appointment_id: int | None = None,
    notes: str | None = None,
) -> Prescription:
    """A new prescription with a fresh pickup code and page token (flushed, so
    it has an id). Raises ``PrescriptionError`` with the reason for bad input."""
    now = _aware(now)
    practitioner = session.get(Practitioner, practitioner_id)
    if practitioner is None or not practitioner.active:
        raise PrescriptionError(f"unknown practitioner {practitioner_id}")
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise PrescriptionError(f"unknown patient {patient_id}")
    if patient.clinic_id != practitioner.clinic_id:
        raise PrescriptionError(f"patient {patient_id} is not a patient of this clinic")
    if appointment_id is not None:
        appointment = session.get(Appointment, appointment_id)
        if appointment is None or appointment.patient_id != patient_id:
            raise PrescriptionError(f"appointment {appointment_id} is not this patient's")
    if isinstance(expires_days, bool) or not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise PrescriptionError(f"expires_days must be from 1 to {MAX_EXPIRES_DAYS}")
    if not items:
        raise PrescriptionError("a prescription needs at least one item")
    if len(items) > MAX_ITEMS:
        raise PrescriptionError(f"a prescription has at most {MAX_ITEMS} items")
    rows = [_item_row(spec, n) for n, spec in enumerate(items, start=1)]
    note = _clean(notes, "notes", 2000)
    prescription = _insert(
        session,
        clinic_id=practitioner.clinic_id,
        patient_id=patient_id,
        practitioner_id=practitioner_id,
        appointment_id=appointment_id,
        pharmacy_id=None,
        status="issued",
        notes=note,
        items=rows,
        issued_at=now,
        expires_at=now + timedelta(days=expires_days),
    )
    log.info(
        "prescription_issued",
        prescription_id=prescription.id,
        practitioner_id=practitioner_id,
        patient_id=patient_id,
        items=len(rows),
    )
    return prescription


def _insert(session: Session, *, items: list[PrescriptionItem], **values: Any) -> Prescription:
    """Insert with a pickup code nobody has had; a collision (checked first,
    and caught from the unique key when two issue the same code at once)
    draws another."""
    for _ in range(CODE_RETRIES):
        code = new_code()
        if _code_taken(session, code):
            continue
        prescription = Prescription(
            **values,
            pickup_code=code,
            page_token=secrets.token_urlsafe(24),
            updated_at=values["issued_at"],
        )
        prescription.items = list(items)
        try:
            with session.begin_nested():
                session.add(prescription)
                session.flush()
        except IntegrityError:
            # A concurrent insert took the code; the savepoint is rolled back
            # and the objects are transient again.
            prescription.items = []
            continue
        return prescription
    raise PrescriptionError("could not draw a unique pickup code; try again")


# -- reading --------------------------------------------------------------------------


def get(session: Session, prescription_id: int) -> Prescription:
    prescription = session.get(
        Prescription, prescription_id, options=[selectinload(Prescription.items)]
    )
    if prescription is None:
        raise PrescriptionNotFound(f"no prescription {prescription_id}")
    return prescription


def by_page_token(session: Session, token: str) -> Prescription | None:
    if not token or len(token) > 64:
        return None
    return session.scalars(
        select(Prescription)
        .options(selectinload(Prescription.items))
        .where(Prescription.page_token == token)
    ).first()


def for_patient(session: Session, patient_id: int, *, limit: int = 20) -> list[Prescription]:
    """A patient's prescriptions, newest first (for the chat's "my prescriptions")."""
    return list(
        session.scalars(
            select(Prescription)
            .options(selectinload(Prescription.items))
            .where(Prescription.patient_id == patient_id)
            .order_by(Prescription.issued_at.desc(), Prescription.id.desc())
            .limit(limit)
        )
    )


def is_expired(prescription: Prescription, now: datetime) -> bool:
    return prescription.status == "expired" or (
        prescription.status in ACTIVE and prescription.expires_at <= _aware(now)
    )


def effective_status(prescription: Prescription, now: datetime) -> str:
    """The status, with expiry applied before the tick job catches up."""
    return "expired" if is_expired(prescription, now) else prescription.status


def _check_usable(prescription: Prescription, now: datetime) -> None:
    """Raise the error that explains why this prescription cannot be picked up."""
    if prescription.status == "dispensed":
        raise CodeUsed(
            "this prescription was already dispensed; its code has been used",
            prescription=prescription,
        )
    if prescription.status == "cancelled":
        raise PrescriptionCancelled(
            "this prescription was cancelled by the prescriber", prescription=prescription
        )
    if is_expired(prescription, now):
        raise PrescriptionExpired("this prescription has expired", prescription=prescription)


def find_by_code(session: Session, code: str, now: datetime) -> Prescription:
    """The prescription a pickup code opens, if it can still be picked up.

    Spaces, dashes and lower case are accepted. Raises ``CodeUnknown``,
    ``CodeUsed`` (dispensed), ``PrescriptionCancelled`` or
    ``PrescriptionExpired``; the last three carry the prescription.
    """
    normalized = normalize_code(code)
    if not looks_like_code(normalized):
        raise CodeUnknown("that is not a pickup code")
    prescription = session.scalars(
        select(Prescription)
        .options(selectinload(Prescription.items))
        .where(Prescription.pickup_code == normalized)
    ).first()
    if prescription is None:
        raise CodeUnknown("no prescription has that pickup code")
    _check_usable(prescription, now)
    return prescription


# -- transitions ----------------------------------------------------------------------


def _transition(
    session: Session,
    prescription_id: int,
    now: datetime,
    *,
    allowed: Sequence[str],
    values: Mapping[str, Any],
    action: str,
) -> Prescription:
    """Move from one of ``allowed`` in one conditional UPDATE, so of two
    concurrent callers exactly one wins; the loser gets the reason."""
    now = _aware(now)
    result = session.execute(
        update(Prescription)
        .where(
            Prescription.id == prescription_id,
            Prescription.status.in_(list(allowed)),
            Prescription.expires_at > now,
        )
        .values(**values, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    prescription = session.get(Prescription, prescription_id)
    if prescription is None:
        raise PrescriptionNotFound(f"no prescription {prescription_id}")
    session.refresh(prescription)
    if getattr(result, "rowcount", 0) != 1:
        _check_usable(prescription, now)
        raise InvalidTransition(
            f"cannot {action} a prescription that is {prescription.status}",
            prescription=prescription,
        )
    return prescription


def route_to_pharmacy(
    session: Session, prescription_id: int, pharmacy_id: int, now: datetime
) -> Prescription:
    """The patient chose a pharmacy: issued (or sent elsewhere) -> sent there."""
    pharmacy = session.get(Pharmacy, pharmacy_id)
    if pharmacy is None or not pharmacy.active:
        raise PrescriptionError(f"unknown pharmacy {pharmacy_id}")
    prescription = _transition(
        session,
        prescription_id,
        now,
        allowed=("issued", "sent"),
        values={"status": "sent", "pharmacy_id": pharmacy_id, "sent_at": _aware(now)},
        action="send to a pharmacy",
    )
    log.info("prescription_routed", prescription_id=prescription_id, pharmacy_id=pharmacy_id)
    return prescription


def mark_ready(session: Session, prescription_id: int, now: datetime) -> Prescription:
    """The pharmacy has it ready: sent (or issued, for a walk-in) -> ready."""
    prescription = _transition(
        session,
        prescription_id,
        now,
        allowed=("issued", "sent"),
        values={"status": "ready"},
        action="mark ready",
    )
    log.info("prescription_ready", prescription_id=prescription_id)
    return prescription


def dispense(session: Session, prescription_id: int, now: datetime) -> Prescription:
    """Handed over: sent/ready (or issued, for a walk-in) -> dispensed, once.
    The pickup code is used up from now on."""
    prescription = _transition(
        session,
        prescription_id,
        now,
        allowed=DISPENSABLE,
        values={"status": "dispensed", "dispensed_at": _aware(now)},
        action="dispense",
    )
    log.info("prescription_dispensed", prescription_id=prescription_id)
    return prescription


def cancel(session: Session, prescription_id: int, now: datetime) -> Prescription:
    """The prescriber withdraws it; not once dispensed."""
    now = _aware(now)
    result = session.execute(
        update(Prescription)
        .where(Prescription.id == prescription_id, Prescription.status.in_(list(ACTIVE)))
        .values(status="cancelled", cancelled_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    prescription = get(session, prescription_id)
    session.refresh(prescription)
    if getattr(result, "rowcount", 0) != 1:
        raise InvalidTransition(
            f"cannot cancel a prescription that is {prescription.status}",
            prescription=prescription,
        )
    log.info("prescription_cancelled", prescription_id=prescription_id)
    return prescription


def expire_overdue(session: Session, now: datetime) -> int:
    """Tick job: mark every prescription past its expiry ``expired`` (one
    statement) and forget pickup-code attempts older than a day. Returns how
    many prescriptions expired."""
    now = _aware(now)
    result = session.execute(
        update(Prescription)
        .where(Prescription.status.in_(list(ACTIVE)), Prescription.expires_at <= now)
        .values(status="expired", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(CodeAttempt)
        .where(CodeAttempt.attempted_at < now - ATTEMPTS_KEPT)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.info("prescriptions_expired", count=count)
    return count


# -- pickup-code attempts -------------------------------------------------------------


def check_rate(
    session: Session,
    source: str,
    now: datetime,
    *,
    max_failures: int = RATE_MAX_FAILURES,
    window: timedelta = RATE_WINDOW,
) -> None:
    """Raise ``TooManyAttempts`` when ``source`` typed ``max_failures`` wrong
    codes within ``window``; it can try again when the oldest of them leaves
    the window. A right code does not reset the count (one known code must
    not buy more guesses)."""
    now = _aware(now)
    source = source[:64]
    failures = list(
        session.scalars(
            select(CodeAttempt.attempted_at)
            .where(
                CodeAttempt.source == source,
                CodeAttempt.ok.is_(False),
                CodeAttempt.attempted_at > now - window,
            )
            .order_by(CodeAttempt.attempted_at.desc())
            .limit(max_failures)
        )
    )
    if len(failures) >= max_failures:
        # The moment the count drops below the limit: the max_failures-th most
        # recent failure leaves the window.
        raise TooManyAttempts(failures[-1] + window - now)


def record_attempt(session: Session, source: str, ok: bool, now: datetime) -> None:
    session.add(CodeAttempt(source=source[:64], ok=ok, attempted_at=_aware(now)))
    session.flush()


def lookup_code(session: Session, source: str, code: str, now: datetime) -> Prescription:
    """``find_by_code`` behind the rate limit, recording the attempt. Only an
    unknown code counts as a failure; a used, cancelled or expired one is a
    real code, explained to whoever typed it."""
    check_rate(session, source, now)
    try:
        prescription = find_by_code(session, code, now)
    except CodeUnknown:
        record_attempt(session, source, False, now)
        log.info("pickup_code_unknown", source_hash=_source_hash(source))
        raise
    except PrescriptionError:
        record_attempt(session, source, True, now)
        raise
    record_attempt(session, source, True, now)
    return prescription


def _source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:12]


# -- refills --------------------------------------------------------------------------


def request_refill(
    session: Session,
    prescription: Prescription,
    channel: str,
    address: str,
    now: datetime,
    *,
    renew: bool = False,
) -> RefillRequest:
    """Ask the prescriber for more; the answer goes back to (channel, address).
    Raises ``RefillRefused`` with the reason when it cannot be asked.

    ``renew``: the patient, told it cannot be refilled (expired, cancelled, no
    refills left), asks the doctor for a new one anyway; the doctor decides."""
    now = _aware(now)
    if renew:
        return _queue_refill(session, prescription, channel, address, now)
    if prescription.status == "cancelled":
        raise RefillRefused(
            "this prescription was cancelled", "cancelled", prescription=prescription
        )
    if is_expired(prescription, now):
        raise RefillRefused("this prescription has expired", "expired", prescription=prescription)
    if prescription.status not in REFILLABLE:
        raise RefillRefused(
            "a refill can be asked for once the prescription is at a pharmacy",
            "not_active",
            prescription=prescription,
        )
    if refills_left(prescription) <= 0:
        raise RefillRefused(
            "this prescription has no refills left", "no_refills", prescription=prescription
        )
    return _queue_refill(session, prescription, channel, address, now)


def _queue_refill(
    session: Session, prescription: Prescription, channel: str, address: str, now: datetime
) -> RefillRequest:
    earlier = session.scalars(
        select(RefillRequest.status).where(
            RefillRequest.prescription_id == prescription.id,
            RefillRequest.status.in_(("requested", "approved")),
        )
    ).first()
    if earlier == "requested":
        raise RefillRefused(
            "a refill of this prescription is already waiting for the doctor",
            "pending",
            prescription=prescription,
        )
    if earlier == "approved":
        raise RefillRefused(
            "this prescription was refilled already; ask for a refill of the new one",
            "refilled",
            prescription=prescription,
        )
    refill = RefillRequest(
        prescription_id=prescription.id,
        patient_id=prescription.patient_id,
        practitioner_id=prescription.practitioner_id,
        channel=channel,
        address=address,
        status="requested",
        requested_at=now,
    )
    session.add(refill)
    session.flush()
    log.info("refill_requested", refill_id=refill.id, prescription_id=prescription.id)
    return refill


def refill_queue(
    session: Session,
    *,
    status: str = "requested",
    practitioner_id: int | None = None,
    limit: int = 200,
) -> list[RefillRequest]:
    """Refill requests in ``status``, oldest first (the prescriber's queue)."""
    if status not in REFILL_STATUSES:
        raise PrescriptionError(f"status must be one of {', '.join(REFILL_STATUSES)}")
    query = (
        select(RefillRequest)
        .where(RefillRequest.status == status)
        .order_by(RefillRequest.requested_at, RefillRequest.id)
        .limit(limit)
    )
    if practitioner_id is not None:
        query = query.where(RefillRequest.practitioner_id == practitioner_id)
    return list(session.scalars(query))


@dataclass(frozen=True)
class RefillAnswer:
    refill: RefillRequest
    # The successor prescription when approved (issued with a new code).
    renewal: Prescription | None


def answer_refill(
    session: Session, refill_id: int, approve: bool, note: str | None, now: datetime
) -> RefillAnswer:
    """The prescriber's answer. Approving issues the successor prescription
    (items with refills, one fewer each, routed to the same pharmacy). Does
    not message the patient: call ``patient_notice`` with ``refill_approved``
    / ``refill_denied`` (the web API does)."""
    now = _aware(now)
    refill = session.get(RefillRequest, refill_id)
    if refill is None:
        raise RefillNotFound(f"no refill request {refill_id}")
    if refill.status != "requested":
        raise RefillAnswered(f"refill request {refill_id} was already {refill.status}")
    text = _clean(note, "note", 1000)
    renewal: Prescription | None = None
    if approve:
        original = get(session, refill.prescription_id)
        # A refill uses up one of the items' refills; asked for a prescription
        # that has none left (or expired, or was cancelled), approving it is
        # the doctor prescribing the same again.
        renew = (
            original.status == "cancelled"
            or is_expired(original, now)
            or not any(i.refills > 0 for i in original.items)
        )
        items = [
            PrescriptionItem(
                medicine=i.medicine,
                strength=i.strength,
                form=i.form,
                dose=i.dose,
                quantity=i.quantity,
                refills=i.refills if renew else i.refills - 1,
            )
            for i in original.items
            if renew or i.refills > 0
        ]
        if not items:
            raise InvalidTransition("the prescription has no items", prescription=original)
        renewal = _insert(
            session,
            clinic_id=original.clinic_id,
            patient_id=original.patient_id,
            practitioner_id=original.practitioner_id,
            appointment_id=original.appointment_id,
            pharmacy_id=original.pharmacy_id,
            status="sent" if original.pharmacy_id is not None else "issued",
            sent_at=now if original.pharmacy_id is not None else None,
            notes=original.notes,
            items=items,
            issued_at=now,
            expires_at=now + (original.expires_at - original.issued_at),
        )
    refill.status = "approved" if approve else "denied"
    refill.note = text
    refill.answered_at = now
    session.flush()
    log.info(
        "refill_answered",
        refill_id=refill.id,
        approved=approve,
        renewal_id=renewal.id if renewal is not None else None,
    )
    return RefillAnswer(refill, renewal)


# -- messages to the patient ----------------------------------------------------------


def recipient(session: Session, patient_id: int) -> ChannelIdentity | None:
    """Where to write to a patient: the identity they used most recently
    (never one that opted out while another did not)."""
    from core.reminders import reachable, recipients

    usable = reachable(recipients(session, [patient_id]).get(patient_id, []))
    return usable[0] if usable else None


def language_for(identity: ChannelIdentity | None, prescription: Prescription) -> str:
    patient = prescription.patient
    clinic_language = prescription.practitioner.clinic.default_language
    return normalize_language(
        (identity.language if identity else None)
        or (patient.language if patient else None)
        or clinic_language
    )


def patient_notice(
    session: Session,
    prescription: Prescription,
    event: str,
    now: datetime,
    *,
    refill: RefillRequest | None = None,
) -> Reply | None:
    """Queue the minimum-necessary message about ``event`` for the patient.

    Events: ``issued``, ``ready_for_pickup``, ``dispensed``,
    ``refill_approved`` and ``refill_denied`` (pass ``refill``; the answer
    goes where the request came from, and ``prescription`` is the renewal
    when approved, else the original). No medicine is ever named; the
    doctor's note on a refill is included only for a verified identity.
    Returns the queued reply, or ``None`` when there is nowhere to write.
    """
    from core import outbox

    if event not in NOTICE_EVENTS:
        raise ValueError(f"event must be one of {', '.join(NOTICE_EVENTS)}")
    identity: ChannelIdentity | None
    if refill is not None:
        identity = session.scalars(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == refill.channel,
                ChannelIdentity.address == refill.address,
            )
        ).first()
        channel, address = refill.channel, refill.address
    else:
        identity = recipient(session, prescription.patient_id)
        if identity is None:
            log.info("prescription_notice_no_address", prescription_id=prescription.id)
            return None
        channel, address = identity.channel, identity.address
    lang = language_for(identity, prescription)
    values = {
        "practitioner": prescription.practitioner.name,
        "clinic": prescription.practitioner.clinic.name,
    }
    see = (Option(t(lang, "rx.see"), SEE_IT),)
    options: tuple[Option, ...] = ()
    if event == "issued":
        text, options = t(lang, "rx.issued", **values), see
    elif event == "ready_for_pickup":
        pharmacy = prescription.pharmacy
        text = (
            t(lang, "rx.ready_at", pharmacy=pharmacy.name)
            if pharmacy is not None
            else t(lang, "rx.ready")
        )
        options = see
    elif event == "dispensed":
        text = t(lang, "rx.dispensed", **values)
    else:
        if refill is None:
            raise ValueError(f"{event} needs the refill request")
        verified = identity is not None and identity.verified_at is not None
        note = (refill.note or "").strip() if verified else ""
        approved = event == "refill_approved"
        key = "rx.refill_approved" if approved else "rx.refill_denied"
        text = t(lang, key + ("_note" if note else ""), **values, note=note)
        options = see if approved else ()
    reply = Reply(text, options, purpose="clinical")
    outbox.enqueue(session, channel=channel, address=address, reply=reply, now=_aware(now))
    if options:
        # Answerable: "1" / "See it" is read by flows.prompts as an answer to this.
        session.add(
            Notification(
                kind="prescription",
                dedupe_key=f"prescription:{prescription.id}:{uuid.uuid4().hex[:16]}",
                patient_id=prescription.patient_id,
                channel=channel,
                address=address,
                purpose="clinical",
                due_at=_aware(now),
                send_by=_aware(now),
                expires_at=prescription.expires_at,
                status="queued",
                queued_at=_aware(now),
                data={"prescription_id": prescription.id, "event": event},
                created_at=_aware(now),
            )
        )
    log.info("prescription_notice", prescription_id=prescription.id, notice=event, channel=channel)
    return reply


def page_url(public_url: str, prescription: Prescription) -> str:
    """The patient's printable page (a bearer link: send it only once verified)."""
    return f"{public_url.rstrip('/')}/rx/{prescription.page_token}"


def describe(prescription: Prescription, lang: str, tz: str = "UTC") -> list[str]:
    """The prescription in lines for a verified patient: one per item, then
    the pickup code and the expiry. Names medicines: show only after the
    patient proved who they are."""
    lines = [
        t(lang, "rx.item", label=item_label(item), dose=item.dose, quantity=item.quantity)
        for item in prescription.items
    ]
    lines.append(t(lang, "rx.code_line", code=format_code(prescription.pickup_code)))
    lines.append(
        t(
            lang,
            "rx.expires_line",
            date=format_day(prescription.expires_at, lang, tz, pattern="fmt.date"),
        )
    )
    return lines


# -- FHIR R4 --------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def medication_requests_json(prescription: Prescription) -> list[dict[str, Any]]:
    """One FHIR R4 MedicationRequest per item, grouped by the prescription
    (``groupIdentifier``). The pickup code is a secret and is not exported."""
    status = FHIR_STATUS[prescription.status]
    resources: list[dict[str, Any]] = []
    for item in prescription.items:
        quantity: dict[str, Any] = {"value": item.quantity}
        if item.form:
            quantity["unit"] = item.form
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": f"rx-{prescription.id}-{item.id}",
            "groupIdentifier": {"system": GROUP_SYSTEM, "value": str(prescription.id)},
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": {"text": item_label(item)},
            "subject": {"reference": f"Patient/{prescription.patient_id}"},
            "authoredOn": _iso(prescription.issued_at),
            "requester": {
                "reference": f"Practitioner/{prescription.practitioner_id}",
                "display": prescription.practitioner.name,
            },
            "dosageInstruction": [{"text": item.dose}],
            "dispenseRequest": {
                "validityPeriod": {
                    "start": _iso(prescription.issued_at),
                    "end": _iso(prescription.expires_at),
                },
                "numberOfRepeatsAllowed": item.refills,
                "quantity": quantity,
            },
        }
        if prescription.status == "expired":
            resource["statusReason"] = {"text": "expired"}
        if prescription.appointment_id is not None:
            resource["supportingInformation"] = [
                {"reference": f"Appointment/{prescription.appointment_id}"}
            ]
        if prescription.pharmacy_id is not None:
            resource["dispenseRequest"]["performer"] = {
                "reference": f"Organization/pharmacy-{prescription.pharmacy_id}",
                "display": prescription.pharmacy.name if prescription.pharmacy else None,
            }
            if resource["dispenseRequest"]["performer"]["display"] is None:
                del resource["dispenseRequest"]["performer"]["display"]
        if prescription.notes:
            resource["note"] = [{"text": prescription.notes}]
        resources.append(resource)
    return resources


def bundle_json(prescription: Prescription) -> dict[str, Any]:
    """The MedicationRequests of a prescription as a FHIR R4 collection Bundle."""
    return {
        "resourceType": "Bundle",
        "id": f"rx-{prescription.id}",
        "type": "collection",
        "timestamp": _iso(prescription.updated_at),
        "entry": [
            {"fullUrl": f"MedicationRequest/{r['id']}", "resource": r}
            for r in medication_requests_json(prescription)
        ],
    }


# -- signed form tokens (used by the pharmacy page) ------------------------------------


def sign(secret: str, *parts: object) -> str:
    """An HMAC-SHA256 of ``parts`` under ``secret``, hex."""
    message = "\x1f".join(str(p) for p in parts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_ok(secret: str, signature: str, *parts: object) -> bool:
    return hmac.compare_digest(sign(secret, *parts), signature or "")


def failures_recent(session: Session, source: str, now: datetime, window: timedelta) -> int:
    """Wrong codes from ``source`` within ``window`` (for display and tests)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(CodeAttempt)
            .where(
                CodeAttempt.source == source[:64],
                CodeAttempt.ok.is_(False),
                CodeAttempt.attempted_at > _aware(now) - window,
            )
        )
        or 0
    )
