"""A fake Twilio REST API on loopback, reached by the real ``twilio`` SDK.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` is implemented,
with HTTP basic auth, Twilio's validation errors for the fields we send, and a
Message resource in the response shaped like Twilio's so the SDK parses it.

Inbound media: ``fake.add_media(data, "image/jpeg")`` stores a file and returns
its ``MediaUrl`` (``{base_url}/2010-04-01/Accounts/AC.../Messages/MM.../Media/ME...``).
A GET of it needs HTTP Basic auth (401 otherwise, as with Twilio's media
authentication on); with ``fake.media_redirect`` it answers, like Twilio, 307
to a short-lived URL (``/cdn/...``, no auth) that serves the bytes.
``fake.media_requests`` records each media request.

Outages: ``fake.outage = "503"`` answers every send 503 (Twilio error 20503)
without accepting it; ``"hang"`` holds each send unanswered until the outage
ends, then answers 503 (to a client that has long timed out); ``None`` is
normal service. ``python -m tests.fakes.twilio_proc`` serves a fake in a
process of its own, with control endpoints (system tests).

Use the ``fake_twilio`` fixture (import it into the test module:
``from tests.fakes.twilio_server import fake_twilio  # noqa: F401``) or
``running_fake_twilio()`` as a context manager (benchmarks). Point the service
at it with ``fake.settings_env()`` or ``TELEMED_TWILIO_API_BASE_URL=fake.base_url``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from channels.sms import segments
from tests.fakes.server import running, shared

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-0123456789abcdef"
API_VERSION = "2010-04-01"

ERROR_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region of the 'To' number",
    21602: "Message body is required.",
    21603: "The 'From' phone number is required.",
    21604: "The 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable using the 'From' phone number.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21619: "A text message body or media URL must be specified.",
    30034: "Message from an Unregistered Number",
    63016: "Failed to send freeform message because you are outside the allowed window.",
}


def _e164_ok(number: str) -> bool:
    return number.startswith("+") and number[1:].isdigit() and 8 <= len(number) <= 16


@dataclass
class _Media:
    data: bytes
    content_type: str
    chunked: bool  # sent without a Content-Length


@dataclass
class _Failure:
    code: int
    status: int
    times: int


class FakeTwilio:
    """State of one fake Twilio account, shared by the server thread and the test."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.base_url = ""  # set once the server listens
        self.latency_s = 0.0  # added before each answer (provider latency in benchmarks)
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._media: dict[str, _Media] = {}  # media path -> file
        self._cdn: dict[str, str] = {}  # cdn token -> media path
        self._media_requests: list[dict[str, Any]] = []
        self.media_redirect = False
        self.media_delay_s = 0.0  # before answering a media request (timeouts)
        self.outage: str | None = None  # "503", "hang" or None (see the module docstring)
        self.app = self._build_app()

    # -- what tests use -------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first: to, from, body, status_callback, received_at ..."""
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every create request, accepted or refused (the form fields and the answer status)."""
        with self._lock:
            return list(self._requests)

    def fail_next(self, code: int, status: int = 400, times: int = 1) -> None:
        """Answer the next ``times`` sends with Twilio error ``code`` and HTTP ``status``."""
        with self._lock:
            self._failures.append(_Failure(code, status, times))

    def add_media(
        self, data: bytes, content_type: str = "image/jpeg", *, chunked: bool = False
    ) -> str:
        """Store an inbound media file; returns its MediaUrl as Twilio would send it."""
        message_sid = "MM" + secrets.token_hex(16)
        media_sid = "ME" + secrets.token_hex(16)
        path = (
            f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"
        )
        with self._lock:
            self._media[path] = _Media(data, content_type, chunked)
        return self.base_url + path

    @property
    def media_requests(self) -> list[dict[str, Any]]:
        """Each media request: path, whether it carried an Authorization header, status."""
        with self._lock:
            return list(self._media_requests)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._failures.clear()
            self._media.clear()
            self._cdn.clear()
            self._media_requests.clear()
        self.latency_s = 0.0
        self.media_redirect = False
        self.media_delay_s = 0.0
        self.outage = None

    def settings_env(self) -> dict[str, str]:
        """Environment variables that aim the service's Twilio client here."""
        return {
            "TELEMED_TWILIO_ACCOUNT_SID": self.account_sid,
            "TELEMED_TWILIO_AUTH_TOKEN": self.auth_token,
            "TELEMED_TWILIO_API_BASE_URL": self.base_url,
        }

    # -- the API --------------------------------------------------------------

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            return failure

    def _authorized(self, request: Request, account_sid: str) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            secrets.compare_digest(user, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
            and account_sid == self.account_sid
        )

    @staticmethod
    def error(code: int, status: int = 400, message: str | None = None) -> JSONResponse:
        """An error body in Twilio's (legacy, non RFC-9457) format."""
        return JSONResponse(
            {
                "code": code,
                "message": message or ERROR_MESSAGES.get(code, f"Error {code}"),
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status_code=status,
        )

    def _validate(self, form: dict[str, Any]) -> JSONResponse | None:
        to, sender, service = form["To"], form["From"], form["MessagingServiceSid"]
        body, media = form["Body"], form["MediaUrl"]
        if not to:
            return self.error(21604)
        if not sender and not service:
            return self.error(21603)
        whatsapp = to.startswith("whatsapp:")
        if not _e164_ok(to.removeprefix("whatsapp:")):
            return self.error(21211)
        if sender and (
            sender.startswith("whatsapp:") != whatsapp
            or not _e164_ok(sender.removeprefix("whatsapp:"))
        ):
            return self.error(21606)
        if not body and not media and not form["ContentSid"]:
            return self.error(21619)
        if len(body) > 1600:
            return self.error(21617)
        return None

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/2010-04-01/Accounts/{account_sid}/Messages.json")
        async def create_message(account_sid: str, request: Request) -> JSONResponse:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            received_at = datetime.now(UTC)
            monotonic = time.monotonic()
            pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
            fields: dict[str, str] = {}
            for key, value in pairs:
                fields.setdefault(key, value)
            form: dict[str, Any] = {
                "To": fields.get("To", ""),
                "From": fields.get("From", ""),
                "MessagingServiceSid": fields.get("MessagingServiceSid", ""),
                "Body": fields.get("Body", ""),
                "StatusCallback": fields.get("StatusCallback"),
                "MediaUrl": [value for key, value in pairs if key == "MediaUrl"],
                "ContentSid": fields.get("ContentSid", ""),
                "ContentVariables": fields.get("ContentVariables", ""),
            }
            record = {"fields": dict(pairs), "received_at": received_at, "monotonic": monotonic}

            answer: JSONResponse | None
            if self.outage == "hang":
                while self.outage == "hang":
                    await asyncio.sleep(0.05)
                answer = self.error(20503, 503, "Service Unavailable")
            elif self.outage:
                answer = self.error(20503, 503, "Service Unavailable")
            elif not self._authorized(request, account_sid):
                answer = self.error(20003, 401)
            elif (failure := self._take_failure()) is not None:
                answer = self.error(failure.code, failure.status)
            else:
                answer = self._validate(form)
            if answer is not None:
                with self._lock:
                    self._requests.append({**record, "status": answer.status_code})
                return answer

            sid = "SM" + secrets.token_hex(16)
            whatsapp = form["To"].startswith("whatsapp:")
            message = {
                "sid": sid,
                "to": form["To"],
                "from": form["From"] or None,
                "messaging_service_sid": form["MessagingServiceSid"] or None,
                "body": form["Body"],
                "status_callback": form["StatusCallback"],
                "media_url": form["MediaUrl"],
                "content_sid": form["ContentSid"] or None,
                "content_variables": form["ContentVariables"] or None,
                "num_segments": 1 if whatsapp else max(1, segments(form["Body"])),
                "received_at": received_at,
                "monotonic": monotonic,
            }
            with self._lock:
                self._requests.append({**record, "status": 201})
                self._messages.append(message)
            return JSONResponse(self._resource(message), status_code=201)

        @app.get("/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}")
        async def get_media(account_sid: str, request: Request) -> Response:
            if self.media_delay_s:
                await asyncio.sleep(self.media_delay_s)
            path = request.url.path
            with self._lock:
                found = self._media.get(path)
            answer: Response
            if not self._authorized(request, account_sid):
                answer = self.error(20003, 401)
            elif found is None:
                answer = self.error(20404, 404, "The requested resource was not found")
            elif self.media_redirect:
                token = secrets.token_hex(16)
                with self._lock:
                    self._cdn[token] = path
                answer = RedirectResponse(f"{self.base_url}/cdn/{token}", status_code=307)
            else:
                answer = self._media_body(found)
            self._record_media(request, answer)
            return answer

        @app.get("/cdn/{token}")
        async def get_cdn(token: str, request: Request) -> Response:
            with self._lock:
                path = self._cdn.get(token)
                found = self._media.get(path) if path is not None else None
            answer = self._media_body(found) if found is not None else Response(status_code=403)
            self._record_media(request, answer)
            return answer

        return app

    def _media_body(self, media: _Media) -> Response:
        if media.chunked:
            return StreamingResponse(iter([media.data]), media_type=media.content_type)
        return Response(media.data, media_type=media.content_type)

    def _record_media(self, request: Request, answer: Response) -> None:
        record = {
            "path": request.url.path,
            "authorization": "authorization" in request.headers,
            "status": answer.status_code,
        }
        with self._lock:
            self._media_requests.append(record)

    def _resource(self, message: dict[str, Any]) -> dict[str, Any]:
        date = format_datetime(message["received_at"], usegmt=False)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message['sid']}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message["body"],
            "date_created": date,
            "date_sent": None,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message["from"],
            "messaging_service_sid": message["messaging_service_sid"],
            "num_media": str(len(message["media_url"])),
            "num_segments": str(message["num_segments"]),
            "price": None,
            "price_unit": "USD",
            "sid": message["sid"],
            "status": "queued" if message["from"] else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message["to"],
            "uri": f"{uri}.json",
        }


@contextlib.contextmanager
def running_fake_twilio(
    account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN
) -> Iterator[FakeTwilio]:
    """A fake server of its own, stopped on exit."""
    with running(FakeTwilio(account_sid, auth_token), "fake Twilio") as fake:
        yield fake


def shared_fake_twilio() -> FakeTwilio:
    """One server per test process, started on first use."""
    return shared(FakeTwilio, "fake Twilio")


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """The shared fake Twilio API, emptied before and after each test."""
    fake = shared_fake_twilio()
    fake.clear()
    yield fake
    fake.clear()
