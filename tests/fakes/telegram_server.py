"""A fake Telegram Bot API on loopback, reached by the real python-telegram-bot.

``GET``/``POST /bot{token}/{method}`` for getMe, sendMessage,
answerCallbackQuery, editMessageReplyMarkup, setWebhook, deleteWebhook,
getWebhookInfo and getFile (method names are case-insensitive, as on Telegram),
and ``GET /file/bot{token}/{file_path}`` for the files ``fake.add_file`` stored. Parameters
are read from the query string and from the body as PTB 22 sends it
(``application/x-www-form-urlencoded``, strings as they are and every other
value JSON-encoded: ``reply_markup={"inline_keyboard": ...}``) or as JSON.
Answers are shaped like the real Bot API (``{"ok": true, "result": ...}``;
errors ``{"ok": false, "error_code": ..., "description": ...}``, a 429 with
``"parameters": {"retry_after": N}``) so PTB parses them and raises its own
exceptions.

Use the ``fake_telegram`` fixture (bring it into the test module with
``fake_telegram = telegram_server.fake_telegram``, which ruff's F811 accepts where
``from ... import fake_telegram`` is flagged at every test that takes it) or
``running_fake_telegram()`` as a context manager (benchmarks). Point the
service at it with ``fake.settings_env()``: ``TELEMED_TELEGRAM_API_BASE_URL``
is ``fake.base_url`` (no ``/bot``: the channel appends it, then PTB the token).

``message_update`` / ``callback_update`` / ``fake.tap`` build webhook bodies
in Telegram's shapes for tests that post to ``/webhooks/telegram``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.fakes.server import running, shared

TOKEN = "123456789:AAFakeTelegramTokenForTests_0123456789"
BOT_USERNAME = "telemed_test_bot"
# Parameters that PTB JSON-encodes in a form body and the fake decodes.
JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "allowed_updates",
        "link_preview_options",
        "reply_parameters",
    }
)

# Method names are case-insensitive on Telegram; calls are recorded under these spellings.
METHODS = {
    name.lower(): name
    for name in (
        "getMe",
        "sendMessage",
        "answerCallbackQuery",
        "editMessageReplyMarkup",
        "setWebhook",
        "deleteWebhook",
        "getWebhookInfo",
        "getFile",
    )
}


class Call(tuple[str, dict[str, Any]]):
    """``(method, params)`` of one request, in arrival order, with ``at``
    (``time.monotonic()`` on arrival), ``received_at`` (UTC) and ``status``
    (the HTTP status the fake answered)."""

    at: float
    received_at: datetime
    status: int

    def __new__(
        cls, method: str, params: dict[str, Any], at: float, received_at: datetime, status: int
    ) -> Call:
        call = super().__new__(cls, (method, params))
        call.at, call.received_at, call.status = at, received_at, status
        return call

    @property
    def method(self) -> str:
        return self[0]

    @property
    def params(self) -> dict[str, Any]:
        return self[1]


@dataclass
class _Failure:
    method: str  # lower case
    error_code: int
    description: str
    times: int
    retry_after: int | None


@dataclass
class _File:
    data: bytes
    content_type: str
    file_path: str
    file_size: int | None  # what getFile reports (None: left out, as Telegram may)


class _BadParams(Exception):
    pass


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _scalar(value: Any) -> Any:
    """A JSON-body value as the form encoding would carry it: scalars as strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class FakeTelegram:
    """State of one fake bot, shared by the server thread and the test."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        head = token.split(":", 1)[0]
        self.bot_id = int(head) if head.isdigit() else 1
        self.base_url = ""  # set once the server listens; use as TELEMED_TELEGRAM_API_BASE_URL
        self.latency_s = 0.0  # added before each answer (provider latency in benchmarks)
        self.webhook: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._failures: list[_Failure] = []
        self._blocked: set[str] = set()
        self._messages: dict[tuple[str, int], dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._files: dict[str, _File] = {}  # file_id -> file
        self._downloads: list[str] = []
        self.app = self._build_app()

    # -- what tests use -------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every request with the right token, oldest first, failed ones included."""
        with self._lock:
            return list(self._calls)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The parameters of each accepted sendMessage, oldest first."""
        return [c.params for c in self.calls if c.method == "sendMessage" and c.status == 200]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def fail_next(
        self,
        method: str,
        error_code: int,
        description: str,
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this Bot API error."""
        with self._lock:
            self._failures.append(
                _Failure(method.lower(), error_code, description, times, retry_after)
            )

    def block(self, chat_id: int | str) -> None:
        """From now on, sends to ``chat_id`` get 403 "bot was blocked by the user"."""
        with self._lock:
            self._blocked.add(str(chat_id))

    def add_file(
        self,
        data: bytes,
        content_type: str = "image/jpeg",
        *,
        file_size: int | None = -1,
        file_path: str | None = None,
    ) -> str:
        """Store a file a user sent; returns its file_id. getFile reports
        ``file_size`` (default: the real size; None leaves it out)."""
        file_id = "AgACAgQAAxkBAA" + secrets.token_urlsafe(24)
        with self._lock:
            path = file_path or f"photos/file_{len(self._files)}.jpg"
            size = len(data) if file_size == -1 else file_size
            self._files[file_id] = _File(data, content_type, path, size)
        return file_id

    @property
    def downloads(self) -> list[str]:
        """The file paths downloaded from /file/bot{token}/..., oldest first."""
        with self._lock:
            return list(self._downloads)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._downloads.clear()
            self._calls.clear()
            self._failures.clear()
            self._blocked.clear()
            self._messages.clear()
            self._ids = itertools.count(1)
            self.webhook = {}
        self.latency_s = 0.0

    def settings_env(self) -> dict[str, str]:
        """Environment variables that aim the service's Telegram channel here."""
        return {
            "TELEMED_TELEGRAM_BOT_TOKEN": self.token,
            "TELEMED_TELEGRAM_API_BASE_URL": self.base_url,
        }

    def last_keyboard(self, chat_id: int | str) -> list[dict[str, Any]]:
        """The buttons (text, callback_data) of the last message sent to the chat with any."""
        for params in reversed(self.sent):
            if str(params.get("chat_id")) == str(chat_id):
                markup = params.get("reply_markup") or {}
                if markup.get("inline_keyboard"):
                    return [button for row in markup["inline_keyboard"] for button in row]
        return []

    def tap(self, chat_id: int, label: str, *, update_id: int) -> dict[str, Any]:
        """The webhook body of the patient tapping the button ``label`` (exact
        text, or a case-insensitive prefix) under the last keyboard sent to them."""
        with self._lock:
            candidates = [
                m
                for (chat, _), m in self._messages.items()
                if chat == str(chat_id) and m.get("reply_markup")
            ]
        if not candidates:
            raise AssertionError(f"no keyboard was sent to chat {chat_id}")
        message = max(candidates, key=lambda m: m["message_id"])
        buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
        chosen = next((b for b in buttons if b["text"] == label), None) or next(
            (b for b in buttons if b["text"].lower().startswith(label.lower())), None
        )
        if chosen is None:
            raise AssertionError(f"no button {label!r} in {[b['text'] for b in buttons]}")
        return callback_update(
            update_id,
            chat_id,
            chosen["callback_data"],
            message_id=message["message_id"],
            message_text=message.get("text", ""),
            keyboard=message["reply_markup"],
            bot_id=self.bot_id,
        )

    # -- the API --------------------------------------------------------------

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    @staticmethod
    def _error(code: int, description: str, retry_after: int | None = None) -> JSONResponse:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return JSONResponse(body, status_code=code)

    @staticmethod
    def _ok(result: Any, description: str | None = None) -> JSONResponse:
        body: dict[str, Any] = {"ok": True, "result": result}
        if description:
            body["description"] = description
        return JSONResponse(body)

    async def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(request.url.query, keep_blank_values=True))
        body = await request.body()
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if body and kind == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError as exc:
                raise _BadParams("Bad Request: can't parse JSON object") from exc
            if not isinstance(decoded, dict):
                raise _BadParams("Bad Request: JSON object expected")
            params.update({key: _scalar(value) for key, value in decoded.items()})
        elif body and kind.startswith("multipart/"):
            raise _BadParams("Bad Request: the fake does not take multipart bodies")
        elif body:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        for key in JSON_PARAMS & params.keys():
            if isinstance(params[key], str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError as exc:
                    raise _BadParams(f"Bad Request: can't parse {key} JSON object") from exc
        return params

    def _chat(self, chat_id: str) -> dict[str, Any]:
        number = int(chat_id)
        if number > 0:
            return {"id": number, "type": "private", "first_name": "Patient"}
        kind = "supergroup" if chat_id.startswith("-100") else "group"
        return {"id": number, "type": kind, "title": "A group"}

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Telemed Test",
            "username": BOT_USERNAME,
        }

    def _dispatch(self, method: str, params: dict[str, Any]) -> JSONResponse:
        if method == "getme":
            user = self._bot_user() | {
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
            return self._ok(user)
        if method == "sendmessage":
            return self._send_message(params)
        if method == "answercallbackquery":
            if not params.get("callback_query_id"):
                return self._error(
                    400, "Bad Request: query is too old and response timeout expired"
                )
            return self._ok(True)
        if method == "editmessagereplymarkup":
            return self._edit_markup(params)
        if method == "setwebhook":
            if "url" not in params:
                return self._error(400, "Bad Request: bad webhook: URL is empty")
            self.webhook = dict(params)
            return self._ok(True, "Webhook was set")
        if method == "deletewebhook":
            self.webhook = {}
            return self._ok(True, "Webhook was deleted")
        if method == "getfile":
            with self._lock:
                found = self._files.get(str(params.get("file_id", "")))
            if found is None:
                return self._error(400, "Bad Request: invalid file_id")
            result: dict[str, Any] = {
                "file_id": params["file_id"],
                "file_unique_id": "AQAD" + str(params["file_id"])[-12:],
                "file_path": found.file_path,
            }
            if found.file_size is not None:
                result["file_size"] = found.file_size
            return self._ok(result)
        if method == "getwebhookinfo":
            return self._ok(
                {
                    "url": self.webhook.get("url", ""),
                    "has_custom_certificate": False,
                    "pending_update_count": 0,
                }
            )
        return self._error(404, "Not Found")

    def _send_message(self, params: dict[str, Any]) -> JSONResponse:
        chat_id = str(params.get("chat_id", "")).strip()
        text = params.get("text", "")
        if not chat_id:
            return self._error(400, "Bad Request: chat_id is empty")
        if not chat_id.lstrip("-").isdigit():
            return self._error(400, "Bad Request: chat not found")
        if chat_id in self._blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        if not isinstance(text, str) or not text.strip():
            return self._error(400, "Bad Request: message text is empty")
        if _utf16_len(text) > 4096:
            return self._error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if markup is not None:
            if not isinstance(markup, dict):
                return self._error(400, "Bad Request: can't parse reply keyboard markup")
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data")
                    if data is not None and not 1 <= len(str(data).encode()) <= 64:
                        return self._error(400, "Bad Request: BUTTON_DATA_INVALID")
                    if not str(button.get("text", "")).strip():
                        return self._error(400, "Bad Request: text buttons are unallowed")
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self._bot_user(),
            "text": text,
        }
        if markup and markup.get("inline_keyboard"):
            # As Telegram: a message carries only an inline keyboard back, never a
            # ForceReply or reply keyboard (PTB would read those as inline keyboards).
            message["reply_markup"] = markup
        with self._lock:
            self._messages[(chat_id, message["message_id"])] = message
        return self._ok(message)

    def _edit_markup(self, params: dict[str, Any]) -> JSONResponse:
        if params.get("inline_message_id"):
            return self._ok(True)
        chat_id = str(params.get("chat_id", ""))
        try:
            message_id = int(params.get("message_id", ""))
        except ValueError:
            return self._error(400, "Bad Request: message identifier is not specified")
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                return self._error(400, "Bad Request: message to edit not found")
            markup = params.get("reply_markup")
            if markup and markup.get("inline_keyboard"):
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            message["edit_date"] = int(time.time())
            return self._ok(dict(message))

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/bot{token}/{method}", methods=["GET", "POST"])
        async def bot_api(token: str, method: str, request: Request) -> JSONResponse:
            at, received_at = time.monotonic(), datetime.now(UTC)
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            if token != self.token:
                return self._error(401, "Unauthorized")
            try:
                params = await self._params(request)
            except _BadParams as exc:
                answer = self._error(400, str(exc))
                params = {}
            else:
                failure = self._take_failure(method.lower())
                if failure is not None:
                    answer = self._error(
                        failure.error_code, failure.description, failure.retry_after
                    )
                else:
                    answer = self._dispatch(method.lower(), params)
            with self._lock:
                name = METHODS.get(method.lower(), method)
                self._calls.append(Call(name, params, at, received_at, answer.status_code))
            return answer

        @app.get("/file/bot{token}/{file_path:path}")
        async def download(token: str, file_path: str) -> Response:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            with self._lock:
                self._downloads.append(file_path)
                found = next((f for f in self._files.values() if f.file_path == file_path), None)
            if token != self.token or found is None:
                return self._error(404, "Not Found")
            return Response(found.data, media_type=found.content_type)

        return app


