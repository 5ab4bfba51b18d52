from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from core.logs import QUIET_LOGGERS, REDACTED, configure, get_logger, redact


def test_patient_data_is_redacted_above_debug() -> None:
    event = {
        "event": "inbound from +1 555 010 0000",
        "body": "I have chest pain",
        "name": "Ana",
        "channel": "sms",
        "note": "call +34612345678 back",
    }
    out = redact(None, "info", dict(event))
    assert out["body"] == out["name"] == REDACTED
    assert "+1 555" not in out["event"] and "612345678" not in out["note"]
    assert out["channel"] == "sms"


def test_debug_keeps_everything() -> None:
    event = {"event": "x", "body": "hello"}
    assert redact(None, "debug", dict(event)) == event


def test_numbers_are_redacted_but_short_digit_runs_and_ids_kept() -> None:
    event = {
        "event": "retry in 1.5 s from 10.0.0.1",
        "request_id": "0123456789abcdef0123456789abcdef",
        "date": "1980-12-31",
        "national": "(415) 555-0173",
        "count": 4155550173,  # numbers are ids or counts, never scanned
    }
    out = redact(None, "warning", dict(event))
    assert out["event"] == event["event"] and out["request_id"] == event["request_id"]
    assert out["date"] == out["national"] == REDACTED
    assert out["count"] == 4155550173


def test_nested_values_sql_parameters_and_more_keys_are_redacted() -> None:
    event = {
        "event": "x",
        "data": {"first_name": "Valentina", "note": ["call +14155550173"]},
        "username": "vquispe_77",
        "chat_id": 918273645,
        "exception": "IntegrityError\n[SQL: INSERT ...]\n[parameters: ('Maria Lopez', 'hi')]\n",
    }
    out = redact(None, "error", dict(event))
    assert out["data"] == {"first_name": REDACTED, "note": [f"call {REDACTED}"]}
    assert out["username"] == out["chat_id"] == REDACTED
    assert "Maria" not in out["exception"] and "[SQL: INSERT ...]" in out["exception"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    config = structlog.get_config()
    names = [*QUIET_LOGGERS, "uvicorn", "uvicorn.error", "uvicorn.access"]
    loggers = {
        n: (lg.level, lg.propagate, lg.disabled) for n in names for lg in [logging.getLogger(n)]
    }
    yield
    root.handlers, root.level = saved
    for name, (level, propagate, disabled) in loggers.items():
        lg = logging.getLogger(name)
        lg.level, lg.propagate, lg.disabled = level, propagate, disabled
    structlog.configure(**config)


def test_stdlib_and_structlog_lines_share_the_redacting_json_handler(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure("info", json=True, stream=stream, cache=False)
    # uvicorn.Config sets its loggers' levels; an earlier test's server may have left
    # uvicorn.error at WARNING in this process (`telemed serve` passes its level).
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    structlog.contextvars.bind_contextvars(request_id="r1")
    try:
        get_logger("telemed.test").info("booked", name="Maria Lopez", appointment_id=7)
        logging.getLogger("uvicorn.error").info("client +14155550173 connected")
        logging.getLogger("twilio.http_client").info("POST body: Hello Maria")
        logging.getLogger("httpx").info("HTTP Request: POST /bot123:SECRET/sendMessage")
        logging.getLogger("uvicorn.access").info("GET /v/secret-token 200")
        get_logger("telemed.test").debug("not at info", body="x")
    finally:
        structlog.contextvars.clear_contextvars()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["logger"], x["event"]) for x in lines] == [
        ("telemed.test", "booked"),
        ("uvicorn.error", f"client {REDACTED} connected"),
    ]
    assert lines[0]["name"] == REDACTED and lines[0]["appointment_id"] == 7
    assert all(x["request_id"] == "r1" and x["level"] == "info" for x in lines)


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure("loud")


def test_before_configure_only_warnings_reach_the_standard_library(
    restore_logging: None, caplog: pytest.LogCaptureFixture
) -> None:
    from core import logs

    logs._default()
    with caplog.at_level(logging.DEBUG):
        get_logger("telemed.test").info("chatty", body="hello")
        get_logger("telemed.test").warning("careful", body="hello")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.name == "telemed.test"
    assert "careful" in record.getMessage() and "hello" not in record.getMessage()
