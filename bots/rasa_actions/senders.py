"""Who a Rasa ``sender_id`` is: the channel identity behind it.

``TELEMED_RASA_SENDER_IDS`` says what Rasa's sender ids are, so that a
patient booking through a clinic's Rasa assistant is the same patient as on
the service's own channels:

* ``rasa``: Rasa's own conversation ids (its REST or web-chat channels). The
  identity is (``rasa``, sender id): a patient of its own, registered with
  name and date of birth like any new patient.
* ``phone``: phone numbers, as Rasa's Twilio connectors send them
  (``+15555550123`` for SMS, ``whatsapp:+15555550123`` for WhatsApp): the
  same identity as that number's messages to this service.
* ``telegram``: Telegram chat ids, as Rasa's Telegram connector sends them:
  the same identity as on the clinic's Telegram bot.
"""

from __future__ import annotations

import re

from core.phones import InvalidPhone, to_e164

RASA_CHANNEL = "rasa"
MAX_ADDRESS = 64  # channel_identities.address
_TELEGRAM_ID = re.compile(r"^-?\d{1,20}$")


class UnknownSender(ValueError):
    """A sender id that names no patient this service could reach."""


def identity_key(sender_id: object, mode: str, default_region: str) -> tuple[str, str]:
    """(channel, address) for a Rasa sender id; UnknownSender when it cannot be one."""
    if not isinstance(sender_id, str) or not sender_id.strip():
        raise UnknownSender("no sender id")
    sender = sender_id.strip()
    if mode == "phone":
        channel = "whatsapp" if sender.lower().startswith("whatsapp:") else "sms"
        try:
            return channel, to_e164(sender, default_region)
        except InvalidPhone:
            raise UnknownSender("the sender id is not a phone number") from None
    if mode == "telegram":
        if not _TELEGRAM_ID.match(sender):
            raise UnknownSender("the sender id is not a Telegram chat id")
        return "telegram", str(int(sender))
    if len(sender) > MAX_ADDRESS or not sender.isprintable():
        raise UnknownSender(f"the sender id is longer than {MAX_ADDRESS} characters")
    return RASA_CHANNEL, sender
