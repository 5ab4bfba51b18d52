"""Video visits: each participant's ``/v/{token}`` link, its time window, and
the room and provider token the page opens.

* A link is a ``video_links`` row per (appointment, role). Its token is
  ``{id}.{signature}``, the signature an HMAC (``TELEMED_SECRET_KEY``) over
  the row's id, role and nonce: derived, never stored, so the scheduled
  notification can write it when it is planned and a leaked database holds
  no working link.
* Revoking sets ``revoked_at``; the link stays dead (``link_for`` hands back
  the revoked row, never a fresh one). ``reissue`` gives the row a new nonce,
  which is a new token; the old token no longer verifies. Planned or queued
  link notifications are rewritten with the new link in the same
  transaction, so the patient is never sent a dead one.
* A link opens ``early_minutes`` before the visit and closes at its end.
* Rooms are named from an HMAC of the appointment id, so they cannot be
  guessed. Jitsi access tokens follow the token spec
  (lib-jitsi-meet doc/tokens.md); Twilio Video tokens are made in
  ``web.video`` (core does not import twilio).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jwt
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.i18n import format_clock, format_when, normalize_language, t
from core.models import Appointment, ChannelIdentity, Notification, VideoLink, table_of
from core.settings import Settings

Role = Literal["patient", "practitioner"]
ROLES: tuple[Role, ...] = ("patient", "practitioner")
State = Literal["early", "open", "ended", "revoked", "cancelled"]

ACTIVE = ("booked", "confirmed")
EARLY_MINUTES = 15  # TELEMED_VIDEO_EARLY_MINUTES' default, for rows that do not say
SIGNATURE_CHARS = 22  # 132 bits of the HMAC: unguessable, short enough for an SMS
_TOKEN = re.compile(rf"^([1-9][0-9]{{0,9}})\.([A-Za-z0-9_-]{{{SIGNATURE_CHARS}}})$")
MAX_ID = 2**31 - 1  # an INTEGER key: a bigger number is no row (and PostgreSQL would refuse it)


# -- links and tokens ------------------------------------------------------------


def _nonce() -> str:
    return secrets.token_urlsafe(16)  # 22 characters; the column holds 32


def _ensure(session: Session, appointment_ids: Collection[int], role: str, now: datetime) -> None:
    """Create the missing ``role`` links of these appointments. An INSERT that
    skips existing rows, so a scheduler tick and a patient asking for the
    link at the same moment both end with the one row."""
    if not appointment_ids:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(table_of(VideoLink))
        .values(
            [
                {
                    "appointment_id": appointment_id,
                    "role": role,
                    "nonce": _nonce(),
                    "created_at": now,
                    "revoked_at": None,
                    "opened_at": None,
                }
                for appointment_id in sorted(set(appointment_ids))
            ]
        )
        .on_conflict_do_nothing(index_elements=["appointment_id", "role"])
    )


def _links(session: Session, appointment_ids: Collection[int], role: str) -> dict[int, VideoLink]:
    rows = session.scalars(
        select(VideoLink).where(
            VideoLink.appointment_id.in_(sorted(set(appointment_ids))), VideoLink.role == role
        )
    )
    return {row.appointment_id: row for row in rows}


def links_for(
    session: Session, appointment_ids: Collection[int], role: Role, now: datetime
) -> dict[int, VideoLink]:
    """Each appointment's ``role`` link, created where missing (revoked ones stay revoked)."""
    if not appointment_ids:
        return {}
    found = _links(session, appointment_ids, role)
    missing = set(appointment_ids) - set(found)
    if missing:
        _ensure(session, missing, role, now)
        found.update(_links(session, missing, role))
    return found


def link_for(session: Session, appointment: Appointment, role: Role, now: datetime) -> VideoLink:
    """The participant's link (get or create). A revoked link comes back
    revoked: only ``reissue`` makes a working one again."""
    if role not in ROLES:
        raise ValueError(f"role must be patient or practitioner, not {role!r}")
    return links_for(session, [appointment.id], role, now)[appointment.id]


def token_of(link: VideoLink, secret: str) -> str:
    """``{id}.{signature}``: the same every time for the same row and nonce."""
    message = f"video:{link.id}:{link.role}:{link.nonce}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(digest).decode().rstrip("=")[:SIGNATURE_CHARS]
    return f"{link.id}.{signature}"


