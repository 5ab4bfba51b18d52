"""Structured logs that never carry patient data above DEBUG.

Message bodies, names and phone numbers are redacted by a processor in
every log line at INFO and above, whatever the caller passed.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are patient data wherever they appear.
SENSITIVE_KEYS = frozenset(
    {
        "body",
        "text",
        "message_text",
        "name",
        "patient_name",
        "phone",
        "address",
        "from_",
        "to",
        "date_of_birth",
        "dob",
        "profile_name",
    }
)
_PHONE = re.compile(r"\+?\d[\d\s().-]{7,}\d")
REDACTED = "[redacted]"


def redact(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if method == "debug":
        return event
    for key, value in list(event.items()):
        if key in SENSITIVE_KEYS:
            event[key] = REDACTED
        elif isinstance(value, str) and key != "event":
            event[key] = _PHONE.sub(REDACTED, value)
    if isinstance(event.get("event"), str):
        event["event"] = _PHONE.sub(REDACTED, event["event"])
    return event


def configure(level: str = "INFO", *, json: bool = False) -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            redact,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer()
            if json
            else structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
