"""Composition root: the FastAPI app and the background loops of each role.

Roles: ``all`` (web + dispatcher + scheduler, the embedded default), ``web``,
``worker`` (dispatcher) and ``scheduler``. ``telemed serve`` runs ``web`` and
``all`` under uvicorn; ``worker`` and ``scheduler`` run ``Background`` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bots.dispatcher import Dispatcher
from bots.doctor_bot import doctor_bot_config, doctor_bot_router
from bots.media import media_router
from bots.ratelimit import RateLimits
from channels.base import Channel
from core import migrate
from core.clock import Clock, SystemClock
from core.db import Database
from core.logs import get_logger
from core.settings import Settings, load_settings
from web import api, api_appointments, api_availability, api_patients, api_questions
from web.auth import install as install_auth
from web.availability import availability_router
from web.dashboard import dashboard_router
from web.inbox import inbox_router
from web.metrics import metrics_router
from web.pharmacy import pharmacy_router
from web.prescribe import prescribe_router
from web.prescriptions import prescriptions_router
from web.requestlog import RequestLogMiddleware
from web.video import video_router

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

Role = Literal["all", "web", "worker", "scheduler"]
ROLES: tuple[str, ...] = ("all", "web", "worker", "scheduler")
DISPATCH_INTERVAL_S = 1.0
log = get_logger(__name__)


def channel_status(settings: Settings) -> list[tuple[str, bool, str]]:
    """(channel, on, why) for each provider, for the start-up banner."""
    from channels.twilio import build_twilio_channels

    status: list[tuple[str, bool, str]] = []
    twilio_missing = [
        name
        for name, value in (
            ("TELEMED_TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TELEMED_TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
        )
        if not value
    ]
    twilio = build_twilio_channels(settings) if not twilio_missing else {}
    for name, sender in (
        ("sms", "TELEMED_TWILIO_SMS_FROM"),
        ("whatsapp", "TELEMED_TWILIO_WHATSAPP_FROM"),
    ):
        if twilio_missing:
            status.append((name, False, ", ".join(f"{m} unset" for m in twilio_missing)))
        elif name in twilio:
            status.append(
                (name, True, f"Twilio, webhook {settings.public_url}/webhooks/twilio/{name}")
            )
        else:
            why = f"{sender} and TELEMED_TWILIO_MESSAGING_SERVICE_SID unset"
            status.append((name, False, why))
    if not settings.telegram_bot_token:
        status.append(("telegram", False, "TELEMED_TELEGRAM_BOT_TOKEN unset"))
    else:
        secret = (
            "" if settings.telegram_webhook_secret else "; TELEMED_TELEGRAM_WEBHOOK_SECRET unset!"
        )
        status.append(
            ("telegram", True, f"webhook {settings.public_url}/webhooks/telegram{secret}")
        )
    doctors = doctor_bot_config(settings)
    if not doctors.token:
        status.append(("doctor bot", False, f"{doctors.token_setting} unset"))
    else:
        secret = "" if doctors.webhook_secret else f"; {doctors.secret_setting} unset!"
        status.append(("doctor bot", True, f"webhook {settings.public_url}{doctors.path}{secret}"))
    if settings.rasa_url:  # said only when used: most clinics run no Rasa assistant
        token = "" if settings.rasa_token else "; TELEMED_RASA_TOKEN unset"
        status.append(("rasa", True, f"messages to {settings.rasa_url} trigger_intent{token}"))
    return status


def channel_banner(settings: Settings) -> list[str]:
    return [
        f"{name}: {'on' if on else 'off'} ({why})" for name, on, why in channel_status(settings)
    ]


def build_senders(settings: Settings) -> dict[str, Channel]:
    """The provider channels this process can send through (those configured)."""
    from channels.rasa import build_rasa_channel
    from channels.telegram import build_telegram_channel
    from channels.twilio import build_twilio_channels

    senders: dict[str, Channel] = dict(build_twilio_channels(settings))
    rasa = build_rasa_channel(settings)
    if rasa is not None:
        senders[rasa.name] = rasa  # patients who only talk to the clinic's Rasa assistant
    telegram = build_telegram_channel(settings)
    if telegram is not None:
        senders["telegram"] = telegram
    doctors = build_telegram_channel(settings, doctor_bot_config(settings))
    if doctors is not None:
        senders[doctors.name] = doctors  # "doctor_telegram": the doctors' own bot
    return senders


class Background:
    """The dispatcher loop and the scheduler of a role, started and stopped together."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        role: str,
        *,
        senders: dict[str, Channel] | None = None,
        dispatch_interval_s: float = DISPATCH_INTERVAL_S,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.role = role
        self.dispatcher = Dispatcher(
            db,
            build_senders(settings) if senders is None else senders,
            clock,
            rate_limits=RateLimits.from_settings(settings),
            whatsapp_template_sid=settings.whatsapp_template_sid,
            send_timeout_s=settings.send_timeout_seconds,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
            give_up=timedelta(hours=settings.outbox_give_up_hours),
        )
        self.dispatch_interval_s = dispatch_interval_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.scheduler: AsyncIOScheduler | None = None

    @property
    def runs_dispatcher(self) -> bool:
        return self.role in ("all", "worker")

    @property
    def runs_scheduler(self) -> bool:
        return self.role in ("all", "scheduler")

    async def start(self) -> None:
        if self.runs_dispatcher:
            # The Twilio SDK blocks, so each send holds a thread (asyncio.to_thread).
            # asyncio's default pool is min(32, CPUs + 4) threads: 6 on a 2-core
            # box, which with Twilio's ~200 ms per request caps a worker near 30
            # sends a second whatever its concurrency. Size it to the concurrency.
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(
                    max_workers=self.dispatcher.concurrency + 4, thread_name_prefix="telemed-send"
                )
            )
            self._stop.clear()
            self._task = asyncio.create_task(
                self.dispatcher.run_forever(self.dispatch_interval_s, self._stop),
                name="telemed-dispatcher",
            )
        if self.runs_scheduler:
            from bots.scheduler import create_scheduler, tick_jobs

            self.scheduler = create_scheduler(
                self.db,
                self.clock,
                tick_seconds=self.settings.scheduler_tick_seconds,
                jobs=tick_jobs(self.settings),
            )
            self.scheduler.start()

    async def stop(self) -> None:
        self._stop.set()
        if self.scheduler is not None:
            from bots.scheduler import stop_scheduler

            await stop_scheduler(self.scheduler)
            self.scheduler = None
        if self._task is not None:
            # The pass under way ends within the send timeout plus the rate
            # horizon; what is still held after that is handed back, not left
            # to wait out the lease.
            with contextlib.suppress(TimeoutError):  # wait_for cancels it
                await asyncio.wait_for(self._task, timeout=self.settings.send_timeout_seconds + 5)
            self._task = None
            with contextlib.suppress(Exception):
                released = await asyncio.to_thread(self.dispatcher.release_claims)
                if released:
                    log.warning("outbox_claims_released", rows=released)

    async def run_until(self, stop_event: asyncio.Event) -> None:
        await self.start()
        try:
            await stop_event.wait()
        finally:
            await self.stop()


