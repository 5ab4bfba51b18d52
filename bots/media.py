"""The media proxy: the photos and files patients attach to their questions,
fetched from the provider for a logged-in doctor or staff member.

``GET /dashboard/media/{question message id}/{index}``

Why a proxy: a Twilio media URL needs the account's credentials (HTTP Basic
auth), a Telegram attachment is a file id that only the bot's token turns
into a download, the dashboard's CSP allows images from this site only, and
an <img> pointing at the provider would tell it the doctor's address.

Access is the thread's (a doctor only their own practitioner's threads: 403
otherwise; anonymous: the login redirect). Every view is audited before the
fetch, in its own transaction: no database work waits on the provider.

What comes back: the bytes with the stored content type, ``Cache-Control:
private, no-store`` and ``nosniff``. JPEG, PNG, GIF and WebP are shown inline;
any other type is a download (``attachment``), and a type a browser could run
(HTML, SVG, XML, script, anything not image/audio/video/PDF) is sent as
``application/octet-stream``. The patient chose the file and, on Telegram,
its declared type, so neither is trusted. Over the size cap, a provider
error or a time-out: 502 with a short reason, never a 500.

This module is in bots/ because it joins web/ (the dashboard's auth) and the
channels (which fetch with the provider's credentials).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from channels.base import MediaError, MediaSource, MediaTooLarge
from core.logs import get_logger
from core.models import InboundLog, QuestionMessage
from core.users import can_see_practitioner
from web.auth import Auth, Forbidden, Staff, render
from web.inbox import INLINE_IMAGE_TYPES, media_reference, media_type

log = get_logger(__name__)

# Twilio accepts at most 5 MB of media per message and Telegram lets bots
# download 20 MB; a doctor's browser needs no more than this.
MAX_MEDIA_BYTES = 10 * 1024 * 1024
# Types kept (as downloads) when not shown inline; anything else is octet-stream.
_KEPT_TYPE = re.compile(r"^(?:(?:image|audio|video)/[a-z0-9][a-z0-9.+-]{0,63}|application/pdf)$")
_RUNNABLE = ("svg", "xml", "html", "script")
# The bytes are the patient's: if opened on their own they run nothing and
# cannot be framed or embedded by another site.
MEDIA_HEADERS = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Attachment:
    message_id: int
    index: int
    channel: str
    reference: str | None
    content_type: str


def served_as(stored: str) -> tuple[str, bool]:
    """(Content-Type, inline?) for an attachment stored with type ``stored``."""
    if stored in INLINE_IMAGE_TYPES:
        return stored, True
    if _KEPT_TYPE.match(stored) and not any(word in stored for word in _RUNNABLE):
        return stored, False
    return "application/octet-stream", False


def _disposition(message_id: int, index: int, content_type: str, inline: bool) -> str:
    extension = mimetypes.guess_extension(content_type) or ".bin"
    name = f"{'photo' if inline else 'attachment'}-{message_id}-{index}{extension}"
    return f'{"inline" if inline else "attachment"}; filename="{name}"'


def media_router(auth: Auth, senders: Mapping[str, object]) -> APIRouter:
    """The proxy route; ``senders`` are the channels by name (those that
    implement ``channels.base.MediaSource`` can fetch)."""
    router = APIRouter(include_in_schema=False)

    def attachment(staff: Staff, message_id: int, index: int) -> Attachment | None:
        """The attachment, audited as viewed; None when there is no such one."""
        with auth.db.transaction() as session:
            message = session.get(QuestionMessage, message_id)
            if message is None:
                return None
            thread = message.thread
            if not can_see_practitioner(staff, thread.practitioner_id):
                raise Forbidden("This question is for another practitioner.")
            media = message.media if isinstance(message.media, list) else []
            if not 0 <= index < len(media) or not isinstance(media[index], dict):
                return None
            item = media[index]
            # The channel that received it (the thread's channel is where the
            # patient wrote last, which can have changed since).
            inbound = session.get(InboundLog, message.inbound_id) if message.inbound_id else None
            auth.audit(
                session,
                staff,
                "view",
                "media",
                entity_id=message.id,
                patient_id=thread.patient_id,
                detail={"thread_id": thread.id, "index": index},
            )
            return Attachment(
                message_id=message.id,
                index=index,
                channel=inbound.channel if inbound is not None else thread.channel,
                reference=media_reference(item),
                content_type=media_type(item),
            )

    def problem(request: Request, staff: Staff, status: int, title: str, reason: str) -> Response:
        return render(
            request, "dash/media_error.html", staff, status_code=status, title=title, reason=reason
        )

    @router.get("/dashboard/media/{message_id}/{index}")
    async def media(
        request: Request, message_id: int, index: int, staff: Staff = Depends(auth.page)
    ) -> Response:
        found = await run_in_threadpool(attachment, staff, message_id, index)
        if found is None:
            return problem(
                request, staff, 404, "Attachment not found", "There is no such attachment."
            )
        source = senders.get(found.channel)
        if found.reference is None:
            reason = "Nothing was stored to fetch this attachment by."
            return problem(request, staff, 502, "Attachment unavailable", reason)
        if not isinstance(source, MediaSource):
            reason = f"The {found.channel} channel is off here: its attachments cannot be fetched."
            return problem(request, staff, 502, "Attachment unavailable", reason)
        try:
            provider_type, body = await source.fetch_media(found.reference, MAX_MEDIA_BYTES)
        except MediaTooLarge as exc:
            return problem(request, staff, 502, "Attachment too large", f"Not shown: {exc}.")
        except MediaError as exc:
            log.warning(
                "media_fetch_failed", message_id=message_id, channel=found.channel, reason=str(exc)
            )
            return problem(request, staff, 502, "Attachment unavailable", f"Not fetched: {exc}.")
        except Exception as exc:  # noqa: BLE001 - a bug in a channel is a 502, not a 500
            log.error("media_fetch_error", message_id=message_id, error_type=type(exc).__name__)
            reason = "The attachment could not be fetched from the messaging provider."
            return problem(request, staff, 502, "Attachment unavailable", reason)
        content_type, inline = served_as(found.content_type or provider_type)
        headers = {
            **MEDIA_HEADERS,
            "Content-Disposition": _disposition(message_id, index, content_type, inline),
        }
        return Response(body, media_type=content_type, headers=headers)

    return router
