"""The ``telemed`` command line.

Start-up speed matters (``telemed --help`` and ``telemed appointments`` answer
in well under a second), so the heavy packages (FastAPI, uvicorn, APScheduler,
Duckling, the flows) are imported only inside the commands that use them.

Exit status: 0 ok, 2 bad usage, 1 failure with one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session

    from core.db import Database
    from core.models import Appointment, Practitioner
    from core.settings import Settings


class RoleName(StrEnum):
    all = "all"
    web = "web"
    worker = "worker"
    scheduler = "scheduler"


class ChannelName(StrEnum):
    sms = "sms"
    whatsapp = "whatsapp"
    telegram = "telegram"


class Lang(StrEnum):
    en = "en"
    es = "es"


class CliError(Exception):
    """A failure reported as one line on stderr, exit status 1."""


app = typer.Typer(
    name="telemed",
    help="Messaging-first telemedicine: book visits over SMS, WhatsApp and Telegram.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
appointments_app = typer.Typer(help="List appointments, or book one for a patient (staff).")
alerts_app = typer.Typer(help="Urgent alerts for staff: red flags in patients' messages.")
intake_app = typer.Typer(help="Symptom intakes: the doctor's summary, and FHIR R4 export.")
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
users_app = typer.Typer(help="Dashboard users and API tokens.", no_args_is_help=True)
app.add_typer(appointments_app, name="appointments")
app.add_typer(alerts_app, name="alerts")
app.add_typer(intake_app, name="intake")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")


# -- shared helpers ------------------------------------------------------------


def _settings() -> Settings:
    from core.settings import load_settings

    return load_settings()


def _database(settings: Settings) -> Database:
    from core.db import Database

    return Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def _upgrade(db: Database) -> bool:
    """Apply pending migrations; True when there were any."""
    from core import migrate

    if not migrate.pending(db.engine):
        return False
    migrate.upgrade(db.engine)
    return True


def _console() -> Console:
    from rich.console import Console

    # Piped output gets full lines rather than a table squeezed to 80 columns.
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _dump(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def _safe_url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=True)


def _clinic_zone(session: Session, settings: Settings) -> str:
    from sqlalchemy import select

    from core.models import Clinic

    zone = session.scalar(select(Clinic.timezone).order_by(Clinic.id).limit(1))
    return zone or settings.clinic_timezone


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


# -- serve ---------------------------------------------------------------------


def _migrate_before_serving(db: Database, no_migrate: bool) -> None:
    """Apply pending migrations and say so (``--no-migrate``: only warn)."""
    if no_migrate:
        from core import migrate

        if migrate.pending(db.engine):
            print("database: migrations pending (serving anyway: --no-migrate)", file=sys.stderr)
    elif _upgrade(db):
        print(f"database: migrations applied ({_safe_url(db)})")
    else:
        print(f"database: up to date ({_safe_url(db)})")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    role: Annotated[
        RoleName,
        typer.Option(help="all = web + dispatcher + scheduler; or one of them alone."),
    ] = RoleName.all,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Do not apply pending migrations first.")
    ] = False,
) -> None:
    """Run the service (HTTP API, outbox dispatcher, scheduler)."""
    settings = _settings()
    db = _database(settings)
    _migrate_before_serving(db, no_migrate)

    from bots.app import channel_banner

    for line in channel_banner(settings):
        print(line)
    sys.stdout.flush()

    from core.logs import configure

    # Every logger, uvicorn's included, through one redacting handler (core.logs).
    configure(settings.log_level, json=settings.log_format == "json")
    if role in (RoleName.all, RoleName.web):
        import uvicorn

        from bots.app import create_app

        web_app = create_app(settings, db=db, role=role.value)
        print(f"telemed: role {role.value}, listening on http://{host}:{port}", flush=True)
        # log_config=None: keep core.logs' handlers; the access log is web.requestlog's.
        uvicorn.run(
            web_app,
            host=host,
            port=port,
            log_level=settings.log_level,
            log_config=None,
            access_log=False,
            lifespan="on",
            # Longer than a proxy's idle timeout (nginx 60 s, Caddy and ALB similar):
            # the proxy, not this server, closes an idle kept-alive connection, so
            # it never sends a request on one this server is closing.
            timeout_keep_alive=75,
        )
        return

    import asyncio

    asyncio.run(_headless(db, settings, role.value, host))


async def _headless(db: Database, settings: Settings, role: str, host: str = "127.0.0.1") -> None:
    import asyncio
    import signal

    from bots.app import Background
    from core.clock import SystemClock

    clock = SystemClock()
    metrics = None
    if settings.metrics_port is not None:
        from web.metrics import serve_metrics

        try:
            metrics = serve_metrics(db, clock, host, settings.metrics_port)
        except OSError as exc:
            raise CliError(
                f"TELEMED_METRICS_PORT: cannot listen on {host}:{settings.metrics_port} ({exc})"
            ) from None
        where = f"with only GET /metrics on http://{host}:{metrics.port}/metrics"
    else:
        where = "without HTTP (TELEMED_METRICS_PORT unset)"
    print(f"telemed: role {role} running {where}; Ctrl-C stops it", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await Background(db, settings, clock, role).run_until(stop)
    finally:
        if metrics is not None:
            metrics.close()


# -- rasa-actions ---------------------------------------------------------------


@app.command("rasa-actions")
def rasa_actions(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5055,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Sanic worker processes.")] = 1,
    no_migrate: Annotated[
        bool, typer.Option("--no-migrate", help="Do not apply pending migrations first.")
    ] = False,
) -> None:
    """Run the Rasa action server: a clinic's Rasa assistant books, reschedules
    and cancels through this service (needs the rasa extra; docs/rasa.md)."""
    try:
        from bots.rasa_actions import server
    except ImportError as exc:
        raise CliError(
            f"the Rasa action server needs the rasa extra ({exc.name} is missing): "
            "pip install -e '.[rasa]'"
        ) from None
    settings = _settings()
    db = _database(settings)
    _migrate_before_serving(db, no_migrate)
    db.dispose()
    token = settings.rasa_actions_token
    if token is None and host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"warning: listening on {host} without TELEMED_RASA_ACTIONS_TOKEN: anyone who can "
            "reach this port can book as any patient",
            file=sys.stderr,
        )
    print(
        f"telemed: Rasa action server on http://{host}:{port}/webhook "
        f"(sender ids: {settings.rasa_sender_ids}); Ctrl-C stops it",
        flush=True,
    )
    try:
        server.serve(host, port, token=token, workers=workers)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port} ({exc})") from None


# -- demo ----------------------------------------------------------------------


@app.command()
def demo(
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete ALL data first, then seed afresh.")
    ] = False,
) -> None:
    """Seed the demo clinic (only when the database is empty, unless --reset)."""
    from core.demo import is_seeded, seed_demo

    settings = _settings()
    db = _database(settings)
    _upgrade(db)
    with db.transaction() as session:
        existed = is_seeded(session) and not reset
        clinic = seed_demo(session, settings.clinic_timezone, reset=reset)
        name, zone = clinic.name, clinic.timezone
    if existed:
        print(f"demo: {name} is already there (telemed demo --reset starts over)")
    else:
        print(f"demo: seeded {name} ({zone})")
    _print_practitioners(db)


# -- chat ----------------------------------------------------------------------


@app.command()
def chat(
    channel: Annotated[ChannelName, typer.Option(help="Channel to pretend to write from.")],
    address: Annotated[
        str, typer.Option("--from", help="Your phone number (sms/whatsapp) or chat id (telegram).")
    ],
    lang: Annotated[Lang | None, typer.Option(help="Language of the conversation.")] = None,
) -> None:
    """Talk to the bot as a patient: one line is one message (stdin may be piped)."""
    import asyncio
    from uuid import uuid4

    from bots.dispatcher import Dispatcher
    from channels.console import ConsoleChannel
    from core.clock import SystemClock
    from core.demo import is_seeded, seed_demo
    from core.messages import InboundMessage
    from core.phones import InvalidPhone, normalize_address

    settings = _settings()
    try:
        address = normalize_address(channel.value, address, settings.default_region)
    except InvalidPhone as exc:
        raise CliError(f"--from: {exc}") from None
    interactive = sys.stdin.isatty()
    db = _database(settings)
    _upgrade(db)
    with db.transaction() as session:
        if not is_seeded(session):
            seed_demo(session, settings.clinic_timezone)
            if interactive:
                print("(seeded the demo clinic)", file=sys.stderr)

    from flows.engine import FlowEngine

    clock = SystemClock()
    engine = FlowEngine(db, settings, clock)
    if lang is not None:
        engine.set_language(channel.value, address, lang.value)

    def write(text: str) -> None:
        print(text + "\n", flush=True)

    console = ConsoleChannel(write, name=channel.value)
    dispatcher = Dispatcher(db, {channel.value: console}, clock)
    if interactive:
        import readline  # noqa: F401 - line editing and history for input()

        print(f"Chatting on {channel.value} as {address}. Ctrl-D quits.\n", file=sys.stderr)
    with asyncio.Runner() as runner:
        runner.run(dispatcher.run_once(address=address))  # anything left from before
        while True:
            line = _read_line(interactive)
            if line is None:
                break
            text = line.strip()
            if not text:
                continue
            engine.handle(
                InboundMessage(
                    channel=channel.value,
                    address=address,
                    text=text,
                    provider_message_id=uuid4().hex,
                    received_at=clock.now(),
                )
            )
            runner.run(dispatcher.run_once(address=address))


def _read_line(interactive: bool) -> str | None:
    if not interactive:
        line = sys.stdin.readline()
        return line if line else None
    try:
        return input("you> ")
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        return None


# -- understand ----------------------------------------------------------------


@app.command()
def understand(
    text: Annotated[
        str | None, typer.Argument(help="The message; without it, one message per stdin line.")
    ] = None,
    lang: Annotated[Lang | None, typer.Option(help="Language (default: detected).")] = None,
    now: Annotated[
        str | None,
        typer.Option(help="Reference time, ISO 8601 (default: now); without offset, in --tz."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(help="Time zone, IANA name (default: TELEMED_CLINIC_TIMEZONE or UTC)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message.")] = False,
) -> None:
    """Show what the bot understands in a message: intent, date/time, red flags."""
    from zoneinfo import ZoneInfo

    zone_name = tz or os.environ.get("TELEMED_CLINIC_TIMEZONE") or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (KeyError, ValueError):
        raise typer.BadParameter(f"unknown time zone {zone_name!r}", param_hint="--tz") from None
    reference: datetime | None = None
    if now is not None:
        try:
            reference = datetime.fromisoformat(now.strip())
        except ValueError:
            raise typer.BadParameter(
                f"{now!r} is not ISO 8601, like 2026-04-14T09:00", param_hint="--now"
            ) from None
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=zone)

    from core.nlu import understand as read

    def result(message: str) -> dict[str, Any]:
        value: Any = read(message, lang=lang.value if lang else None, now=reference, tz=zone_name)
        data = value.to_json()
        return json.loads(data) if isinstance(data, str) else dict(data)

    if text is None:
        for line in sys.stdin:
            message = line.rstrip("\r\n")
            if message.strip():
                _dump(result(message))
        return
    data = result(text)
    if as_json:
        _dump(data)
        return
    _print_understanding(data)


def _print_understanding(data: dict[str, Any]) -> None:
    from rich.table import Table

    when = data.get("when")
    if when:
        end = f" to {when['end']}" if when.get("end") else ""
        when_text = f"{when['start']}{end} ({when.get('grain')})"
    else:
        when_text = "-"
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("text", str(data.get("text", "")))
    table.add_row("language", str(data.get("language")))
    table.add_row("intent", str(data.get("intent")))
    table.add_row("when", when_text)
    table.add_row("emergency", "YES" if data.get("emergency") else "no")
    table.add_row("red flags", ", ".join(data.get("red_flags") or []) or "-")
    _console().print(table)


# -- appointments --------------------------------------------------------------


@appointments_app.callback(invoke_without_command=True)
def appointments(
    ctx: typer.Context,
    day: Annotated[
        str | None,
        typer.Option(help="YYYY-MM-DD in the clinic's zone (default: today and later)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List appointments (of one day, or from today on)."""
    if ctx.invoked_subcommand is not None:
        return
    the_day: date | None = None
    if day is not None:
        try:
            the_day = date.fromisoformat(day.strip())
        except ValueError:
            raise typer.BadParameter(
                f"{day!r} is not a date like 2026-04-15", param_hint="--day"
            ) from None
    settings = _settings()
    db = _database(settings)
    with db.transaction() as session:
        found = _appointments(session, settings, the_day)
        triage = _triage(session, [a.id for a in found])
        rows = [_appointment_json(a) | {"triage": triage.get(a.id)} for a in found]
        shown = [_when(a) for a in found]
    if as_json:
        _dump(rows)
        return
    if not rows:
        when = f"on {the_day.isoformat()}" if the_day else "from today on"
        print(f"No appointments {when}.")
        return
    from rich.table import Table

    table = Table(title=f"Appointments {the_day.isoformat() if the_day else 'from today on'}")
    for column in ("id", "start", "practitioner", "patient", "channel", "type", "status", "triage"):
        table.add_column(column, justify="right" if column == "id" else "left", no_wrap=True)
    for row, start in zip(rows, shown, strict=True):
        table.add_row(
            str(row["id"]),
            start,
            row["practitioner"],
            row["patient_phone"] or "-",
            row["channel"] or "-",
            row["visit_type"].replace("_", " "),
            row["status"],
            row["triage"] or "-",
        )
    _console().print(table)


