"""Channel-neutral message types shared by channels (which parse and render
them) and flows (which read and write them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Channel = Literal["sms", "whatsapp", "telegram", "console"]
CHANNELS: tuple[str, ...] = ("sms", "whatsapp", "telegram", "console")


@dataclass(frozen=True)
class Media:
    content_type: str
    reference: str  # provider URL or file id; never fetched on the message path


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    label: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    address: str  # E.164 for sms/whatsapp, chat id for telegram, any id for console
    text: str
    provider_message_id: str
    received_at: datetime | None = None
    media: tuple[Media, ...] = ()
    location: Location | None = None
    button_payload: str | None = None  # an option's value chosen by tapping a button
    profile_name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Option:
    """One numbered choice. ``value`` is what comes back in ``button_payload``."""

    label: str
    value: str


@dataclass(frozen=True)
class Reply:
    text: str
    options: tuple[Option, ...] = ()
    purpose: str = "reply"  # reply | reminder | clinical | alert ...

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "options": [{"label": o.label, "value": o.value} for o in self.options],
            "purpose": self.purpose,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reply:
        return cls(
            text=str(data["text"]),
            options=tuple(
                Option(str(o["label"]), str(o["value"])) for o in data.get("options", [])
            ),
            purpose=str(data.get("purpose", "reply")),
        )
