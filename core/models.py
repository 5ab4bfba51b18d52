"""Persistent model. Every datetime is stored and returned as tz-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; hands back tz-aware UTC on SQLite too (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


# Appointment states that occupy the practitioner's time.
ACTIVE_STATUSES = ("held", "booked", "confirmed")
APPOINTMENT_STATUSES = ("held", "booked", "confirmed", "cancelled", "completed", "no_show")
VISIT_TYPES = ("in_person", "video")


class Clinic(Base):
    __tablename__ = "clinics"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(300))
    default_language: Mapped[str] = mapped_column(String(8), default="en")
    # Reminder policy; NULL takes the service setting (TELEMED_REMINDER_OFFSETS...).
    reminder_offsets: Mapped[str | None] = mapped_column(String(100))
    quiet_hours: Mapped[str | None] = mapped_column(String(16))
    reminders_per_day: Mapped[int | None] = mapped_column(Integer)
    risk_reminder_offsets: Mapped[str | None] = mapped_column(String(100))
    no_show_grace_minutes: Mapped[int | None] = mapped_column(Integer)
    # Said in every emergency reply; NULL takes TELEMED_EMERGENCY_NUMBER / _CRISIS_LINE.
    emergency_number: Mapped[str | None] = mapped_column(String(32))
    crisis_line: Mapped[str | None] = mapped_column(String(64))
    # Working days (Monday to Friday) within which a patient's question is
    # answered; NULL takes TELEMED_QUESTION_ANSWER_DAYS.
    question_answer_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))


class Practitioner(Base):
    __tablename__ = "practitioners"
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    specialty: Mapped[str] = mapped_column(String(100))
    # Specialty in Spanish, for patients who write in Spanish ("dermatología").
    specialty_es: Mapped[str | None] = mapped_column(String(100))
    visit_types: Mapped[list[Any]] = mapped_column(default=lambda: ["in_person", "video"])
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    slot_minutes: Mapped[int] = mapped_column(Integer, default=30)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=120)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    clinic: Mapped[Clinic] = relationship(lazy="joined")


class AvailabilityRule(Base):
    """Weekly working hours in the practitioner's zone."""

    __tablename__ = "availability_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        ForeignKey("practitioners.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int] = mapped_column(Integer)  # Monday 0 .. Sunday 6
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)


class AvailabilityException(Base):
    """Time off (``off``) or extra hours (``extra``) over an absolute range."""

    __tablename__ = "availability_exceptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        ForeignKey("practitioners.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8), default="off")
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    reason: Mapped[str | None] = mapped_column(String(200))


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))


class ChannelIdentity(Base):
    """Who is behind a (channel, address): E.164 for sms/whatsapp, a chat id for telegram."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_identity_channel_address"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    verified_at: Mapped[datetime | None]
    # Set by an opt-out word (STOP...); cleared by START. While set, nothing but
    # the answers to START and HELP is sent to this identity.
    opted_out_at: Mapped[datetime | None]
    # Consent per purpose ("reminder", "clinical", "marketing") where it differs
    # from core.consent.DEFAULTS; see core.consent.allows.
    consents: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    last_inbound_at: Mapped[datetime | None]
    # Proving who they are before records are shown: wrong dates of birth in a
    # row, and when too many locked record access; a one-time code (hashed).
    verify_failures: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    locked_at: Mapped[datetime | None]
    otp_hash: Mapped[str | None] = mapped_column(String(128))
    otp_expires_at: Mapped[datetime | None]

    patient: Mapped[Patient | None] = relationship()


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        Index("ix_appointments_practitioner_start", "practitioner_id", "start_at"),
        Index("ix_appointments_status_hold", "status", "hold_expires_at"),
        Index("ix_appointments_status_start", "status", "start_at"),
        # Small partial indexes over the rows the scheduler still has to look at.
        Index(
            "ix_appointments_unplanned",
            "id",
            sqlite_where=text("reminders_planned_at IS NULL AND status IN ('booked', 'confirmed')"),
            postgresql_where=text(
                "reminders_planned_at IS NULL AND status IN ('booked', 'confirmed')"
            ),
        ),
        Index(
            "ix_appointments_freed",
            "id",
            sqlite_where=text("waitlist_checked_at IS NULL AND status = 'cancelled'"),
            postgresql_where=text("waitlist_checked_at IS NULL AND status = 'cancelled'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="booked")
    visit_type: Mapped[str] = mapped_column(String(16), default="in_person")
    channel: Mapped[str | None] = mapped_column(String(16))
    hold_expires_at: Mapped[datetime | None]
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(64))
    checked_in_at: Mapped[datetime | None]
    # Set when core.reminders planned this appointment's notifications; cleared
    # (with its planned rows deleted) when the appointment moves.
    reminders_planned_at: Mapped[datetime | None]
    # Set when core.waitlist looked at this cancelled appointment's freed slot.
    waitlist_checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))
    updated_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))

    practitioner: Mapped[Practitioner] = relationship(lazy="joined")
    patient: Mapped[Patient] = relationship()


class InboundLog(Base):
    """Every inbound message once: the unique key turns provider retries into no-ops."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_message_id", name="uq_inbound_provider_id"),
        # An address's recent messages (the abuse guard reads them on every message).
        Index("ix_inbound_address_received", "channel", "address", "received_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[Any]] = mapped_column(default=list)
    received_at: Mapped[datetime]


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_conversation_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    flow: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(48))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    language: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(UTC))