def _triage(session: Session, appointment_ids: list[int]) -> dict[int, str]:
    """Each appointment's intake triage level, where an intake has one."""
    from sqlalchemy import select

    from core.models import IntakeResponse

    if not appointment_ids:
        return {}
    rows = session.execute(
        select(IntakeResponse.appointment_id, IntakeResponse.triage_level).where(
            IntakeResponse.appointment_id.in_(appointment_ids),
            IntakeResponse.triage_level.is_not(None),
        )
    )
    return {appointment_id: str(level) for appointment_id, level in rows}


def _when(appointment: Appointment) -> str:
    local = appointment.start_at.astimezone(_zone(appointment.practitioner.timezone))
    return local.strftime("%a %Y-%m-%d %H:%M %Z")


def _appointments(session: Session, settings: Settings, day: date | None) -> list[Appointment]:
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    from core.models import Appointment

    zone = _zone(_clinic_zone(session, settings))
    first = day if day is not None else datetime.now(UTC).astimezone(zone).date()
    try:
        lower = datetime.combine(first, time(0), zone).astimezone(UTC)
        upper = datetime.combine(first + timedelta(days=1), time(0), zone).astimezone(UTC)
    except (OverflowError, ValueError):
        raise CliError(f"--day {first.isoformat()} is out of range") from None
    query = (
        select(Appointment)
        .options(joinedload(Appointment.patient))
        .where(Appointment.start_at >= lower)
        .order_by(Appointment.start_at, Appointment.id)
    )
    if day is not None:
        query = query.where(Appointment.start_at < upper)
    return list(session.scalars(query).unique())


