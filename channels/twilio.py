"""Twilio SMS and WhatsApp: sending through the REST API and the inbound webhooks.

Sending uses the ``twilio`` SDK, whose HTTP client blocks, so each call runs
in a thread (the dispatcher awaits ``send`` on the event loop). The SDK is
pointed at ``TELEMED_TWILIO_API_BASE_URL`` by setting ``client.api.base_url``,
the base of the 2010 API domain that ``client.messages`` builds its URLs on.

Webhooks (``/webhooks/twilio/sms``, ``/webhooks/twilio/whatsapp``,
``/webhooks/twilio/status``) read the raw form body, check the
``X-Twilio-Signature`` against ``TELEMED_PUBLIC_URL`` + path (never the URL
the request reached us on: behind a proxy that is not what Twilio signed),
then hand a parsed ``InboundMessage`` or a status to the callables the
composition root passes in. Every bad body gets a 4xx with a reason.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import parse_qsl, urljoin, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import ImmutableMultiDict
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels import media as media_http
from channels.base import MediaError, MediaRefused, MediaUnavailable, SendError
from channels.render import render_text
from channels.sms import MAX_BODY_CHARS, split_for_sms, to_gsm7_friendly, truncate_on_boundary
from core.messages import InboundMessage, Location, Media, Reply
from core.phones import InvalidPhone, to_e164
from core.settings import Settings

TwilioChannelName = Literal["sms", "whatsapp"]

SMS_PATH = "/webhooks/twilio/sms"
WHATSAPP_PATH = "/webhooks/twilio/whatsapp"
STATUS_PATH = "/webhooks/twilio/status"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
FORM_TYPE = "application/x-www-form-urlencoded"
WHATSAPP_PREFIX = "whatsapp:"

MAX_WEBHOOK_BYTES = 256 * 1024  # a real webhook is a few KiB
MAX_FIELDS = 500
MAX_MEDIA = 20  # Twilio sends at most 10
HTTP_TIMEOUT_S = 10.0

# Inbound media: ``MediaUrl{N}`` is /2010-04-01/Accounts/AC.../Messages/MM.../Media/ME...
_MEDIA_PATH = re.compile(
    r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages/(?:MM|SM)[0-9a-fA-F]{32}"
    r"/Media/ME[0-9a-fA-F]{32}$"
)
MEDIA_REDIRECTS = 3
# Where Twilio's media URLs redirect to (a signed, short-lived CDN URL).
MEDIA_REDIRECT_DOMAINS = ("twilio.com", "twiliocdn.com", "amazonaws.com")

# Twilio error codes (https://www.twilio.com/docs/api/errors).
OPTED_OUT = 21610  # the recipient replied STOP
INVALID_TO = 21211
NOT_MOBILE = 21614
BODY_TOO_LONG = 21617
TOO_MANY_REQUESTS = 20429
# Trying again cannot help: bad number, unreachable region, no body, outside the
# WhatsApp 24-hour window, sender not allowed.
PERMANENT_CODES = frozenset(
    {INVALID_TO, NOT_MOBILE, BODY_TOO_LONG, 21408, 21606, 21612, 21619, 63016, 63032}
)

InboundHandler = Callable[[InboundMessage], Awaitable[None]]
StatusHandler = Callable[[str, str, str | None], Awaitable[None]]


class OptedOut(SendError):
    """Twilio refused the send because the recipient opted out (error 21610)."""

    def __init__(self, message: str = "recipient opted out (Twilio 21610)") -> None:
        super().__init__(message, retryable=False, opted_out=True)


# -- sending ------------------------------------------------------------------


def make_client(settings: Settings, *, timeout_s: float = HTTP_TIMEOUT_S) -> Client:
    """A Twilio REST client for the configured account, aimed at TWILIO_API_BASE_URL."""
    http = TwilioHttpClient(timeout=timeout_s)
    # requests looks for proxy and CA-bundle variables in the environment on
    # every request (about 8% of a worker's CPU); with none set there is
    # nothing to find, so it need not look.
    if http.session is not None and not _environment_matters():
        http.session.trust_env = False
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)
    # TWILIO_EDGE / TWILIO_REGION in the environment would make the SDK rewrite
    # the host of every URL (``get_hostname``); our settings name the base instead.
    client.edge = None
    client.region = None
    client.api.base_url = settings.twilio_api_base_url
    return client


def _environment_matters() -> bool:
    """A proxy or a CA bundle set in the environment, which requests must honour."""
    from urllib.request import getproxies

    return bool(getproxies()) or any(
        os.environ.get(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    )


def _with_prefix(value: str) -> str:
    value = value.strip()
    if value.lower().startswith(WHATSAPP_PREFIX):
        value = value[len(WHATSAPP_PREFIX) :].strip()
    return WHATSAPP_PREFIX + value


def _is_configured(name: str, settings: Settings) -> bool:
    if not settings.twilio_enabled:
        return False
    sender = settings.twilio_sms_from if name == "sms" else settings.twilio_whatsapp_from
    return bool(sender or settings.twilio_messaging_service_sid)


def send_error_of(exc: Exception) -> SendError:
    """A provider or network failure as a ``SendError`` saying whether to retry.

    The message carries the Twilio code and HTTP status only: provider
    messages can quote the phone number.
    """
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        code, status = exc.code, exc.status
        label = f"twilio error {code} (HTTP {status})"
        if code == OPTED_OUT:
            return OptedOut(label + ": recipient opted out")
        if status == 429 or code == TOO_MANY_REQUESTS:
            return SendError(label + ": rate limited", retryable=True)
        if isinstance(status, int) and status >= 500:
            return SendError(label, outage=True)
        if code in PERMANENT_CODES:
            return SendError(label, retryable=False)
        # Any other 4xx: the request itself was refused; sending it again cannot help.
        return SendError(label, retryable=status in (408, 409, 425))
    if isinstance(exc, OSError):  # requests' ConnectionError and Timeout are OSErrors
        return SendError(f"twilio unreachable: {type(exc).__name__}", outage=True)
    if isinstance(exc, TwilioException):
        return SendError(f"twilio client error: {type(exc).__name__}", retryable=False)
    return SendError(f"twilio send failed: {type(exc).__name__}", retryable=True)


class TwilioChannel:
    """Implements ``channels.base.Channel`` for ``sms`` or ``whatsapp`` over Twilio."""

    def __init__(
        self, name: TwilioChannelName, settings: Settings, *, client: Client | None = None
    ) -> None:
        if name not in ("sms", "whatsapp"):
            raise ValueError(f"not a Twilio channel: {name!r}")
        if not settings.twilio_enabled:
            raise ValueError("Twilio credentials are unset")
        self.name: str = name
        self.settings = settings
        self.client = client if client is not None else make_client(settings)
        self.status_callback = settings.public_url + STATUS_PATH
        self.media_timeout_s = media_http.MEDIA_TIMEOUT_S
        sender = settings.twilio_sms_from if name == "sms" else settings.twilio_whatsapp_from
        self._sender: dict[str, str] = {}
        if sender:
            self._sender["from_"] = _with_prefix(sender) if name == "whatsapp" else sender.strip()
        elif settings.twilio_messaging_service_sid:
            self._sender["messaging_service_sid"] = settings.twilio_messaging_service_sid
        else:
            raise ValueError(f"no sender for {name}: set a from number or a messaging service")

    def bodies(self, reply: Reply) -> list[str]:
        """The message bodies ``reply`` goes out as, in order."""
        text = render_text(reply)
        if self.name == "sms":
            return split_for_sms(to_gsm7_friendly(text))
        text = truncate_on_boundary(text, MAX_BODY_CHARS)
        return [text] if text.strip() else []

    def recipient(self, address: str) -> str:
        try:
            number = to_e164(address, self.settings.default_region)
        except InvalidPhone:
            raise SendError("not a phone number", retryable=False) from None
        return WHATSAPP_PREFIX + number if self.name == "whatsapp" else number

    async def send(self, address: str, reply: Reply) -> str:
        """Send every part of ``reply``; return the SID of the last message.

        Raises ``OptedOut`` for 21610 and ``SendError`` otherwise, retryable
        for 429 / 20429, 5xx and network errors.
        """
        to = self.recipient(address)
        bodies = self.bodies(reply)
        if not bodies:
            raise SendError("empty reply", retryable=False)
        sid = ""
        for body in bodies:
            sid = await asyncio.to_thread(self._create, to, body)
        return sid

    async def send_template(self, address: str, content_sid: str, variables: dict[str, str]) -> str:
        """Send an approved content template: the only kind of message WhatsApp
        delivers outside the 24 hours after the patient's last message."""
        to = self.recipient(address)
        fields = {"content_sid": content_sid, "content_variables": json.dumps(variables)}
        return await asyncio.to_thread(self._create, to, None, fields)

    def _create(self, to: str, body: str | None, fields: dict[str, str] | None = None) -> str:
        content = {"body": body} if body is not None else dict(fields or {})
        try:
            message = self.client.messages.create(
                to=to, status_callback=self.status_callback, **content, **self._sender
            )
        except Exception as exc:  # every failure becomes a SendError
            raise send_error_of(exc) from exc
        if not message.sid:
            raise SendError("twilio answered without a message sid", retryable=True)
        return str(message.sid)

    async def fetch_media(self, reference: str, max_bytes: int) -> tuple[str, bytes]:
        """The bytes behind an inbound ``MediaUrl``, fetched with HTTP Basic auth
        (account SID and auth token), which Twilio enforces on media URLs.

        The credentials go only to a media resource of this account on the
        configured API host or on twilio.com; any other URL is refused without
        a request (a stored URL must not turn the dashboard into a proxy to
        anywhere, nor hand the token to a stranger). Twilio answers a media URL
        with a redirect to a short-lived CDN URL: each hop is checked and
        fetched without the credentials.
        """
        if not self._credentialed(reference):
            raise MediaRefused("the attachment's address is not a Twilio media URL of this account")
        url = reference
        auth: tuple[str, str] | None = (
            self.settings.twilio_account_sid or "",
            self.settings.twilio_auth_token or "",
        )
        try:
            async with media_http.client(self.media_timeout_s) as http:
                for _ in range(MEDIA_REDIRECTS + 1):
                    request = http.build_request("GET", url)
                    response = await http.send(request, stream=True, auth=auth)
                    try:
                        if response.status_code in media_http.REDIRECTS:
                            location = response.headers.get("location", "")
                            target = urljoin(url, location)
                            if not location or not self._redirect_ok(target):
                                raise MediaUnavailable("Twilio redirected to an unexpected host")
                            url, auth = target, None  # the CDN URL is signed itself
                            continue
                        if response.status_code != 200:
                            raise MediaUnavailable(f"Twilio answered HTTP {response.status_code}")
                        body = await media_http.read_capped(response, max_bytes)
                        return media_http.content_type(response), body
                    finally:
                        await response.aclose()
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport failure is "unavailable"
            raise media_http.network_error("Twilio", exc) from None
        raise MediaUnavailable("Twilio redirected too many times")

    def _credentialed(self, url: str) -> bool:
        """A media resource of this account, on the configured API host or twilio.com."""
        where = media_http.origin(url)
        if where is None:
            return False
        configured = where == media_http.origin(self.settings.twilio_api_base_url)
        on_twilio = where[0] == "https" and where[2] == 443 and _on(where[1], "twilio.com")
        if not (configured or on_twilio):
            return False
        parts = urlsplit(url)
        found = _MEDIA_PATH.match(parts.path)
        return (
            found is not None
            and not parts.query
            and not parts.fragment
            and found.group(1) == self.settings.twilio_account_sid
        )

    def _redirect_ok(self, url: str) -> bool:
        where = media_http.origin(url)
        if where is None:
            return False
        if where == media_http.origin(self.settings.twilio_api_base_url):
            return True
        return where[0] == "https" and any(_on(where[1], d) for d in MEDIA_REDIRECT_DOMAINS)


