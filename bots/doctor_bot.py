"""The doctors' Telegram bot: new questions reach a linked doctor's chat with
Reply / Close buttons, and what the doctor writes back goes into the thread.

Linking. The dashboard page ``/dashboard/telegram`` shows a user a one-time
code; they send ``/start CODE`` to the bot (or open ``t.me/<bot>?start=CODE``)
and the chat is linked to them (``User.telegram_chat_id``). The code needs no
table: it is an HMAC (``SECRET_KEY``) of the user id, an expiry on a 5-minute
grid 15-20 minutes ahead, and the user's current chat id, so it stops working
once used (the chat id changed) and after its expiry. Wrong codes are counted
per chat (``code_attempts``) and a chat guessing too often is told to wait.

Answering. "Reply" under a forwarded question (``reply:<id>``) remembers in
the chat's conversation row (channel ``doctor_telegram``, flow ``doctor``)
that the doctor's next text answers thread <id>, and asks for it with a
ForceReply prompt. A doctor may also reply (Telegram's reply) to the forwarded
question or to the prompt: the replied-to message id is the provider id of
one of our outbox rows, whose payload names the thread. The text goes through
``core.questions.reply`` as the linked user, only for threads
``core.users.can_see_practitioner`` allows; ``close:<id>`` closes a thread.
Every change is audited with ``source="telegram"``.

Everything the bot says goes through the outbox (channel ``doctor_telegram``,
sent by the dispatcher with the doctor bot's token), written in the same
transaction as the change it reports. A Telegram retry of an update already
handled is dropped (recent update ids are kept in the conversation row).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from channels.telegram import BotConfig, build_telegram_channel, telegram_router
from core import audit, outbox, questions
from core.logs import get_logger
from core.messages import InboundMessage, Reply
from core.models import CodeAttempt, OutboxMessage, QuestionThread, User
from core.settings import Settings
from core.users import can_see_practitioner
from flows import state as conversations
from web.auth import Auth, Staff, render

log = get_logger(__name__)

CHANNEL = "doctor_telegram"
WEBHOOK_PATH = "/webhooks/telegram/doctor"
FLOW = "doctor"
# The prompt asking for an answer goes with this purpose: the channel renders
# it as a ForceReply, so the doctor's Telegram opens a reply to it.
ANSWER_PROMPT = "answer"

LINK_MINUTES = 15
_LINK_GRID = timedelta(minutes=5)
_CODE_LENGTH = 8
# Crockford's base32: no I, L, O or U, so a code read aloud or retyped survives.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TYPO = str.maketrans({"O": "0", "I": "1", "L": "1"})
LINK_FAILS_PER_CHAT = 5
RECENT_UPDATES = 20
LINK_FAIL_WINDOW = timedelta(minutes=15)

_ACTION = re.compile(r"^(reply|close):(\d{1,18})$")
_PROMPT_REF = re.compile(r"question #(\d{1,18}):$")

NOT_FOR_YOU = "This bot is for the clinic's doctors; link it from the dashboard."
HOW_TO_ANSWER = (
    "To answer a question, tap Reply under it (or reply to its message) and write your answer."
)


def doctor_bot_config(settings: Settings) -> BotConfig:
    return BotConfig(
        token=settings.telegram_doctor_bot_token,
        webhook_secret=settings.telegram_doctor_webhook_secret,
        channel=CHANNEL,
        path=WEBHOOK_PATH,
        token_setting="TELEMED_TELEGRAM_DOCTOR_BOT_TOKEN",  # noqa: S106 - a setting's name
        secret_setting="TELEMED_TELEGRAM_DOCTOR_WEBHOOK_SECRET",  # noqa: S106 - a name
        force_reply_purpose=ANSWER_PROMPT,
    )


# -- link codes ------------------------------------------------------------------


@dataclass(frozen=True)
class LinkCode:
    code: str
    expires_at: datetime


def _code(secret_key: str, user_id: int, chat_id: str | None, expires_at: datetime) -> str:
    message = f"doctor-bot-link:{user_id}:{int(expires_at.timestamp())}:{chat_id or ''}"
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    # 40 bits as 8 base32 characters, in the alphabet above.
    standard = base64.b32encode(digest[:5]).decode()
    return standard.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET))


def _grid_after(moment: datetime) -> datetime:
    step = _LINK_GRID.total_seconds()
    return datetime.fromtimestamp(math.ceil(moment.timestamp() / step) * step, UTC)


def link_code(settings: Settings, user: User, now: datetime) -> LinkCode:
    """The user's current code: the same for five minutes, valid 15-20 minutes."""
    expires = _grid_after(now + timedelta(minutes=LINK_MINUTES))
    return LinkCode(_code(settings.secret_key, user.id, user.telegram_chat_id, expires), expires)


