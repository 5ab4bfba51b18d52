"""A fake Rasa server: the one HTTP API call channels/rasa.py makes.

``POST /conversations/{conversation_id}/trigger_intent`` as Rasa 3 documents
it: ``?token=`` when Rasa runs with ``--auth-token`` (401 otherwise), a body
``{"name": intent, "entities": {...}}``, 400 for an intent the domain lacks,
and an answer with the tracker and the bot's messages.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TOKEN = "rasa-server-token"


class FakeRasa:
    def __init__(self, token: str | None = TOKEN, intents: tuple[str, ...] = ()) -> None:
        self.token = token
        # The intents the assistant's domain declares (empty: any).
        self.intents = intents
        self.base_url = ""
        self._lock = threading.Lock()
        self.triggered: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self._fail: list[int] = []
        self.app = self._build_app()

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self._fail.extend(statuses)

    def messages(self, conversation_id: str | None = None) -> list[str]:
        return [
            body["entities"]["telemed_message"]
            for cid, body, _ in self.triggered
            if conversation_id is None or cid == conversation_id
        ]

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        # Rasa routes <conversation_id:path>: an id may hold a slash.
        @app.post("/conversations/{conversation_id:path}/trigger_intent")
        async def trigger(conversation_id: str, request: Request) -> JSONResponse:
            params = dict(request.query_params)
            if self.token and params.get("token") != self.token:
                return JSONResponse({"status": "failure", "reason": "NotAuthenticated"}, 401)
            with self._lock:
                if self._fail:
                    return JSONResponse({"status": "failure"}, self._fail.pop(0))
            body = await request.json()
            name = body.get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or (self.intents and name not in self.intents):
                return JSONResponse(
                    {"status": "failure", "reason": "BadRequest", "message": f"{name} unknown"},
                    400,
                )
            with self._lock:
                self.triggered.append((conversation_id, body, params))
            text = (body.get("entities") or {}).get("telemed_message", "")
            return JSONResponse(
                {
                    "tracker": {"sender_id": conversation_id, "latest_message": {"intent": name}},
                    "messages": [{"recipient_id": conversation_id, "text": text}],
                }
            )

        return app
