"""Telegram: the Bot API through python-telegram-bot's ``Bot`` and ``Update``.

Only those two types (and the keyboard types) are used: conversations live in
``flows/``, so there is no ``Application``, handler or job queue here.

Sending
    ``TelegramChannel.send`` posts ``sendMessage`` to the chat id in the
    address. Options become an inline keyboard, one button per row, whose
    ``callback_data`` is the option's value (``callback_data_for``). Telegram
    allows 1-64 bytes of callback data and this channel keeps no map from long
    values to short tokens (it would not survive a restart or a second
    process), so flows keep option values short: they look like ``p:3``,
    ``d:2026-04-15`` or ``s:2026-04-14T14:00:00+00:00`` (27 bytes). A reply
    with a value that does not fit is still delivered, with its options as
    numbered lines in the text (any answer the patient types still matches),
    and a warning is logged. Text over 4,096 characters (UTF-16 code units, as
    Telegram counts) is split on paragraph, then line, then sentence
    boundaries; the keyboard goes on the last part, whose message id is
    returned. Link previews are off: Telegram's servers would otherwise fetch
    every link we send, video-visit links included.

Receiving
    ``telegram_router`` serves ``POST /webhooks/telegram``. The secret-token
    header is compared in constant time; the body is parsed with
    ``Update.de_json`` and mapped to an ``InboundMessage``. Telegram retries
    every non-2xx answer, so an update of a kind the bot does not handle is
    answered 200 and dropped, and only bodies no Telegram server would send
    (not JSON, not an object, no integer ``update_id``, a message without a
    chat) get a 4xx. A callback query is answered in the webhook response
    itself (``{"method": "answerCallbackQuery", ...}``) so the button stops
    spinning without an outbound call from the request path.

Importing this module does not import ``telegram`` or ``fastapi`` (about
0.3 s each); they are imported when a channel or router is built.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from channels import media as media_http
from channels.base import MediaError, MediaRefused, MediaTooLarge, MediaUnavailable, SendError
from channels.render import render_text
from core.logs import get_logger
from core.messages import InboundMessage, Location, Media, Option, Reply
from core.settings import Settings

if TYPE_CHECKING:
    from fastapi import APIRouter
    from telegram import Bot, ForceReply, InlineKeyboardMarkup, Message, Update

log = get_logger(__name__)

CHANNEL = "telegram"
WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_TEXT = 4096  # characters per message, counted in UTF-16 code units
MAX_CALLBACK_DATA = 64  # bytes of UTF-8
MAX_BUTTON_LABEL = 64  # characters; longer labels are cut with an ellipsis
MAX_BODY = 1 << 20  # real updates are a few kilobytes
# The update kinds the service asks Telegram for (``set_webhook``); others are ignored anyway.
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")

Handle = Callable[[InboundMessage], Awaitable[None]]
OnBlocked = Callable[[str], Awaitable[None]]

_CHAT_ID = re.compile(r"^-?\d{1,20}$")
# Bot API file ids are URL-safe base64; anything else was not stored by this channel.
_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


@dataclass(frozen=True)
class BotConfig:
    """One Telegram bot of the service: the patients' bot (``patient_bot``) or
    another one with its own token, webhook and outbox channel (the doctors'
    bot, ``bots.doctor_bot``)."""

    token: str | None
    webhook_secret: str | None
    channel: str = CHANNEL  # the outbox channel its rows are queued on
    path: str = WEBHOOK_PATH
    token_setting: str = "TELEMED_TELEGRAM_BOT_TOKEN"  # noqa: S105 - names, for messages
    secret_setting: str = "TELEMED_TELEGRAM_WEBHOOK_SECRET"  # noqa: S105
    # A reply of this purpose without options asks the client to answer it
    # (``ForceReply``): for a bot whose next message from the chat is the answer.
    force_reply_purpose: str | None = None


def patient_bot(settings: Settings) -> BotConfig:
    return BotConfig(settings.telegram_bot_token, settings.telegram_webhook_secret)


# -- errors --------------------------------------------------------------------


class BlockedByUser(SendError):
    """Telegram answered 403: the user blocked the bot, deleted their account
    or never started it. Not retryable, and the identity counts as opted out."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, opted_out=True)