def _appointment_json(appointment: Appointment) -> dict[str, Any]:
    zone = _zone(appointment.practitioner.timezone)
    return {
        "id": appointment.id,
        "status": appointment.status,
        "start": appointment.start_at.astimezone(zone).isoformat(),
        "end": appointment.end_at.astimezone(zone).isoformat(),
        "practitioner": appointment.practitioner.name,
        "practitioner_id": appointment.practitioner_id,
        "patient_phone": appointment.patient.phone if appointment.patient else None,
        "channel": appointment.channel,
        "visit_type": appointment.visit_type,
    }


@appointments_app.command("book")
def book(
    phone: Annotated[str, typer.Option(help="The patient's phone number, E.164.")],
    practitioner: Annotated[str, typer.Option(help="Practitioner id or (part of the) name.")],
    at: Annotated[
        str, typer.Option(help="Start, ISO 8601; without an offset, in the clinic's zone.")
    ],
    channel: Annotated[
        ChannelName, typer.Option(help="Channel the patient is reached on.")
    ] = ChannelName.sms,
    video: Annotated[bool, typer.Option("--video", help="A video visit.")] = False,
) -> None:
    """Book an exact time for a patient (staff: no working-hours rule, never an overlap)."""
    try:
        start = datetime.fromisoformat(at.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{at!r} is not ISO 8601, like 2026-04-15T10:30", param_hint="--at"
        ) from None
    from core.phones import InvalidPhone, to_e164

    settings = _settings()
    try:
        phone_e164 = to_e164(phone, settings.default_region)
    except InvalidPhone as exc:
        raise CliError(f"--phone: {exc}") from None
    from sqlalchemy.exc import IntegrityError

    from core import scheduling
    from core.clock import SystemClock
    from core.patients import find_or_create_patient_by_phone

    db = _database(settings)
    clock = SystemClock()
    try:
        with db.transaction() as session:
            doctor = _find_practitioner(session, practitioner)
            if start.tzinfo is None:
                start = start.replace(tzinfo=_zone(doctor.clinic.timezone))
            now = clock.now()
            patient = find_or_create_patient_by_phone(
                session, doctor.clinic_id, phone_e164, channel.value, now=now
            )
            appointment = scheduling.book(
                session,
                practitioner=doctor,
                patient_id=patient.id,
                start=start.astimezone(UTC),
                now=now,
                channel=channel.value,
                visit_type="video" if video else "in_person",
                enforce_rules=False,
            )
            session.flush()
            booked = _appointment_json(appointment)
    except scheduling.SchedulingError as exc:
        raise CliError(str(exc)) from None
    except IntegrityError:
        raise CliError(f"{practitioner}: that time overlaps another appointment") from None
    begins = datetime.fromisoformat(booked["start"])
    print(
        f"Booked #{booked['id']}: {booked['practitioner']}, "
        f"{begins.strftime('%a %d %b %Y %H:%M %z')}, {booked['patient_phone']} "
        f"on {booked['channel']}, {booked['visit_type'].replace('_', ' ')} ({booked['status']})"
    )


