"""Video-visit links.

Until the video issue gives each participant a revocable ``/v/{token}`` page,
a video visit's link is a Jitsi room whose name is derived from the
appointment and the service secret: stable (the same link in every message)
and not guessable from the appointment number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def room_name(appointment_id: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"visit:{appointment_id}".encode(), hashlib.sha256).digest()
    return "telemed-" + base64.b32encode(digest[:15]).decode().lower()


def visit_link(appointment_id: int, *, base_url: str, secret: str) -> str:
    return f"{base_url.rstrip('/')}/{room_name(appointment_id, secret)}"
