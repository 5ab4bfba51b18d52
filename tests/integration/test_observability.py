"""Request ids, JSON logs with request and conversation ids, the access line,
and the Prometheus metrics of this process (``/metrics`` and the headless
roles' metrics port)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from bots.app import create_app
from core import telemetry
from core.clock import FixedClock
from core.db import Database
from core.demo import seed_demo
from core.logs import QUIET_LOGGERS, configure
from core.messages import InboundMessage
from core.settings import Settings
from flows.engine import FlowEngine
from tests.clinic import TZ, Clinic
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN

PUBLIC_URL = "https://clinic.example.com"
SMS_FROM = "+15005550006"
PATIENT = "+14155550173"

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs() -> Iterator[Callable[..., io.StringIO]]:
    """``start(level)`` sends every log line of the process, as JSON, to a
    buffer it returns; the logging set-up is restored afterwards."""
    names = ["", *QUIET_LOGGERS, "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = {
        name: (lg.level, lg.handlers[:], lg.propagate, lg.disabled)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    config = structlog.get_config()

    def start(level: str = "info") -> io.StringIO:
        buffer = io.StringIO()
        configure(level, json=True, stream=buffer, cache=False)
        return buffer

    yield start
    for name, (level, handlers, propagate, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.setLevel(level)
        lg.handlers = handlers
        lg.propagate, lg.disabled = propagate, disabled
    structlog.configure(**config)


def parse(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def twilio_settings(db: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url,
        "public_url": PUBLIC_URL,
        "clinic_timezone": TZ,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_sms_from": SMS_FROM,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def client(db: Database, clock: FixedClock) -> Iterator[TestClient]:
    """The app with SMS on and nothing sent: no dispatcher or scheduler runs."""
    with db.transaction() as session:
        seed_demo(session, TZ)
    app = create_app(twilio_settings(db), db=db, clock=clock, role="web", senders={})
    with TestClient(app) as test_client:
        yield test_client


def post_sms(
    client: TestClient, text: str, *, sid: str | None = None, request_id: str | None = None
) -> Any:
    path = "/webhooks/twilio/sms"
    params = {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "AccountSid": ACCOUNT_SID,
        "From": PATIENT,
        "To": SMS_FROM,
        "Body": text,
        "NumMedia": "0",
    }
    headers = {
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
            PUBLIC_URL + path, params
        )
    }
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    response = client.post(path, data=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


def sample(name: str, **labels: str) -> float:
    return telemetry.REGISTRY.get_sample_value(name, labels) or 0.0


# -- request ids ------------------------------------------------------------------


def test_a_request_id_is_made_when_missing_and_echoed_when_sane(client: TestClient) -> None:
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32 and int(made, 16) >= 0
    assert client.get("/healthz").headers["X-Request-ID"] != made
    kept = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.9_Z-1"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a.9_Z-1"
    for bad in ("has space", "x" * 65, "semi;colon", "14155550173", ""):
        answer = client.get("/healthz", headers={"X-Request-ID": bad})
        replaced = answer.headers["X-Request-ID"]
        assert replaced != bad and len(replaced) == 32, bad
    assert client.get("/nowhere").headers["X-Request-ID"]  # a 404 has one too


def test_json_lines_carry_the_request_and_conversation_ids(
    client: TestClient, json_logs: Callable[..., io.StringIO]
) -> None:
    buffer = json_logs("info")
    post_sms(client, "hello there", request_id="req-obs-1")
    client.get("/healthz", headers={"X-Request-ID": "req-obs-2"})
    lines = parse(buffer)

    handled = [line for line in lines if line["event"] == "inbound_handled"]
    assert len(handled) == 1
    assert handled[0]["request_id"] == "req-obs-1"
    assert isinstance(handled[0]["conversation_id"], int)
    assert handled[0]["channel"] == "sms" and handled[0]["level"] == "info"

    access = [line for line in lines if line["event"] == "http_request"]
    webhook, health = access
    assert webhook["request_id"] == "req-obs-1" and "conversation_id" not in webhook
    assert (webhook["method"], webhook["route"], webhook["status"]) == (
        "POST",
        "/webhooks/twilio/sms",
        200,
    )
    assert isinstance(webhook["duration_ms"], float)
    # The next request in the same worker thread carries neither old id.
    assert health["request_id"] == "req-obs-2" and "conversation_id" not in health
    assert all("conversation_id" not in line for line in lines if line is not handled[0])
    assert structlog.contextvars.get_contextvars() == {}


def test_the_access_line_names_the_route_not_the_path(
    client: TestClient, json_logs: Callable[..., io.StringIO]
) -> None:
    buffer = json_logs("info")
    client.get("/v/very-secret-video-token?lang=es&who=me")
    client.get("/no/such/page?x=1")
    text = buffer.getvalue()
    assert "very-secret-video-token" not in text and "who=me" not in text and "x=1" not in text
    routes = [(x["route"], x["status"]) for x in parse(buffer) if x["event"] == "http_request"]
    assert routes[0][0] == "/v/{token}"
    assert routes[1] == ("<unmatched>", 404)


def test_binding_the_conversation_id_ends_with_the_message(
    db: Database, clock: FixedClock, json_logs: Callable[..., io.StringIO]
) -> None:
    buffer = json_logs("info")
    with db.transaction() as session:
        seed_demo(session, TZ)
    engine = FlowEngine(db, twilio_settings(db), clock)
    msg = InboundMessage("sms", PATIENT, "hello there", "SM" + uuid.uuid4().hex)
    first = engine.handle(msg)
    assert structlog.contextvars.get_contextvars() == {}
    assert engine.handle(msg).duplicate  # a provider retry
    assert structlog.contextvars.get_contextvars() == {}
    handled, duplicate = [x for x in parse(buffer) if x["event"].startswith("inbound_")]
    assert handled["conversation_id"] == first.conversation_id
    assert duplicate["event"] == "inbound_duplicate" and "conversation_id" not in duplicate


# -- metrics ----------------------------------------------------------------------


def test_metrics_count_inbound_messages_and_time_the_flow_step(client: TestClient) -> None:
    inbound = sample("telemed_inbound_messages_total", channel="sms")
    duplicates = sample("telemed_inbound_duplicates_total", channel="sms")
    steps = sample("telemed_flow_step_seconds_count", channel="sms")
    sid = "SM" + uuid.uuid4().hex
    post_sms(client, "hello there", sid=sid)
    post_sms(client, "hello there", sid=sid)  # Twilio retried the webhook

    body = client.get("/metrics").text
    assert f'telemed_inbound_messages_total{{channel="sms"}} {inbound + 1}' in body
    assert f'telemed_inbound_duplicates_total{{channel="sms"}} {duplicates + 1}' in body
    assert f'telemed_flow_step_seconds_count{{channel="sms"}} {steps + 1}' in body
    assert 'telemed_flow_step_seconds_bucket{channel="sms",le="0.005"}' in body
    assert 'telemed_flow_step_seconds_bucket{channel="sms",le="+Inf"}' in body
    # The database totals are still there, in the same exposition.
    assert "telemed_outbox_pending " in body and "telemed_reminders_sent_total " in body
    assert "# TYPE telemed_send_attempts_total counter" in body
    assert "# TYPE telemed_reminder_lag_seconds histogram" in body


def test_send_results_have_bounded_labels() -> None:
    def failures(channel: str, code: str) -> float:
        return sample("telemed_send_failures_total", channel=channel, code=code)

    before = {
        "ok": sample("telemed_send_attempts_total", channel="sms", result="ok"),
        "failed": sample("telemed_send_attempts_total", channel="sms", result="failed"),
        "503": failures("sms", "http_503"),
        "4xx": failures("sms", "http_4xx"),
        "21610": failures("sms", "twilio_21610"),
        "other": failures("sms", "other"),
        "other_channel": failures("other", "timeout"),
    }
    telemetry.send_result("sms", True, None)
    telemetry.send_result("sms", False, "http_503")
    telemetry.send_result("sms", False, "HTTP_418")
    telemetry.send_result("sms", False, "twilio_21610")
    telemetry.send_result("sms", False, "twilio_99999")
    telemetry.send_result("sms", False, "+14155550173 said no")
    telemetry.send_result("sms", False, None)
    telemetry.send_result("+14155550173", False, "timeout")
    assert sample("telemed_send_attempts_total", channel="sms", result="ok") == before["ok"] + 1
    failed = sample("telemed_send_attempts_total", channel="sms", result="failed")
    assert failed == before["failed"] + 6
    assert failures("sms", "http_503") == before["503"] + 1
    assert failures("sms", "http_4xx") == before["4xx"] + 1
    assert failures("sms", "twilio_21610") == before["21610"] + 1
    assert failures("sms", "other") == before["other"] + 3
    assert failures("other", "timeout") == before["other_channel"] + 1
    exposition = telemetry.REGISTRY.collect()
    labels = {v for m in exposition for s in m.samples for v in s.labels.values()}
    assert not any("4155550173" in value for value in labels)


def test_reminder_lag_is_how_late_the_tick_queued_it(db: Database, clock: FixedClock) -> None:
    clinic = Clinic.open(db, clock)  # Tuesday 14 April 2026, 09:00 in New York
    ny = ZoneInfo(TZ)
    clinic.book("+14155550174", datetime(2026, 4, 17, 10, 0, tzinfo=ny).astimezone(UTC))
    clinic.tick()  # plans the 72 h reminder for Tuesday 10:00
    count = sample("telemed_reminder_lag_seconds_count")
    total = sample("telemed_reminder_lag_seconds_sum")
    clock.advance(timedelta(hours=1, minutes=7))  # the tick comes 7 minutes late
    clinic.tick()
    assert sample("telemed_reminder_lag_seconds_count") == count + 1
    assert sample("telemed_reminder_lag_seconds_sum") == pytest.approx(total + 7 * 60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, wait_s: float = 10.0) -> tuple[int, str, str]:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.headers["Content-Type"], answer.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_worker_role_serves_metrics_on_its_port(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    from bots.cli import _headless

    with db.transaction() as session:
        seed_demo(session, TZ)
    port = _free_port()
    settings = Settings(database_url=db.url, clinic_timezone=TZ, metrics_port=port)
    telemetry.inbound("sms")

    async def scenario() -> tuple[int, str, str]:
        role = asyncio.create_task(_headless(db, settings, "worker"))
        try:
            return await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        finally:
            role.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await role

    status, content_type, body = asyncio.run(scenario())
    assert status == 200 and content_type.startswith("text/plain")
    assert "telemed_outbox_pending 0.0" in body  # read from the database
    assert 'telemed_inbound_messages_total{channel="sms"}' in body  # this process's own
    out = capsys.readouterr().out
    assert f"role worker running with only GET /metrics on http://127.0.0.1:{port}/metrics" in out
    with pytest.raises(OSError):  # closed when the role stopped
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