def resolve(session: Session, token: object, secret: str) -> VideoLink | None:
    """The link a token names, when its signature is right (revoked ones too:
    see ``state``); anything malformed, unknown or forged is ``None``."""
    if not isinstance(token, str) or len(token) > 64:
        return None
    match = _TOKEN.match(token)
    if match is None:
        return None
    link_id = int(match.group(1))
    if link_id > MAX_ID:
        return None
    link = session.get(VideoLink, link_id)
    if link is None:
        return None
    expected = token_of(link, secret)
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return None
    return link


def url_of(link: VideoLink, *, public_url: str, secret: str) -> str:
    return f"{public_url.rstrip('/')}/v/{token_of(link, secret)}"


def patient_link_url(
    session: Session, appointment: Appointment, settings: Settings, now: datetime
) -> str:
    """The patient's ``/v/{token}`` address for this visit."""
    link = link_for(session, appointment, "patient", now)
    return url_of(link, public_url=settings.public_url, secret=settings.secret_key)


def revoke(session: Session, appointment_id: int, *, role: Role | None, now: datetime) -> int:
    """Kill the visit's link for ``role`` (both when ``None``); returns how many
    working links were revoked. A later ``link_for`` does not revive them."""
    query = select(VideoLink).where(
        VideoLink.appointment_id == appointment_id, VideoLink.revoked_at.is_(None)
    )
    if role is not None:
        query = query.where(VideoLink.role == role)
    rows = list(session.scalars(query))
    for row in rows:
        row.revoked_at = now
    session.flush()
    return len(rows)


def reissue(
    session: Session, appointment: Appointment, role: Role, settings: Settings, now: datetime
) -> VideoLink:
    """A new working link for ``role`` (a new nonce: every older token is dead),
    and the visit's link notifications not sent yet now carry it."""
    link = link_for(session, appointment, role, now)
    link.nonce = _nonce()
    link.revoked_at = None
    link.opened_at = None
    link.created_at = now
    session.flush()
    if role == "patient":
        pending = session.scalars(
            select(Notification).where(
                Notification.appointment_id == appointment.id,
                Notification.kind == "video_link",
                Notification.status.in_(("planned", "queued")),
            )
        )
        for n in pending:
            n.data = {
                **(n.data or {}),
                **notification_data(
                    link,
                    public_url=settings.public_url,
                    secret=settings.secret_key,
                    early_minutes=settings.video_early_minutes,
                ),
            }
    return link


def notification_data(
    link: VideoLink, *, public_url: str, secret: str, early_minutes: int
) -> dict[str, object]:
    """What a ``video_link`` notification keeps: the address to send, the row
    (a link revoked meanwhile is not sent) and when the link opens, for the
    text written at send time (``core.notices``)."""
    return {
        "link": url_of(link, public_url=public_url, secret=secret),
        "video_link_id": link.id,
        "early_minutes": early_minutes,
    }


