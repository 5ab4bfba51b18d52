"""Service settings, read from the environment (prefix ``TELEMED_``).

A bad value stops start-up with a message naming the setting; see
``load_settings``. The list of settings is part of the public contract.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import time, timedelta
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "TELEMED_"
_OFFSET = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days"}


class SettingsError(Exception):
    """A setting has a value the service cannot run with."""


def parse_offsets(value: str) -> tuple[timedelta, ...]:
    """``"72h,24h,2h"`` -> offsets before the visit, largest first."""
    offsets: list[timedelta] = []
    for part in value.split(","):
        if not part.strip():
            continue
        match = _OFFSET.match(part)
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a duration like 72h, 30m or 3d")
        amount, unit = int(match.group(1)), match.group(2)
        if amount <= 0:
            raise ValueError(f"{part.strip()!r} must be greater than zero")
        offsets.append(timedelta(**{_UNIT[unit]: amount}))
    return tuple(sorted(set(offsets), reverse=True))


_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_quiet_hours(value: str) -> tuple[time, time] | None:
    """``"21:00-08:00"`` -> (start, end) in local time, wrapping midnight; "" -> None."""
    if not value.strip():
        return None
    match = _QUIET.match(value)
    if match is None:
        raise ValueError(f"{value.strip()!r} is not a range like 21:00-08:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"{value.strip()!r} has an hour past 23:59")
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError(f"{value.strip()!r} starts and ends at the same time")
    return start, end


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str = "sqlite:///var/telemed.db"
    # PostgreSQL connections each process may hold: the pool, plus as many
    # again for bursts. Processes x (pool + overflow) must stay under the
    # server's max_connections (100 by default).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=20, ge=0, le=200)
    public_url: str = "http://127.0.0.1:8000"
    clinic_timezone: str = "UTC"
    # Signs sessions and tokens; the default is for a laptop, never production.
    secret_key: str = "dev-insecure-change-me"  # noqa: S105
    default_language: Literal["en", "es"] = "en"

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    # An approved WhatsApp content template (HX...) with one body variable; sent
    # instead of free text outside the 24 hours after the patient's last message.
    whatsapp_template_sid: str | None = None
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org"

    reminder_offsets: str = "72h,24h,2h"
    # No reminder is sent in these local hours (the patient's zone); "" for none.
    quiet_hours: str = "21:00-08:00"
    # At most this many reminders a patient gets in one local day.
    reminders_per_day: int = Field(default=2, ge=1, le=24)
    # Extra reminder offsets for patients who missed a visit before ("" = off).
    risk_reminder_offsets: str = ""
    # A visit not checked in this long after its start becomes a no-show.
    no_show_grace_minutes: int = Field(default=30, ge=5, le=24 * 60)
    # A freed slot is offered to this many waitlisted patients, each with this
    # long to reply; the first valid reply takes it.
    waitlist_offer_count: int = Field(default=3, ge=1, le=50)
    waitlist_claim_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Said in every emergency reply (a clinic row may set its own).
    emergency_number: str = Field(default="911", min_length=1, max_length=32)
    crisis_line: str = Field(default="988", min_length=1, max_length=64)
    # Where urgent alerts also go as a message, as "channel:address"
    # (e.g. "sms:+15555550100" or "telegram:123456"); unset: dashboard only.
    oncall_address: str | None = None
    # An optional extra bearer token for the REST API acting as an admin
    # integration (older set-ups); per-user tokens come from `telemed users token`.
    api_token: str | None = None
    scheduler_tick_seconds: float = Field(default=15, gt=0, le=3600)
    video_provider: Literal["jitsi", "twilio"] = "jitsi"
    jitsi_base_url: str = "https://meet.jit.si"
    jitsi_app_id: str | None = None
    jitsi_app_secret: str | None = None
    # Twilio Video (VIDEO_PROVIDER=twilio) signs access tokens with an API key.
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: str | None = None
    # A video link opens this many minutes before the visit, until its end.
    video_early_minutes: int = Field(default=15, ge=0, le=24 * 60)

    # Patients are told to expect an answer to a question within this many
    # working days (Monday to Friday); a clinic row may set its own.
    question_answer_days: int = Field(default=1, ge=1, le=30)
    # The doctors' own Telegram bot (bots.doctor_bot): new questions go to
    # linked doctors, their replies go into the thread. Unset: off.
    telegram_doctor_bot_token: str | None = None
    telegram_doctor_webhook_secret: str | None = None
    # Dashboard logins last this long.
    session_hours: int = Field(default=12, ge=1, le=24 * 30)

    # How long a slot stays held while the patient confirms it.
    hold_minutes: int = Field(default=10, ge=1, le=120)
    # A conversation idle this long starts over at the menu on its next message.
    conversation_timeout_minutes: int = Field(default=60, ge=1, le=60 * 24 * 7)
    # Phone numbers typed without a country code are read in this region.
    default_region: str = Field(default="US", min_length=2, max_length=2)
    # SMS-pumping guard: an address sending more than this many messages within
    # 60 s gets no replies for the cooldown (its messages are still stored).
    inbound_max_per_minute: int = Field(default=20, ge=1, le=10_000)
    inbound_cooldown_minutes: int = Field(default=10, ge=1, le=60 * 24)

    # Send rates the outbox dispatcher keeps to, per sender, in messages a second:
    # a US long code sends 1 SMS segment a second, WhatsApp 80, a Telegram bot 30
    # overall (and 1 a second to any one chat, fixed in bots/ratelimit.py).
    sms_rate_per_second: float = Field(default=1.0, gt=0, le=10_000)
    whatsapp_rate_per_second: float = Field(default=80.0, gt=0, le=10_000)
    telegram_rate_per_second: float = Field(default=30.0, gt=0, le=10_000)

    # The outbox: a worker's claim on a row lasts this long (a worker killed
    # mid-send leaves its rows to others after it); one provider call may take
    # this long before it counts as failed; while a provider is down (5xx,
    # timeouts, unreachable) a message is retried until it is this old.
    outbox_lease_seconds: float = Field(default=60, ge=2, le=3600)
    send_timeout_seconds: float = Field(default=15, gt=0, le=300)
    outbox_give_up_hours: float = Field(default=24, gt=0, le=24 * 14)

    # Logs: one JSON object per line (for a log pipeline) or console lines.
    # Message bodies, names and phone numbers are redacted at INFO and above.
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # worker and scheduler roles serve GET /metrics (this process's own
    # numbers) on this port; unset: no HTTP listener in those roles.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # The Rasa action server (`telemed rasa-actions`, docs/rasa.md). What Rasa's
    # sender ids are: "rasa" (its own conversation ids: patients of their own),
    # "phone" (Rasa's Twilio connectors: the same patient as that number's SMS
    # or WhatsApp here) or "telegram" (Rasa's Telegram connector: chat ids).
    rasa_sender_ids: Literal["rasa", "phone", "telegram"] = "rasa"
    # When set, calls to /webhook and /actions must carry it (endpoints.yml's
    # action_endpoint token); the action server books as any sender it is told.
    rasa_actions_token: str | None = None
    # The clinic's Rasa server (run with --enable-api), for the messages the
    # clinic starts (reminders...) to patients who only talk to it; and its
    # --auth-token. Unset: those patients get none (channels/rasa.py).
    rasa_url: str | None = None
    rasa_token: str | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # psycopg 3 is the driver we ship; the bare scheme would ask for psycopg2.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("public_url", "twilio_api_base_url", "telegram_api_base_url", "jitsi_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("clinic_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/Madrid)"
            ) from exc
        return value

    @field_validator("reminder_offsets")
    @classmethod
    def _offsets(cls, value: str) -> str:
        if not parse_offsets(value):
            raise ValueError("needs at least one offset, like 72h,24h,2h")
        return value

    @field_validator("risk_reminder_offsets")
    @classmethod
    def _risk_offsets(cls, value: str) -> str:
        parse_offsets(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        parse_quiet_hours(value)
        return value.strip()

    @field_validator("oncall_address")
    @classmethod
    def _oncall(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        channel, sep, address = value.strip().partition(":")
        if not sep or channel not in ("sms", "whatsapp", "telegram") or not address.strip():
            raise ValueError("must be channel:address, like sms:+15555550100 or telegram:123456")
        return f"{channel}:{address.strip()}"

    @field_validator("rasa_actions_token", "rasa_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("rasa_url")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return cls._url(value.strip())

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        return value.upper()

    @field_validator("log_format", "log_level", "rasa_sender_ids", mode="before")
    @classmethod
    def _case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lease(self) -> Settings:
        """A pass (sends plus waiting for a rate slot, at most 3 s) must end
        inside the claim's lease, or another worker could claim and send the
        same rows again."""
        if self.outbox_lease_seconds < self.send_timeout_seconds * 2 + 5:
            raise ValueError(
                f"{ENV_PREFIX}OUTBOX_LEASE_SECONDS ({self.outbox_lease_seconds:g}) must be at "
                f"least twice {ENV_PREFIX}SEND_TIMEOUT_SECONDS "
                f"({self.send_timeout_seconds:g}) plus 5"
            )
        return self

    @model_validator(mode="after")
    def _video(self) -> Settings:
        """Twilio Video signs tokens with an API key; Jitsi tokens need both halves."""
        missing: list[str] = []
        if self.video_provider == "twilio":
            missing = [
                ENV_PREFIX + name.upper()
                for name in ("twilio_account_sid", "twilio_api_key_sid", "twilio_api_key_secret")
                if not getattr(self, name)
            ]
        elif bool(self.jitsi_app_id) != bool(self.jitsi_app_secret):
            missing = [ENV_PREFIX + ("JITSI_APP_SECRET" if self.jitsi_app_id else "JITSI_APP_ID")]
        if missing:
            why = (
                f"{ENV_PREFIX}VIDEO_PROVIDER=twilio"
                if self.video_provider == "twilio"
                else "Jitsi tokens (the app id and secret go together)"
            )
            raise ValueError(f"{', '.join(missing)} must be set for {why}")
        return self

    @property
    def reminder_offset_list(self) -> tuple[timedelta, ...]:
        return parse_offsets(self.reminder_offsets)

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


def load_settings() -> Settings:
    """Read settings, turning a validation error into one line per bad setting."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
            message = str(err["msg"]).removeprefix("Value error, ")
            # A rule across settings names them in its message.
            problems.append(f"{name}: {message}" if err["loc"] else message)
        raise SettingsError("bad setting " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