def normalize_code(text: str) -> str:
    return re.sub(r"[\s-]", "", text).upper().translate(_TYPO)


def redeem_code(session: Session, settings: Settings, text: str, now: datetime) -> User | None:
    """The active user whose unexpired code ``text`` is, or None."""
    code = normalize_code(text)
    if len(code) != _CODE_LENGTH or any(c not in _ALPHABET for c in code):
        return None
    first = _grid_after(now + timedelta(microseconds=1))
    expiries = [first + _LINK_GRID * i for i in range(LINK_MINUTES // 5 + 1)]
    found = None
    for user in session.scalars(select(User).where(User.active.is_(True))):
        for expires in expiries:
            candidate = _code(settings.secret_key, user.id, user.telegram_chat_id, expires)
            if hmac.compare_digest(candidate, code):
                found = user
    return found


def _link_fails(session: Session, chat_id: str, now: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(CodeAttempt)
            .where(
                CodeAttempt.source == _attempt_source(chat_id),
                CodeAttempt.ok.is_(False),
                CodeAttempt.attempted_at >= now - LINK_FAIL_WINDOW,
            )
        )
        or 0
    )


def _attempt_source(chat_id: str) -> str:
    return f"doctor-bot:{chat_id}"[:64]


def link_chat(session: Session, user: User, chat_id: str) -> None:
    """Link ``chat_id`` to ``user`` (a chat belongs to one user: others lose it)."""
    session.execute(
        update(User)
        .where(User.telegram_chat_id == chat_id, User.id != user.id)
        .values(telegram_chat_id=None)
    )
    session.flush()
    user.telegram_chat_id = chat_id


# -- what the bot does with one update ---------------------------------------------


def handle_update(
    session: Session, msg: InboundMessage, *, settings: Settings, now: datetime
) -> list[Reply]:
    """The bot's answers to one message or button tap from a chat (queued by the caller)."""
    chat = msg.address
    user = session.scalar(select(User).where(User.telegram_chat_id == chat, User.active.is_(True)))
    command = msg.raw.get("command")
    if user is None and command != "start":
        return [Reply(NOT_FOR_YOU)]

    state = conversations.lock(session, CHANNEL, chat, now)
    # Telegram delivers an update again when our answer did not reach it. Ids
    # mostly increase, but restart at random after a quiet week: remember the
    # last few instead of comparing with the highest.
    update_id = msg.raw.get("update_id")
    seen = [u for u in state.data.get("updates") or [] if isinstance(u, int)]
    if isinstance(update_id, int):
        if update_id in seen:
            return []
        state.data["updates"] = [*seen, update_id][-RECENT_UPDATES:]

    if command == "start":
        replies = _start(session, msg, user, settings=settings, now=now)
    elif user is None:
        replies = [Reply(NOT_FOR_YOU)]
    elif command in ("unlink", "stop"):
        user.telegram_chat_id = None
        _audit(session, user, "update", "user", entity_id=user.id, now=now)
        state.flow = None
        state.data.pop("thread", None)
        replies = [Reply("Unlinked. Link again from the dashboard whenever you like.")]
    elif msg.button_payload is not None:
        replies = _button(session, msg.button_payload, user, state, now=now)
    else:
        replies = _answer(session, msg, user, state, settings=settings, now=now)
    conversations.save(session, state, now)
    return replies


def _start(
    session: Session,
    msg: InboundMessage,
    user: User | None,
    *,
    settings: Settings,
    now: datetime,
) -> list[Reply]:
    words = msg.text.split(maxsplit=1)
    code = words[1].strip() if len(words) > 1 else ""
    if not code:
        if user is not None:
            return [Reply(f"Linked to {_name(user)}. {HOW_TO_ANSWER}")]
        return [Reply(NOT_FOR_YOU)]
    chat = msg.address
    if _link_fails(session, chat, now) >= LINK_FAILS_PER_CHAT:
        return [Reply("Too many wrong codes. Wait 15 minutes, then try a new code.")]
    found = redeem_code(session, settings, code, now)
    session.add(CodeAttempt(source=_attempt_source(chat), ok=found is not None, attempted_at=now))
    if found is None:
        return [
            Reply(
                "That link code is wrong or has expired. Open Telegram linking in the "
                "dashboard for a new one."
            )
        ]
    link_chat(session, found, chat)
    _audit(session, found, "update", "user", entity_id=found.id, now=now, detail={"link": True})
    log.info("doctor_bot_linked", user_id=found.id)
    return [Reply(f"Linked to {_name(found)}. New questions for you will arrive here.")]


def _name(user: User) -> str:
    return user.name.strip() or user.email


def _thread_for(session: Session, user: User, thread_id: int) -> QuestionThread | Reply:
    thread = session.get(QuestionThread, thread_id)
    if thread is None or not can_see_practitioner(user, thread.practitioner_id):
        return Reply(f"Question #{thread_id} is not one you can answer.")
    return thread


def _button(
    session: Session,
    payload: str,
    user: User,
    state: conversations.ConversationState,
    *,
    now: datetime,
) -> list[Reply]:
    match = _ACTION.match(payload)
    if match is None:
        return [Reply(HOW_TO_ANSWER)]
    action, thread_id = match.group(1), int(match.group(2))
    thread = _thread_for(session, user, thread_id)
    if isinstance(thread, Reply):
        return [thread]
    if action == "close":
        questions.close(session, thread.id, now=now)
        _audit(session, user, "update", "question", thread.id, thread.patient_id, now=now)
        if state.data.get("thread") == thread.id:
            state.flow = None
            state.data.pop("thread", None)
        return [Reply(f"Question #{thread.id} is closed.")]
    if thread.status == "closed":
        return [Reply(f"Question #{thread.id} is closed.")]
    state.flow = FLOW
    state.data["thread"] = thread.id
    return [Reply(_prompt(thread), purpose=ANSWER_PROMPT)]


def _prompt(thread: QuestionThread) -> str:
    words = (thread.patient.name or "").split()
    first = words[0] if words else "the patient"
    # _PROMPT_REF reads the thread back from this text when the doctor replies to it.
    return f"Your answer to {first}'s question #{thread.id}:"


def _replied_thread(session: Session, chat: str, message_id: Any) -> int | None:
    """The thread of the bot message a doctor replied to (a forwarded question
    or an answer prompt), from the outbox row that sent it."""
    if type(message_id) is not int:
        return None
    row = session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.channel == CHANNEL,
            OutboxMessage.address == chat,
            OutboxMessage.provider_message_id == str(message_id),
        )
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    payload = row.payload if isinstance(row.payload, dict) else {}
    for option in payload.get("options") or ():
        found = _ACTION.match(str(option.get("value", ""))) if isinstance(option, dict) else None
        if found is not None:
            return int(found.group(2))
    found = _PROMPT_REF.search(str(payload.get("text", "")))
    return int(found.group(1)) if found else None


