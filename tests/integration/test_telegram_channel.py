"""The Telegram channel: sends through the real python-telegram-bot ``Bot`` to
the fake Bot API, and the ``/webhooks/telegram`` router on a bare FastAPI app.

Webhook bodies follow https://core.telegram.org/bots/api#update. Where a body
is refused or ignored:

- 403: secret token set and the header missing or wrong (handle not called);
- 404: channel off (no bot token);
- 400: not UTF-8, not JSON, not an object, no integer update_id, a message
  without a chat, fields of the wrong type: no Telegram server sends these, so
  a 4xx cannot start an endless retry;
- 200 and ignored: edited messages, channel posts, inline queries, polls,
  my_chat_member, unknown update kinds, group messages, messages with nothing
  the bot reads (a dice, a service message), which Telegram would otherwise
  retry;
- 503: ``handle`` itself failed (Telegram delivers the update again).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from channels.base import Channel, SendError
from channels.telegram import (
    ALLOWED_UPDATES,
    BlockedByUser,
    RateLimited,
    TelegramChannel,
    build_telegram_channel,
    callback_data_for,
    parse_update,
    split_text,
    telegram_router,
)
from core.messages import InboundMessage, Location, Media, Option, Reply
from core.settings import Settings
from tests.fakes import telegram_server
from tests.fakes.telegram_server import (
    FakeTelegram,
    callback_update,
    message_update,
    private_chat,
    user,
)

fake_telegram = telegram_server.fake_telegram  # the fixture, for the tests of this module

SECRET = "s3cret_Token-for-tests"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
CHAT = 42

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def channel_settings(fake: FakeTelegram, **extra: Any) -> Settings:
    return Settings(
        database_url="sqlite://",
        telegram_bot_token=fake.token,
        telegram_api_base_url=fake.base_url,
        telegram_webhook_secret=SECRET,
        **extra,
    )


async def send_all(channel: TelegramChannel, *sends: tuple[str, Reply]) -> list[str]:
    try:
        return [await channel.send(address, reply) for address, reply in sends]
    finally:
        await channel.aclose()


# -- sending -------------------------------------------------------------------


def test_channel_off_without_token() -> None:
    assert build_telegram_channel(Settings(database_url="sqlite://")) is None


def test_channel_implements_the_protocol(fake_telegram: FakeTelegram) -> None:
    channel = build_telegram_channel(channel_settings(fake_telegram))
    assert isinstance(channel, TelegramChannel)
    assert isinstance(channel, Channel)
    assert channel.name == "telegram"
    assert channel.base_url == f"{fake_telegram.base_url}/bot"
    assert fake_telegram.calls == []  # no getMe on construction


def test_sends_text(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))
    (message_id,) = run(send_all(channel, (str(CHAT), Reply("Hello from the clinic"))))
    assert fake_telegram.methods() == ["getMe", "sendMessage"]
    (sent,) = fake_telegram.sent
    assert sent["chat_id"] == str(CHAT)
    assert sent["text"] == "Hello from the clinic"
    assert "reply_markup" not in sent
    assert sent["link_preview_options"] == {"is_disabled": True}
    assert message_id == "1" and isinstance(message_id, str)


def test_options_become_an_inline_keyboard(fake_telegram: FakeTelegram) -> None:
    options = (
        Option("Dr. Ana Ruiz (family medicine)", "p:3"),
        Option("Tue 14 Apr 10:00", "s:2026-04-14T14:00:00+00:00"),
        Option("Wednesday", "d:2026-04-15"),
        Option("A" * 100, "x:1"),
    )
    channel = TelegramChannel(channel_settings(fake_telegram))
    run(send_all(channel, ("42", Reply("Who would you like to see?", options))))
    (sent,) = fake_telegram.sent
    assert sent["text"] == "Who would you like to see?"  # no numbered lines on Telegram
    rows = sent["reply_markup"]["inline_keyboard"]
    assert [len(row) for row in rows] == [1, 1, 1, 1]
    buttons = [row[0] for row in rows]
    assert [b["callback_data"] for b in buttons] == [o.value for o in options]
    assert [b["text"] for b in buttons[:3]] == [o.label for o in options[:3]]
    assert len(buttons[3]["text"]) == 64 and buttons[3]["text"].endswith("\u2026")


def test_callback_data_limits() -> None:
    assert callback_data_for(Option("x", "s:2026-04-14T14:00:00+00:00")) == (
        "s:2026-04-14T14:00:00+00:00"
    )
    assert callback_data_for(Option("x", "é" * 32)) == "é" * 32  # 64 bytes
    with pytest.raises(ValueError, match="65 bytes"):
        callback_data_for(Option("x", "a" * 65))
    with pytest.raises(ValueError, match="0 bytes"):
        callback_data_for(Option("x", ""))
    with pytest.raises(ValueError, match="66 bytes"):
        callback_data_for(Option("x", "é" * 33))


def test_a_value_too_long_for_callback_data_falls_back_to_numbered_lines(
    fake_telegram: FakeTelegram,
) -> None:
    reply = Reply("Pick one", (Option("First", "v:" + "1" * 80), Option("Second", "v:2")))
    channel = TelegramChannel(channel_settings(fake_telegram))
    run(send_all(channel, ("42", reply)))
    (sent,) = fake_telegram.sent
    assert "reply_markup" not in sent
    assert sent["text"] == "Pick one\n1. First\n2. Second"


def test_long_text_is_split_on_paragraphs(fake_telegram: FakeTelegram) -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 500 for n in range(4)]  # ~2,5k chars each
    text = "\n\n".join(p.strip() for p in paragraphs)
    assert len(text) > 4096
    reply = Reply(text, (Option("OK", "ok"),))
    channel = TelegramChannel(channel_settings(fake_telegram))
    (message_id,) = run(send_all(channel, ("42", reply)))
    sent = fake_telegram.sent
    assert len(sent) == 4  # two paragraphs never fit one message
    assert [s["text"] for s in sent] == [p.strip() for p in paragraphs]
    assert all("reply_markup" not in s for s in sent[:-1])
    assert sent[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ok"
    assert message_id == "4"  # the message carrying the keyboard
    assert fake_telegram.methods().count("getMe") == 1


def test_split_counts_utf16_and_falls_back_to_words() -> None:
    emoji = "\U0001f600" * 3000  # 6,000 UTF-16 units in 3,000 characters
    parts = split_text(emoji)
    assert "".join(parts) == emoji
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in parts)
    words = " ".join(["appointment"] * 1000)
    parts = split_text(words)
    assert len(parts) == 3 and " ".join(parts) == words
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in parts)
    sentences = "Take care. " * 500
    assert all(p.endswith(".") for p in split_text(sentences.strip()))
    assert split_text("   ") == []
    assert split_text("short") == ["short"]


def test_emoji_text_is_accepted_by_the_api_limit(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))
    run(send_all(channel, ("42", Reply("\U0001f600" * 3000))))
    assert len(fake_telegram.sent) == 2  # the fake refuses any part over 4,096 UTF-16 units


def test_get_me_at_most_once(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))

    async def many() -> None:
        try:
            await asyncio.gather(*(channel.send(str(n), Reply(f"hi {n}")) for n in range(1, 9)))
            await channel.send("1", Reply("again"))
        finally:
            await channel.aclose()

    run(many())
    assert fake_telegram.methods().count("getMe") == 1
    assert len(fake_telegram.sent) == 9


def test_blocked_by_user(fake_telegram: FakeTelegram) -> None:
    fake_telegram.block(CHAT)
    channel = TelegramChannel(channel_settings(fake_telegram))
    with pytest.raises(BlockedByUser) as caught:
        run(send_all(channel, (str(CHAT), Reply("Reminder"))))
    assert isinstance(caught.value, SendError)
    assert caught.value.retryable is False and caught.value.opted_out is True
    assert "blocked" in str(caught.value)


def test_forbidden_from_fail_next(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    channel = TelegramChannel(channel_settings(fake_telegram))
    with pytest.raises(BlockedByUser):
        run(send_all(channel, ("42", Reply("x"))))


def test_chat_not_found_is_not_retryable(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", 400, "Bad Request: chat not found")
    channel = TelegramChannel(channel_settings(fake_telegram))
    with pytest.raises(SendError) as caught:
        run(send_all(channel, ("42", Reply("x"))))
    assert caught.value.retryable is False and caught.value.opted_out is False
    assert "chat not found" in str(caught.value).lower()


def test_rate_limit_is_retryable_with_retry_after(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    channel = TelegramChannel(channel_settings(fake_telegram))
    with pytest.raises(RateLimited) as caught:
        run(send_all(channel, ("42", Reply("x"))))
    assert caught.value.retryable is True and caught.value.retry_after == 7.0
    # The next send goes through.
    run(send_all(TelegramChannel(channel_settings(fake_telegram)), ("42", Reply("x"))))
    assert [c.status for c in fake_telegram.calls if c.method == "sendMessage"] == [429, 200]


def test_server_error_is_retryable(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", 502, "Bad Gateway")
    channel = TelegramChannel(channel_settings(fake_telegram))
    with pytest.raises(SendError) as caught:
        run(send_all(channel, ("42", Reply("x"))))
    assert caught.value.retryable is True


def test_unreachable_api_is_retryable() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        settings = Settings(
            database_url="sqlite://",
            telegram_bot_token="1:x",
            telegram_api_base_url=f"http://127.0.0.1:{port}",
        )
        with pytest.raises(SendError) as caught:
            run(send_all(TelegramChannel(settings), ("42", Reply("x"))))
    assert caught.value.retryable is True


def test_bad_token_is_not_retryable_and_not_leaked(fake_telegram: FakeTelegram) -> None:
    settings = Settings(
        database_url="sqlite://",
        telegram_bot_token="999:wrong-token-value",
        telegram_api_base_url=fake_telegram.base_url,
    )
    with pytest.raises(SendError) as caught:
        run(send_all(TelegramChannel(settings), ("42", Reply("x"))))
    assert caught.value.retryable is False
    assert "wrong-token-value" not in str(caught.value)


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_error_mapping() -> None:
    from telegram.error import (
        BadRequest,
        ChatMigrated,
        Forbidden,
        NetworkError,
        RetryAfter,
        TimedOut,
    )

    channel = TelegramChannel(Settings(database_url="sqlite://", telegram_bot_token="1:x"))
    cases: list[tuple[Exception, type[SendError], bool]] = [
        (Forbidden("Forbidden: user is deactivated"), BlockedByUser, False),
        (BadRequest("Bad Request: chat not found"), SendError, False),
        (BadRequest("Bad Request: message is too long"), SendError, False),
        (RetryAfter(3), RateLimited, True),
        (TimedOut(), SendError, True),
        (NetworkError("httpx.ConnectError"), SendError, True),
        (ChatMigrated(-1001), SendError, False),
        (RuntimeError("boom"), SendError, True),
    ]
    for exc, kind, retryable in cases:
        error = channel._send_error(exc)
        assert type(error) is kind, exc
        assert error.retryable is retryable, exc


def test_bad_address_and_empty_reply_are_refused_without_a_call(
    fake_telegram: FakeTelegram,
) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))
    for address, reply in (("@somebody", Reply("x")), ("+15550100000", Reply("x"))):
        with pytest.raises(SendError) as caught:
            run(send_all(channel, (address, reply)))
        assert caught.value.retryable is False
    with pytest.raises(SendError):
        run(send_all(channel, ("42", Reply("   "))))
    assert fake_telegram.calls == []


def test_options_without_text_still_reach_the_patient(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))
    run(send_all(channel, ("42", Reply("", (Option("Yes", "y"), Option("No", "n"))))))
    (sent,) = fake_telegram.sent
    assert sent["text"] == "1. Yes\n2. No"
    assert len(sent["reply_markup"]["inline_keyboard"]) == 2


def test_webhook_registration_and_keyboard_clearing(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))

    async def flow() -> None:
        try:
            assert await channel.set_webhook("https://clinic.example/webhooks/telegram")
            message_id = await channel.send("42", Reply("Pick", (Option("A", "a"),)))
            await channel.clear_keyboard("42", message_id)
            assert await channel.delete_webhook()
        finally:
            await channel.aclose()

    run(flow())
    set_call = next(c for c in fake_telegram.calls if c.method == "setWebhook")
    assert set_call.params["url"] == "https://clinic.example/webhooks/telegram"
    assert set_call.params["secret_token"] == SECRET
    assert set_call.params["allowed_updates"] == list(ALLOWED_UPDATES)
    edit = next(c for c in fake_telegram.calls if c.method == "editMessageReplyMarkup")
    assert edit.status == 200 and edit.params["message_id"] == "1"
    assert fake_telegram.methods()[-1] == "deleteWebhook"


def test_a_new_event_loop_gets_a_new_bot(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))
    run(channel.send("42", Reply("one")))
    run(channel.send("42", Reply("two")))  # the first loop's connections are gone
    run(channel.aclose())
    assert len(fake_telegram.sent) == 2


def test_fake_tap_builds_the_callback_for_a_sent_keyboard(fake_telegram: FakeTelegram) -> None:
    channel = TelegramChannel(channel_settings(fake_telegram))
    run(send_all(channel, ("42", Reply("When?", (Option("Tuesday", "d:2026-04-14"),)))))
    body = fake_telegram.tap(42, "tues", update_id=77)
    parsed = parse_update(body)
    assert parsed.message is not None
    assert parsed.message.button_payload == "d:2026-04-14"
    assert parsed.message.text == "Tuesday"


# -- receiving -----------------------------------------------------------------

Recorder = tuple[TestClient, list[InboundMessage], list[str]]


def make_client(
    *,
    token: str | None = "123:abc",
    secret: str | None = SECRET,
    handle: Callable[[InboundMessage], Awaitable[None]] | None = None,
) -> Recorder:
    received: list[InboundMessage] = []
    blocked: list[str] = []

    async def record(msg: InboundMessage) -> None:
        received.append(msg)

    async def on_blocked(chat_id: str) -> None:
        blocked.append(chat_id)

    settings = Settings(
        database_url="sqlite://", telegram_bot_token=token, telegram_webhook_secret=secret
    )
    app = FastAPI()
    app.include_router(telegram_router(settings, handle or record, on_blocked=on_blocked))
    return TestClient(app), received, blocked


@pytest.fixture
def webhook() -> Recorder:
    return make_client()


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/webhooks/telegram",
        content=content,
        headers={"Content-Type": "application/json", **(HEADERS if headers is None else headers)},
    )


def only(received: list[InboundMessage]) -> InboundMessage:
    assert len(received) == 1, received
    return received[0]


def test_text_message(webhook: Recorder) -> None:
    client, received, _ = webhook
    answer = post(client, message_update(1001, CHAT, "I need an appointment"))
    assert answer.status_code == 200 and answer.json() == {}
    msg = only(received)
    assert msg.channel == "telegram"
    assert msg.address == "42"
    assert msg.text == "I need an appointment"
    assert msg.provider_message_id == "1001"
    assert msg.received_at == datetime(2026, 4, 14, 13, 0, tzinfo=UTC)
    assert msg.profile_name == "Ana"
    assert msg.button_payload is None and msg.media == () and msg.location is None
    assert msg.raw["language_code"] == "en" and msg.raw["message_id"] == 1


def test_same_update_twice_keeps_its_id(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = message_update(1002, CHAT, "hello")
    assert post(client, body).status_code == 200
    assert post(client, body).status_code == 200
    assert [m.provider_message_id for m in received] == ["1002", "1002"]  # handle dedupes


def test_start_command(webhook: Recorder) -> None:
    client, received, _ = webhook
    post(client, message_update(1003, CHAT, "/start@telemed_test_bot ref1"))
    msg = only(received)
    assert msg.raw["command"] == "start"
    assert msg.text == "/start@telemed_test_bot ref1"


def test_callback_query_is_answered_in_the_response(webhook: Recorder) -> None:
    client, received, _ = webhook
    keyboard = {
        "inline_keyboard": [
            [{"text": "Dr. Ana Ruiz", "callback_data": "p:3"}],
            [{"text": "Dr. Bo Chen", "callback_data": "p:4"}],
        ]
    }
    body = callback_update(2001, CHAT, "p:4", keyboard=keyboard, query_id="4382bfdwdsb323b2d9")
    answer = post(client, body)
    assert answer.status_code == 200
    assert answer.json() == {
        "method": "answerCallbackQuery",
        "callback_query_id": "4382bfdwdsb323b2d9",
    }
    msg = only(received)
    assert msg.button_payload == "p:4"
    assert msg.text == "Dr. Bo Chen"
    assert msg.address == "42"
    assert msg.provider_message_id == "cbq:4382bfdwdsb323b2d9"
    assert msg.raw["message_id"] == 2


def test_callback_without_a_findable_label_uses_the_data(webhook: Recorder) -> None:
    client, received, _ = webhook
    post(client, callback_update(2002, CHAT, "d:2026-04-15"))
    msg = only(received)
    assert msg.text == "d:2026-04-15" and msg.button_payload == "d:2026-04-15"


def test_callback_on_an_inline_message_uses_the_sender(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = {
        "update_id": 2003,
        "callback_query": {
            "id": "99",
            "from": user(77),
            "inline_message_id": "AAAA",
            "chat_instance": "1",
            "data": "p:1",
        },
    }
    assert post(client, body).json()["callback_query_id"] == "99"
    assert only(received).address == "77"


def test_callback_on_an_old_inaccessible_message(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = callback_update(2004, CHAT, "p:1")
    body["callback_query"]["message"] = {"chat": private_chat(CHAT), "message_id": 5, "date": 0}
    assert post(client, body).status_code == 200
    assert only(received).address == "42"


def test_callback_without_data_is_answered_not_handled(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = callback_update(2005, CHAT, "x")
    del body["callback_query"]["data"]
    body["callback_query"]["game_short_name"] = "tetris"
    answer = post(client, body)
    assert answer.status_code == 200 and answer.json()["method"] == "answerCallbackQuery"
    assert received == []


def test_location_and_venue(webhook: Recorder) -> None:
    client, received, _ = webhook
    post(
        client,
        message_update(3001, CHAT, location={"latitude": 40.4168, "longitude": -3.7038}),
    )
    venue = {
        "location": {"latitude": 40.4, "longitude": -3.7},
        "title": "Farmacia Sol",
        "address": "Calle Mayor 1",
    }
    post(client, message_update(3002, CHAT, location=venue["location"], venue=venue))
    assert received[0].location == Location(40.4168, -3.7038)
    assert received[0].text == ""
    assert received[1].location == Location(40.4, -3.7, "Farmacia Sol, Calle Mayor 1")


def test_location_out_of_range_is_refused(webhook: Recorder) -> None:
    client, received, _ = webhook
    answer = post(client, message_update(3003, CHAT, location={"latitude": 91, "longitude": 0}))
    assert answer.status_code == 400 and received == []


def test_own_contact_and_someone_elses(webhook: Recorder) -> None:
    client, received, _ = webhook
    own = {"phone_number": "34600111222", "first_name": "Ana", "user_id": CHAT}
    other = {"phone_number": "+1 555 010 0000", "first_name": "Bo", "last_name": "Chen"}
    post(client, message_update(4001, CHAT, contact=own))
    post(client, message_update(4002, CHAT, contact=dict(other, user_id=99)))
    post(client, message_update(4003, CHAT, contact=other))
    first, second, third = received
    assert first.text == "" and first.raw["contact_phone"] == "34600111222"
    assert first.raw["own_contact"] is True
    assert second.raw["own_contact"] is False and second.raw["contact_name"] == "Bo Chen"
    assert third.raw["own_contact"] is False


def test_photo_takes_the_largest_size(webhook: Recorder) -> None:
    client, received, _ = webhook
    photo = [
        {"file_id": "small", "file_unique_id": "u1", "width": 90, "height": 67, "file_size": 1200},
        {"file_id": "big", "file_unique_id": "u3", "width": 1280, "height": 960},
        {"file_id": "mid", "file_unique_id": "u2", "width": 320, "height": 240},
    ]
    post(client, message_update(5001, CHAT, photo=photo, caption="my rash"))
    msg = only(received)
    assert msg.media == (Media("image/jpeg", "big"),)
    assert msg.text == "my rash"


def test_voice_document_video_audio(webhook: Recorder) -> None:
    client, received, _ = webhook
    voice = {"file_id": "v1", "file_unique_id": "uv", "duration": 3, "mime_type": "audio/ogg"}
    document = {"file_id": "d1", "file_unique_id": "ud", "mime_type": "application/pdf"}
    video = {"file_id": "m1", "file_unique_id": "um", "width": 1, "height": 1, "duration": 1}
    audio = {"file_id": "a1", "file_unique_id": "ua", "duration": 1, "mime_type": "audio/mp4"}
    post(client, message_update(5002, CHAT, voice=voice))
    post(client, message_update(5003, CHAT, document=document, caption="lab results"))
    post(client, message_update(5004, CHAT, video=video))
    post(client, message_update(5005, CHAT, audio=audio))
    assert [m.media for m in received] == [
        (Media("audio/ogg", "v1"),),
        (Media("application/pdf", "d1"),),
        (Media("video/mp4", "m1"),),
        (Media("audio/mp4", "a1"),),
    ]
    assert received[1].text == "lab results"


def test_sticker_reaches_the_flow_as_an_empty_message(webhook: Recorder) -> None:
    client, received, _ = webhook
    sticker = {
        "file_id": "st1",
        "file_unique_id": "ust",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "\U0001f44d",
    }
    assert post(client, message_update(5006, CHAT, sticker=sticker)).status_code == 200
    msg = only(received)
    assert msg.text == "" and msg.media == (Media("sticker", "st1"),)
    assert msg.raw["sticker_emoji"] == "\U0001f44d"  # never read as an answer


@pytest.mark.parametrize(
    "body",
    [
        {"update_id": 6001, "edited_message": message_update(0, CHAT, "edit")["message"]},
        {
            "update_id": 6002,
            "channel_post": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": -1001, "type": "channel", "title": "News"},
                "text": "post",
            },
        },
        {
            "update_id": 6003,
            "edited_channel_post": {
                "message_id": 1,
                "date": 1,
                "edit_date": 2,
                "chat": {"id": -1001, "type": "channel", "title": "News"},
                "text": "post",
            },
        },
        {
            "update_id": 6004,
            "inline_query": {"id": "1", "from": user(CHAT), "query": "dr", "offset": ""},
        },
        {
            "update_id": 6005,
            "poll": {
                "id": "1",
                "question": "?",
                "options": [],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            },
        },
        {"update_id": 6006, "some_future_kind": {"anything": [1, 2, 3]}},
        {"update_id": 6007},
        message_update(6008, CHAT, dice={"emoji": "\U0001f3b2", "value": 3}),
        message_update(6009, CHAT, new_chat_title="x"),
        {
            "update_id": 6010,
            "message": {
                "message_id": 1,
                "date": 1,
                "from": user(CHAT),
                "chat": {"id": -100123, "type": "supergroup", "title": "Family"},
                "text": "book me",
            },
        },
        # A kind the bot ignores is not parsed, so even a malformed one is accepted.
        {"update_id": 6011, "edited_message": {"date": "yesterday"}},
    ],
    ids=lambda body: next((k for k in body if k != "update_id"), "empty"),
)
def test_ignored_updates_are_accepted(webhook: Recorder, body: dict[str, Any]) -> None:
    client, received, blocked = webhook
    answer = post(client, body)
    assert answer.status_code == 200 and answer.json() == {}
    assert received == [] and blocked == []


def _member_update(update_id: int, old: str, new: str) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": private_chat(CHAT),
            "from": user(CHAT),
            "date": 1_776_171_600,
            "old_chat_member": {"user": user(123, is_bot=True), "status": old, "until_date": 0},
            "new_chat_member": {"user": user(123, is_bot=True), "status": new, "until_date": 0},
        },
    }


def test_blocked_bot_calls_on_blocked(webhook: Recorder) -> None:
    client, received, blocked = webhook
    assert post(client, _member_update(7001, "member", "kicked")).status_code == 200
    assert post(client, _member_update(7002, "kicked", "member")).status_code == 200
    assert blocked == ["42"]
    assert received == []


def test_secret_missing_or_wrong_is_403(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = message_update(8001, CHAT, "hi")
    for headers in (
        {},
        {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
        {"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"},
        {"X-Telegram-Bot-Api-Secret-Token": ""},
    ):
        assert post(client, body, headers=headers).status_code == 403
    answer = client.post(
        "/webhooks/telegram",
        content=json.dumps(body).encode(),
        headers=[(b"X-Telegram-Bot-Api-Secret-Token", "s\xe9cret".encode("latin-1"))],
    )
    assert answer.status_code == 403
    assert post(client, b"not json", headers={}).status_code == 403  # secret checked first
    assert received == []


def test_channel_off_is_404() -> None:
    client, received, _ = make_client(token=None)
    assert post(client, message_update(8002, CHAT, "hi")).status_code == 404
    assert received == []


def test_without_a_secret_updates_are_accepted() -> None:
    client, received, _ = make_client(secret=None)
    assert post(client, message_update(8003, CHAT, "hi"), headers={}).status_code == 200
    assert only(received).text == "hi"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b'{"update_id": 1, "message": ',
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"update_id": 1' + b', "x": [' * 5_000 + b"]" * 5_000 + b"}",
        b'{"update_id": ' + b"9" * 5_000 + b"}",
        json.dumps({"message": message_update(0, CHAT, "no id")["message"]}).encode(),
        json.dumps({"update_id": "9001", "message": {}}).encode(),
        json.dumps({"update_id": True}).encode(),
        json.dumps({"update_id": -1}).encode(),
        json.dumps({"update_id": 9002, "message": {"message_id": 1, "date": 1}}).encode(),
        json.dumps({"update_id": 9003, "message": "text"}).encode(),
        json.dumps(message_update(9004, CHAT, text=123)).encode(),  # type: ignore[arg-type]
        json.dumps(message_update(9005, CHAT, "hi", date=10**20)).encode(),
        json.dumps(message_update(9006, CHAT, "hi", chat={"id": "42", "type": "private"})).encode(),
        json.dumps(message_update(9007, CHAT, photo=[1, 2])).encode(),
        json.dumps({"update_id": 9008, "callback_query": {"id": "1"}}).encode(),
    ],
)
def test_malformed_bodies_are_4xx_never_5xx(webhook: Recorder, body: bytes) -> None:
    client, received, _ = webhook
    answer = post(client, body)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json()["detail"]
    assert received == []


def test_lone_surrogates_and_nul_are_cleaned(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = json.dumps(message_update(9010, CHAT, "a\ud800b\x00c")).encode()
    assert post(client, body).status_code == 200
    assert only(received).text == "a\ufffdbc"


def test_a_lone_surrogate_in_a_callback_id_is_answered_as_valid_json(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = (
        b'{"update_id": 9009, "callback_query": {"id": "\\ud800", "from": {"id": 1, '
        b'"is_bot": false, "first_name": "A"}, "chat_instance": "1", "data": "x"}}'
    )
    answer = post(client, body)
    assert answer.status_code == 200
    assert answer.json()["callback_query_id"] == "\ufffd"
    assert only(received).provider_message_id == "cbq:\ufffd"


def test_oversized_body_is_413(webhook: Recorder) -> None:
    client, received, _ = webhook
    body = message_update(9011, CHAT, "x" * (2 << 20))
    assert post(client, body).status_code == 413
    assert received == []


def test_a_failing_handle_is_503_so_telegram_retries() -> None:
    async def broken(msg: InboundMessage) -> None:
        raise RuntimeError("database is locked")

    client, _, _ = make_client(handle=broken)
    answer = post(client, message_update(9012, CHAT, "hi"))
    assert answer.status_code == 503
    assert "database" not in answer.text


# -- fuzz ------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "update_id",
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
        "channel_post",
        "message_id",
        "date",
        "chat",
        "from",
        "id",
        "type",
        "text",
        "caption",
        "data",
        "chat_instance",
        "first_name",
        "is_bot",
        "photo",
        "file_id",
        "file_unique_id",
        "width",
        "height",
        "location",
        "latitude",
        "longitude",
        "venue",
        "contact",
        "phone_number",
        "user_id",
        "reply_markup",
        "inline_keyboard",
        "callback_data",
        "sticker",
        "voice",
        "document",
        "mime_type",
        "new_chat_member",
        "status",
        "reply_to_message",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["private", "group", "kicked", "member", "p:1", "", "42"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS | st.text(max_size=4), children, max_size=6)
    ),
    max_leaves=10,
)

STICKER = {
    "file_id": "s",
    "file_unique_id": "u",
    "type": "regular",
    "width": 1,
    "height": 1,
    "is_animated": False,
    "is_video": False,
}
TEMPLATES: list[dict[str, Any]] = [
    message_update(1, CHAT, "hello"),
    message_update(2, CHAT, location={"latitude": 1.5, "longitude": 2.5}),
    message_update(3, CHAT, contact={"phone_number": "+1555", "first_name": "A", "user_id": CHAT}),
    message_update(
        4,
        CHAT,
        photo=[{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}],
        caption="c",
    ),
    message_update(5, CHAT, sticker=STICKER),
    callback_update(
        6, CHAT, "p:1", keyboard={"inline_keyboard": [[{"text": "A", "callback_data": "p:1"}]]}
    ),
    _member_update(7, "member", "kicked"),
    {"update_id": 8, "edited_message": message_update(0, CHAT, "e")["message"]},
]


@st.composite
def mutated_updates(draw: st.DrawFn) -> Any:
    """A real-shaped update with a few fields replaced by anything, or removed."""
    body = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES))))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        node: Any = body
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, dict | list) and child and draw(st.booleans()):
                node = child
                continue
            if isinstance(node, dict) and draw(st.integers(0, 3)) == 0:
                del node[key]
            else:
                node[key] = draw(JSON_VALUES)
            break
    return body


@st.composite
def retexted_updates(draw: st.DrawFn) -> Any:
    """A real-shaped update whose free-text fields hold any text (lone surrogates included)."""

    def walk(node: Any, key: Any = None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and key not in ("type", "status"):
            return draw(st.text(max_size=80))
        return node

    return walk(draw(st.sampled_from(TEMPLATES)))


BODIES = st.one_of(
    mutated_updates().map(lambda b: json.dumps(b).encode()),
    retexted_updates().map(lambda b: json.dumps(b).encode()),
    JSON_VALUES.map(lambda b: json.dumps(b).encode()),
    st.dictionaries(KEYS, JSON_VALUES, max_size=5).map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=64),
)
_ADDRESS = re.compile(r"^-?\d+$")


def test_fuzzed_bodies_never_5xx() -> None:
    seen: list[InboundMessage] = []

    async def check(msg: InboundMessage) -> None:
        # What reaches the flows is well-formed, whatever came in.
        assert msg.channel == "telegram"
        assert _ADDRESS.match(msg.address)
        assert isinstance(msg.text, str) and isinstance(msg.provider_message_id, str)
        msg.text.encode("utf-8")
        json.dumps(msg.raw).encode("utf-8")
        assert msg.button_payload is None or isinstance(msg.button_payload, str)
        seen.append(msg)

    client, _, _ = make_client(handle=check)
    statuses: dict[int, int] = {}

    @hsettings(
        max_examples=2000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=BODIES)
    def fuzz(body: bytes) -> None:
        answer = post(client, body)
        assert answer.status_code < 500, (answer.status_code, answer.text, body[:300])
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    with client:  # one event-loop portal for all requests instead of one per request
        fuzz()
    assert sum(statuses.values()) >= 2000
    assert statuses.get(200, 0) > 100 and statuses.get(400, 0) > 100, statuses
    assert seen  # some mutated updates still made it through to the handler


# -- the fake itself ---------------------------------------------------------------


def test_fake_speaks_the_bot_api_forms(fake_telegram: FakeTelegram) -> None:
    import httpx

    base = f"{fake_telegram.base_url}/bot{fake_telegram.token}"
    me = httpx.get(f"{base}/getMe").json()
    assert me["ok"] is True and me["result"]["is_bot"] is True
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    sent = httpx.post(
        f"{base}/SENDMESSAGE", json={"chat_id": 7, "text": "hi", "reply_markup": markup}
    ).json()
    assert sent["result"]["chat"] == {"id": 7, "type": "private", "first_name": "Patient"}
    assert fake_telegram.sent[-1] == {"chat_id": "7", "text": "hi", "reply_markup": markup}
    query = httpx.get(f"{base}/sendMessage", params={"chat_id": "8", "text": "q"}).json()
    assert query["ok"] is True and query["result"]["text"] == "q"
    assert httpx.post(f"{base}/sendMessage", data={"chat_id": "8"}).status_code == 400
    bad_data = {
        "chat_id": "8",
        "text": "x",
        "reply_markup": json.dumps(
            {"inline_keyboard": [[{"text": "A", "callback_data": "a" * 65}]]}
        ),
    }
    answer = httpx.post(f"{base}/sendMessage", data=bad_data)
    assert answer.json()["description"] == "Bad Request: BUTTON_DATA_INVALID"
    wrong = httpx.post(f"{fake_telegram.base_url}/bot1:nope/getMe")
    assert wrong.status_code == 401 and wrong.json()["ok"] is False
    assert httpx.post(f"{base}/noSuchMethod").status_code == 404
    fake_telegram.fail_next("getMe", 429, "Too Many Requests: retry after 3", retry_after=3)
    limited = httpx.post(f"{base}/getMe").json()
    assert limited == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    assert [c.status for c in fake_telegram.calls][-1] == 429
    assert all(c.at > 0 and c.received_at.tzinfo is UTC for c in fake_telegram.calls)
