"""This process's own Prometheus metrics: inbound messages, flow timing, sends,
reminder lag.

They live on a registry of their own (``REGISTRY``), not prometheus_client's
global one, so a test reads exactly what the code counted and nothing a
library registered. ``GET /metrics`` (``web.metrics``) serves them next to
the database-derived totals of ``core.metrics``; the worker and scheduler
roles serve the same on ``TELEMED_METRICS_PORT``.

Every label value comes from a fixed set (a channel name, ok/failed, a known
error code, else ``other``), so no caller can grow the number of series, and
no phone number, name or message text can ever become a label.

Callers use the functions, not the metric objects:

* ``inbound(channel, duplicate=...)``: ``flows.engine`` once a message is
  recorded (a provider's retry of one already seen counts as a duplicate);
* ``flow_step(channel, seconds)``: ``flows.engine``, time to handle one message;
* ``send_result(channel, ok, code)``: the dispatcher, once per provider call;
* ``reminders_queued(lags)``: ``core.reminders``, seconds between each
  reminder's due time and the tick that put it in the outbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

from core.messages import CHANNELS as _PATIENT_CHANNELS

REGISTRY = CollectorRegistry(auto_describe=True)

# "doctor_telegram" is the doctors' own bot (core.questions.DOCTOR_CHANNEL).
CHANNELS = frozenset({*_PATIENT_CHANNELS, "doctor_telegram"})
OTHER = "other"

# Send failure codes kept as they are; anything else is "other".
SEND_CODES = frozenset(
    {
        "timeout",
        "unreachable",
        "rate_limited",
        "opted_out",
        "blocked",
        "rejected",
        "client_error",
        # Twilio (https://www.twilio.com/docs/api/errors): auth, rate limit,
        # bad or unreachable number, opted out, body, WhatsApp window, carrier.
        *(
            f"twilio_{code}"
            for code in (
                20003,
                20429,
                21211,
                21408,
                21606,
                21610,
                21612,
                21614,
                21617,
                21619,
                30003,
                30004,
                30005,
                30006,
                30007,
                30008,
                63016,
                63032,
            )
        ),
    }
)
# HTTP statuses kept as they are; other 4xx/5xx become http_4xx / http_5xx.
HTTP_STATUSES = frozenset({400, 401, 403, 404, 408, 409, 413, 425, 429, 500, 502, 503, 504})
_HTTP = re.compile(r"http_([1-5])(\d\d)")

# Flow steps take milliseconds; the top buckets catch lock waits and slow disks.
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A tick every 15 s by default: lag under a minute is normal, hours mean no scheduler ran.
_LAG_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0)

_INBOUND = Counter(
    "telemed_inbound_messages",
    "Inbound patient messages recorded, by channel (provider retries not counted).",
    ["channel"],
    registry=REGISTRY,
)
_DUPLICATES = Counter(
    "telemed_inbound_duplicates",
    "Inbound messages a provider delivered again (same provider id), ignored.",
    ["channel"],
    registry=REGISTRY,
)
_FLOW_STEP = Histogram(
    "telemed_flow_step_seconds",
    "Time to handle one inbound message: its transaction, flow step and replies queued.",
    ["channel"],
    buckets=_STEP_BUCKETS,
    registry=REGISTRY,
)
_SEND_ATTEMPTS = Counter(
    "telemed_send_attempts",
    "Provider send calls, by channel and result (ok, failed).",
    ["channel", "result"],
    registry=REGISTRY,
)
_SEND_FAILURES = Counter(
    "telemed_send_failures",
    "Failed provider send calls, by channel and error code (other: not a known code).",
    ["channel", "code"],
    registry=REGISTRY,
)
_REMINDER_LAG = Histogram(
    "telemed_reminder_lag_seconds",
    "How long after its due time a reminder was put in the outbox.",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)


def channel_label(channel: str) -> str:
    return channel if channel in CHANNELS else OTHER


def code_label(code: str | None) -> str:
    """A send failure code as a bounded label value."""
    if not code:
        return OTHER
    code = code.strip().lower()
    if code in SEND_CODES:
        return code
    http = _HTTP.fullmatch(code)
    if http is not None:
        status = int(http[1] + http[2])
        return code if status in HTTP_STATUSES else f"http_{http[1]}xx"
    return OTHER


def inbound(channel: str, *, duplicate: bool = False) -> None:
    """One inbound message recorded (or, with ``duplicate``, one ignored as seen before)."""
    (_DUPLICATES if duplicate else _INBOUND).labels(channel_label(channel)).inc()


def flow_step(channel: str, seconds: float) -> None:
    _FLOW_STEP.labels(channel_label(channel)).observe(max(0.0, seconds))


def send_result(channel: str, ok: bool, code: str | None = None) -> None:
    """One provider send call: ``ok``, or failed with ``code`` ("http_503",
    "twilio_21610", "timeout", "unreachable", ...; unknown codes count as "other")."""
    label = channel_label(channel)
    _SEND_ATTEMPTS.labels(label, "ok" if ok else "failed").inc()
    if not ok:
        _SEND_FAILURES.labels(label, code_label(code)).inc()


def reminders_queued(lags_seconds: Iterable[float]) -> None:
    """Reminders just put in the outbox, each this many seconds after it was due."""
    for lag in lags_seconds:
        _REMINDER_LAG.observe(max(0.0, lag))