def _change_appointment(appointment_id: int, action: str) -> None:
    from core import scheduling
    from core.cancellations import cancel_for_clinic
    from core.clock import SystemClock

    settings = _settings()
    db = _database(settings)
    now = SystemClock().now()
    change = {
        "check-in": scheduling.check_in,
        "complete": scheduling.complete,
    }
    try:
        with db.transaction() as session:
            if action == "cancel":
                appointment = cancel_for_clinic(
                    session, appointment_id, now=now, default_language=settings.default_language
                )
            else:
                appointment = change[action](session, appointment_id, now=now)
            status = appointment.status
    except scheduling.SchedulingError as exc:
        raise CliError(str(exc)) from None
    print(
        f"Appointment #{appointment_id}: {status}"
        + (" (checked in)" if action == "check-in" else "")
    )


AppointmentId = Annotated[int, typer.Argument(help="The appointment's id.", min=1, max=2**31 - 1)]


@appointments_app.command("check-in")
def check_in(appointment_id: AppointmentId) -> None:
    """The patient arrived (or joined the video call): the visit will not count as a no-show."""
    _change_appointment(appointment_id, "check-in")


@appointments_app.command("complete")
def complete(appointment_id: AppointmentId) -> None:
    """The visit took place."""
    _change_appointment(appointment_id, "complete")


