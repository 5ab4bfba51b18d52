"""Rasa sender ids to channel identities (TELEMED_RASA_SENDER_IDS)."""

from __future__ import annotations

import pytest

from bots.rasa_actions.senders import UnknownSender, identity_key


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("+15555550123", ("sms", "+15555550123")),
        ("(555) 555-0123", ("sms", "+15555550123")),
        ("0015555550123", ("sms", "+15555550123")),
        ("whatsapp:+15555550123", ("whatsapp", "+15555550123")),
        ("WhatsApp:+44 7700 900123", ("whatsapp", "+447700900123")),
    ],
)
def test_phone_sender_ids(sender: str, expected: tuple[str, str]) -> None:
    assert identity_key(sender, "phone", "US") == expected


def test_a_national_number_is_read_in_the_default_region() -> None:
    assert identity_key("07700 900123", "phone", "GB") == ("sms", "+447700900123")


@pytest.mark.parametrize("sender", ["web-4f1c2a", "", "   ", "+1", "whatsapp:", None, 15555550123])
def test_what_is_no_phone_number_is_nobody(sender: object) -> None:
    with pytest.raises(UnknownSender):
        identity_key(sender, "phone", "US")


def test_telegram_sender_ids_are_chat_ids() -> None:
    assert identity_key("123456789", "telegram", "US") == ("telegram", "123456789")
    assert identity_key("-1001234567890", "telegram", "US") == ("telegram", "-1001234567890")
    for bad in ("@someone", "12ab", "", "1" * 21):
        with pytest.raises(UnknownSender):
            identity_key(bad, "telegram", "US")


def test_rasa_sender_ids_are_their_own_identity() -> None:
    assert identity_key(" 9b2f-conversation ", "rasa", "US") == ("rasa", "9b2f-conversation")
    assert identity_key("x" * 64, "rasa", "US") == ("rasa", "x" * 64)
    for bad in ("x" * 65, "tab\there", ""):
        with pytest.raises(UnknownSender):
            identity_key(bad, "rasa", "US")
