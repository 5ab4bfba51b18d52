"""Twilio SMS and WhatsApp: the real SDK against the fake REST API, and the webhooks."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.request_validator import RequestValidator

from channels.base import Channel, SendError
from channels.sms import MAX_BODY_CHARS, segments
from channels.twilio import (
    EMPTY_TWIML,
    OptedOut,
    TwilioChannel,
    build_twilio_channels,
    send_error_of,
    twilio_router,
)
from core.messages import InboundMessage, Location, Media, Option, Reply
from core.settings import Settings
from tests.fakes import twilio_server
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

fake_twilio = twilio_server.fake_twilio  # the fixture, for the tests of this module

PUBLIC_URL = "https://clinic.example.com"
SMS_FROM = "+15005550006"
WA_FROM = "+14155238886"
PATIENT = "+15555550123"
FORM = "application/x-www-form-urlencoded"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": PUBLIC_URL,
        "default_region": "US",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_sms_from": None,
        "twilio_whatsapp_from": None,
        "twilio_messaging_service_sid": None,
        "twilio_api_base_url": "https://api.twilio.com",
    }
    values.update(overrides)
    return Settings(**values)


def fake_settings(fake: FakeTwilio, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_api_base_url": fake.base_url,
        "twilio_sms_from": SMS_FROM,
        "twilio_whatsapp_from": WA_FROM,
    }
    values.update(overrides)
    return make_settings(**values)


# -- (a) sending through the real SDK ---------------------------------------------


def test_channels_are_built_only_when_configured() -> None:
    assert (
        build_twilio_channels(make_settings(twilio_account_sid=None, twilio_sms_from=SMS_FROM))
        == {}
    )
    assert (
        build_twilio_channels(make_settings(twilio_auth_token=None, twilio_sms_from=SMS_FROM)) == {}
    )
    assert build_twilio_channels(make_settings()) == {}
    assert set(build_twilio_channels(make_settings(twilio_sms_from=SMS_FROM))) == {"sms"}
    assert set(build_twilio_channels(make_settings(twilio_whatsapp_from=WA_FROM))) == {"whatsapp"}
    both = build_twilio_channels(make_settings(twilio_messaging_service_sid="MG" + "a" * 32))
    assert set(both) == {"sms", "whatsapp"}
    for name, channel in both.items():
        assert channel.name == name
        assert isinstance(channel, Channel)
    with pytest.raises(ValueError):
        TwilioChannel("sms", make_settings())  # no sender


def test_sms_send_renders_options_and_normalizes(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    reply = Reply(
        "You’re booked — see you “Tuesday”…", (Option("Reschedule", "r"), Option("Menu", "m"))
    )
    sid = asyncio.run(channel.send(PATIENT, reply))
    [message] = fake_twilio.messages
    assert sid == message["sid"]
    assert sid.startswith("SM") and len(sid) == 34
    assert message["to"] == PATIENT
    assert message["from"] == SMS_FROM
    assert message["messaging_service_sid"] is None
    assert message["body"] == 'You\'re booked - see you "Tuesday"...\n1. Reschedule\n2. Menu'
    assert message["num_segments"] == 1
    assert message["status_callback"] == PUBLIC_URL + "/webhooks/twilio/status"


def test_sms_address_in_another_format_is_sent_as_e164(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    asyncio.run(channel.send("+1 (555) 555-0123", Reply("hi")))
    assert fake_twilio.messages[0]["to"] == PATIENT


def test_sms_through_messaging_service(fake_twilio: FakeTwilio) -> None:
    service = "MG" + "b" * 32
    settings = fake_settings(
        fake_twilio, twilio_sms_from=None, twilio_messaging_service_sid=service
    )
    channel = build_twilio_channels(settings)["sms"]
    asyncio.run(channel.send(PATIENT, Reply("hi")))
    [message] = fake_twilio.messages
    assert message["messaging_service_sid"] == service
    assert message["from"] is None


@pytest.mark.parametrize("setting", [WA_FROM, "whatsapp:" + WA_FROM])
def test_whatsapp_addresses_carry_the_prefix(fake_twilio: FakeTwilio, setting: str) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio, twilio_whatsapp_from=setting))[
        "whatsapp"
    ]
    text = "¿Confirmas tu cita del martes? “Sí” – gracias…"
    sid = asyncio.run(channel.send(PATIENT, Reply(text, (Option("Sí", "yes"),))))
    [message] = fake_twilio.messages
    assert sid == message["sid"]
    assert message["to"] == "whatsapp:" + PATIENT
    assert message["from"] == "whatsapp:" + WA_FROM
    assert message["body"] == text + "\n1. Sí"  # WhatsApp is not GSM-normalized
    assert message["status_callback"] == PUBLIC_URL + "/webhooks/twilio/status"


def test_long_sms_is_split_into_parts_in_order(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    sentences = [f"Line {n} of the instructions for your visit." for n in range(40)]
    sid = asyncio.run(channel.send(PATIENT, Reply(" ".join(sentences))))
    messages = fake_twilio.messages
    assert len(messages) > 1
    assert sid == messages[-1]["sid"]
    for message in messages:
        assert segments(message["body"]) <= 3
        assert message["body"].endswith(".")
    assert " ".join(m["body"] for m in messages) == " ".join(sentences)


def test_long_whatsapp_is_one_message_cut_at_a_sentence(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["whatsapp"]
    text = "Instrucciones para su visita de mañana. " * 80
    asyncio.run(channel.send(PATIENT, Reply(text)))
    [message] = fake_twilio.messages
    assert len(message["body"]) <= MAX_BODY_CHARS
    assert message["body"].endswith("mañana.")


def test_an_empty_reply_is_not_sent(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    with pytest.raises(SendError) as info:
        asyncio.run(channel.send(PATIENT, Reply("  ")))
    assert not info.value.retryable
    assert fake_twilio.requests == []


def test_opted_out_recipient(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    fake_twilio.fail_next(21610)
    with pytest.raises(OptedOut) as info:
        asyncio.run(channel.send(PATIENT, Reply("Reminder: your visit is tomorrow.")))
    assert isinstance(info.value, SendError)
    assert not info.value.retryable
    assert "21610" in str(info.value)
    assert fake_twilio.messages == []
    # the failure was used up: the next send goes through
    asyncio.run(channel.send(PATIENT, Reply("hi")))
    assert len(fake_twilio.messages) == 1


@pytest.mark.parametrize(
    ("code", "status"), [(20429, 429), (20500, 500), (20503, 503), (30001, 503)]
)
def test_rate_limits_and_server_errors_are_retryable(
    fake_twilio: FakeTwilio, code: int, status: int
) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["whatsapp"]
    fake_twilio.fail_next(code, status)
    with pytest.raises(SendError) as info:
        asyncio.run(channel.send(PATIENT, Reply("hi")))
    assert info.value.retryable
    assert not isinstance(info.value, OptedOut)


@pytest.mark.parametrize("code", [21211, 21614, 21617, 63016])
def test_permanent_errors_are_not_retryable(fake_twilio: FakeTwilio, code: int) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    fake_twilio.fail_next(code, 400)
    with pytest.raises(SendError) as info:
        asyncio.run(channel.send(PATIENT, Reply("hi")))
    assert not info.value.retryable
    assert not isinstance(info.value, OptedOut)
    assert PATIENT not in str(info.value)  # no phone numbers in stored errors


def test_invalid_number_is_refused_before_calling_twilio(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    with pytest.raises(SendError) as info:
        asyncio.run(channel.send("not a number", Reply("hi")))
    assert not info.value.retryable
    assert fake_twilio.requests == []


def test_the_fake_validates_like_twilio(fake_twilio: FakeTwilio) -> None:
    # A number our parser accepts but the fake (like Twilio) refuses: 21211, not retryable.
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    channel.recipient = lambda address: "+1"  # type: ignore[method-assign]
    with pytest.raises(SendError) as info:
        asyncio.run(channel.send(PATIENT, Reply("hi")))
    assert not info.value.retryable
    assert fake_twilio.requests[-1]["status"] == 400


def test_failures_last_the_given_number_of_times(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    fake_twilio.fail_next(20429, 429, times=2)
    for _ in range(2):
        with pytest.raises(SendError):
            asyncio.run(channel.send(PATIENT, Reply("hi")))
    asyncio.run(channel.send(PATIENT, Reply("hi")))
    assert [r["status"] for r in fake_twilio.requests] == [429, 429, 201]


def test_wrong_credentials_are_not_retryable(fake_twilio: FakeTwilio) -> None:
    settings = fake_settings(fake_twilio, twilio_auth_token="wrong")
    channel = build_twilio_channels(settings)["sms"]
    with pytest.raises(SendError) as info:
        asyncio.run(channel.send(PATIENT, Reply("hi")))
    assert not info.value.retryable
    assert fake_twilio.requests[-1]["status"] == 401


def test_network_errors_are_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(
        twilio_sms_from=SMS_FROM, twilio_api_base_url=f"http://127.0.0.1:{port}"
    )
    channel = build_twilio_channels(settings)["sms"]
    with pytest.raises(SendError) as info:
        asyncio.run(channel.send(PATIENT, Reply("hi")))
    assert info.value.retryable


def test_sends_do_not_block_the_event_loop(fake_twilio: FakeTwilio) -> None:
    channel = build_twilio_channels(fake_settings(fake_twilio))["sms"]
    # Six sends one after another would take 3 s; side by side about 0.5 s. The
    # bound between them is wide, so a busy machine does not fail it.
    fake_twilio.latency_s = 0.5

    async def main() -> list[str]:
        return await asyncio.gather(*(channel.send(PATIENT, Reply(f"m{n}")) for n in range(6)))

    started = time.monotonic()
    sids = asyncio.run(main())
    assert time.monotonic() - started < 0.5 * 6 * 0.6
    assert len(set(sids)) == 6


def test_error_mapping_of_both_sdk_exception_types() -> None:
    def rest(code: int, status: int) -> SendError:
        return send_error_of(TwilioRestException(status, "uri", "msg", code, "POST"))

    def service(code: int, status: int) -> SendError:
        return send_error_of(
            TwilioServiceException("https://twilio.com/errors", "title", status, code)
        )

    for make in (rest, service):
        assert isinstance(make(21610, 400), OptedOut)
        assert make(20429, 429).retryable
        assert make(20001, 429).retryable
        assert make(20500, 500).retryable
        assert not make(21211, 400).retryable
        assert not make(21614, 400).retryable
        assert not make(21617, 400).retryable
    assert send_error_of(ConnectionError("down")).retryable
    assert send_error_of(TimeoutError()).retryable


# -- (b) the webhooks ----------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.statuses: list[tuple[str, str, str | None]] = []

    async def handle(self, message: InboundMessage) -> None:
        self.messages.append(message)

    async def on_status(self, sid: str, status: str, error_code: str | None) -> None:
        self.statuses.append((sid, status, error_code))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_client(recorder: Recorder, settings: Settings | None = None) -> TestClient:
    app = FastAPI()
    app.include_router(
        twilio_router(settings or make_settings(), recorder.handle, recorder.on_status)
    )
    return TestClient(app)


@pytest.fixture
def client(recorder: Recorder) -> Iterator[TestClient]:
    with make_client(recorder) as test_client:
        yield test_client


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def post(
    client: TestClient,
    path: str,
    params: dict[str, str],
    *,
    signature: str | None = "auto",
    query: str = "",
) -> Any:
    url = PUBLIC_URL + path + (f"?{query}" if query else "")
    headers = {"Content-Type": FORM}
    if signature == "auto":
        headers["X-Twilio-Signature"] = sign(url, params)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    target = path + (f"?{query}" if query else "")
    return client.post(target, content=urlencode(params), headers=headers)


MESSAGE_SID = "SM" + "1f" * 16


def sms_payload(**overrides: str) -> dict[str, str]:
    params = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": MESSAGE_SID,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "94105",
        "SmsSid": MESSAGE_SID,
        "FromState": "CA",
        "SmsStatus": "received",
        "FromCity": "SAN FRANCISCO",
        "Body": "Book a visit tuesday after 3",
        "FromCountry": "US",
        "To": SMS_FROM,
        "MessagingServiceSid": "MG" + "a" * 32,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": MESSAGE_SID,
        "AccountSid": ACCOUNT_SID,
        "From": PATIENT,
        "ApiVersion": "2010-04-01",
    }
    params.update(overrides)
    return params


def whatsapp_payload(**overrides: str) -> dict[str, str]:
    params = {
        "SmsMessageSid": MESSAGE_SID,
        "NumMedia": "0",
        "ProfileName": "Ana Pérez",
        "MessageType": "text",
        "SmsSid": MESSAGE_SID,
        "WaId": PATIENT.removeprefix("+"),
        "SmsStatus": "received",
        "Body": "Hola",
        "To": "whatsapp:" + WA_FROM,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": MESSAGE_SID,
        "AccountSid": ACCOUNT_SID,
        "From": "whatsapp:" + PATIENT,
        "ApiVersion": "2010-04-01",
        "ChannelMetadata": '{"type":"whatsapp","data":{"context":{}}}',
    }
    params.update(overrides)
    return params


def assert_twiml(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text == EMPTY_TWIML


def test_signed_sms_is_handled(client: TestClient, recorder: Recorder) -> None:
    params = sms_payload(SomethingTwilioAddsTomorrow="x")
    assert_twiml(post(client, "/webhooks/twilio/sms", params))
    [message] = recorder.messages
    assert message == InboundMessage(
        channel="sms",
        address=PATIENT,
        text="Book a visit tuesday after 3",
        provider_message_id=MESSAGE_SID,
    )
    assert message.raw["FromCity"] == "SAN FRANCISCO"
    assert message.raw["SomethingTwilioAddsTomorrow"] == "x"


def test_sms_from_in_an_odd_format(client: TestClient, recorder: Recorder) -> None:
    assert_twiml(post(client, "/webhooks/twilio/sms", sms_payload(From="+1 (555) 555-0123")))
    assert recorder.messages[0].address == PATIENT


def test_whatsapp_media_without_body(client: TestClient, recorder: Recorder) -> None:
    media_url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
    params = whatsapp_payload(
        Body="",
        NumMedia="2",
        MessageType="image",
        MediaContentType0="image/jpeg",
        MediaUrl0=media_url,
        MediaContentType1="application/pdf",
        MediaUrl1=media_url + "b",
    )
    assert_twiml(post(client, "/webhooks/twilio/whatsapp", params))
    [message] = recorder.messages
    assert message.channel == "whatsapp"
    assert message.address == PATIENT
    assert message.text == ""
    assert message.profile_name == "Ana Pérez"
    assert message.media == (
        Media("image/jpeg", media_url),
        Media("application/pdf", media_url + "b"),
    )
    assert message.raw["WaId"] == "15555550123"


def test_whatsapp_location(client: TestClient, recorder: Recorder) -> None:
    params = whatsapp_payload(
        Body="",
        MessageType="location",
        Latitude="40.4167754",
        Longitude="-3.7037902",
        Address="Puerta del Sol, Madrid",
        Label="Casa",
    )
    assert_twiml(post(client, "/webhooks/twilio/whatsapp", params))
    location = recorder.messages[0].location
    assert location == Location(40.4167754, -3.7037902, "Casa")


def test_whatsapp_location_without_label_uses_the_address(
    client: TestClient, recorder: Recorder
) -> None:
    params = whatsapp_payload(Latitude="1.5", Longitude="2.5", Address="Calle Mayor 1")
    assert_twiml(post(client, "/webhooks/twilio/whatsapp", params))
    assert recorder.messages[0].location == Location(1.5, 2.5, "Calle Mayor 1")


def test_whatsapp_button(client: TestClient, recorder: Recorder) -> None:
    params = whatsapp_payload(
        Body="Confirm",
        MessageType="button",
        ButtonText="Confirm",
        ButtonPayload="confirm:42",
        OriginalRepliedMessageSid="SM" + "2" * 32,
    )
    assert_twiml(post(client, "/webhooks/twilio/whatsapp", params))
    [message] = recorder.messages
    assert message.button_payload == "confirm:42"
    assert message.text == "Confirm"


def test_signed_url_with_a_query_string(client: TestClient, recorder: Recorder) -> None:
    assert_twiml(post(client, "/webhooks/twilio/sms", sms_payload(), query="clinic=1"))
    assert len(recorder.messages) == 1
    # the same signature is not valid once the query is dropped
    params = sms_payload()
    signature = sign(PUBLIC_URL + "/webhooks/twilio/sms?clinic=1", params)
    response = post(client, "/webhooks/twilio/sms", params, signature=signature)
    assert response.status_code == 403


def test_signature_with_the_default_port_is_accepted(
    client: TestClient, recorder: Recorder
) -> None:
    params = sms_payload()
    signature = sign("https://clinic.example.com:443/webhooks/twilio/sms", params)
    assert_twiml(post(client, "/webhooks/twilio/sms", params, signature=signature))


def _bad_signatures() -> list[tuple[str, str, str | None]]:
    params = sms_payload()
    return [
        ("missing", "/webhooks/twilio/sms", None),
        ("empty", "/webhooks/twilio/sms", ""),
        ("garbage", "/webhooks/twilio/sms", "not-a-signature"),
        (
            "other token",
            "/webhooks/twilio/sms",
            sign(PUBLIC_URL + "/webhooks/twilio/sms", params, "x"),
        ),
        (
            "request url",
            "/webhooks/twilio/sms",
            sign("http://testserver/webhooks/twilio/sms", params),
        ),
        (
            "other host",
            "/webhooks/twilio/sms",
            sign("https://evil.example/webhooks/twilio/sms", params),
        ),
        (
            "other path",
            "/webhooks/twilio/sms",
            sign(PUBLIC_URL + "/webhooks/twilio/whatsapp", params),
        ),
        (
            "http scheme",
            "/webhooks/twilio/sms",
            sign("http://clinic.example.com/webhooks/twilio/sms", params),
        ),
        (
            "status path",
            "/webhooks/twilio/status",
            sign(PUBLIC_URL + "/webhooks/twilio/sms", params),
        ),
    ]


@pytest.mark.parametrize(("case", "path", "signature"), _bad_signatures())
def test_bad_signatures_are_refused(
    client: TestClient, recorder: Recorder, case: str, path: str, signature: str | None
) -> None:
    params = sms_payload()
    response = post(client, path, params, signature=signature)
    assert response.status_code == 403, case
    assert recorder.messages == [] and recorder.statuses == []


def test_a_tampered_body_is_refused(client: TestClient, recorder: Recorder) -> None:
    params = sms_payload()
    signature = sign(PUBLIC_URL + "/webhooks/twilio/sms", params)
    tampered = sms_payload(Body="Cancel all my appointments")
    assert post(client, "/webhooks/twilio/sms", tampered, signature=signature).status_code == 403
    extra = sms_payload(Extra="1")
    assert post(client, "/webhooks/twilio/sms", extra, signature=signature).status_code == 403
    assert recorder.messages == []


def raw_post(client: TestClient, path: str, body: bytes, content_type: str) -> Any:
    # Refused before the signature is even checked, so any signature will do.
    headers = {"Content-Type": content_type, "X-Twilio-Signature": "c2lnbmF0dXJl"}
    return client.post(path, content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"MessageSid=SM1&Body=\xff\xfe&From=%2B15555550123", FORM, 400),
        (b"MessageSid=SM1&Body=%FF%FE&From=%2B15555550123", FORM, 400),
        (b"MessageSid=SM1&Body=caf%C3", FORM, 400),  # truncated in a character
        (b"MessageSid=SM1&Bo", FORM, 400),  # truncated in a name
        (b'{"MessageSid": "SM1", "From": "+15555550123"}', "application/json", 415),
        (b'{"MessageSid": "SM1", "From": "+15555550123"}', FORM, 400),
        (b"MessageSid=SM1", "text/plain", 415),
        (b"MessageSid=SM1", "multipart/form-data; boundary=x", 415),
        (b"MessageSid=SM1", "", 415),
        (b"x" * (300 * 1024), FORM, 413),
    ],
)
def test_malformed_bodies(
    client: TestClient, recorder: Recorder, body: bytes, content_type: str, status: int
) -> None:
    for path in ("/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "/webhooks/twilio/status"):
        response = raw_post(client, path, body, content_type)
        assert response.status_code == status, (path, response.text)
        assert response.json()["detail"]
    assert recorder.messages == [] and recorder.statuses == []


@pytest.mark.parametrize(
    ("drop", "overrides", "reason"),
    [
        ("MessageSid", {}, "MessageSid"),
        ("From", {}, "From"),
        (None, {"MessageSid": ""}, "MessageSid"),
        (None, {"MessageSid": "SM 1; DROP TABLE"}, "MessageSid"),
        (None, {"From": "not a number"}, "From"),
        (None, {"From": "+1"}, "From"),
        (None, {"From": "whatsapp:"}, "From"),
        (None, {"Latitude": "north", "Longitude": "1"}, "Latitude"),
        (None, {"Latitude": "91", "Longitude": "1"}, "Latitude"),
        (None, {"Latitude": "1", "Longitude": "nan"}, "Longitude"),
        (None, {"Latitude": "1"}, "Longitude"),
    ],
)
def test_bad_fields_get_400_with_a_reason(
    client: TestClient,
    recorder: Recorder,
    drop: str | None,
    overrides: dict[str, str],
    reason: str,
) -> None:
    params = sms_payload(**overrides)
    if drop:
        del params[drop]
    response = post(client, "/webhooks/twilio/sms", params)
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert recorder.messages == []


def test_channel_off_without_an_auth_token(recorder: Recorder) -> None:
    with make_client(recorder, make_settings(twilio_auth_token=None)) as off:
        for path in (
            "/webhooks/twilio/sms",
            "/webhooks/twilio/whatsapp",
            "/webhooks/twilio/status",
        ):
            response = post(off, path, sms_payload())
            assert response.status_code == 404
            assert response.json()["detail"] == "channel off"
    assert recorder.messages == []


def test_status_callbacks(client: TestClient, recorder: Recorder) -> None:
    base = {
        "SmsSid": MESSAGE_SID,
        "SmsStatus": "sent",
        "MessageStatus": "sent",
        "To": PATIENT,
        "MessagingServiceSid": "MG" + "a" * 32,
        "MessageSid": MESSAGE_SID,
        "AccountSid": ACCOUNT_SID,
        "From": SMS_FROM,
        "ApiVersion": "2010-04-01",
    }
    response = post(client, "/webhooks/twilio/status", base)
    assert response.status_code == 200 and response.content == b""
    failed = {
        **base,
        "SmsStatus": "undelivered",
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
    }
    assert post(client, "/webhooks/twilio/status", failed).status_code == 200
    read = {
        **base,
        "MessageStatus": "read",
        "ChannelToAddress": "+1555555XXXX",
        "RawDlrDoneDate": "x",
    }
    assert post(client, "/webhooks/twilio/status", read).status_code == 200
    assert recorder.statuses == [
        (MESSAGE_SID, "sent", None),
        (MESSAGE_SID, "undelivered", "30003"),
        (MESSAGE_SID, "read", None),
    ]
    assert recorder.messages == []


def test_bad_status_callbacks(client: TestClient, recorder: Recorder) -> None:
    good = {"MessageSid": MESSAGE_SID, "MessageStatus": "delivered"}
    assert post(client, "/webhooks/twilio/status", good, signature=None).status_code == 403
    assert post(client, "/webhooks/twilio/status", good, signature="x").status_code == 403
    assert post(client, "/webhooks/twilio/status", {"MessageSid": MESSAGE_SID}).status_code == 400
    assert post(client, "/webhooks/twilio/status", {"MessageStatus": "sent"}).status_code == 400
    assert recorder.statuses == []


# -- (c) fuzz ------------------------------------------------------------------------

TWILIO_KEYS = [
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "AccountSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "NumSegments",
    "MediaUrl0",
    "MediaContentType0",
    "MediaUrl1",
    "MediaUrl99",
    "Latitude",
    "Longitude",
    "Label",
    "Address",
    "ButtonPayload",
    "ButtonText",
    "ProfileName",
    "WaId",
    "MessageStatus",
    "ErrorCode",
]
ODD_VALUES = [
    "",
    " ",
    PATIENT,
    "whatsapp:" + PATIENT,
    "whatsapp:",
    "+1 (555) 010-0000",
    "5550100000",
    "0044 7911 123456",
    "+" + "9" * 40,
    MESSAGE_SID,
    "SM" + "x" * 100,
    "nan",
    "inf",
    "-1e999",
    "90.0000001",
    "1_000",
    "٣",
    "\x00",
    "%",
    "&",
    "=",
    "\u202e",
    "💊",
]

key_strategy = st.sampled_from(TWILIO_KEYS) | st.text(max_size=12)
value_strategy = st.sampled_from(ODD_VALUES) | st.text(max_size=40)
form_strategy = st.lists(st.tuples(key_strategy, value_strategy), max_size=10)


@pytest.mark.parametrize(
    "path", ["/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "/webhooks/twilio/status"]
)
def test_fuzzed_bodies_never_give_a_5xx(path: str) -> None:
    recorder = Recorder()
    url = PUBLIC_URL + path
    validator = RequestValidator(AUTH_TOKEN)
    examples = 2000  # issue 3: at least 2,000 generated bodies per endpoint

    with make_client(recorder) as test_client:

        @hsettings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            pairs=form_strategy,
            raw=st.none() | st.binary(max_size=200),
            mode=st.sampled_from(["signed", "signed", "unsigned", "wrong"]),
            content_type=st.sampled_from(
                [FORM, FORM, FORM + "; charset=UTF-8", "application/json", "text/plain", ""]
            ),
        )
        def check(
            pairs: list[tuple[str, str]], raw: bytes | None, mode: str, content_type: str
        ) -> None:
            before = len(recorder.messages) + len(recorder.statuses)
            body = raw if raw is not None else urlencode(pairs).encode("utf-8")
            headers = {"Content-Type": content_type}
            if mode == "signed":
                try:
                    parsed = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
                except UnicodeDecodeError:
                    parsed = []
                multi: dict[str, list[str]] = {}
                for key, value in parsed:
                    multi.setdefault(key, []).append(value)
                headers["X-Twilio-Signature"] = validator.compute_signature(url, _Multi(multi))
            elif mode == "wrong":
                headers["X-Twilio-Signature"] = "c2lnbmF0dXJl"
            response = test_client.post(path, content=body, headers=headers)
            assert response.status_code < 500, response.text
            handled = len(recorder.messages) + len(recorder.statuses) - before
            if response.status_code == 200:
                assert mode == "signed"
                assert handled == 1
            else:
                assert 400 <= response.status_code < 500
                assert handled == 0

        started = time.monotonic()
        check()
        assert time.monotonic() - started < 60


class _Multi(dict[str, list[str]]):
    """What RequestValidator.compute_signature needs to sign repeated keys (``getlist``)."""

    def getlist(self, key: str) -> list[str]:
        return self[key]
