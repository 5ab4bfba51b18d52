"""The Rasa action server under test: rasa-sdk's real Sanic app (ours, from
``bots.rasa_actions.server.create_app``) driven over ASGI by httpx, with Rasa's
real action-call JSON, on the test's database and fixed clock.

The app is started once (Sanic's ASGI lifespan) on an event loop of its own
in a background thread; each test points the actions at its own database,
settings and clock (``use_runtime``). tests/rasa/test_action_server_process.py
runs the same server as a real process, as a clinic would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from bots.rasa_actions.server import create_app
from bots.rasa_actions.turn import Runtime, use_runtime
from core.clock import FixedClock
from core.db import Database
from core.settings import Settings
from tests.clinic import TZ, Clinic

TOKEN = "rasa-test-token"

ROOT = Path(__file__).resolve().parents[2]


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


# What Rasa 3.x sends: the domain travels with the call (until a digest matches).
# The example domain clinics start from (docs/rasa/domain.yml), as Rasa sends it.
DOMAIN: dict[str, Any] = load_yaml(ROOT / "docs" / "rasa" / "domain.yml")


class _Loop:
    """An event loop in a thread, where the Sanic app lives for the session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _Lifespan:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.ensure_future(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        answer = await self.outbox.get()
        assert answer["type"] == "lifespan.startup.complete", answer

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        if self.task is not None:
            await self.task


@dataclass
class Reply:
    status: int
    body: Any

    @property
    def texts(self) -> list[str]:
        return [r.get("text") or "" for r in self.body.get("responses", [])]

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    @property
    def buttons(self) -> list[dict[str, str]]:
        return [b for r in self.body.get("responses", []) for b in r.get("buttons") or []]

    @property
    def slots(self) -> dict[str, Any]:
        """The slots the action set (the last value of each)."""
        return {e["name"]: e["value"] for e in self.body.get("events", []) if e["event"] == "slot"}

    @property
    def followups(self) -> list[str]:
        return [e["name"] for e in self.body.get("events", []) if e["event"] == "followup"]


@dataclass
class ActionServer:
    """Posts action calls to /webhook as Rasa does."""

    loop: _Loop
    client: httpx.AsyncClient
    clinic: Clinic | None = None
    token: str | None = TOKEN
    conversation: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.loop.run(self.client.get(path, params=params))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run(self.client.post(path, **kwargs))

    def call(
        self,
        action: str,
        slots: dict[str, Any] | None = None,
        *,
        text: str = "",
        sender: str = "rasa-conv-1",
        entities: list[dict[str, Any]] | None = None,
        intent: str = "book",
        domain: dict[str, Any] | None = DOMAIN,
        extracted: dict[str, Any] | None = None,
    ) -> Reply:
        """One action call; ``slots`` are all the slots the tracker holds,
        ``extracted`` those Rasa filled from this message (a form validates them)."""
        slots = {**(slots or {}), **(extracted or {})}
        tracker = {
            "sender_id": sender,
            "conversation_id": sender,
            "slots": slots,
            "latest_message": {
                "text": text,
                "intent": {"name": intent, "confidence": 0.97},
                "entities": list(entities or []),
                "intent_ranking": [{"name": intent, "confidence": 0.97}],
                "message_id": f"m-{abs(hash((sender, text))) % 10**8}",
                "metadata": {},
            },
            "latest_event_time": 1_764_000_000.0,
            "followup_action": None,
            "paused": False,
            "events": [
                {"event": "action", "timestamp": 1_764_000_000.0, "name": "action_listen"},
                {"event": "user", "timestamp": 1_764_000_000.0, "text": text},
                *(
                    {"event": "slot", "timestamp": 1_764_000_001.0, "name": k, "value": v}
                    for k, v in (extracted or {}).items()
                ),
            ],
            "latest_input_channel": "rest",
            "active_loop": {},
            "latest_action": {"action_name": "action_listen"},
            "latest_action_name": "action_listen",
        }
        call: dict[str, Any] = {
            "next_action": action,
            "sender_id": sender,
            "tracker": tracker,
            "version": "3.6.20",
        }
        if domain is not None:
            call["domain"] = domain
        params = {"token": self.token} if self.token else {}
        response = self.post("/webhook", json=call, params=params)
        return Reply(response.status_code, response.json())


@pytest.fixture(scope="session")
def _server() -> Iterator[tuple[_Loop, httpx.AsyncClient]]:
    loop = _Loop()
    app = create_app(TOKEN)
    lifespan = _Lifespan(app)
    loop.run(lifespan.start())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rasa")
    yield loop, client
    loop.run(client.aclose())
    loop.run(lifespan.stop())
    loop.close()


@pytest.fixture
def clock() -> FixedClock:
    # A Tuesday morning in New York (as tests/conftest.py's clock).
    return FixedClock(datetime(2026, 4, 14, 13, 0, tzinfo=UTC))


def make_server(
    server: tuple[_Loop, httpx.AsyncClient], db: Database, clock: FixedClock, **settings: Any
) -> ActionServer:
    clinic = Clinic.open(db, clock, **settings)
    use_runtime(Runtime(clinic.settings, db, clock))
    loop, client = server
    return ActionServer(loop, client, clinic)


@pytest.fixture
def rasa(
    _server: tuple[_Loop, httpx.AsyncClient], db: Database, clock: FixedClock
) -> Iterator[ActionServer]:
    """The action server on the demo clinic, Rasa's own sender ids."""
    yield make_server(_server, db, clock)
    use_runtime(None)


@pytest.fixture
def rasa_phone(
    _server: tuple[_Loop, httpx.AsyncClient], db: Database, clock: FixedClock
) -> Iterator[ActionServer]:
    """The action server with phone-number sender ids (Rasa's Twilio connectors)."""
    yield make_server(_server, db, clock, rasa_sender_ids="phone")
    use_runtime(None)


@pytest.fixture
def server_loop(_server: tuple[_Loop, httpx.AsyncClient]) -> tuple[_Loop, httpx.AsyncClient]:
    return _server


__all__ = [
    "DOMAIN",
    "ROOT",
    "TOKEN",
    "TZ",
    "ActionServer",
    "Reply",
    "Settings",
    "load_yaml",
    "make_server",
]


def pytest_configure(config: pytest.Config) -> None:
    # rasa-sdk warns when Rasa's version differs from its own in major.minor; the
    # calls here carry a Rasa 3.6 version, as open-source Rasa sends.
    config.addinivalue_line("filterwarnings", "ignore:.*rasa_sdk.*:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:.*versions of rasa.*:UserWarning")
