"""Phone numbers: everything stored as E.164."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    pass


def to_e164(raw: str, default_region: str = "US") -> str:
    """``"+1 (555) 010-0000"``, ``"whatsapp:+44..."`` or a national number -> ``+15550100000``."""
    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:") :]
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(f"not a phone number: {raw!r}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"not a possible phone number: {raw!r}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_address(channel: str, address: str, default_region: str = "US") -> str:
    """Phone-based channels key identities by E.164; others keep their own ids."""
    if channel in ("sms", "whatsapp"):
        return to_e164(address, default_region)
    return address.strip()
