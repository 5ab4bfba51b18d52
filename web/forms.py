"""Reading url-encoded forms without python-multipart (no file uploads here)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

# Big enough for a prescription with every field full and a hostile 10 kB name
# (which then gets a validation message); a bigger body is refused as empty.
MAX_FORM_BYTES = 256 * 1024


async def form_lists(request: Request, max_bytes: int = MAX_FORM_BYTES) -> dict[str, list[str]]:
    """Every value of each field of an url-encoded form, for repeated fields
    (several medicines, weekdays). A body too large or not url-encoded is
    empty. Parsed once per request, so the CSRF check and the handler can both
    read it."""
    cached: dict[str, list[str]] | None = getattr(request.state, "form_lists", None)
    if cached is not None:
        return cached
    parsed: dict[str, list[str]] = {}
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                body = b""
                break
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    request.state.form_lists = parsed
    return parsed


async def form_fields(request: Request, max_bytes: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The first value of each field (see ``form_lists``)."""
    lists = await form_lists(request, max_bytes)
    return {key: values[0] for key, values in lists.items() if values}