class OutboxMessage(Base):
    """A reply waiting to be sent; written in the transaction that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
        # The waiting rows per address: claiming checks that none is ahead (order
        # per conversation). Partial, so sent rows (nearly all) cost nothing here.
        Index(
            "ix_outbox_waiting_address",
            "address",
            "channel",
            "id",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    payload: Mapped[dict[str, Any]] = mapped_column()
    purpose: Mapped[str] = mapped_column(String(16), default="reply")
    status: Mapped[str] = mapped_column(
        String(16), default="pending", server_default=text("'pending'")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    # The worker holding the claim ("host:pid"), while it is in flight.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), index=True)
    # How it left when not as queued: "template" or "sms" (WhatsApp window closed).
    sent_via: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


NOTIFICATION_KINDS = (
    "reminder",
    "video_link",
    "no_show",
    "waitlist_offer",
    "waitlist_gone",
    "prescription",
)
# Kinds that ask the patient something; their answers are read by flows.prompts.
ANSWERABLE_KINDS = ("reminder", "no_show", "waitlist_offer", "prescription")
NOTIFICATION_STATUSES = ("planned", "queued", "answered", "skipped", "cancelled")


class Notification(Base):
    """A message the clinic sends on its own: a reminder, the video-visit link,
    a no-show follow-up, a waitlist offer.

    Planned ahead with a due time and a latest useful time (``send_by``); the
    scheduler tick turns due rows into outbox rows in one statement, and the
    dispatcher renders them when it sends, from the appointment as it is then.
    ``dedupe_key`` makes planning the same message twice a no-op.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_notification_key"),
        Index("ix_notifications_due", "status", "due_at"),
        Index("ix_notifications_address", "channel", "address", "queued_at"),
        Index("ix_notifications_claim", "claim"),
        Index("ix_notifications_patient_due", "patient_id", "due_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(64))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16), default="reminder")
    offset_minutes: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime]
    send_by: Mapped[datetime]
    # Until when an answer ("1", "confirm") still acts on it.
    expires_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="planned")
    reason: Mapped[str | None] = mapped_column(String(32))  # why skipped or cancelled
    claim: Mapped[str | None] = mapped_column(String(32))
    queued_at: Mapped[datetime | None]
    answer: Mapped[str | None] = mapped_column(String(16))  # confirm, reschedule, cancel, take...
    answered_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]

    appointment: Mapped[Appointment | None] = relationship()


WAITLIST_STATUSES = ("waiting", "booked", "cancelled", "expired")