def _answer(
    session: Session,
    msg: InboundMessage,
    user: User,
    state: conversations.ConversationState,
    *,
    settings: Settings,
    now: datetime,
) -> list[Reply]:
    thread_id = _replied_thread(session, msg.address, msg.raw.get("reply_to_message_id"))
    if thread_id is None and state.flow == FLOW:
        remembered = state.data.get("thread")
        thread_id = remembered if isinstance(remembered, int) else None
    if thread_id is None:
        return [Reply(HOW_TO_ANSWER)]
    thread = _thread_for(session, user, thread_id)
    if isinstance(thread, Reply):
        return [thread]
    if not msg.text.strip() and msg.media:
        return [Reply("Only text answers can be sent from Telegram; write your answer.")]
    try:
        with session.begin_nested():  # a refused answer leaves nothing behind
            sent = questions.reply(
                session, thread.id, author=user, body=msg.text, now=now, settings=settings
            )
    except questions.QuestionError as exc:
        return [Reply(f"Not sent: {exc}")]
    _audit(
        session,
        user,
        "create",
        "question",
        thread.id,
        thread.patient_id,
        now=now,
        detail={"message_id": sent.id},
    )
    if state.data.get("thread") == thread.id:  # else still waiting for that other answer
        state.flow = None
        state.data.pop("thread", None)
    return [Reply("Sent to the patient.")]