class RateLimited(SendError):
    """Telegram answered 429; ``retry_after`` is the wait it asked for, in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, retryable=True)
        self.retry_after = retry_after


# -- rendering -----------------------------------------------------------------


def callback_data_for(option: Option) -> str:
    """The ``callback_data`` of the button for ``option``: its value, which
    must be 1 to 64 bytes of UTF-8 (Telegram refuses anything else)."""
    size = len(option.value.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_CALLBACK_DATA:
        raise ValueError(
            f"option value {option.value[:80]!r} is {size} bytes; Telegram callback_data "
            f"takes 1 to {MAX_CALLBACK_DATA} bytes, so flows must keep option values short"
        )
    return option.value


def button_label(option: Option) -> str:
    label = " ".join(option.label.split()) or option.value
    if len(label) > MAX_BUTTON_LABEL:
        label = label[: MAX_BUTTON_LABEL - 1].rstrip() + "\u2026"
    return label


def keyboard_for(options: Sequence[Option]) -> InlineKeyboardMarkup | None:
    """One button per row; raises ``ValueError`` when a value cannot be callback data."""
    if not options:
        return None
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup

    rows = [
        [InlineKeyboardButton(button_label(option), callback_data=callback_data_for(option))]
        for option in options
    ]
    return InlineKeyboardMarkup(rows)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """The number of characters of ``text`` that fit in ``limit`` UTF-16 units."""
    end = min(len(text), limit)
    while end > 0 and (excess := _utf16_len(text[:end]) - limit) > 0:
        end -= max(1, (excess + 1) // 2)
    return end


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most ``limit`` UTF-16 units, cut at the last paragraph
    break, else line break, else sentence end, else space in the second half of
    a part, and only as a last resort inside a word. Blank parts are dropped."""
    parts: list[str] = []
    rest = text.strip()
    while rest:
        if _utf16_len(rest) <= limit:
            parts.append(rest)
            break
        end = _fitting_prefix(rest, limit)
        window = rest[:end]
        cut = end
        for separator in ("\n\n", "\n", ". ", "? ", "! ", " "):
            at = window.rfind(separator)
            if at >= end // 2:
                cut = at + (len(separator) if separator.strip() else 0)
                break
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip()
    return parts


def _chat_id(address: str) -> int:
    if not _CHAT_ID.match(address.strip()):
        raise SendError(f"{address!r} is not a Telegram chat id", retryable=False)
    return int(address)


# -- sending -------------------------------------------------------------------