class Health(BaseModel):
    status: str
    reason: str | None = None


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    clock: Clock | None = None,
    role: str = "all",
    senders: dict[str, Channel] | None = None,
    dispatch_interval_s: float = DISPATCH_INTERVAL_S,
) -> FastAPI:
    """The HTTP app; for roles all/worker/scheduler its lifespan also runs the loops."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    settings = settings if settings is not None else load_settings()
    owns_db = db is None
    database = (
        db
        if db is not None
        else Database(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
    )
    the_clock: Clock = clock if clock is not None else SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = Background(
            database,
            settings,
            the_clock,
            role,
            senders=senders,
            dispatch_interval_s=dispatch_interval_s,
        )
        app.state.background = background
        await background.start()
        try:
            yield
        finally:
            await background.stop()
            if owns_db:
                database.dispose()

    app = FastAPI(
        title="telemed",
        version=_version(),
        summary="Messaging-first telemedicine: booking over SMS, WhatsApp and Telegram",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.engine = database.engine
    app.state.clock = the_clock
    app.state.role = role

    @app.get("/healthz", response_model=Health, response_model_exclude_none=True, tags=["health"])
    def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Health,
        response_model_exclude_none=True,
        responses={503: {"model": Health, "description": "not ready, with the reason"}},
        tags=["health"],
    )
    def readyz(request: Request) -> Any:
        """Readiness: the database answers and its migrations are current."""
        database: Database = request.app.state.db
        try:
            behind = migrate.pending(database.engine)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not ready"
            reason = f"database unreachable ({type(exc).__name__})"
            return JSONResponse({"status": "unavailable", "reason": reason}, 503)
        if behind:
            reason = "database migrations pending (run: telemed db upgrade)"
            return JSONResponse({"status": "unavailable", "reason": reason}, 503)
        return Health(status="ok")

    _answer_503_while_the_database_is_down(app)
    # First: routes match in order, and the provider webhooks are the hot path.
    _mount_webhooks(app, settings, database, the_clock)
    app.include_router(api.router, prefix="/api/v1")
    app.include_router(api_appointments.router, prefix="/api/v1")
    app.include_router(api_patients.router, prefix="/api/v1")
    app.include_router(api_availability.router, prefix="/api/v1")
    app.include_router(api_questions.router, prefix="/api/v1")
    app.include_router(metrics_router(database, the_clock))
    app.include_router(prescriptions_router(database, the_clock, settings), prefix="/api/v1")
    app.include_router(pharmacy_router(database, the_clock, settings))
    auth = install_auth(app, database, the_clock, settings)
    app.include_router(dashboard_router(auth))
    app.include_router(inbox_router(auth))
    app.include_router(availability_router(auth))
    app.include_router(prescribe_router(auth))
    app.include_router(video_router(auth))
    app.include_router(doctor_bot_router(auth))
    app.include_router(media_router(auth, build_senders(settings) if senders is None else senders))
    # Added last, so outermost: every line logged for a request carries its id,
    # and one access line per request replaces uvicorn's (see web.requestlog).
    app.add_middleware(RequestLogMiddleware)
    return app


def _answer_503_while_the_database_is_down(app: FastAPI) -> None:
    """A lost database connection (a restart, a failover, a full pool) answers
    503 with Retry-After, not 500: providers and clients retry a 503 (Telegram
    redelivers the update; Twilio tries the number's fallback URL), nothing
    was stored, and the connection pool reconnects on the next request."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The type only: driver messages can quote SQL parameters (numbers, bodies).
        route = getattr(request.scope.get("route"), "path", None)  # the template: /v/{token}
        log.warning("database_unavailable", route=route, error_type=type(exc).__name__)
        return JSONResponse(
            {"detail": "database unavailable, try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for kind in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(kind, unavailable)


def _mount_webhooks(app: FastAPI, settings: Settings, database: Database, clock: Clock) -> None:
    """Provider webhooks: each inbound message runs through the flow engine in
    one transaction (off the event loop); its replies wait in the outbox and
    the dispatcher is nudged to send them now."""
    from starlette.concurrency import run_in_threadpool

    from channels.telegram import telegram_router
    from channels.twilio import twilio_router
    from core import outbox
    from core.messages import InboundMessage
    from core.patients import mark_opted_out
    from flows.engine import FlowEngine

    engine = FlowEngine(database, settings, clock)

    async def handle(msg: InboundMessage) -> None:
        if msg.received_at is None:
            msg = dataclasses.replace(msg, received_at=clock.now())
        result = await run_in_threadpool(engine.handle, msg)
        background: Background | None = getattr(app.state, "background", None)
        if result.replies and background is not None and background.runs_dispatcher:
            background.dispatcher.nudge()

    async def on_status(provider_message_id: str, status: str, error_code: str | None) -> None:
        def record() -> None:
            with database.transaction() as session:
                outbox.record_delivery(session, provider_message_id, status, error_code=error_code)

        await run_in_threadpool(record)

    async def on_blocked(chat_id: str) -> None:
        def record() -> None:
            with database.transaction() as session:
                mark_opted_out(session, "telegram", chat_id, now=clock.now())

        await run_in_threadpool(record)

    app.include_router(twilio_router(settings, handle, on_status))
    app.include_router(telegram_router(settings, handle, on_blocked=on_blocked))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    with contextlib.suppress(PackageNotFoundError):
        return version("telemed")
    return "0.0.0"
