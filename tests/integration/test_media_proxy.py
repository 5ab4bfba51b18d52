"""The photos patients attach to their questions, as the doctor sees them:
through the dashboard's media proxy, fetched from the fake Twilio (HTTP Basic
auth, as Twilio enforces on media URLs) and the fake Telegram Bot API
(getFile, then the file URL) by the real channels; access like the thread,
every view audited, and nothing a browser could run served inline."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bots.app import build_senders, create_app
from bots.media import MAX_MEDIA_BYTES, served_as
from channels.base import Channel, MediaRefused
from channels.twilio import TwilioChannel
from core import questions
from core.clock import FixedClock
from core.db import Database
from core.models import AuditEntry, Patient, QuestionMessage, QuestionThread
from core.patients import get_or_create_identity
from core.settings import Settings
from tests.clinic import TZ
from tests.fakes import telegram_server, twilio_server
from tests.fakes.telegram_server import FakeTelegram, message_update
from tests.fakes.twilio_server import FakeTwilio, running_fake_twilio
from tests.staff import StaffClient, StaffSite

fake_twilio = twilio_server.fake_twilio
fake_telegram = telegram_server.fake_telegram

PUBLIC_URL = "http://clinic.test"  # http: the test client does not send Secure cookies
SMS_FROM = "+15005550006"
SECRET = "telegram-secret_1"
JANE = "+15555550901"  # booked with Dr Ruiz, writes by SMS
TG_CHAT = 4242  # a registered patient on Telegram
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"
ASK = "Question for Dr Ruiz: is this rash normal?"


class Site:
    """The dashboard with the real channels aimed at the fakes, and the patients' side."""

    def __init__(
        self, db: Database, clock: FixedClock, twilio: FakeTwilio, telegram: FakeTelegram
    ) -> None:
        site = StaffSite.open(
            db,
            clock,
            public_url=PUBLIC_URL,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            twilio_api_base_url=twilio.base_url,
            twilio_sms_from=SMS_FROM,
            telegram_bot_token=telegram.token,
            telegram_api_base_url=telegram.base_url,
            telegram_webhook_secret=SECRET,
        )
        # StaffSite's app sends through recording channels; this one has the real ones.
        self.senders: dict[str, Channel] = build_senders(site.clinic.settings)
        app = create_app(site.clinic.settings, db=db, clock=clock, role="web", senders=self.senders)
        self.site = dataclasses.replace(site, app=app)
        self.twilio, self.telegram = twilio, telegram
        self.db, self.clock = db, clock
        self.webhooks = self.site.anonymous()
        self.updates = iter(range(1, 10_000))
        self.site.clinic.book(JANE, datetime(2026, 4, 20, 10, 0, tzinfo=ZoneInfo(TZ)))
        with db.transaction() as session:
            identity = get_or_create_identity(session, "telegram", str(TG_CHAT), now=clock.now())
            registered = Patient(
                clinic_id=1, name="Tom Telegram", date_of_birth=date(1980, 5, 6), language="en"
            )
            session.add(registered)
            session.flush()
            identity.patient_id = registered.id
            identity.verified_at = clock.now()

    def client(self, email: str | None) -> StaffClient:
        return self.site.client(email)

    # -- the patient's side ---------------------------------------------------------

    def mms(self, text: str, *media: tuple[str, str]) -> QuestionMessage:
        """A signed Twilio SMS webhook with ``media`` ((MediaUrl, content type)...)."""
        params = {
            "MessageSid": "MM" + uuid.uuid4().hex,
            "AccountSid": self.twilio.account_sid,
            "From": JANE,
            "To": SMS_FROM,
            "Body": text,
            "NumMedia": str(len(media)),
        }
        for n, (url, kind) in enumerate(media):
            params[f"MediaUrl{n}"] = url
            params[f"MediaContentType{n}"] = kind
        path = "/webhooks/twilio/sms"
        signature = RequestValidator(self.twilio.auth_token).compute_signature(
            PUBLIC_URL + path, params
        )
        answer = self.webhooks.post(path, data=params, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.text
        return self.last_message()

    def telegram_photo(self, file_id: str, caption: str = ASK) -> QuestionMessage:
        photo = [
            {"file_id": "AgACsmall", "file_unique_id": "s1", "width": 90, "height": 67},
            {"file_id": file_id, "file_unique_id": "b1", "width": 1280, "height": 960},
        ]
        body = message_update(next(self.updates), TG_CHAT, photo=photo, caption=caption)
        answer = self.webhooks.post(
            "/webhooks/telegram", json=body, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
        assert answer.status_code == 200, answer.text
        return self.last_message()

    def last_message(self) -> QuestionMessage:
        with self.db.transaction() as session:
            found = session.scalars(
                select(QuestionMessage).order_by(QuestionMessage.id.desc()).limit(1)
            ).first()
            assert found is not None, "no question was stored"
            _ = found.thread
            return found

    def stored(self, media: list[dict[str, str]], channel: str = "sms") -> QuestionMessage:
        """A question from Jane with ``media`` stored as it is (no webhook)."""
        ruiz = self.site.clinic.practitioner("Ruiz")
        with self.db.transaction() as session:
            patient_id = self.last_patient_id(session)
            thread = questions.open_thread(
                session,
                patient_id=patient_id,
                practitioner_id=ruiz,
                channel=channel,
                address=JANE,
                body="look at this",
                media=media,
                inbound_id=None,
                now=self.clock.now(),
                settings=self.site.clinic.settings,
            )
            message = thread.messages[0]
            _ = message.thread
            return message

    def last_patient_id(self, session: Any) -> int:
        identity = get_or_create_identity(session, "sms", JANE, now=self.clock.now())
        assert identity.patient_id is not None
        return identity.patient_id

    def media_audits(self) -> list[AuditEntry]:
        with self.db.transaction() as session:
            return list(
                session.scalars(
                    select(AuditEntry).where(AuditEntry.entity == "media").order_by(AuditEntry.id)
                )
            )


@pytest.fixture
def site(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> Iterator[Site]:
    yield Site(db, clock, fake_twilio, fake_telegram)


def twilio_channel(fake: FakeTwilio) -> TwilioChannel:
    settings = Settings(
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_api_base_url=fake.base_url,
        twilio_sms_from=SMS_FROM,
    )
    return TwilioChannel("sms", settings)


def proxy(message: QuestionMessage, index: int = 0) -> str:
    return f"/dashboard/media/{message.id}/{index}"


def assert_private(answer: Any) -> None:
    assert answer.headers["cache-control"] == "private, no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


# -- the photo reaches the doctor ----------------------------------------------------------


def test_an_mms_photo_is_shown_to_the_doctor_through_the_proxy(site: Site) -> None:
    url = site.twilio.add_media(JPEG, "image/jpeg")
    message = site.mms(ASK, (url, "image/jpeg"))
    assert message.media == [{"url": url, "content_type": "image/jpeg"}]
    doctor = site.client("ruiz@clinic.test")

    page = doctor.get(f"/dashboard/inbox/{message.thread_id}")
    assert page.status_code == 200
    assert f'<img src="{proxy(message)}"' in page.text
    assert site.twilio.base_url not in page.text  # the provider's URL never reaches the page

    photo = doctor.get(proxy(message))
    assert photo.status_code == 200, photo.text
    assert photo.content == JPEG
    assert photo.headers["content-type"] == "image/jpeg"
    assert photo.headers["content-disposition"].startswith("inline")
    assert_private(photo)
    # Fetched once, with the account's credentials.
    assert site.twilio.media_requests == [
        {"path": url.removeprefix(site.twilio.base_url), "authorization": True, "status": 200}
    ]
    [audit] = site.media_audits()
    assert (audit.action, audit.entity_id, audit.user_email) == (
        "view",
        message.id,
        "ruiz@clinic.test",
    )
    assert audit.patient_id == message.thread.patient_id


def test_twilio_s_redirect_to_its_cdn_is_followed_without_the_credentials(site: Site) -> None:
    site.twilio.media_redirect = True
    message = site.mms(ASK, (site.twilio.add_media(JPEG), "image/jpeg"))
    photo = site.client("ruiz@clinic.test").get(proxy(message))
    assert photo.status_code == 200 and photo.content == JPEG
    first, second = site.twilio.media_requests
    assert (first["authorization"], first["status"]) == (True, 307)
    assert second["path"].startswith("/cdn/")
    assert (second["authorization"], second["status"]) == (False, 200)


def test_the_fake_refuses_media_without_basic_auth(site: Site) -> None:
    """The proxy's test is only worth something if the fake enforces the auth."""
    import httpx

    url = site.twilio.add_media(JPEG)
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(site.twilio.account_sid, "wrong")).status_code == 401
    assert httpx.get(url, auth=(site.twilio.account_sid, site.twilio.auth_token)).content == JPEG


def test_a_telegram_photo_is_shown_through_the_proxy(site: Site) -> None:
    file_id = site.telegram.add_file(JPEG, "image/jpeg")
    message = site.telegram_photo(file_id)
    assert message.thread.channel == "telegram"
    assert message.media == [{"url": file_id, "content_type": "image/jpeg"}]  # the biggest size
    doctor = site.client("ruiz@clinic.test")
    page = doctor.get(f"/dashboard/inbox/{message.thread_id}")
    assert f'<img src="{proxy(message)}"' in page.text

    photo = doctor.get(proxy(message))
    assert photo.status_code == 200, photo.text
    assert photo.content == JPEG
    assert photo.headers["content-type"] == "image/jpeg"
    assert_private(photo)
    assert ("getFile", {"file_id": file_id}) in site.telegram.calls
    assert site.telegram.downloads == ["photos/file_0.jpg"]
    assert site.telegram.token not in photo.text


def test_media_come_through_the_channel_that_received_them(site: Site) -> None:
    """The thread's channel is where the patient wrote last (here: Telegram);
    a photo that came by SMS is still fetched from Twilio."""
    message = site.mms(ASK, (site.twilio.add_media(JPEG), "image/jpeg"))
    with site.db.transaction() as session:
        thread = session.get(QuestionThread, message.thread_id)
        assert thread is not None
        thread.channel = "telegram"  # where the patient wrote last
    photo = site.client("ruiz@clinic.test").get(proxy(message))
    assert photo.status_code == 200 and photo.content == JPEG
    assert site.telegram.calls == []


# -- who may see it -------------------------------------------------------------------------


def test_another_doctor_gets_403_and_nothing_is_fetched(site: Site) -> None:
    message = site.mms(ASK, (site.twilio.add_media(JPEG), "image/jpeg"))
    answer = site.client("okafor@clinic.test").get(proxy(message))
    assert answer.status_code == 403
    assert JPEG not in answer.content
    assert site.twilio.media_requests == []
    assert site.media_audits() == []


@pytest.mark.parametrize("email", ["staff@clinic.test", "admin@clinic.test"])
def test_staff_and_admins_see_every_thread_s_photos(site: Site, email: str) -> None:
    message = site.mms(ASK, (site.twilio.add_media(JPEG), "image/jpeg"))
    assert site.client(email).get(proxy(message)).content == JPEG


def test_anonymous_is_sent_to_the_login(site: Site) -> None:
    message = site.mms(ASK, (site.twilio.add_media(JPEG), "image/jpeg"))
    answer = site.client(None).get(proxy(message))
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")
    assert site.twilio.media_requests == []


def test_an_unknown_message_or_index_is_404(site: Site) -> None:
    message = site.mms(ASK, (site.twilio.add_media(JPEG), "image/jpeg"))
    doctor = site.client("ruiz@clinic.test")
    for path in (proxy(message, 1), proxy(message, -1), f"/dashboard/media/{message.id + 99}/0"):
        answer = doctor.get(path)
        assert answer.status_code == 404, path
        assert "no such attachment" in answer.text
    assert doctor.get(f"/dashboard/media/{message.id}/x").status_code == 422
    assert site.twilio.media_requests == []


# -- what is never fetched ------------------------------------------------------------------


def test_a_stored_url_on_another_host_is_refused_without_a_request(site: Site) -> None:
    """Same path, same account, another server: the credentials never go there."""
    with running_fake_twilio(site.twilio.account_sid, site.twilio.auth_token) as stranger:
        url = stranger.add_media(JPEG)
        message = site.stored([{"url": url, "content_type": "image/jpeg"}])
        answer = site.client("ruiz@clinic.test").get(proxy(message))
        assert answer.status_code == 502
        assert "not a Twilio media URL" in answer.text
        assert stranger.media_requests == []


@pytest.mark.parametrize(
    "reference",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
        "https://api.twilio.com.evil.example/2010-04-01/Accounts/{sid}/Messages/MM{h}/Media/ME{h}",
        "https://evil.example/?https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages/MM{h}/Media/ME{h}",
        "https://{sid}:token@api.twilio.com/2010-04-01/Accounts/{sid}/Messages/MM{h}/Media/ME{h}",
        "http://api.twilio.com/2010-04-01/Accounts/{sid}/Messages/MM{h}/Media/ME{h}",
        "https://api.twilio.com/2010-04-01/Accounts/AC{h}/Messages/MM{h}/Media/ME{h}",
        "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json",
        "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages/MM{h}/Media/ME{h}?x=1",
        "https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages/MM{h}/Media/ME{h}/../../../Calls",
    ],
)
def test_only_this_account_s_twilio_media_urls_get_the_credentials(
    fake_twilio: FakeTwilio, reference: str
) -> None:
    channel = twilio_channel(fake_twilio)
    url = reference.format(sid=fake_twilio.account_sid, h="ab" * 16)
    with pytest.raises(MediaRefused):
        asyncio.run(channel.fetch_media(url, MAX_MEDIA_BYTES))


def test_the_real_twilio_host_is_accepted(fake_twilio: FakeTwilio) -> None:
    sid, h = fake_twilio.account_sid, "ab" * 16
    url = f"https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages/MM{h}/Media/ME{h}"
    assert twilio_channel(fake_twilio)._credentialed(url)


# -- the provider fails ---------------------------------------------------------------------


def test_a_provider_404_is_a_502_with_a_reason(site: Site) -> None:
    url = site.twilio.add_media(JPEG)
    unknown = url[:-4] + ("0000" if not url.endswith("0000") else "1111")  # same shape
    message = site.mms(ASK, (unknown, "image/jpeg"))
    answer = site.client("ruiz@clinic.test").get(proxy(message))
    assert answer.status_code == 502
    assert "Twilio answered HTTP 404" in answer.text
    assert site.twilio.media_requests[-1]["status"] == 404


def test_a_provider_that_does_not_answer_in_time_is_a_502(site: Site) -> None:
    channel = site.senders["sms"]
    assert isinstance(channel, TwilioChannel)
    channel.media_timeout_s = 0.2
    site.twilio.media_delay_s = 2.0
    message = site.mms(ASK, (site.twilio.add_media(JPEG), "image/jpeg"))
    answer = site.client("ruiz@clinic.test").get(proxy(message))
    assert answer.status_code == 502
    assert "did not answer in time" in answer.text


def test_a_telegram_file_id_telegram_does_not_know_is_a_502(site: Site) -> None:
    message = site.telegram_photo("AgACAgQAAxkBAAunknown")
    answer = site.client("ruiz@clinic.test").get(proxy(message))
    assert answer.status_code == 502
    assert "Telegram refused the file" in answer.text
    assert site.telegram.token not in answer.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversize_twilio_file_is_refused(site: Site, chunked: bool) -> None:
    url = site.twilio.add_media(b"\0" * (MAX_MEDIA_BYTES + 1), chunked=chunked)
    message = site.mms(ASK, (url, "image/jpeg"))
    answer = site.client("ruiz@clinic.test").get(proxy(message))
    assert answer.status_code == 502
    assert "larger than 10 MB" in answer.text


def test_an_oversize_telegram_file_is_refused_before_the_download(site: Site) -> None:
    file_id = site.telegram.add_file(JPEG, file_size=MAX_MEDIA_BYTES + 1)
    message = site.telegram_photo(file_id)
    answer = site.client("ruiz@clinic.test").get(proxy(message))
    assert answer.status_code == 502
    assert "larger than 10 MB" in answer.text
    assert site.telegram.downloads == []


def test_a_channel_that_is_off_is_a_502(site: Site) -> None:
    message = site.stored([{"url": "AgACAgQAAxkBAAx", "content_type": "image/jpeg"}], "whatsapp")
    answer = site.client("ruiz@clinic.test").get(proxy(message))
    assert answer.status_code == 502
    assert "The whatsapp channel is off" in answer.text


# -- what is served inline ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "served", "inline"),
    [
        ("image/jpeg", "image/jpeg", True),
        ("image/png", "image/png", True),
        ("image/gif", "image/gif", True),
        ("image/webp", "image/webp", True),
        ("image/svg+xml", "application/octet-stream", False),
        ("text/html", "application/octet-stream", False),
        ("application/xhtml+xml", "application/octet-stream", False),
        ("text/javascript", "application/octet-stream", False),
        ("application/pdf", "application/pdf", False),
        ("audio/ogg", "audio/ogg", False),
        ("video/mp4", "video/mp4", False),
        ("image/heic", "image/heic", False),
        ("sticker", "application/octet-stream", False),
        ("", "application/octet-stream", False),
    ],
)
def test_what_is_shown_inline(stored: str, served: str, inline: bool) -> None:
    assert served_as(stored) == (served, inline)