@appointments_app.command("cancel")
def cancel(appointment_id: AppointmentId) -> None:
    """Cancel for the clinic; the freed slot is offered to the waitlist."""
    _change_appointment(appointment_id, "cancel")


def _find_practitioner(session: Session, query: str) -> Practitioner:
    """An id, an exact name, or a unique part of a name; else a one-line error."""
    from sqlalchemy import select

    from core.models import Practitioner

    wanted = query.strip()
    if wanted.isdigit():
        found = session.get(Practitioner, int(wanted)) if int(wanted) < 2**31 else None
        if found is None:
            raise CliError(f"no practitioner with id {wanted} (see: telemed practitioners)")
        return found
    everyone = list(
        session.scalars(
            select(Practitioner).where(Practitioner.active.is_(True)).order_by(Practitioner.id)
        )
    )
    folded = wanted.casefold()
    exact = [p for p in everyone if p.name.casefold() == folded]
    partial = exact or [p for p in everyone if folded and folded in p.name.casefold()]
    if not partial:
        partial = [p for p in everyone if folded and folded == p.specialty.casefold()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise CliError(f"no practitioner matches {wanted!r} (see: telemed practitioners)")
    names = ", ".join(f"{p.name} ({p.id})" for p in partial)
    raise CliError(f"practitioner {wanted!r} is ambiguous: {names}; give the id")


# -- practitioners -------------------------------------------------------------


@app.command()
def practitioners(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List practitioners."""
    settings = _settings()
    db = _database(settings)
    if as_json:
        _dump(_practitioner_rows(db))
        return
    _print_practitioners(db)


def _practitioner_rows(db: Database) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from core.models import Practitioner

    with db.transaction() as session:
        return [
            {
                "id": p.id,
                "name": p.name,
                "specialty": p.specialty,
                "timezone": p.timezone,
                "slot_minutes": p.slot_minutes,
            }
            for p in session.scalars(
                select(Practitioner).where(Practitioner.active.is_(True)).order_by(Practitioner.id)
            )
        ]


def _print_practitioners(db: Database) -> None:
    rows = _practitioner_rows(db)
    if not rows:
        print("No practitioners yet (telemed demo seeds a demo clinic).")
        return
    from rich.table import Table

    table = Table(title="Practitioners")
    for column in ("id", "name", "specialty", "time zone", "slot"):
        table.add_column(column, justify="right" if column == "id" else "left")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["name"],
            row["specialty"],
            row["timezone"],
            f"{row['slot_minutes']} min",
        )
    _console().print(table)


# -- alerts --------------------------------------------------------------------


@alerts_app.callback(invoke_without_command=True)
def alerts(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Acknowledged ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Open alerts, newest first: what fired, who, and the words that fired it."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy import select

    from core.models import Alert, Patient

    settings = _settings()
    db = _database(settings)
    with db.transaction() as session:
        zone = _zone(_clinic_zone(session, settings))
        query = (
            select(Alert, Patient.name)
            .outerjoin(Patient, Patient.id == Alert.patient_id)
            .order_by(Alert.created_at.desc(), Alert.id.desc())
        )
        if not show_all:
            query = query.where(Alert.status == "open")
        rows = [
            {
                "id": alert.id,
                "created": alert.created_at.astimezone(zone).isoformat(),
                "kind": alert.kind,
                "level": alert.level,
                "status": alert.status,
                "rules": list(alert.rules or []),
                "patient": name,
                "channel": alert.channel,
                "address": alert.address,
                "appointment_id": alert.appointment_id,
                "text": alert.text,
            }
            for alert, name in session.execute(query)
        ]
    if as_json:
        _dump(rows)
        return
    if not rows:
        print("No open alerts." if not show_all else "No alerts.")
        return
    from rich.table import Table

    table = Table(title="Alerts" if show_all else "Open alerts")
    for column in ("id", "when", "level", "rules", "patient", "from", "message", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["created"][:16].replace("T", " "),
            row["level"],
            ", ".join(row["rules"]),
            row["patient"] or "-",
            f"{row['channel']} {row['address']}",
            row["text"],
            row["status"],
        )
    _console().print(table)


@alerts_app.command("ack")
def ack(alert_id: Annotated[int, typer.Argument(help="The alert's id.", min=1)]) -> None:
    """Mark an alert as seen and handled."""
    from core import alerts
    from core.clock import SystemClock

    settings = _settings()
    db = _database(settings)
    with db.transaction() as session:
        if alerts.acknowledge(session, alert_id, now=SystemClock().now()) is None:
            raise CliError(f"no alert {alert_id}")
    print(f"Alert #{alert_id}: acknowledged")


# -- intake --------------------------------------------------------------------


@intake_app.command("show")
def intake_show(
    appointment_id: Annotated[int, typer.Argument(help="The appointment's id.", min=1)],
    fhir: Annotated[
        bool, typer.Option("--fhir", help="Print the FHIR R4 QuestionnaireResponse JSON.")
    ] = False,
) -> None:
    """An appointment's intake: triage, summary and answers (or FHIR JSON)."""
    from sqlalchemy import select

    from core import intake
    from core.models import IntakeResponse

    settings = _settings()
    db = _database(settings)
    with db.transaction() as session:
        row = session.scalars(
            select(IntakeResponse)
            .where(IntakeResponse.appointment_id == appointment_id)
            .order_by(IntakeResponse.id.desc())
        ).first()
        if row is None:
            raise CliError(f"no intake for appointment {appointment_id}")
        if fhir:
            _dump(intake.response_json(row))
            return
        print(f"Intake for appointment #{appointment_id}: {row.status}")
        print(row.summary or "(not finished: no triage yet)")


@intake_app.command("questionnaire")
def intake_questionnaire() -> None:
    """The intake questionnaire as FHIR R4 Questionnaire JSON."""
    from core import intake

    _dump(intake.questionnaire_json())


# -- report --------------------------------------------------------------------


@app.command()
def report(
    weeks: Annotated[
        str,
        typer.Option(metavar="N", help="How many weeks, this one included (1 to 104)."),
    ] = "4",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array, one object per week.")
    ] = False,
) -> None:
    """Reminders sent and answered, confirmations, no-show rate and waitlist fills, by week."""
    from core import metrics

    count = _report_weeks(weeks, metrics.MAX_WEEKS)
    settings = _settings()
    db = _database(settings)
    with db.transaction() as session:
        zone_name = _clinic_zone(session, settings)
        now = datetime.now(UTC)
        rows = metrics.weekly_report(session, now=now, zone=_zone(zone_name), weeks=count)
    if as_json:
        _dump([row.to_json() for row in rows])
        return
    from rich.table import Table

    table = Table(
        title=f"Last {count} week{'s' if count != 1 else ''} (weeks from Monday, {zone_name})",
        caption="no-show rate = no-shows / visits due (past visits, cancelled ones aside)",
    )
    columns = ("week of", "reminders", "answered", "confirmed", "rescheduled", "cancelled")
    columns += ("visits", "no-shows", "no-show rate", "waitlist offers", "filled")
    for column in columns:
        table.add_column(column, justify="left" if column == "week of" else "right", no_wrap=True)
    for row in rows:
        rate = "-" if row.no_show_rate is None else f"{row.no_show_rate:.1%}"
        table.add_row(
            row.week_start.isoformat(),
            *(
                str(value)
                for value in (
                    row.reminders_sent,
                    row.reminders_answered,
                    row.reminders_confirmed,
                    row.reminders_rescheduled,
                    row.reminders_cancelled,
                    row.visits_due,
                    row.no_shows,
                )
            ),
            rate,
            str(row.waitlist_offers_sent),
            str(row.waitlist_fills),
        )
    _console().print(table)


def _report_weeks(value: str, most: int) -> int:
    """``--weeks``, or exit 2 with one line (not typer's boxed usage panel)."""
    text = value.strip()
    number = int(text) if text.isascii() and text.isdigit() else None
    if number is None or not 1 <= number <= most:
        print(
            f"telemed: --weeks must be a whole number from 1 to {most}, not {value!r}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return number


# -- import-pharmacies ---------------------------------------------------------


@app.command("import-pharmacies")
def import_pharmacies(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="OpenStreetMap GeoJSON, Overpass JSON, or CSV with the header "
            "ref,name,address,postcode,city,country,phone,opening_hours,latitude,longitude.",
        ),
    ],
    source: Annotated[
        str | None,
        typer.Option(help="Where the rows come from (default: osm for JSON, csv for CSV)."),
    ] = None,
) -> None:
    """Import pharmacies from OpenStreetMap GeoJSON / Overpass JSON or CSV, with a progress bar.

    Importing a file again updates its pharmacies (matched on source and ref),
    never duplicates them. Malformed rows are reported with their line and skipped.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from core import pharmacies

    if source is not None and not 1 <= len(source.strip()) <= 16:
        print("telemed: --source must be 1 to 16 characters", file=sys.stderr)
        raise SystemExit(2)
    settings = _settings()
    db = _database(settings)
    err = Console(stderr=True)
    # The bar only on a terminal: piped or logged stderr gets no redraw noise.
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with bar:
        task = bar.add_task("importing pharmacies", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = pharmacies.import_file(
                db, file, source=source.strip() if source else None, progress=progress
            )
        except pharmacies.ImportFormatError as exc:
            raise CliError(str(exc)) from None
    print(
        f"{file}: {report.format}, imported {report.imported} pharmacies: "
        f"{report.inserted} new, {report.updated} updated, {report.unchanged} unchanged; "
        f"skipped {report.skipped}"
    )
    shown = 10
    for problem in report.problems[:shown]:
        print(f"  skipped {problem}")
    if report.skipped > shown:
        print(f"  ... and {report.skipped - shown} more skipped")
    if report.skipped and not report.imported:
        raise CliError(f"no pharmacy imported: all {report.skipped} rows were malformed")


# -- users ---------------------------------------------------------------------


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Option("--email", help="their login")],
    role: Annotated[str, typer.Option("--role", help="admin, staff or doctor")],
    password: Annotated[
        str | None,
        typer.Option("--password", help="at least 10 characters; without it one is made up"),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="shown in the dashboard")] = "",
    practitioner: Annotated[
        str | None,
        typer.Option("--practitioner", help="a doctor's practitioner (id or name)"),
    ] = None,
) -> None:
    """Create a dashboard user; a doctor is linked to their practitioner."""
    import secrets

    from core import users

    settings = _settings()
    db = _database(settings)
    made_up = password is None
    secret = password if password is not None else secrets.token_urlsafe(12)
    if role == "doctor" and practitioner is None:
        practitioner = name or None
    try:
        with db.transaction() as session:
            user = users.create_user(
                session,
                email=email,
                role=role,
                password=secret,
                name=name,
                practitioner=practitioner,
                now=_now(),
            )
            linked = f", practitioner {user.practitioner_id}" if user.practitioner_id else ""
            print(f"user {user.id} created: {user.email} ({user.role}{linked})")
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    if made_up:
        print(f"password: {secret}  (shown once; log in at {settings.public_url}/login)")


@users_app.command("list")
def users_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Dashboard users."""
    from sqlalchemy import select

    from core.models import User

    db = _database(_settings())
    with db.transaction() as session:
        rows = [
            {
                "id": u.id,
                "email": u.email,
                "name": u.name,
                "role": u.role,
                "practitioner_id": u.practitioner_id,
                "active": u.active,
            }
            for u in session.scalars(select(User).order_by(User.id))
        ]
    if json_out:
        _dump(rows)
        return
    for row in rows:
        state = "" if row["active"] else "  (disabled)"
        print(f"{row['id']:>4}  {row['role']:<7} {row['email']}  {row['name']}{state}")


