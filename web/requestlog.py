"""Request ids and the access log: pure ASGI middleware (no BaseHTTPMiddleware,
which costs a task and a stream per request).

Each HTTP request gets an id: the caller's ``X-Request-ID`` when it is a short
plain token (at most 64 of ``A-Z a-z 0-9 . _ -``, and not a phone number),
else a new uuid4 hex. It is bound as the structlog contextvar ``request_id``
for the request, so every log line written while handling it carries it, and
it is returned in the ``X-Request-ID`` response header.

When the request ends one line is logged (``http_request``): method, route
template (``/v/{token}``, never the raw path, which can carry a video-link
secret, and never the query string), status, duration in ms. The client's
address is not logged. This replaces uvicorn's access log.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import get_logger, looks_like_phone

HEADER = "X-Request-ID"
_HEADER_KEY = b"x-request-id"
_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "<unmatched>"

log = get_logger("telemed.access")


def request_id_of(value: str | None) -> str:
    """The caller's id when it is a sane token, else a new one."""
    if value is not None and _TOKEN.fullmatch(value) and not looks_like_phone(value):
        return value
    return uuid.uuid4().hex


def _incoming(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == _HEADER_KEY:
            return str(value.decode("latin-1"))
    return None


def route_of(scope: Scope) -> str:
    """The matched route's template; never the raw path."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(_incoming(scope))
        header = (_HEADER_KEY, request_id.encode("ascii"))
        status = 500  # unless the app answers: an exception is a 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER_KEY]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "http_request",
                method=scope.get("method"),
                route=route_of(scope),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.reset_contextvars(**tokens)