@pytest.mark.parametrize("kind", ["image/svg+xml", "text/html"])
def test_svg_and_html_are_downloads_of_octet_stream(site: Site, kind: str) -> None:
    script = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/><script>alert(2)</script>'
    message = site.mms(ASK, (site.twilio.add_media(script, kind), kind))
    doctor = site.client("ruiz@clinic.test")
    page = doctor.get(f"/dashboard/inbox/{message.thread_id}")
    assert f'<img src="{proxy(message)}"' not in page.text
    assert f'<a href="{proxy(message)}"' in page.text  # a download link instead
    answer = doctor.get(proxy(message))
    assert answer.status_code == 200
    assert answer.content == script
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in answer.headers["content-security-policy"]
    assert_private(answer)


def test_a_pdf_is_a_download_with_its_type(site: Site) -> None:
    message = site.mms(
        ASK, (site.twilio.add_media(b"%PDF-1.4\n", "application/pdf"), "application/pdf")
    )
    answer = site.client("ruiz@clinic.test").get(proxy(message))
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="attachment-{message.id}-0.pdf"'
    )


def test_several_photos_each_have_their_index(site: Site) -> None:
    other = JPEG[::-1]
    message = site.mms(
        ASK,
        (site.twilio.add_media(JPEG), "image/jpeg"),
        (site.twilio.add_media(other, "image/png"), "image/png"),
    )
    doctor = site.client("ruiz@clinic.test")
    page = doctor.get(f"/dashboard/inbox/{message.thread_id}")
    assert f'<img src="{proxy(message, 0)}"' in page.text
    assert f'<img src="{proxy(message, 1)}"' in page.text
    assert doctor.get(proxy(message, 1)).content == other
    assert doctor.get(proxy(message, 1)).headers["content-type"] == "image/png"


def test_hostile_stored_media_are_escaped_on_the_page(site: Site) -> None:
    message = site.stored(
        [{"url": 'javascript:alert(1)"><script>', "content_type": "<script>alert(1)</script>"}]
    )
    page = site.client("ruiz@clinic.test").get(f"/dashboard/inbox/{message.thread_id}")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "javascript:" not in page.text
    assert f'href="{proxy(message)}"' in page.text
