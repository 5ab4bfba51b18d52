"""The interface every transport implements.

A channel turns a channel-neutral ``Reply`` into a provider call. Verifying and
parsing inbound provider payloads join this interface with the channels issue;
for now the dispatcher only needs ``name`` and ``send``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from core.messages import Reply


class SendError(Exception):
    """A send that did not go through.

    ``retryable=False`` means trying again cannot help (an invalid number, a
    blocked recipient): the dispatcher marks the message failed at once. Any
    other exception raised by ``send`` is treated as retryable.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        opted_out: bool = False,
        retry_after: float | None = None,
        outage: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable or outage
        # The provider or the way to it is down (a 5xx, a timeout, no connection),
        # not this message: the dispatcher pauses the channel and retries the
        # message without using up its tries, in order, until it is too old.
        self.outage = outage
        # The provider asked us to wait this many seconds (a 429's retry_after):
        # the next try is no sooner.
        self.retry_after = retry_after
        # The provider refused because the recipient opted out (Twilio 21610,
        # a Telegram user who blocked the bot): the identity is marked opted out.
        self.opted_out = opted_out


@runtime_checkable
class Channel(Protocol):
    """A transport that can deliver replies to one kind of address."""

    name: str

    async def send(self, address: str, reply: Reply) -> str | None:
        """Deliver ``reply`` to ``address``; return the provider's message id, if any."""
        ...


# -- media the patients attach -------------------------------------------------


class MediaError(Exception):
    """Media that could not be fetched from the provider. The message is short
    and safe to show a user: never a URL (Telegram's file URLs hold the bot
    token), a credential or message text."""


class MediaRefused(MediaError):
    """The reference is not one this channel fetches (a URL on a host that is
    not the provider's, a malformed file id): no request was made."""


class MediaTooLarge(MediaError):
    """The media is over the size the caller accepts; the rest was not read."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the attachment is larger than {max_bytes // (1024 * 1024)} MB")
        self.max_bytes = max_bytes


class MediaUnavailable(MediaError):
    """The provider answered with an error, or not in time."""


@runtime_checkable
class MediaSource(Protocol):
    """A channel that can fetch the media patients send through it (a Twilio
    media URL, a Telegram file id), with the provider's credentials."""

    name: str

    async def fetch_media(self, reference: str, max_bytes: int) -> tuple[str, bytes]:
        """``(content type the provider gave, bytes)``; raises ``MediaError``."""
        ...
