from __future__ import annotations

from core.logs import REDACTED, redact


def test_patient_data_is_redacted_above_debug() -> None:
    event = {
        "event": "inbound from +1 555 010 0000",
        "body": "I have chest pain",
        "name": "Ana",
        "channel": "sms",
        "note": "call +34612345678 back",
    }
    out = redact(None, "info", dict(event))
    assert out["body"] == out["name"] == REDACTED
    assert "+1 555" not in out["event"] and "612345678" not in out["note"]
    assert out["channel"] == "sms"


def test_debug_keeps_everything() -> None:
    event = {"event": "x", "body": "hello"}
    assert redact(None, "debug", dict(event)) == event