def _audit(
    session: Session,
    user: User,
    action: str,
    entity: str,
    entity_id: int | None = None,
    patient_id: int | None = None,
    *,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    audit.record(
        session,
        user=user,
        action=action,
        entity=entity,
        entity_id=entity_id,
        patient_id=patient_id,
        source="telegram",
        detail=detail,
        now=now,
    )


def unlink_blocked(session: Session, chat_id: str) -> None:
    """The doctor blocked the bot: stop sending questions to that chat."""
    session.execute(
        update(User).where(User.telegram_chat_id == chat_id).values(telegram_chat_id=None)
    )


# -- the routes --------------------------------------------------------------------------


class _BotName:
    """The bot's @username, asked of Telegram once (``getMe``) for ``t.me`` links."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name: str | None = None
        self._failed_at: datetime | None = None

    async def get(self, now: datetime) -> str | None:
        if self.name is not None:
            return self.name
        if self._failed_at is not None and now - self._failed_at < timedelta(minutes=5):
            return None
        channel = build_telegram_channel(self.settings, doctor_bot_config(self.settings))
        if channel is None:
            return None
        try:
            self.name = await asyncio.wait_for(channel.username(), timeout=3)
        except Exception as exc:  # noqa: BLE001 - the page works with the code alone
            log.warning("doctor_bot_username_unknown", error_type=type(exc).__name__)
            self._failed_at = now
        finally:
            await channel.aclose()
        return self.name


def doctor_bot_router(auth: Auth) -> APIRouter:
    """``POST /webhooks/telegram/doctor`` and the linking page ``/dashboard/telegram``."""
    settings = auth.settings
    bot = doctor_bot_config(settings)
    app_ref: dict[str, Any] = {}

    async def remember_app(request: Request) -> None:
        # The webhook handler nudges the app's dispatcher; the app is known per request.
        app_ref["app"] = request.app

    def nudge() -> None:
        background = getattr(getattr(app_ref.get("app"), "state", None), "background", None)
        if background is not None and background.runs_dispatcher:
            background.dispatcher.nudge()

    def process(msg: InboundMessage) -> int:
        with auth.db.transaction() as session:
            now = auth.clock.now()
            replies = handle_update(session, msg, settings=settings, now=now)
            outbox.enqueue_many(
                session, channel=CHANNEL, address=msg.address, replies=replies, now=now
            )
            return len(replies)

    async def handle(msg: InboundMessage) -> None:
        if await run_in_threadpool(process, msg):
            nudge()

    async def on_blocked(chat_id: str) -> None:
        def record() -> None:
            with auth.db.transaction() as session:
                unlink_blocked(session, chat_id)

        await run_in_threadpool(record)

    router = APIRouter(include_in_schema=False)
    router.include_router(
        telegram_router(settings, handle, on_blocked=on_blocked, bot=bot),
        dependencies=[Depends(remember_app)],
    )
    bot_name = _BotName(settings)
    _link_page(router, auth, bot_name)
    return router


def _link_page(router: APIRouter, auth: Auth, bot_name: _BotName) -> None:
    settings = auth.settings
    configured = bool(settings.telegram_doctor_bot_token)

    async def page(request: Request, staff: Staff) -> HTMLResponse:
        now = auth.clock.now()
        with auth.db.transaction() as session:
            user = session.get(User, staff.id)
            assert user is not None
            linked = user.telegram_chat_id is not None
            code = link_code(settings, user, now)
        username = await bot_name.get(now) if configured else None
        zone = settings.clinic_timezone
        return render(
            request,
            "dash/telegram.html",
            staff,
            configured=configured,
            linked=linked,
            code=code.code,
            expires=_local(code.expires_at, zone),
            username=username,
            deep_link=f"https://t.me/{username}?start={code.code}" if username else None,
        )

    @router.get("/dashboard/telegram")
    async def telegram_page(request: Request, staff: Staff = Depends(auth.page)) -> HTMLResponse:
        return await page(request, staff)

    @router.post("/dashboard/telegram")
    async def telegram_post(request: Request, staff: Staff = Depends(auth.page)) -> Response:
        fields = await auth.form(request)
        if fields.get("action") == "unlink":
            with auth.db.transaction() as session:
                user = session.get(User, staff.id)
                assert user is not None
                user.telegram_chat_id = None
                auth.audit(session, staff, "update", "user", entity_id=staff.id)
        return RedirectResponse("/dashboard/telegram", status_code=303)


def _local(value: datetime, zone: str) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone)).strftime("%H:%M")
