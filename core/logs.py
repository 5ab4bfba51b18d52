"""Structured logs that never carry patient data above DEBUG.

``configure`` sends every log line of the process, structlog's and the
standard library's (uvicorn, SQLAlchemy, the provider SDKs...), through one
handler whose formatter runs the same processors, ``redact`` among them, and
renders console lines or one JSON object per line. Nothing reaches the stream
without passing the redactor.

``redact``, at INFO and above: values under patient-data keys
(``SENSITIVE_KEYS``) become ``[redacted]``, and so does anything that looks
like a phone number inside any other string, the event text included.

Context: ``request_id`` (bound per HTTP request by ``web.requestlog``) and
``conversation_id`` (bound by ``flows.engine`` while a message is handled)
are structlog contextvars, so every line logged meanwhile carries them, in
the handler's thread too (Starlette's threadpool runs each call in a copy of
the request's context).

Loggers that print request URLs or bodies at INFO are held at WARNING:
``twilio.http_client``, ``httpx`` (its URL carries the Telegram bot token),
``sqlalchemy``; uvicorn's access log is off (``web.requestlog`` writes one
line per request with the route template instead of the raw path).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import IO, Any

import structlog
from structlog.typing import Processor

# Keys whose values are patient data (or secrets) wherever they appear.
SENSITIVE_KEYS = frozenset(
    {
        "body",
        "text",
        "message",
        "message_text",
        "caption",
        "content",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "username",
        "patient_name",
        "profile_name",
        "phone",
        "phone_number",
        "address",
        "from",
        "from_",
        "to",
        "chat_id",
        "wa_id",
        "email",
        "date_of_birth",
        "birth_date",
        "dob",
        "password",
        "token",
        "secret",
        "pickup_code",
    }
)
# Never phone numbers; scanning them would only mangle ids (a hex request id
# can hold a run of digits).
_UNSCANNED = frozenset({"event", "level", "logger", "request_id", "timestamp"})
# A run of digits and separators; it is a phone number (or a date, or an IP:
# redacted too) when it holds at least 7 digits.
_PHONE = re.compile(r"\+?\(?\d[\d\s().-]{5,}\d")
_MIN_DIGITS = 7
# SQLAlchemy errors quote the statement's parameters: message bodies, numbers.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
REDACTED = "[redacted]"

# Held at this level whatever the configured one (see the module docstring).
QUIET_LOGGERS = {
    "twilio": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "apscheduler": logging.WARNING,  # a line per tick
    "alembic": logging.WARNING,  # a line per readiness probe
}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}


def _phone(match: re.Match[str]) -> str:
    found = match.group()
    return REDACTED if sum(c.isdigit() for c in found) >= _MIN_DIGITS else found


def scrub(value: str) -> str:
    """``value`` with anything that looks like a phone number redacted."""
    return _PHONE.sub(_phone, value)


def looks_like_phone(value: str) -> bool:
    return scrub(value) != value


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: REDACTED if k in SENSITIVE_KEYS else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v) for v in value]
    return value


def redact(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Patient data out of one event at INFO and above (DEBUG keeps everything)."""
    if method == "debug":
        return event
    for key, value in event.items():
        if key in SENSITIVE_KEYS:
            event[key] = REDACTED
        elif key not in _UNSCANNED and not isinstance(value, (int, float, bool)):
            event[key] = _scrub_value(value)
    message = event.get("event")
    if isinstance(message, str):
        event["event"] = scrub(message)
    exception = event.get("exception")
    if isinstance(exception, str):
        event["exception"] = _SQL_PARAMETERS.sub("[parameters: [redacted]]", exception)
    return event


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}") from None


def configure(
    level: str | int = "info",
    *,
    json: bool = False,
    stream: IO[str] | None = None,
    cache: bool = True,
) -> None:
    """Route structlog and the standard library through one redacting handler
    on ``stream`` (stderr), replacing the root logger's handlers.

    ``cache=False`` keeps structlog from caching loggers on first use, so a
    later ``configure`` (or ``structlog.reset_defaults``) still applies to
    them: for tests.
    """
    numeric = _level(level)
    # Exceptions become text before redacting: their messages can quote data.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.format_exc_info,
        redact,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(numeric, floor))
    # Their own handlers (uvicorn's default config) would print unredacted lines.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def _default() -> None:
    """Before ``configure`` (``telemed chat`` and the other commands, tests):
    warnings and errors only, redacted, handed to the standard library, which
    prints them on stderr; never structlog's own default of every level on stdout."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            redact,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=False,
    )


if not structlog.is_configured():
    _default()