def queue_resend(
    session: Session, appointment: Appointment, link: VideoLink, settings: Settings, now: datetime
) -> Notification | None:
    """Send the patient their (new) link now: a ``video_link`` notification due
    at once, to where the visit's link notification goes; the scheduler's next
    tick queues it and the dispatcher writes it (``core.notices``). ``None``
    when the visit's notifications are not planned yet (the plan will carry
    the new link) or it is over."""
    if appointment.status not in ACTIVE or appointment.end_at <= now:
        return None
    first = session.scalars(
        select(Notification)
        .where(Notification.appointment_id == appointment.id, Notification.kind == "video_link")
        .order_by(Notification.id)
        .limit(1)
    ).first()
    if first is None:
        return None
    row = Notification(
        kind="video_link",
        dedupe_key=f"video_link:{appointment.id}:{link.nonce}"[:64],
        appointment_id=appointment.id,
        patient_id=appointment.patient_id,
        channel=first.channel,
        address=first.address,
        purpose=first.purpose,
        due_at=now,
        send_by=appointment.end_at,
        status="planned",
        data=notification_data(
            link,
            public_url=settings.public_url,
            secret=settings.secret_key,
            early_minutes=settings.video_early_minutes,
        ),
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


# -- when a link works ------------------------------------------------------------


def window(appointment: Appointment, early_minutes: int) -> tuple[datetime, datetime]:
    """(opens, closes): ``early_minutes`` before the start, to the end."""
    return appointment.start_at - timedelta(minutes=early_minutes), appointment.end_at


def state(link: VideoLink, now: datetime, early_minutes: int) -> State:
    if link.revoked_at is not None:
        return "revoked"
    appointment = link.appointment
    if appointment.status == "completed":
        return "ended"
    if appointment.status not in ACTIVE:
        return "cancelled"  # cancelled, no-show, or a hold that never became a booking
    opens, closes = window(appointment, early_minutes)
    if now < opens:
        return "early"
    if now >= closes:
        return "ended"
    return "open"


def mark_opened(link: VideoLink, now: datetime) -> None:
    if link.opened_at is None:
        link.opened_at = now


# -- rooms and provider tokens -----------------------------------------------------


def room_name(appointment_id: int, secret: str) -> str:
    """The visit's room: stable, and not guessable from the appointment number."""
    digest = hmac.new(secret.encode(), f"visit:{appointment_id}".encode(), hashlib.sha256).digest()
    return "telemed-" + base64.b32encode(digest[:15]).decode().lower()


def jitsi_domain(base_url: str) -> tuple[str, str | None]:
    """(host[:port], tenant) of a Jitsi base URL; the tenant is the first path
    segment (``https://8x8.vc/my-tenant``), None for a plain deployment."""
    parts = urlsplit(base_url)
    tenant = parts.path.strip("/").split("/")[0] or None
    return parts.netloc.lower(), tenant


def jitsi_room_path(base_url: str, room: str) -> str:
    """The room as the IFrame API's ``roomName`` wants it (``tenant/room`` on a tenant)."""
    _domain, tenant = jitsi_domain(base_url)
    return f"{tenant}/{room}" if tenant else room


def jitsi_jwt(
    *,
    app_id: str,
    app_secret: str,
    base_url: str,
    room: str,
    user_id: str,
    name: str,
    email: str | None,
    moderator: bool,
    not_before: datetime,
    expires: datetime,
) -> str:
    """An HS256 token per lib-jitsi-meet's doc/tokens.md: ``iss`` the app id,
    ``aud`` "jitsi", ``sub`` the tenant or else the domain (lower case),
    ``room`` the bare room name, ``nbf``/``exp``, and ``context.user`` whose
    fields must all be strings (the spec: numbers or null raise)."""
    host = urlsplit(base_url).hostname or ""
    _domain, tenant = jitsi_domain(base_url)
    user = {"id": user_id, "name": name, "moderator": "true" if moderator else "false"}
    if email:
        user["email"] = email
    claims = {
        "aud": "jitsi",
        "iss": app_id,
        "sub": (tenant or host).lower(),
        "room": room,
        "iat": int(not_before.timestamp()),
        "nbf": int(not_before.timestamp()),
        "exp": int(expires.timestamp()),
        "context": {"user": user},
    }
    return jwt.encode(claims, app_secret, algorithm="HS256")


# -- what the patient is told -------------------------------------------------------


def link_text(
    lang: str,
    tz: str,
    appointment: Appointment,
    link_url: str,
    now: datetime,
    early_minutes: int,
) -> str:
    """The message carrying the patient's link: "join here" once it works,
    else when it starts working."""
    practitioner = appointment.practitioner.name
    opens, _closes = window(appointment, early_minutes)
    start = format_clock(appointment.start_at, lang, tz)
    if now >= opens:
        return t(lang, "reminder.video_link", practitioner=practitioner, time=start, link=link_url)
    zone = ZoneInfo(tz)
    same_day = appointment.start_at.astimezone(zone).date() == now.astimezone(zone).date()
    if same_day:
        return t(
            lang,
            "video.link_early_today",
            practitioner=practitioner,
            time=start,
            opens=format_clock(opens, lang, tz),
            link=link_url,
        )
    return t(
        lang,
        "video.link_early",
        practitioner=practitioner,
        when=format_when(appointment.start_at, lang, tz),
        opens=format_clock(opens, lang, tz),
        link=link_url,
    )


def patient_language(session: Session, appointment: Appointment) -> tuple[str, str]:
    """(language, time zone) to show the patient's page in: theirs, else the
    language of the identity they wrote from last, else the clinic's."""
    patient = appointment.patient
    clinic = appointment.practitioner.clinic
    lang = patient.language or session.scalar(
        select(ChannelIdentity.language)
        .where(ChannelIdentity.patient_id == patient.id, ChannelIdentity.language.is_not(None))
        .order_by(ChannelIdentity.id.desc())
        .limit(1)
    )
    return normalize_language(lang or clinic.default_language), (
        patient.timezone or clinic.timezone or "UTC"
    )
