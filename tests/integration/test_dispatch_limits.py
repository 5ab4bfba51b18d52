"""Per-sender send rates and provider 429s: the dispatcher with the real channels
against the fake Twilio and Telegram servers, timed by the fakes' monotonic clocks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bots.dispatcher import Dispatcher
from bots.ratelimit import Limit, RateLimiter, RateLimits
from channels.telegram import TelegramChannel
from channels.twilio import TwilioChannel
from core import outbox
from core.clock import Clock, FixedClock, SystemClock
from core.db import Database
from core.messages import Reply
from core.models import OutboxMessage
from core.settings import Settings
from tests.fakes import telegram_server, twilio_server
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import FakeTwilio

fake_twilio = twilio_server.fake_twilio  # the fixtures, for the tests of this module
fake_telegram = telegram_server.fake_telegram

SMS_FROM = "+15005550006"


def twilio_settings(fake: FakeTwilio, **extra: Any) -> Settings:
    return Settings(
        database_url="sqlite://",
        public_url="https://clinic.example.com",
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_api_base_url=fake.base_url,
        twilio_sms_from=SMS_FROM,
        **extra,
    )


def telegram_settings(fake: FakeTelegram) -> Settings:
    return Settings(
        database_url="sqlite://",
        telegram_bot_token=fake.token,
        telegram_api_base_url=fake.base_url,
    )


def enqueue(db: Database, clock: Clock, channel: str, address: str, text: str) -> int:
    with db.transaction() as session:
        row = outbox.enqueue(
            session, channel=channel, address=address, reply=Reply(text), now=clock.now()
        )
        session.flush()
        return row.id


def rows(db: Database) -> dict[int, OutboxMessage]:
    with db.transaction() as session:
        return {row.id: row for row in session.scalars(select(OutboxMessage))}


async def run_until(dispatcher: Dispatcher, done: Callable[[], bool], timeout_s: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(0.02, stop))
    try:
        async with asyncio.timeout(timeout_s):
            while not done():
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


# -- the limiter alone ---------------------------------------------------------------


def test_limiter_spaces_books_and_backs_off() -> None:
    now = [100.0]
    limiter = RateLimiter(monotonic=lambda: now[0])
    sms = [Limit(("sms",), 2.0)]
    assert [limiter.reserve(sms) for _ in range(3)] == [0.0, 0.5, 1.0]
    assert limiter.reserve(sms, horizon_s=1.0) is None  # 1.5 s off: not booked
    assert limiter.wait_s(sms) == 1.5
    now[0] += 10
    assert limiter.reserve(sms) == 0.0  # idle time is not saved up as a burst
    assert limiter.reserve(sms, cost=2) == 0.5
    limiter.back_off(sms, 30)
    assert limiter.wait_s(sms) == 30
    # Telegram: a chat's 1/s never holds back another chat.
    limits = RateLimits(telegram_per_second=30, telegram_per_chat_per_second=1)
    a, b = limits.for_send("telegram", "1"), limits.for_send("telegram", "2")
    assert limiter.reserve(a) == 0.0
    assert limiter.reserve(b) == pytest.approx(1 / 30)
    assert limiter.reserve(a) == pytest.approx(1.0)
    assert RateLimits().for_send("sms", "+1") == []


def test_rate_settings_have_the_provider_defaults() -> None:
    limits = RateLimits.from_settings(Settings(database_url="sqlite://"))
    assert limits == RateLimits(1.0, 80.0, 30.0, 1.0)


# -- SMS: one sender at its configured rate -------------------------------------------


@pytest.mark.timeout(60)
def test_100_sms_leave_no_faster_than_the_configured_rate(
    db: Database, fake_twilio: FakeTwilio
) -> None:
    rate = 20.0
    settings = twilio_settings(fake_twilio, sms_rate_per_second=rate)
    clock = SystemClock()
    patients = [f"+1555555{n:04d}" for n in range(20)]
    for n in range(100):
        enqueue(db, clock, "sms", patients[n % len(patients)], f"Message {n}")
    dispatcher = Dispatcher(
        db,
        {"sms": TwilioChannel("sms", settings)},
        clock,
        rate_limits=RateLimits.from_settings(settings),
    )

    asyncio.run(run_until(dispatcher, lambda: len(fake_twilio.messages) >= 100, 40))

    messages = fake_twilio.messages
    assert len(messages) == 100
    assert {row.status for row in rows(db).values()} == {"sent"}
    times = sorted(m["monotonic"] for m in messages)
    span = times[-1] - times[0]
    # On average no faster than the rate (jitter of the first request aside) ...
    assert 99 / span <= rate * 1.1, f"{99 / span:.1f}/s"
    # ... and in no one-second window more than the rate (+2 for timing jitter).
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 1.0)
        assert in_window <= rate + 2, (i, in_window)
    # Each patient still reads their messages in order.
    for patient in patients:
        bodies = [m["body"] for m in messages if m["to"] == patient]
        assert bodies == sorted(bodies, key=lambda body: int(body.split()[1]))


def test_a_twilio_429_is_retried_later_not_lost(
    db: Database, clock: FixedClock, fake_twilio: FakeTwilio
) -> None:
    settings = twilio_settings(fake_twilio)
    outbox_id = enqueue(db, clock, "sms", "+15555550123", "Your visit is tomorrow")
    fake_twilio.fail_next(20429, status=429)
    dispatcher = Dispatcher(
        db,
        {"sms": TwilioChannel("sms", settings)},
        clock,
        rate_limits=RateLimits.from_settings(settings),
    )

    assert asyncio.run(dispatcher.run_once()) == 1
    row = rows(db)[outbox_id]
    assert row.status == "pending" and row.attempts == 1
    assert "20429" in (row.error or "")
    assert row.next_attempt_at > clock.now()
    assert asyncio.run(dispatcher.run_once()) == 0  # not before its time

    clock.set(row.next_attempt_at)
    assert asyncio.run(dispatcher.run_once()) == 1
    assert rows(db)[outbox_id].status == "sent"
    assert [r["status"] for r in fake_twilio.requests] == [429, 201]
    assert [m["body"] for m in fake_twilio.messages] == ["Your visit is tomorrow"]


# -- Telegram: 1/s per chat, chats independent ------------------------------------------


@pytest.mark.timeout(60)
def test_telegram_sends_to_one_chat_a_second_apart_other_chats_unhindered(
    db: Database, fake_telegram: FakeTelegram
) -> None:
    settings = telegram_settings(fake_telegram)
    clock = SystemClock()
    for n in range(3):
        enqueue(db, clock, "telegram", "1001", f"to ana {n}")
        enqueue(db, clock, "telegram", "1002", f"to ben {n}")
    channel = TelegramChannel(settings)
    dispatcher = Dispatcher(
        db, {"telegram": channel}, clock, rate_limits=RateLimits.from_settings(settings)
    )

    def sends() -> list[telegram_server.Call]:
        return [c for c in fake_telegram.calls if c.method == "sendMessage" and c.status == 200]

    async def scenario() -> None:
        try:
            await run_until(dispatcher, lambda: len(sends()) >= 6, 30)
        finally:
            await channel.aclose()

    asyncio.run(scenario())
    by_chat: dict[str, list[float]] = {}
    for call in sends():
        by_chat.setdefault(str(call.params["chat_id"]), []).append(call.at)
    assert sorted(by_chat) == ["1001", "1002"]
    for times in by_chat.values():
        assert len(times) == 3
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert all(gap >= 0.95 for gap in gaps), gaps
    # The second chat is not queued behind the first one's second-long gaps.
    assert abs(by_chat["1001"][0] - by_chat["1002"][0]) < 0.5
    texts = [str(c.params["text"]) for c in sends() if str(c.params["chat_id"]) == "1001"]
    assert texts == ["to ana 0", "to ana 1", "to ana 2"]


def test_a_telegram_429_waits_at_least_its_retry_after(
    db: Database, clock: FixedClock, fake_telegram: FakeTelegram
) -> None:
    settings = telegram_settings(fake_telegram)
    first = enqueue(db, clock, "telegram", "1001", "hello")
    second = enqueue(db, clock, "telegram", "1001", "and then")
    fake_telegram.fail_next(
        "sendMessage", 429, "Too Many Requests: retry after 120", retry_after=120
    )
    channel = TelegramChannel(settings)
    dispatcher = Dispatcher(
        db, {"telegram": channel}, clock, rate_limits=RateLimits.from_settings(settings)
    )

    async def scenario() -> int:
        try:
            return await dispatcher.run_once()
        finally:
            await channel.aclose()

    assert asyncio.run(scenario()) == 2
    stored = rows(db)
    assert stored[first].status == "pending" and stored[first].attempts == 1
    assert stored[first].next_attempt_at >= clock.now() + timedelta(seconds=120)
    # The later message to the chat waits behind it, untried.
    assert stored[second].attempts == 0
    assert stored[second].next_attempt_at == stored[first].next_attempt_at
    # The bot's rate keys are held back too, so other rows do not hammer it.
    assert dispatcher.limiter.wait_s(RateLimits.from_settings(settings).for_send("telegram", "2"))
