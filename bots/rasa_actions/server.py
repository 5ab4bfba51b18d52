"""The action server process: rasa-sdk's own Sanic app (``/webhook``,
``/actions``, ``/health``, with Rasa's documented 404 and 449 answers), with
what a clinic needs in front of it:

* ``TELEMED_RASA_ACTIONS_TOKEN``: when set, /webhook and /actions answer 401
  unless the call carries it (``?token=`` as Rasa's endpoints.yml sends it,
  or ``Authorization: Bearer``). The action server books for whichever
  sender it is told, so it must not be open to anyone but Rasa.
* a malformed call (not JSON, no tracker) gets 400, never rasa-sdk's 500
  that would echo the request, and with it the patient's words, back.
* the service's redacting logs, so patients' words stay out of them.
"""

from __future__ import annotations

import hmac
import json
import logging
from functools import partial

from rasa_sdk import endpoint
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.worker.loader import AppLoader

# Rasa sends the whole tracker (every event of the conversation).
MAX_BODY_BYTES = 10 * 1024 * 1024
PROTECTED = ("/webhook", "/actions")


def _bad(status: int, error: str) -> HTTPResponse:
    return response.json({"error": error}, status=status)


def _token_of(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return str(request.args.get("token") or "")


def _check_call(request: Request) -> HTTPResponse | None:
    """400 for a body that is no action call (rasa-sdk would answer 500)."""
    body = request.body or b""
    if request.headers.get("content-encoding") == "deflate":
        return None  # rasa-sdk inflates it; Rasa's own client never sends it broken
    try:
        call = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return _bad(400, "the body is not JSON")
    if not isinstance(call, dict):
        return _bad(400, "the body must be a JSON object (Rasa's action call)")
    if not isinstance(call.get("next_action"), str) or not call["next_action"]:
        return _bad(400, "next_action is missing")
    tracker = call.get("tracker")
    if not isinstance(tracker, dict) or not isinstance(tracker.get("sender_id"), str):
        return _bad(400, "tracker with a sender_id is missing")
    for key in ("slots", "latest_message"):
        if tracker.get(key) is not None and not isinstance(tracker[key], dict):
            return _bad(400, f"tracker.{key} must be an object")
    if tracker.get("events") is not None and not isinstance(tracker["events"], list):
        return _bad(400, "tracker.events must be a list")
    if call.get("domain") is not None and not isinstance(call["domain"], dict):
        return _bad(400, "domain must be an object")
    return None


def create_app(token: str | None = None) -> Sanic:
    """rasa-sdk's app with every telemed action registered, behind the token."""
    executor = ActionExecutor()
    executor.register_package("bots.rasa_actions")
    app = endpoint.create_app(executor, cors_origins=None)
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES

    @app.on_request
    async def guard(request: Request) -> HTTPResponse | None:
        if request.path not in PROTECTED:
            return None
        if token and not hmac.compare_digest(_token_of(request).encode(), token.encode()):
            return _bad(401, "a valid token is required (TELEMED_RASA_ACTIONS_TOKEN)")
        if request.path == "/webhook" and request.method == "POST":
            return _check_call(request)
        return None

    return app


def _configure_logging() -> None:
    from core.logs import configure
    from core.settings import load_settings

    settings = load_settings()
    configure(settings.log_level, json=settings.log_format == "json")
    # rasa-sdk says so at INFO for every slot a domain lacks (we read optional ones).
    logging.getLogger("rasa_sdk.interfaces").setLevel(logging.WARNING)


def _app_for_worker(token: str | None) -> Sanic:
    _configure_logging()
    return create_app(token)


def serve(host: str, port: int, *, token: str | None, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM (Sanic's own worker processes)."""
    loader = AppLoader(factory=partial(_app_for_worker, token))
    app = loader.load()
    app.prepare(host=host, port=port, workers=workers, access_log=False, motd=False)
    Sanic.serve(primary=app, app_loader=loader)
