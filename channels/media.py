"""Downloading a patient's media from a provider, with a size cap.

Shared by the Twilio and Telegram channels (``fetch_media``). httpx is the
client python-telegram-bot already uses; its async streaming lets a download
stop at the cap instead of holding whatever the far end sends. Redirects are
never followed here: a caller that expects them checks each hop itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from channels.base import MediaTooLarge, MediaUnavailable

if TYPE_CHECKING:
    import httpx

MEDIA_TIMEOUT_S = 15.0
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def client(timeout_s: float) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), follow_redirects=False)


def origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an absolute http(s) URL without user info, else None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, a bad IPv6 literal
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port if port is not None else default


def content_type(response: httpx.Response) -> str:
    value = str(response.headers.get("content-type", ""))
    return value.split(";", 1)[0].strip().lower()


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed response, or ``MediaTooLarge`` as soon as it is
    over ``max_bytes`` (by its Content-Length, else by what arrived)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaTooLarge(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise MediaTooLarge(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def network_error(provider: str, exc: Exception) -> MediaUnavailable:
    """A transport failure as a short message (httpx messages can quote the URL)."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return MediaUnavailable(f"{provider} did not answer in time")
    return MediaUnavailable(f"{provider} could not be reached ({type(exc).__name__})")