@contextlib.contextmanager
def running_fake_telegram(token: str = TOKEN) -> Iterator[FakeTelegram]:
    """A fake server of its own, stopped on exit."""
    with running(FakeTelegram(token), "fake Telegram") as fake:
        yield fake


def shared_fake_telegram() -> FakeTelegram:
    """One server per test process, started on first use."""
    return shared(FakeTelegram, "fake Telegram")


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """The shared fake Bot API, emptied before and after each test."""
    fake = shared_fake_telegram()
    fake.clear()
    yield fake
    fake.clear()


# -- webhook bodies in Telegram's shapes (https://core.telegram.org/bots/api#update) --


def user(user_id: int, first_name: str = "Ana", **extra: Any) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": first_name, **extra}


def private_chat(chat_id: int, first_name: str = "Ana") -> dict[str, Any]:
    return {"id": chat_id, "first_name": first_name, "type": "private"}


def message_update(
    update_id: int,
    chat_id: int,
    text: str | None = None,
    *,
    message_id: int = 1,
    date: int = 1_776_171_600,  # 2026-04-14 13:00 UTC
    **content: Any,
) -> dict[str, Any]:
    """``{"update_id", "message": {message_id, from, chat, date, text?, **content}}``."""
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": user(chat_id, language_code="en"),
        "chat": private_chat(chat_id),
        "date": date,
    }
    if text is not None:
        message["text"] = text
    message.update(content)
    return {"update_id": update_id, "message": message}


def callback_update(
    update_id: int,
    chat_id: int,
    data: str,
    *,
    message_id: int = 2,
    message_text: str = "Pick one",
    keyboard: dict[str, Any] | None = None,
    query_id: str | None = None,
    bot_id: int = 123456789,
) -> dict[str, Any]:
    """A ``callback_query`` from a tap on a button under the bot's message ``message_id``."""
    message: dict[str, Any] = {
        "message_id": message_id,
        "from": {"id": bot_id, "is_bot": True, "first_name": "Telemed Test"},
        "chat": private_chat(chat_id),
        "date": 1_776_171_600,
        "text": message_text,
    }
    if keyboard is not None:
        message["reply_markup"] = keyboard
    return {
        "update_id": update_id,
        "callback_query": {
            "id": query_id or f"{chat_id}{update_id}",
            "from": user(chat_id, language_code="en"),
            "message": message,
            "chat_instance": "-5347263746357",
            "data": data,
        },
    }