class WaitlistEntry(Base):
    """A patient waiting for an earlier slot with a practitioner or specialty,
    within ``[earliest_at, latest_at)``; ``appointment_id`` is the booking an
    earlier slot would replace, if they have one."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (Index("ix_waitlist_status_created", "status", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id"))
    specialty: Mapped[str | None] = mapped_column(String(100))
    earliest_at: Mapped[datetime]
    latest_at: Mapped[datetime]
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    visit_type: Mapped[str] = mapped_column(String(16), default="in_person")
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Alert(Base):
    """Something staff must see now: a red flag in a patient's message, a
    locked identity... Written in the transaction of the reply that caused it."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_status_created", "status", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    kind: Mapped[str] = mapped_column(String(32))  # red_flag, intake_emergency, ...
    level: Mapped[str] = mapped_column(String(16), default="emergency")  # emergency, urgent
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    rules: Mapped[list[Any]] = mapped_column(default=list)  # the red-flag rules that fired
    text: Mapped[str] = mapped_column(Text, default="")  # what triggered it (PHI: never logged)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, acknowledged
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]


class IntakeResponse(Base):
    """A patient's answers to a questionnaire before a visit (a FHIR
    QuestionnaireResponse in the making); ``answers`` maps an item's linkId to
    its answer, ``item`` is the question being asked now."""

    __tablename__ = "intake_responses"
    __table_args__ = (
        UniqueConstraint("appointment_id", "questionnaire", name="uq_intake_appointment"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    questionnaire: Mapped[str] = mapped_column(String(64))  # its id, e.g. "general-intake"
    version: Mapped[str] = mapped_column(String(16), default="1")
    language: Mapped[str] = mapped_column(String(8), default="en")
    status: Mapped[str] = mapped_column(String(16), default="in-progress")  # FHIR statuses
    item: Mapped[str | None] = mapped_column(String(64))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tries: Mapped[int] = mapped_column(Integer, default=0)  # failed tries at ``item``
    triage_level: Mapped[str | None] = mapped_column(String(16))
    triage_rules: Mapped[list[Any]] = mapped_column(default=list)
    summary: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class Pharmacy(Base):
    """A pharmacy patients can pick, imported from OpenStreetMap or CSV.

    ``source`` + ``ref`` (e.g. "osm", "node/123") identify it across imports,
    so importing a file again updates rows instead of adding them. ``cell`` is
    a spatial bucket of (lat, lon) (see core.pharmacies) for nearest-first
    search without a scan.
    """

    __tablename__ = "pharmacies"
    __table_args__ = (
        UniqueConstraint("source", "ref", name="uq_pharmacy_source_ref"),
        Index("ix_pharmacies_cell", "cell"),
        Index("ix_pharmacies_postcode", "postcode"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    postcode: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    phone: Mapped[str | None] = mapped_column(String(32))
    opening_hours: Mapped[str | None] = mapped_column(String(500))
    latitude: Mapped[float]
    longitude: Mapped[float]
    cell: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime]


PRESCRIPTION_STATUSES = ("issued", "sent", "ready", "dispensed", "cancelled", "expired")


class Prescription(Base):
    """An electronic prescription; ``pickup_code`` is what the pharmacy types."""

    __tablename__ = "prescriptions"
    __table_args__ = (UniqueConstraint("pickup_code", name="uq_prescription_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    pharmacy_id: Mapped[int | None] = mapped_column(ForeignKey("pharmacies.id"))
    status: Mapped[str] = mapped_column(String(16), default="issued")
    pickup_code: Mapped[str] = mapped_column(String(16))
    # A random token for the patient's printable page (/rx/{token}).
    page_token: Mapped[str] = mapped_column(String(64), unique=True)
    notes: Mapped[str | None] = mapped_column(Text)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    dispensed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]

    items: Mapped[list[PrescriptionItem]] = relationship(
        order_by="PrescriptionItem.id", cascade="all, delete-orphan"
    )
    practitioner: Mapped[Practitioner] = relationship()
    patient: Mapped[Patient] = relationship()
    pharmacy: Mapped[Pharmacy | None] = relationship()


class PrescriptionItem(Base):
    __tablename__ = "prescription_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(
        ForeignKey("prescriptions.id", ondelete="CASCADE"), index=True
    )
    medicine: Mapped[str] = mapped_column(String(200))
    strength: Mapped[str | None] = mapped_column(String(64))
    form: Mapped[str | None] = mapped_column(String(64))
    dose: Mapped[str] = mapped_column(String(300))  # instructions, as the doctor wrote them
    quantity: Mapped[int] = mapped_column(Integer)
    refills: Mapped[int] = mapped_column(Integer, default=0)


class RefillRequest(Base):
    """A patient asking for more of a prescription: in the prescriber's queue."""

    __tablename__ = "refill_requests"
    __table_args__ = (Index("ix_refills_status", "status", "requested_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("practitioners.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="requested")  # approved, denied
    note: Mapped[str | None] = mapped_column(Text)  # the prescriber's answer
    requested_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]


class CodeAttempt(Base):
    """A pickup code typed at the pharmacy page, kept to rate-limit guessing."""

    __tablename__ = "code_attempts"
    __table_args__ = (Index("ix_code_attempts_source_at", "source", "attempted_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64))  # who tried: client address or pharmacy
    ok: Mapped[bool] = mapped_column(Boolean)
    attempted_at: Mapped[datetime]


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for hot paths that skip the ORM's unit of work."""
    return cast(Table, model.__table__)


# -- the care team's side: users, sessions, audit, questions, video links -------------

USER_ROLES = ("admin", "staff", "doctor")


class User(Base):
    """Someone who logs in to the dashboard. A doctor is linked to the
    practitioner whose schedule, patients and questions are theirs."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("email", name="uq_user_email"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"))
    email: Mapped[str] = mapped_column(String(254))  # stored lower-case
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id"))
    # The doctor bot's chat with this user, once linked (see bots.doctor_bot).
    telegram_chat_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]

    practitioner: Mapped[Practitioner | None] = relationship()


class UserSession(Base):
    """A dashboard login (server-side, so logging out or disabling a user ends it)."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the cookie
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(lazy="joined")


class ApiToken(Base):
    """A bearer token for an integration, acting as its user (hash stored)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class AuditEntry(Base):
    """Who viewed or changed which patient data, when and from where.
    Append-only: the migration adds triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_patient_at", "patient_id", "at"),
        Index("ix_audit_user_at", "user_id", "at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    user_email: Mapped[str] = mapped_column(String(254), default="")  # kept if the user goes
    action: Mapped[str] = mapped_column(String(16))  # view, create, update, delete, login...
    entity: Mapped[str] = mapped_column(String(32))  # patient, appointment, question...
    entity_id: Mapped[int | None] = mapped_column(Integer)
    patient_id: Mapped[int | None] = mapped_column(Integer)  # no FK: the log outlives rows
    source: Mapped[str] = mapped_column(String(16), default="web")  # web, api, telegram, cli
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


QUESTION_STATUSES = ("open", "answered", "closed")


class QuestionThread(Base):
    """A patient's question for their practitioner (or the clinic's triage
    queue when ``practitioner_id`` is NULL), with its follow-ups."""

    __tablename__ = "question_threads"
    __table_args__ = (
        Index("ix_questions_status_due", "status", "due_at"),
        Index("ix_questions_practitioner_status", "practitioner_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    practitioner_id: Mapped[int | None] = mapped_column(ForeignKey("practitioners.id"))
    # Where the patient wrote from last: the answer goes back there.
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    # When the patient was told to expect an answer; open threads past it are late.
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]

    patient: Mapped[Patient] = relationship()
    practitioner: Mapped[Practitioner | None] = relationship()
    messages: Mapped[list[QuestionMessage]] = relationship(
        order_by="QuestionMessage.id", cascade="all, delete-orphan", back_populates="thread"
    )


class QuestionMessage(Base):
    __tablename__ = "question_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(
        ForeignKey("question_threads.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(16))  # patient, doctor, staff
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text, default="")  # PHI: never logged
    media: Mapped[list[Any]] = mapped_column(default=list)  # [{"url", "content_type"}]
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    created_at: Mapped[datetime]

    thread: Mapped[QuestionThread] = relationship(back_populates="messages")


class VideoLink(Base):
    """One participant's link to a video visit (``/v/{token}``); the token is
    derived from the row (see core.video), so revoking is setting ``revoked_at``."""

    __tablename__ = "video_links"
    __table_args__ = (UniqueConstraint("appointment_id", "role", name="uq_video_link_role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # patient, practitioner
    nonce: Mapped[str] = mapped_column(String(32))  # a new nonce makes a new token
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]

    appointment: Mapped[Appointment] = relationship()