@users_app.command("token")
def users_token(
    email: Annotated[str, typer.Option("--email", help="the user the integration acts as")],
    label: Annotated[str, typer.Option("--label", help="what it is for")] = "integration",
) -> None:
    """Issue a REST API token (Authorization: Bearer ...) acting as a user."""
    from sqlalchemy import select

    from core import users
    from core.models import User

    db = _database(_settings())
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == users.normalize_email(email)))
        if user is None:
            raise CliError(f"no user with e-mail {email.strip()} (see: telemed users list)")
        token = users.issue_api_token(session, user, label=label, now=_now())
    print(token)


def _now() -> datetime:
    return datetime.now(UTC)


# -- db ------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    db = _database(_settings())
    if _upgrade(db):
        print(f"database: migrations applied ({_safe_url(db)})")
    else:
        print(f"database: already up to date ({_safe_url(db)})")


# -- entry point ---------------------------------------------------------------


def _fail(reason: str) -> NoReturn:
    first = (reason.strip().splitlines() or ["failed"])[0]
    print(f"telemed: {first}", file=sys.stderr)
    raise SystemExit(1)


def _user_error(exc: BaseException) -> str | None:
    """One line for the failures a user can fix; None for bugs (keep the traceback)."""
    from core.db import DatabaseConfigError
    from core.settings import SettingsError

    if isinstance(exc, CliError | SettingsError | DatabaseConfigError):
        return str(exc)
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

        if isinstance(exc, OperationalError | ProgrammingError):
            detail = str(exc.orig).strip() if exc.orig is not None else str(exc)
            lowered = detail.lower()
            if "no such table" in lowered or (
                "relation" in lowered and "does not exist" in lowered
            ):
                return "the database has no tables yet: run `telemed db upgrade`"
            if isinstance(exc, OperationalError):
                return f"database unreachable: {detail}"
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return "database connection lost"
    if isinstance(exc, PermissionError | FileNotFoundError | IsADirectoryError):
        return str(exc)
    return None


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        # Output piped into `head` and friends: stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(1) from None
    except Exception as exc:
        reason = _user_error(exc)
        if reason is None:
            raise
        _fail(reason)


if __name__ == "__main__":
    main()
