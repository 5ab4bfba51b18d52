"""`telemed rasa-actions` as a clinic runs it: its own process on a port, with
Rasa's action calls over HTTP, and the booking seen by `telemed appointments`."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_cli import Cli, free_port, next_weekday
from tests.rasa.conftest import DOMAIN

TOKEN = "process-token"


def _call(base: str, action: str, slots: dict[str, Any], sender: str, text: str = "") -> Any:
    body = {
        "next_action": action,
        "sender_id": sender,
        "version": "3.6.20",
        "domain": DOMAIN,
        "tracker": {
            "sender_id": sender,
            "slots": slots,
            "latest_message": {"text": text, "intent": {"name": "book"}, "entities": []},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }
    response = httpx.post(f"{base}/webhook", params={"token": TOKEN}, json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.timeout(120)
def test_rasa_actions_serves_books_and_stops(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli("demo").returncode == 0
    port = free_port()
    env = {**cli.env, "TELEMED_RASA_ACTIONS_TOKEN": TOKEN, "TELEMED_RASA_SENDER_IDS": "phone"}
    process = subprocess.Popen(
        cli.command("rasa-actions", "--port", str(port)),
        cwd=cli.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None and health.json() == {"status": "ok"}
        assert httpx.get(f"{base}/actions", timeout=5).status_code == 401
        listed = httpx.get(f"{base}/actions", params={"token": TOKEN}, timeout=5).json()
        assert "action_book_appointment" in {a["name"] for a in listed}

        monday = next_weekday(0)
        found = _call(
            base,
            "action_find_slots",
            {"practitioner": "dermatologist", "time": monday.isoformat()},
            "+15555550177",
            text=f"a dermatologist on {monday:%A}",
        )
        first = found["responses"][0]["buttons"][0]["payload"]
        entities = json.loads(first[first.index("{") :])
        booked = _call(
            base,
            "action_book_appointment",
            {**entities, "patient_name": "Rosa Diaz", "date_of_birth": "1975-03-09"},
            "+15555550177",
            text=first,
        )
        assert booked["responses"][0]["text"].startswith("Booked: Dr Ben Okafor")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Rasa action server on http://127.0.0.1" in output
    assert "Traceback" not in output
    # Nothing the patient said or who they are in the server's log.
    assert "Rosa" not in output and "5555550177" not in output

    listing = cli("appointments", "--json")
    assert listing.returncode == 0, listing.stderr
    [appointment] = json.loads(listing.stdout)
    assert appointment["practitioner"] == "Dr Ben Okafor"
    assert appointment["patient_phone"] == "+15555550177"
    assert appointment["channel"] == "sms"
    assert datetime.fromisoformat(appointment["start"]).date() == monday


def test_a_bad_sender_id_mode_is_a_start_up_error(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    result = cli("rasa-actions", env={"TELEMED_RASA_SENDER_IDS": "email"})
    assert result.returncode == 1
    assert "TELEMED_RASA_SENDER_IDS" in result.stderr
    assert "Traceback" not in result.stderr
