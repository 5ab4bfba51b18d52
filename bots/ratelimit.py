"""Per-sender send rates for the outbox dispatcher.

Providers limit how fast one sender may send: a US long code 1 SMS segment a
second, WhatsApp 80 messages a second, a Telegram bot 30 a second overall and
about 1 a second to any one chat. ``RateLimiter`` spaces sends so each key
(a channel, or a channel and chat) stays at or under its rate.

It is a minimum-interval limiter (a token bucket holding one token): a send
of cost ``n`` at rate ``r`` books the key for ``n / r`` seconds from the later
of now and the end of the key's last booking. Booking is synchronous (no
``await`` between reading and writing a key), so concurrent senders on one
event loop never book the same slot. Times come from ``time.monotonic`` (or
the ``monotonic`` callable given), never the wall clock.

The limiter is per process: two dispatcher processes sending for the same
number each take the full rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.settings import Settings

# Telegram: about one message a second to any one chat (fixed by Telegram).
TELEGRAM_PER_CHAT_PER_SECOND = 1.0

Key = tuple[str, ...]


@dataclass(frozen=True)
class Limit:
    """At most ``rate_per_second`` sends a second under ``key``.

    With ``from_done`` the spacing runs from the end of the previous send,
    not its start: for a per-conversation limit like Telegram's 1/s per chat,
    where a send delayed in flight must not land just before the next one.
    """

    key: Key
    rate_per_second: float
    from_done: bool = False


class RateLimiter:
    """Books send slots per key; see the module docstring."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._free_at: dict[Key, float] = {}

    def reserve(
        self, limits: Sequence[Limit], *, cost: float = 1.0, horizon_s: float | None = None
    ) -> float | None:
        """Book the next slot free under every limit; return the wait in seconds.

        When the wait would exceed ``horizon_s`` nothing is booked and the
        answer is None (the caller puts the send off and asks again later).
        """
        now = self._monotonic()
        start = max([now, *(self._free_at.get(limit.key, now) for limit in limits)])
        wait = start - now
        if horizon_s is not None and wait > horizon_s:
            return None
        for limit in limits:
            self._free_at[limit.key] = start + cost / limit.rate_per_second
        self._forget_idle(now)
        return wait

    async def acquire(self, limits: Sequence[Limit], *, cost: float = 1.0) -> None:
        """Wait for (and take) the next slot free under every limit."""
        wait = self.reserve(limits, cost=cost)
        if wait:
            await asyncio.sleep(wait)

    def started(self, limits: Sequence[Limit], *, cost: float = 1.0) -> None:
        """A booked send starts now (maybe later than booked, after waiting for
        a free connection): the next slot is a full interval from now."""
        self._push(limits, cost)

    def done(self, limits: Sequence[Limit], *, cost: float = 1.0) -> None:
        """A send has finished: ``from_done`` limits space the next one from now."""
        self._push([limit for limit in limits if limit.from_done], cost)

    def _push(self, limits: Sequence[Limit], cost: float) -> None:
        now = self._monotonic()
        for limit in limits:
            at = now + cost / limit.rate_per_second
            self._free_at[limit.key] = max(self._free_at.get(limit.key, at), at)

    def wait_s(self, limits: Sequence[Limit]) -> float:
        """How long a send under ``limits`` would wait now (nothing is booked)."""
        now = self._monotonic()
        return max([0.0, *(self._free_at.get(limit.key, now) - now for limit in limits)])

    def back_off(self, limits: Sequence[Limit], seconds: float) -> None:
        """The provider asked us to slow down: no slot for ``seconds`` from now."""
        until = self._monotonic() + max(0.0, seconds)
        for limit in limits:
            self._free_at[limit.key] = max(self._free_at.get(limit.key, until), until)

    def _forget_idle(self, now: float) -> None:
        # Per-chat keys come and go; drop the ones whose booking has passed.
        if len(self._free_at) > 10_000:
            self._free_at = {k: t for k, t in self._free_at.items() if t > now}


@dataclass(frozen=True)
class RateLimits:
    """Rates per channel, in sends (requests) a second; ``None`` is unlimited."""

    sms_per_second: float | None = None
    whatsapp_per_second: float | None = None
    telegram_per_second: float | None = None
    telegram_per_chat_per_second: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            sms_per_second=settings.sms_rate_per_second,
            whatsapp_per_second=settings.whatsapp_rate_per_second,
            telegram_per_second=settings.telegram_rate_per_second,
            telegram_per_chat_per_second=TELEGRAM_PER_CHAT_PER_SECOND,
        )

    def for_send(self, channel: str, address: str) -> list[Limit]:
        """The limits a send on ``channel`` to ``address`` falls under.

        One process sends each channel from one sender (number or bot), so the
        sender's limit is keyed by the channel.
        """
        limits: list[Limit] = []
        overall = {
            "sms": self.sms_per_second,
            "whatsapp": self.whatsapp_per_second,
            "telegram": self.telegram_per_second,
            "doctor_telegram": self.telegram_per_second,  # a second bot: its own limits
        }.get(channel)
        if overall:
            limits.append(Limit((channel,), overall))
        if channel in ("telegram", "doctor_telegram") and self.telegram_per_chat_per_second:
            limits.append(
                Limit((channel, address), self.telegram_per_chat_per_second, from_done=True)
            )
        return limits
