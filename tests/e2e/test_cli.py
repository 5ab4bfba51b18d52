"""The `telemed` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

ZONE = "America/New_York"


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMED_")}
        self.env["TELEMED_DATABASE_URL"] = f"sqlite:///{tmp_path / 'telemed.db'}"
        self.env["TELEMED_CLINIC_TIMEZONE"] = ZONE
        self.env["PYTHONUNBUFFERED"] = "1"

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bots.cli", *args]

    def __call__(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def demo(cli: Cli) -> Cli:
    result = cli("demo")
    assert result.returncode == 0, result.stderr
    return cli


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telemed: ")
    return lines[0]


def next_weekday(weekday: int, weeks_ahead: int = 1) -> date:
    today = date.today()
    return today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks_ahead)


# -- usage and failures -----------------------------------------------------------------


def test_help(cli: Cli) -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in (
        "serve",
        "demo",
        "chat",
        "understand",
        "appointments",
        "practitioners",
        "report",
        "alerts",
        "intake",
        "db",
    ):
        assert command in result.stdout


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "telemed"
    if not script.exists():
        pytest.skip("the telemed console script is not installed in this interpreter's bin/")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0


def test_bad_usage_exits_2(cli: Cli) -> None:
    assert cli("no-such-command").returncode == 2
    assert cli("serve", "--role", "chef").returncode == 2
    assert cli("appointments", "--day", "someday").returncode == 2


@pytest.mark.parametrize("args", [["appointments"], ["practitioners"], ["demo"], ["serve"]])
def test_a_bad_database_url_names_the_setting(cli: Cli, args: list[str]) -> None:
    line = one_line_failure(cli(*args, env={"TELEMED_DATABASE_URL": "nonsense://x"}))
    assert "TELEMED_DATABASE_URL" in line


def test_a_bad_time_zone_names_the_setting(cli: Cli) -> None:
    line = one_line_failure(cli("appointments", env={"TELEMED_CLINIC_TIMEZONE": "Mars/Olympus"}))
    assert "TELEMED_CLINIC_TIMEZONE" in line


def test_an_unreachable_database_is_one_line(cli: Cli) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=3"
    line = one_line_failure(cli("practitioners", env={"TELEMED_DATABASE_URL": url}))
    assert "unreachable" in line


def test_a_database_without_tables_says_what_to_run(cli: Cli) -> None:
    line = one_line_failure(cli("appointments"))
    assert "telemed db upgrade" in line


def test_db_upgrade_is_idempotent(cli: Cli) -> None:
    first = cli("db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = cli("db", "upgrade")
    assert second.returncode == 0
    assert "up to date" in second.stdout


# -- demo, practitioners, appointments ------------------------------------------------------


def test_demo_then_practitioners(demo: Cli) -> None:
    result = demo("practitioners", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) >= 3
    assert len({row["specialty"] for row in rows}) >= 3
    assert all({"id", "name", "specialty"} <= set(row) for row in rows)
    again = demo("demo")
    assert again.returncode == 0
    assert "already" in again.stdout
    assert len(json.loads(demo("practitioners", "--json").stdout)) == len(rows)
    table = demo("practitioners")
    assert table.returncode == 0 and "Dermatology" in table.stdout


def test_staff_booking_never_double_books(demo: Cli) -> None:
    day = next_weekday(2)  # a Wednesday, a week or two ahead
    at = f"{day.isoformat()}T10:00"
    first = demo(
        "appointments", "book", "--phone", "+15555550123", "--practitioner", "Okafor", "--at", at
    )
    assert first.returncode == 0, first.stderr
    assert "Booked" in first.stdout

    second = demo(
        "appointments",
        "book",
        "--phone",
        "+15555550199",
        "--practitioner",
        "Okafor",
        "--at",
        at,
        "--channel",
        "whatsapp",
    )
    line = one_line_failure(second)
    assert len(line) > len("telemed: ") + 5

    # Staff may book outside working hours (07:00), with another practitioner at the same time.
    early = demo(
        "appointments",
        "book",
        "--phone",
        "+15555550123",
        "--practitioner",
        "Ruiz",
        "--at",
        f"{day.isoformat()}T07:00",
        "--video",
    )
    assert early.returncode == 0, early.stderr

    listed = demo("appointments", "--day", day.isoformat(), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 2
    for row in rows:
        assert {"id", "status", "start", "practitioner", "patient_phone", "channel"} <= set(row)
        start = datetime.fromisoformat(row["start"])
        assert start.utcoffset() is not None
        assert row["status"] == "booked"
        assert row["patient_phone"] == "+15555550123"
        assert row["channel"] == "sms"
    # --at without an offset is read in the clinic's zone.
    assert [datetime.fromisoformat(r["start"]).hour for r in rows] == [7, 10]
    assert rows[0]["visit_type"] == "video"
    assert rows[1]["practitioner"] == "Dr Ben Okafor"

    human = demo("appointments")
    assert human.returncode == 0 and "Okafor" in human.stdout
    other_day = demo("appointments", "--day", (day + timedelta(days=1)).isoformat(), "--json")
    assert json.loads(other_day.stdout) == []


def test_staff_check_in_cancel_and_complete(demo: Cli) -> None:
    at = f"{next_weekday(2).isoformat()}T10:00"
    booked = demo(
        "appointments", "book", "--phone", "+15555550123", "--practitioner", "Ruiz", "--at", at
    )
    appointment_id = booked.stdout.split("#", 1)[1].split(":", 1)[0]
    checked = demo("appointments", "check-in", appointment_id)
    assert checked.returncode == 0, checked.stderr
    assert f"#{appointment_id}: booked (checked in)" in checked.stdout
    # A visit next week has not taken place yet.
    assert "not started" in one_line_failure(demo("appointments", "complete", appointment_id))
    cancelled = demo("appointments", "cancel", appointment_id)
    assert f"#{appointment_id}: cancelled" in cancelled.stdout
    assert "already cancelled" in one_line_failure(demo("appointments", "cancel", appointment_id))
    assert "no appointment 4242" in one_line_failure(demo("appointments", "check-in", "4242"))
    assert demo("appointments", "check-in", "soon").returncode == 2


@pytest.mark.parametrize("who", ["Dr", "999", "Dr Nobody"])
def test_an_ambiguous_or_unknown_practitioner_fails_cleanly(demo: Cli, who: str) -> None:
    at = f"{next_weekday(2).isoformat()}T11:00"
    line = one_line_failure(
        demo("appointments", "book", "--phone", "+15555550123", "--practitioner", who, "--at", at)
    )
    assert who in line


def test_booking_with_bad_input(demo: Cli) -> None:
    bad_at = demo(
        "appointments",
        "book",
        "--phone",
        "+15555550123",
        "--practitioner",
        "1",
        "--at",
        "next week",
    )
    assert bad_at.returncode == 2
    bad_phone = demo(
        "appointments",
        "book",
        "--phone",
        "call me",
        "--practitioner",
        "1",
        "--at",
        f"{next_weekday(2).isoformat()}T11:00",
    )
    assert "phone" in one_line_failure(bad_phone)


# -- understand ---------------------------------------------------------------------------


def test_understand_json_is_one_line(cli: Cli) -> None:
    result = cli(
        "understand",
        "book me next tuesday after 3",
        "--json",
        "--now",
        "2026-04-14T09:00",
        "--tz",
        ZONE,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert set(data) == {"text", "language", "intent", "when", "emergency", "red_flags"}
    assert data["text"] == "book me next tuesday after 3"
    assert data["intent"] == "book"
    assert data["language"] == "en"
    assert data["emergency"] is False
    assert data["when"] is not None
    assert data["when"]["start"].startswith("2026-04-2")
    same = cli(
        "understand",
        "book me next tuesday after 3",
        "--json",
        "--now",
        "2026-04-14T09:00",
        "--tz",
        ZONE,
    )
    assert same.stdout == result.stdout


def test_understand_reads_stdin_one_object_per_line(cli: Cli) -> None:
    result = cli("understand", "--now", "2026-04-14T09:00:00-04:00", stdin="hi\n\nmenu\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["hi", "menu"]


def test_understand_without_json_is_readable(cli: Cli) -> None:
    result = cli("understand", "my appointments", "--tz", ZONE)
    assert result.returncode == 0, result.stderr
    assert "intent" in result.stdout and "my_appointments" in result.stdout


def test_understand_bad_options_are_usage_errors(cli: Cli) -> None:
    assert cli("understand", "hi", "--tz", "Nowhere/Land").returncode == 2
    assert cli("understand", "hi", "--now", "yesterday-ish").returncode == 2


# -- chat ---------------------------------------------------------------------------------


def test_chat_with_piped_stdin_on_a_fresh_database(cli: Cli) -> None:
    result = cli("chat", "--channel", "sms", "--from", "+1 555 555 0123", stdin="hi\nbook\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    numbered = [line for line in lines if line[:1].isdigit() and ". " in line[:4]]
    assert len(numbered) >= 2, result.stdout
    assert any(line.startswith("1. ") for line in lines)
    assert "you>" not in result.stdout
    # The demo clinic was seeded on the way.
    assert len(json.loads(cli("practitioners", "--json").stdout)) >= 3


def test_chat_remembers_the_conversation_between_runs(demo: Cli) -> None:
    first = demo("chat", "--channel", "sms", "--from", "+15555550123", stdin="book\n")
    assert first.returncode == 0, first.stderr
    second = demo("chat", "--channel", "sms", "--from", "+15555550123", stdin="menu\n")
    assert second.returncode == 0, second.stderr
    assert "1. " in second.stdout


def test_chat_in_spanish(demo: Cli) -> None:
    result = demo(
        "chat", "--channel", "telegram", "--from", "424242", "--lang", "es", stdin="hola\n"
    )
    assert result.returncode == 0, result.stderr
    assert "1. " in result.stdout


def test_rasa_actions_without_the_extra_says_how_to_install_it(cli: Cli) -> None:
    try:
        import rasa_sdk  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("rasa-sdk is installed here; tests/rasa runs the server")
    line = one_line_failure(cli("rasa-actions"))
    assert "pip install -e '.[rasa]'" in line


def test_chat_refuses_a_bad_number(demo: Cli) -> None:
    line = one_line_failure(demo("chat", "--channel", "sms", "--from", "not a number"))
    assert "--from" in line


# -- serve --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_serve_answers_health_and_readiness(cli: Cli) -> None:
    port = free_port()
    process = subprocess.Popen(
        cli.command("serve", "--port", str(port)),
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, _ = get(base + "/readyz")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        assert get(base + "/healthz") == (200, b'{"status":"ok"}')
        code, body = get(base + "/api/v1/practitioners")
        assert code == 200 and json.loads(body) == []
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert "sms: off (TELEMED_TWILIO_ACCOUNT_SID unset" in output
    assert "telegram: off (TELEMED_TELEGRAM_BOT_TOKEN unset)" in output
    assert "Traceback" not in output


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("role", ["worker", "scheduler"])
def test_serve_headless_roles_run_and_stop(cli: Cli, role: str) -> None:
    process = subprocess.Popen(
        cli.command("serve", "--role", role),
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if "without HTTP" in line:
                break
        time.sleep(0.5)
        assert process.poll() is None, "".join(seen)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(seen) + rest
    assert "Traceback" not in rest


def test_a_red_flag_by_chat_is_an_open_alert_until_acknowledged(demo: Cli) -> None:
    chat = demo(
        "chat",
        "--channel",
        "sms",
        "--from",
        "+15555550142",
        stdin="hi\nmy dad's face is drooping and he can't lift his arm\n",
    )
    assert chat.returncode == 0, chat.stderr
    assert "Call 911 now" in chat.stdout
    listed = json.loads(demo("alerts", "--json").stdout)
    assert [(a["kind"], a["level"], a["status"], a["rules"]) for a in listed] == [
        ("red_flag", "emergency", "open", ["stroke"])
    ]
    assert listed[0]["address"] == "+15555550142" and "drooping" in listed[0]["text"]
    assert "drooping" in demo("alerts").stdout
    assert "acknowledged" in demo("alerts", "ack", str(listed[0]["id"])).stdout
    assert json.loads(demo("alerts", "--json").stdout) == []
    assert len(json.loads(demo("alerts", "--all", "--json").stdout)) == 1
    assert "no alert 999" in one_line_failure(demo("alerts", "ack", "999"))


def test_an_intake_answered_by_chat_is_shown_and_exported_as_fhir(demo: Cli) -> None:
    answers = [
        "book",
        "Ruiz",
        "1",
        "1",
        "Jane Roe",
        "03/04/1975",
        "1",  # in person
        "1",  # answer the questions now
        "sore knee after running",
        "4 days",
        "5",
        "no",
        "ibuprofen",
        "none",
        "2",  # male
        "skip",
    ]
    chat = demo("chat", "--channel", "sms", "--from", "+15555550177", stdin="\n".join(answers))
    assert "your answers are with Dr Ana Ruiz" in chat.stdout, chat.stdout[-800:]
    [booked] = json.loads(demo("appointments", "--json").stdout)
    assert booked["triage"] == "routine"
    shown = demo("intake", "show", str(booked["id"]))
    assert "completed" in shown.stdout and "sore knee after running" in shown.stdout
    from fhir.resources.R4B.questionnaire import Questionnaire
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    response = QuestionnaireResponse.model_validate_json(
        demo("intake", "show", str(booked["id"]), "--fhir").stdout
    )
    assert response.status == "completed"
    Questionnaire.model_validate_json(demo("intake", "questionnaire").stdout)
    assert "no intake for appointment 4242" in one_line_failure(demo("intake", "show", "4242"))