def _on(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def build_twilio_channels(settings: Settings) -> dict[str, TwilioChannel]:
    """``{"sms": ..., "whatsapp": ...}`` for each channel that is configured.

    A channel needs the account SID and auth token, and a sender: its from
    number (TWILIO_SMS_FROM / TWILIO_WHATSAPP_FROM) or the messaging service.
    Both channels share one REST client (one connection pool).
    """
    names: list[TwilioChannelName] = [n for n in ("sms", "whatsapp") if _is_configured(n, settings)]
    if not names:
        return {}
    # No longer than the dispatcher waits for a send: a request still running
    # after the dispatcher gave up could reach Twilio, and the retry would be a
    # second copy.
    client = make_client(settings, timeout_s=min(HTTP_TIMEOUT_S, settings.send_timeout_seconds))
    return {name: TwilioChannel(name, settings, client=client) for name in names}


# -- webhooks -----------------------------------------------------------------


class BadWebhook(Exception):
    """A webhook request refused with ``status`` and a reason for the caller."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _reject(exc: BadWebhook) -> Response:
    return JSONResponse({"detail": exc.reason}, status_code=exc.status)


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            raise BadWebhook(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_form(request: Request, body: bytes) -> list[tuple[str, str]]:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != FORM_TYPE:
        raise BadWebhook(415, f"Content-Type must be {FORM_TYPE}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadWebhook(400, "body is not UTF-8") from None
    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise BadWebhook(400, "form values are not UTF-8") from None
    except ValueError:
        raise BadWebhook(400, "malformed or truncated form body") from None


def _signed_url(settings: Settings, path: str, request: Request) -> str:
    url = settings.public_url + path
    query = request.scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("latin-1")
    return url


async def _verified_params(
    settings: Settings, path: str, request: Request
) -> ImmutableMultiDict[str, str]:
    token = settings.twilio_auth_token
    if not token:
        raise BadWebhook(404, "channel off")
    body = await _read_body(request)
    pairs = _parse_form(request, body)
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise BadWebhook(403, "missing X-Twilio-Signature")
    params: ImmutableMultiDict[str, str] = ImmutableMultiDict(pairs)
    url = _signed_url(settings, path, request)
    if not RequestValidator(token).validate(url, params, signature):
        raise BadWebhook(403, "bad X-Twilio-Signature")
    return params


_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MEDIA_URL = re.compile(r"^MediaUrl(\d{1,2})$")


def _sid(params: ImmutableMultiDict[str, str], *names: str) -> str:
    for name in names:
        value = params.get(name, "").strip()
        if value:
            if not _SID.match(value):
                raise BadWebhook(400, f"{name} is not a message SID")
            return value
    raise BadWebhook(400, f"{names[0]} is required")


def _optional(params: ImmutableMultiDict[str, str], name: str) -> str | None:
    value = params.get(name, "").replace("\x00", "").strip()
    return value or None


def _media(params: ImmutableMultiDict[str, str]) -> tuple[Media, ...]:
    found: list[tuple[int, Media]] = []
    for key in params:
        match = _MEDIA_URL.match(key)
        if match is None:
            continue
        url = params[key].strip()
        if not url:
            continue
        index = int(match.group(1))
        content_type = _optional(params, f"MediaContentType{index}") or "application/octet-stream"
        found.append((index, Media(content_type=content_type, reference=url)))
    found.sort(key=lambda item: item[0])
    return tuple(media for _, media in found[:MAX_MEDIA])


def _coordinate(value: str, name: str, limit: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BadWebhook(400, f"{name} is not a number") from None
    if not math.isfinite(number) or abs(number) > limit:
        raise BadWebhook(400, f"{name} is out of range")
    return number


def _location(params: ImmutableMultiDict[str, str]) -> Location | None:
    latitude, longitude = _optional(params, "Latitude"), _optional(params, "Longitude")
    if latitude is None and longitude is None:
        return None
    if latitude is None or longitude is None:
        raise BadWebhook(400, "Latitude and Longitude come together")
    return Location(
        latitude=_coordinate(latitude, "Latitude", 90.0),
        longitude=_coordinate(longitude, "Longitude", 180.0),
        label=_optional(params, "Label") or _optional(params, "Address"),
    )


def parse_inbound(
    channel: TwilioChannelName, params: ImmutableMultiDict[str, str], default_region: str
) -> InboundMessage:
    """A verified Twilio inbound-message webhook as an ``InboundMessage``.

    Raises ``BadWebhook`` (a 400 with a reason) when a required field is missing
    or malformed. Unknown parameters are kept in ``raw`` and otherwise ignored.
    """
    sid = _sid(params, "MessageSid")
    sender = params.get("From", "").strip()
    if not sender:
        raise BadWebhook(400, "From is required")
    if sender.lower().startswith(WHATSAPP_PREFIX):
        sender = sender[len(WHATSAPP_PREFIX) :]
    try:
        address = to_e164(sender, default_region)
    except (InvalidPhone, ValueError):
        raise BadWebhook(400, "From is not a phone number") from None
    return InboundMessage(
        channel=channel,
        address=address,
        # PostgreSQL cannot store NUL in text; "%00" in a body would fail the insert.
        text=params.get("Body", "").replace("\x00", ""),
        provider_message_id=sid,
        media=_media(params),
        location=_location(params),
        button_payload=_optional(params, "ButtonPayload"),
        profile_name=_optional(params, "ProfileName"),
        raw=dict(params),
    )


def twilio_router(
    settings: Settings, handle: InboundHandler, on_status: StatusHandler
) -> APIRouter:
    """The three Twilio webhook routes, for ``app.include_router`` (no prefix)."""
    router = APIRouter(tags=["webhooks"])

    async def inbound(channel: TwilioChannelName, path: str, request: Request) -> Response:
        try:
            params = await _verified_params(settings, path, request)
            message = parse_inbound(channel, params, settings.default_region)
        except BadWebhook as exc:
            return _reject(exc)
        await handle(message)
        return Response(content=EMPTY_TWIML, media_type="text/xml")

    @router.post(SMS_PATH, include_in_schema=False)
    async def sms_webhook(request: Request) -> Response:
        return await inbound("sms", SMS_PATH, request)

    @router.post(WHATSAPP_PATH, include_in_schema=False)
    async def whatsapp_webhook(request: Request) -> Response:
        return await inbound("whatsapp", WHATSAPP_PATH, request)

    @router.post(STATUS_PATH, include_in_schema=False)
    async def status_webhook(request: Request) -> Response:
        try:
            params = await _verified_params(settings, STATUS_PATH, request)
            sid = _sid(params, "MessageSid", "SmsSid")
            status = _optional(params, "MessageStatus") or _optional(params, "SmsStatus")
            if status is None:
                raise BadWebhook(400, "MessageStatus is required")
            if len(status) > 32:
                raise BadWebhook(400, "MessageStatus is not a status")
            error_code = _optional(params, "ErrorCode")
            if error_code is not None and len(error_code) > 16:
                raise BadWebhook(400, "ErrorCode is not an error code")
        except BadWebhook as exc:
            return _reject(exc)
        await on_status(sid, status.lower(), error_code)
        return Response(status_code=200)

    return router