class TelegramChannel:
    """Implements ``channels.base.Channel`` over the Bot API.

    The ``Bot`` is built on the first send (not at construction) and
    initialised once (one ``getMe``) per event loop: its HTTP connection pool
    belongs to the loop that opened it, so a new loop gets a new ``Bot``.
    """

    name = CHANNEL

    def __init__(self, settings: Settings, bot: BotConfig | None = None) -> None:
        bot = bot if bot is not None else patient_bot(settings)
        if not bot.token:
            raise ValueError(f"{bot.token_setting} is unset")
        self.name = bot.channel
        self._token = bot.token
        self._secret = bot.webhook_secret
        self._token_setting = bot.token_setting
        self._force_reply_purpose = bot.force_reply_purpose
        self.base_url = f"{settings.telegram_api_base_url}/bot"
        self.base_file_url = f"{settings.telegram_api_base_url}/file/bot"
        self._bot: Bot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._initialized = False
        self.media_timeout_s = media_http.MEDIA_TIMEOUT_S

    async def send(self, address: str, reply: Reply) -> str:
        chat_id = _chat_id(address)
        text = reply.text
        markup: InlineKeyboardMarkup | ForceReply | None
        try:
            markup = keyboard_for(reply.options)
        except ValueError as exc:
            log.warning("telegram_options_as_text", reason=str(exc))
            markup, text = None, render_text(reply)
        if markup is None and not reply.options and reply.purpose == self._force_reply_purpose:
            from telegram import ForceReply

            markup = ForceReply()
        parts = split_text(text)
        if not parts and markup is not None:
            # Telegram refuses an empty text; the options still have to reach the patient.
            parts = split_text(render_text(reply))
        if not parts:
            raise SendError("empty reply: nothing to send", retryable=False)

        from telegram import LinkPreviewOptions

        no_preview = LinkPreviewOptions(is_disabled=True)
        message_id = ""
        try:
            bot = await self._ready()
            for number, part in enumerate(parts, start=1):
                sent = await bot.send_message(
                    chat_id=chat_id,
                    text=part,
                    reply_markup=markup if number == len(parts) else None,
                    link_preview_options=no_preview,
                )
                message_id = str(sent.message_id)
        except SendError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a SendError
            raise self._send_error(exc) from None
        return message_id

    async def clear_keyboard(self, address: str, message_id: str) -> None:
        """Remove the buttons under a message already answered (``editMessageReplyMarkup``)."""
        try:
            bot = await self._ready()
            await bot.edit_message_reply_markup(
                chat_id=_chat_id(address), message_id=int(message_id), reply_markup=None
            )
        except SendError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a SendError
            raise self._send_error(exc) from None

    async def username(self) -> str | None:
        """The bot's @username (from the one ``getMe``), for ``t.me`` links."""
        try:
            bot = await self._ready()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a SendError
            raise self._send_error(exc) from None
        name = bot.username
        return name if isinstance(name, str) and name else None

    async def set_webhook(self, url: str, *, drop_pending_updates: bool = False) -> bool:
        """Point Telegram at ``url`` (the bot's webhook path) with the secret token."""
        try:
            bot = await self._ready()
            return await bot.set_webhook(
                url=url,
                secret_token=self._secret or None,
                allowed_updates=list(ALLOWED_UPDATES),
                drop_pending_updates=drop_pending_updates,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a SendError
            raise self._send_error(exc) from None

    async def delete_webhook(self) -> bool:
        try:
            bot = await self._ready()
            return await bot.delete_webhook()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a SendError
            raise self._send_error(exc) from None

    async def fetch_media(self, reference: str, max_bytes: int) -> tuple[str, bytes]:
        """The file behind a ``file_id`` the patient sent: ``getFile``, then a
        download from the Bot API's file URL (which holds the token: it never
        appears in an error). Telegram gives no content type; the caller has
        the one stored with the message."""
        if not _FILE_ID.match(reference):
            raise MediaRefused("not a Telegram file id")
        wait = self.media_timeout_s
        try:
            bot = await self._ready()
            found = await bot.get_file(
                reference, read_timeout=wait, connect_timeout=wait, pool_timeout=wait
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a MediaError
            raise self._media_error(exc) from None
        if type(found.file_size) is int and found.file_size > max_bytes:
            raise MediaTooLarge(max_bytes)
        # PTB prefixes a relative file_path with base_file_url, and leaves a
        # path that names a file on this machine as it is (local Bot API
        # servers): only the former is downloaded.
        prefix = f"{bot.base_file_url}/"
        path = found.file_path
        if not isinstance(path, str) or not path.startswith(prefix):
            raise MediaUnavailable("Telegram gave no file to download")
        relative = path[len(prefix) :]
        if not relative or ".." in relative.split("/") or "?" in relative or "#" in relative:
            raise MediaUnavailable("Telegram gave no file to download")
        url = prefix + quote(relative, safe="/")
        try:
            async with (
                media_http.client(self.media_timeout_s) as http,
                http.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise MediaUnavailable(f"Telegram answered HTTP {response.status_code}")
                body = await media_http.read_capped(response, max_bytes)
                return media_http.content_type(response), body
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport failure is "unavailable"
            raise media_http.network_error("Telegram", exc) from None

    def _media_error(self, exc: Exception) -> MediaError:
        from telegram.error import BadRequest, TelegramError, TimedOut

        if isinstance(exc, TimedOut):
            return MediaUnavailable("Telegram did not answer in time")
        if isinstance(exc, BadRequest):  # "wrong file_id", "file is too big"
            message = str(exc).replace(self._token, "<token>")[:120]
            return MediaUnavailable(f"Telegram refused the file: {message}")
        if isinstance(exc, TelegramError):
            return MediaUnavailable(f"Telegram error ({type(exc).__name__})")
        return MediaUnavailable(f"Telegram could not be reached ({type(exc).__name__})")

    async def aclose(self) -> None:
        """Close the HTTP pool (call it from the loop the channel sent in)."""
        bot, loop = self._bot, self._loop
        self._bot, self._loop, self._initialized = None, None, False
        # A pool opened in another (closed) loop cannot be closed from this one.
        if bot is not None and loop is asyncio.get_running_loop():
            await bot.shutdown()

    async def _ready(self) -> Bot:
        loop = asyncio.get_running_loop()
        if self._bot is None or self._loop is not loop:
            from telegram import Bot
            from telegram.warnings import PTBDeprecationWarning

            # PTB 22 warns on every 429 that retry_after will become a timedelta;
            # _retry_after_seconds reads either.
            warnings.filterwarnings(
                "ignore", message=".*retry_after.*", category=PTBDeprecationWarning
            )

            self._bot = Bot(self._token, base_url=self.base_url, base_file_url=self.base_file_url)
            self._loop, self._lock, self._initialized = loop, asyncio.Lock(), False
        bot = self._bot
        if not self._initialized:
            assert self._lock is not None
            async with self._lock:
                if not self._initialized:
                    await bot.initialize()  # one getMe, which also checks the token
                    self._initialized = True
        return bot

    def _send_error(self, exc: Exception) -> SendError:
        from telegram.error import (
            BadRequest,
            ChatMigrated,
            Forbidden,
            InvalidToken,
            NetworkError,
            RetryAfter,
            TelegramError,
            TimedOut,
        )

        # PTB puts the token in some messages (a rejected getMe); keep it out of the outbox.
        message = str(exc).replace(self._token, "<token>")
        if isinstance(exc, RetryAfter):
            seconds = _retry_after_seconds(exc)
            return RateLimited(f"Telegram 429: retry after {seconds:g}s", retry_after=seconds)
        if isinstance(exc, Forbidden):
            return BlockedByUser(f"Telegram 403: {message}")
        if isinstance(exc, BadRequest):  # before NetworkError: BadRequest subclasses it
            # "Chat not found" and every other 400 fails the same way when tried again.
            return SendError(f"Telegram 400: {message}", retryable=False)
        if isinstance(exc, InvalidToken):
            return SendError(f"Telegram rejected {self._token_setting} (401/404)", retryable=False)
        if isinstance(exc, ChatMigrated):
            return SendError(
                f"Telegram: the group moved to chat {exc.new_chat_id}", retryable=False
            )
        if isinstance(exc, TimedOut):
            return SendError(f"Telegram timed out: {message}", outage=True)
        if isinstance(exc, NetworkError):  # PTB's name for 5xx answers too (Bad Gateway)
            return SendError(f"Telegram network error: {message}", outage=True)
        if isinstance(exc, TelegramError):
            return SendError(f"Telegram error: {message}", retryable=True)
        return SendError(f"{type(exc).__name__}: {message}", retryable=True)


def _retry_after_seconds(exc: Any) -> float:
    from telegram.warnings import PTBDeprecationWarning

    with warnings.catch_warnings():
        # PTB 22 warns that retry_after becomes a timedelta in a future major version.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return max(0.0, seconds)


def build_telegram_channel(
    settings: Settings, bot: BotConfig | None = None
) -> TelegramChannel | None:
    """The channel of ``bot`` (default: the patients' bot), or None when its
    token (``TELEMED_TELEGRAM_BOT_TOKEN``) is unset (channel off)."""
    bot = bot if bot is not None else patient_bot(settings)
    if not bot.token:
        return None
    return TelegramChannel(settings, bot)


# -- receiving -----------------------------------------------------------------


class BadUpdate(ValueError):
    """A body no Telegram server would send; the webhook answers 400 with the reason."""


@dataclass(frozen=True)
class ParsedUpdate:
    """What one webhook body means for the service.

    ``message`` is None when the update is accepted and ignored (``ignored``
    says why); ``callback_query_id`` is set for every callback query, handled
    or not, so the webhook can always stop the button's spinner.
    """

    update_id: int
    kind: str
    message: InboundMessage | None = None
    ignored: str | None = None
    callback_query_id: str | None = None
    blocked_chat: str | None = None


# Update fields holding the payload, in the order they are looked at.
_HANDLED_KINDS = ("message", "callback_query", "my_chat_member")
_IGNORED_KINDS = (
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)


def parse_update(data: Any, *, private_only: bool = True) -> ParsedUpdate:
    """Map a decoded webhook body to a ``ParsedUpdate``; raises ``BadUpdate``.

    With ``private_only`` (the default) messages from groups, supergroups and
    channels are ignored: replies carry appointment details, which must not
    be posted to a group the bot was added to.
    """
    if not isinstance(data, dict):
        raise BadUpdate("the body must be a JSON object (a Telegram Update)")
    update_id = data.get("update_id")
    if type(update_id) is not int or not 0 <= update_id < 2**63:
        raise BadUpdate("update_id is missing or not a non-negative integer")
    kind = next((k for k in _HANDLED_KINDS + _IGNORED_KINDS if data.get(k) is not None), None)
    if kind is None:
        return ParsedUpdate(update_id, "unknown", ignored="an update kind the bot does not handle")
    if kind not in _HANDLED_KINDS:
        return ParsedUpdate(update_id, kind, ignored=f"{kind} updates are not handled")

    from telegram import Update

    try:
        update = Update.de_json(data, None)
    except Exception as exc:  # noqa: BLE001 - PTB raises anything on a malformed object
        raise BadUpdate(f"{kind} is malformed ({type(exc).__name__})") from None
    try:
        if kind == "message":
            assert update.message is not None
            return _from_message(update_id, update.message, private_only=private_only)
        if kind == "callback_query":
            return _from_callback(update_id, update, private_only=private_only)
        return _from_member_update(update_id, update)
    except BadUpdate:
        raise
    except Exception as exc:  # noqa: BLE001 - a field of the wrong type deep inside
        raise BadUpdate(f"{kind} is malformed ({type(exc).__name__})") from None


def _clean(value: Any, what: str, *, optional: bool = False) -> str:
    """A string field as text the database can store: lone surrogates become
    U+FFFD and NUL characters are dropped."""
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise BadUpdate(f"{what} is not a string")
    text = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\x00", "")


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise BadUpdate(f"{what} is missing or not an integer")
    return value


def _user_fields(user: Any) -> tuple[str | None, dict[str, Any]]:
    """(profile name, raw fields) of a Telegram ``User``, or (None, {})."""
    if user is None:
        return None, {}
    raw: dict[str, Any] = {"user_id": _int(user.id, "from.id")}
    if isinstance(user.username, str):
        raw["username"] = _clean(user.username, "from.username")
    if isinstance(user.language_code, str):
        raw["language_code"] = _clean(user.language_code, "from.language_code")[:16]
    first = _clean(user.first_name, "from.first_name", optional=True)
    last = _clean(user.last_name, "from.last_name", optional=True)
    name = " ".join(part for part in (first, last) if part).strip()
    return (name or None), raw


def _media_of(message: Message) -> tuple[Media, ...]:
    media: list[Media] = []
    if message.photo:
        sizes = [p for p in message.photo if isinstance(p.file_id, str)]
        if sizes:
            biggest = max(
                sizes,
                key=lambda p: (_num(p.width) * _num(p.height), _num(p.file_size)),
            )
            media.append(Media("image/jpeg", _clean(biggest.file_id, "photo.file_id")))
    for attr, default in (
        ("animation", "video/mp4"),
        ("video", "video/mp4"),
        ("video_note", "video/mp4"),
        ("voice", "audio/ogg"),
        ("audio", "audio/mpeg"),
        ("document", "application/octet-stream"),
    ):
        item = getattr(message, attr, None)
        if item is None:
            continue
        if attr == "document" and message.animation is not None:
            continue  # Telegram repeats an animation as a document
        mime = getattr(item, "mime_type", None)
        content_type = _clean(mime, f"{attr}.mime_type") if isinstance(mime, str) else default
        media.append(Media(content_type or default, _clean(item.file_id, f"{attr}.file_id")))
    return tuple(media)


def _num(value: Any) -> int:
    return value if type(value) is int else 0


def _coordinate(value: Any, what: str, bound: float) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > bound:
        raise BadUpdate(f"{what} is not a valid coordinate")
    return float(value)


def _from_message(update_id: int, message: Message, *, private_only: bool) -> ParsedUpdate:
    chat = message.chat
    if chat is None:
        raise BadUpdate("message has no chat")
    chat_id = _int(chat.id, "message.chat.id")
    chat_type = _clean(chat.type, "message.chat.type")
    if private_only and chat_type != "private":
        return ParsedUpdate(update_id, "message", ignored=f"message in a {chat_type} chat")
    profile_name, raw = _user_fields(message.from_user)
    raw.update(
        update_id=update_id,
        message_id=_int(message.message_id, "message.message_id"),
        chat_id=chat_id,
        chat_type=chat_type,
    )

    text = _clean(message.text, "message.text", optional=True)
    caption = _clean(message.caption, "message.caption", optional=True)
    text = text or caption
    if text.startswith("/") and (words := text[1:].split(maxsplit=1)):
        raw["command"] = words[0].split("@", 1)[0].lower()  # "/start@clinic_bot" -> "start"
    replied_to = message.reply_to_message
    if replied_to is not None and type(replied_to.message_id) is int:
        raw["reply_to_message_id"] = replied_to.message_id  # an answer to that message
    media = _media_of(message)

    if message.sticker is not None:
        # A sticker reaches the flow as an empty message (so the patient is told
        # what they can do next) with a "sticker" media entry; its emoji stays
        # in raw and is never read as an answer (a thumbs-up must not confirm).
        media += (Media("sticker", _clean(message.sticker.file_id, "sticker.file_id")),)
        emoji = message.sticker.emoji
        if isinstance(emoji, str):
            raw["sticker_emoji"] = _clean(emoji, "sticker.emoji")

    location = None
    if message.location is not None:
        label = None
        if message.venue is not None:
            title = _clean(message.venue.title, "venue.title", optional=True)
            street = _clean(message.venue.address, "venue.address", optional=True)
            label = ", ".join(part for part in (title, street) if part) or None
        location = Location(
            _coordinate(message.location.latitude, "location.latitude", 90),
            _coordinate(message.location.longitude, "location.longitude", 180),
            label,
        )

    if message.contact is not None:
        contact = message.contact
        raw["contact_phone"] = _clean(contact.phone_number, "contact.phone_number")
        sender = message.from_user
        raw["own_contact"] = bool(
            sender is not None
            and type(contact.user_id) is int
            and contact.user_id == _int(sender.id, "from.id")
        )
        contact_name = " ".join(
            part
            for part in (
                _clean(contact.first_name, "contact.first_name", optional=True),
                _clean(contact.last_name, "contact.last_name", optional=True),
            )
            if part
        )
        if contact_name:
            raw["contact_name"] = contact_name

    if not (text or media or location or "contact_phone" in raw):
        return ParsedUpdate(update_id, "message", ignored="a message with nothing the bot reads")

    received_at = message.date if message.date and message.date.tzinfo else None
    inbound = InboundMessage(
        channel=CHANNEL,
        address=str(chat_id),
        text=text,
        provider_message_id=str(update_id),
        received_at=received_at,
        media=media,
        location=location,
        profile_name=profile_name,
        raw=raw,
    )
    return ParsedUpdate(update_id, "message", message=inbound)


def _tapped_label(message: Any, data: str) -> str | None:
    markup = getattr(message, "reply_markup", None)
    for row in getattr(markup, "inline_keyboard", None) or ():
        for button in row or ():
            if getattr(button, "callback_data", None) == data and isinstance(button.text, str):
                return button.text
    return None


def _from_callback(update_id: int, update: Update, *, private_only: bool) -> ParsedUpdate:
    query = update.callback_query
    assert query is not None
    query_id = _clean(query.id, "callback_query.id")
    if not query_id:
        raise BadUpdate("callback_query.id is empty")
    ignored = ParsedUpdate(update_id, "callback_query", callback_query_id=query_id)
    profile_name, raw = _user_fields(query.from_user)
    raw.update(update_id=update_id, callback_query_id=query_id)
    message = query.message
    if message is not None:
        chat = message.chat
        if chat is None:
            raise BadUpdate("callback_query.message has no chat")
        chat_id = _int(chat.id, "callback_query.message.chat.id")
        chat_type = _clean(chat.type, "callback_query.message.chat.type")
        raw.update(
            chat_id=chat_id,
            chat_type=chat_type,
            message_id=_int(message.message_id, "callback_query.message.message_id"),
        )
        if private_only and chat_type != "private":
            return _replace(ignored, ignored=f"button tapped in a {chat_type} chat")
    elif "user_id" in raw:
        chat_id = raw["user_id"]  # a button under an inline-mode message
    else:
        raise BadUpdate("callback_query has neither message nor from")
    if query.data is None:
        return _replace(ignored, ignored="a callback query without data (a game button)")
    data = _clean(query.data, "callback_query.data")
    if not data:
        return _replace(ignored, ignored="a callback query with empty data")
    label = _tapped_label(message, query.data)
    inbound = InboundMessage(
        channel=CHANNEL,
        address=str(chat_id),
        text=_clean(label, "button text") if label is not None else data,
        provider_message_id=f"cbq:{query_id}",
        button_payload=data,
        profile_name=profile_name,
        raw=raw,
    )
    return _replace(ignored, message=inbound)


def _replace(parsed: ParsedUpdate, **changes: Any) -> ParsedUpdate:
    return replace(parsed, **changes)


def _from_member_update(update_id: int, update: Update) -> ParsedUpdate:
    change = update.my_chat_member
    assert change is not None
    chat = change.chat
    new_member = change.new_chat_member
    if chat is None or new_member is None:
        raise BadUpdate("my_chat_member has no chat or new_chat_member")
    chat_id = _int(chat.id, "my_chat_member.chat.id")
    status = new_member.status
    if status == "kicked" and chat.type == "private":
        return ParsedUpdate(
            update_id,
            "my_chat_member",
            ignored="the user blocked the bot",
            blocked_chat=str(chat_id),
        )
    return ParsedUpdate(update_id, "my_chat_member", ignored=f"bot membership now {status!r}")


def _secret_ok(header: str | None, secret: str) -> bool:
    if header is None:
        return False
    # Starlette decodes header bytes as latin-1; compare bytes, as compare_digest
    # refuses non-ASCII str.
    return secrets.compare_digest(header.encode("latin-1"), secret.encode("utf-8"))


def telegram_router(
    settings: Settings,
    handle: Handle,
    *,
    on_blocked: OnBlocked | None = None,
    private_only: bool = True,
    bot: BotConfig | None = None,
) -> APIRouter:
    """``POST /webhooks/telegram`` (or ``bot.path`` of another bot, whose
    messages then carry ``bot.channel``).

    Answers: 404 when the channel is off; 403 when the secret token is set and
    the header is missing or wrong (nothing else happens); 413 over 1 MiB;
    400 with a reason for a body no Telegram server would send; 200 otherwise,
    with ``{"method": "answerCallbackQuery", ...}`` for a callback query and
    ``{}`` for the rest. ``handle`` gets the message (after the answer is
    decided, before it is sent); ``on_blocked`` gets the chat id of a user who
    blocked the bot. When either raises, the answer is 503 so Telegram
    delivers the update again (``provider_message_id`` lets ``handle`` drop
    the repeat); nothing here ever answers 500.
    """
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse
    from starlette.requests import ClientDisconnect

    router = APIRouter()
    bot = bot if bot is not None else patient_bot(settings)
    token, secret = bot.token, bot.webhook_secret
    if token and not secret:
        log.warning(
            "telegram_webhook_unauthenticated",
            path=bot.path,
            reason=f"{bot.secret_setting} unset: anyone who knows the URL can post",
        )

    def refuse(status: int, reason: str) -> JSONResponse:
        return JSONResponse({"ok": False, "detail": reason}, status_code=status)

    async def telegram_webhook(request: Request) -> JSONResponse:
        if not token:
            return refuse(404, f"the Telegram channel is off ({bot.token_setting} unset)")
        if secret and not _secret_ok(request.headers.get(SECRET_HEADER), secret):
            return refuse(403, f"missing or wrong {SECRET_HEADER}")

        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return refuse(413, f"body over {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    return refuse(413, f"body over {MAX_BODY} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            return refuse(400, "the client went away before the body was read")
        try:
            data = json.loads(b"".join(chunks).decode("utf-8"))
        except UnicodeDecodeError:
            return refuse(400, "the body is not UTF-8")
        except (ValueError, RecursionError):
            return refuse(400, "the body is not JSON")
        try:
            parsed = parse_update(data, private_only=private_only)
        except BadUpdate as exc:
            return refuse(400, str(exc))

        try:
            if parsed.message is not None:
                message = parsed.message
                if message.channel != bot.channel:
                    message = replace(message, channel=bot.channel)
                await handle(message)
            if parsed.blocked_chat is not None and on_blocked is not None:
                await on_blocked(parsed.blocked_chat)
        except Exception as exc:  # noqa: BLE001 - Telegram retries a 503; a 500 is a bug
            log.error(
                "telegram_update_failed", update_id=parsed.update_id, error_type=type(exc).__name__
            )
            return JSONResponse(
                {"ok": False, "detail": "temporarily unable to process the update"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        if parsed.callback_query_id is not None:
            return JSONResponse(
                {"method": "answerCallbackQuery", "callback_query_id": parsed.callback_query_id}
            )
        return JSONResponse({})

    # This module postpones annotations and imports fastapi lazily, so FastAPI
    # could not resolve the names: hand it the classes themselves.
    telegram_webhook.__annotations__ = {"request": Request, "return": JSONResponse}
    router.add_api_route(
        bot.path,
        telegram_webhook,
        methods=["POST"],
        response_model=None,
        tags=["webhooks"],
        summary="Telegram updates",
    )
    return router
