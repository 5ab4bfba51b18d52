"""What one Rasa action call works with: the service's settings and database
(one per action-server process), and per call the patient's identity,
language, time zone and the words of their latest message.

Every action runs its database work in one transaction on a worker thread
(``run_in_transaction``), so a slow query never blocks Sanic's event loop and
a failure leaves nothing half done.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from core.clock import Clock, SystemClock
from core.db import Database
from core.i18n import normalize_language, t
from core.logs import get_logger
from core.models import ChannelIdentity, Clinic, Patient
from core.nlu import detect_language
from core.patients import default_clinic, find_identity, get_or_create_identity
from core.settings import Settings, load_settings
from flows.engine import MAX_READ

from .senders import UnknownSender, identity_key

log = get_logger("telemed.rasa")
T = TypeVar("T")


class Runtime:
    """The settings, database and clock of this action-server process."""

    def __init__(self, settings: Settings, db: Database, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock


_runtime: Runtime | None = None
_lock = threading.Lock()


def runtime() -> Runtime:
    """Built on first use, in the process that serves (Sanic's worker), from
    the same ``TELEMED_`` settings as the rest of the service."""
    global _runtime
    with _lock:
        if _runtime is None:
            settings = load_settings()
            db = Database(
                settings.database_url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
            )
            _runtime = Runtime(settings, db, SystemClock())
        return _runtime


def use_runtime(value: Runtime | None) -> None:
    """Serve actions from ``value`` (tests and embedding); None: from settings again."""
    global _runtime
    with _lock:
        _runtime = value


@dataclass
class Turn:
    """One action call, inside its transaction."""

    session: Session
    settings: Settings
    now: datetime
    clinic: Clinic
    # None: not seen before (a look-up creates none), or the sender id names nobody.
    identity: ChannelIdentity | None
    sender_problem: str | None  # why the sender id can be nobody (see senders.py)
    lang: str
    tz: str
    text: str  # the patient's latest message, as Rasa received it

    def t(self, key: str, **values: object) -> str:
        return t(self.lang, key, **values)

    @property
    def patient(self) -> Patient | None:
        if self.identity is None or self.identity.patient_id is None:
            return None
        return self.session.get(Patient, self.identity.patient_id)


def latest_text(tracker: Any) -> str:
    """The patient's latest message as the engine reads it: spaces folded, and
    only the first MAX_READ characters (all of it is Rasa's to keep)."""
    text = str((tracker.latest_message or {}).get("text") or "")
    return " ".join(text.split())[:MAX_READ]


class NoClinic(RuntimeError):
    """The database has no clinic: run ``telemed demo`` or create one."""


def _language(
    tracker_lang: object, identity: ChannelIdentity | None, text: str, clinic: Clinic
) -> str:
    """The tracker's language slot, else what we know of the patient, else
    the language of their words, else the clinic's."""
    if isinstance(tracker_lang, str) and tracker_lang.strip():
        return normalize_language(tracker_lang)
    if identity is not None:
        known = identity.language or (identity.patient.language if identity.patient else None)
        if known:
            return normalize_language(known)
    detected = detect_language(text) if text.strip() else None
    return normalize_language(detected or clinic.default_language)


def open_turn(session: Session, rt: Runtime, tracker: Any, *, create: bool) -> Turn:
    """The turn for ``tracker``; the identity is created on first contact only
    when ``create`` (an action that may book), so a look-up leaves no row."""
    clinic = default_clinic(session)
    if clinic is None:
        raise NoClinic("no clinic in the database: run `telemed demo` or create one")
    now = rt.clock.now()
    text = latest_text(tracker)
    identity: ChannelIdentity | None = None
    problem: str | None = None
    try:
        channel, address = identity_key(
            tracker.sender_id, rt.settings.rasa_sender_ids, rt.settings.default_region
        )
    except UnknownSender as exc:
        problem = str(exc)
        log.info("rasa_unknown_sender", reason=problem)
    else:
        if create:
            identity = get_or_create_identity(session, channel, address, now=now)
        else:
            identity = find_identity(session, channel, address)
    patient_tz = identity.patient.timezone if identity and identity.patient else None
    return Turn(
        session=session,
        settings=rt.settings,
        now=now,
        clinic=clinic,
        identity=identity,
        sender_problem=problem,
        lang=_language(tracker.get_slot("language"), identity, text, clinic),
        tz=patient_tz or clinic.timezone,
        text=text,
    )


async def run_in_transaction(work: Callable[[Session, Runtime], T]) -> T:
    """``work(session, runtime)`` in one transaction on a worker thread."""
    rt = runtime()

    def call() -> T:
        with rt.db.transaction() as session:
            return work(session, rt)

    return await asyncio.to_thread(call)
