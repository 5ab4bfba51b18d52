"""Messages the clinic starts (reminders, video links, a cancelled visit) to
patients who only talk to the clinic's Rasa assistant (identities of channel
``rasa``, see bots/rasa_actions/senders.py).

Rasa's HTTP API has one documented way in for such messages, its external
events: ``POST /conversations/{id}/trigger_intent?output_channel=latest``
with an intent and entities. We trigger ``EXTERNAL_telemed_message`` with the
text in the entity ``telemed_message`` (and what it is, ``telemed_purpose``);
the clinic's domain maps the entity to a slot and a rule answers with a
response that says the slot (docs/rasa.md). Rasa must run with
``--enable-api`` (and ``--auth-token``, our ``TELEMED_RASA_TOKEN``).

Rasa delivers the answer on the channel the patient wrote from last when
that channel can push messages (web chat over socket.io, Telegram, Twilio,
...); a REST-only channel cannot, and Rasa then only returns the messages to
us. Options are not sent: the patient answers in their own words, and the
assistant's own intents (cancel, reschedule) take it from there.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from channels.base import SendError
from core.messages import Reply
from core.settings import Settings

INTENT = "EXTERNAL_telemed_message"
NAME = "rasa"


class RasaChannel:
    name = NAME

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        # trust_env=False: no proxy look-ups per send (as the Twilio client).
        self._client = client or httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def send(self, address: str, reply: Reply) -> str | None:
        url = f"{self.base_url}/conversations/{quote(address, safe='')}/trigger_intent"
        params = {"output_channel": "latest"}
        if self.token:
            params["token"] = self.token
        body = {
            "name": INTENT,
            "entities": {"telemed_message": reply.text, "telemed_purpose": reply.purpose},
        }
        try:
            response = await self._client.post(url, params=params, json=body)
        except httpx.TimeoutException as exc:
            raise SendError(f"rasa: timed out ({type(exc).__name__})", outage=True) from None
        except httpx.HTTPError as exc:
            raise SendError(f"rasa: unreachable ({type(exc).__name__})", outage=True) from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise SendError(f"rasa: HTTP {status}", outage=status >= 500)
        if status in (401, 403):
            raise SendError(f"rasa: HTTP {status} (check TELEMED_RASA_TOKEN)", retryable=False)
        if status >= 400:
            # 400: the intent is not in the assistant's domain; 404: API not enabled.
            raise SendError(f"rasa: HTTP {status}", retryable=False)
        return None

    async def aclose(self) -> None:
        await self._client.aclose()


def build_rasa_channel(settings: Settings) -> RasaChannel | None:
    """The channel when ``TELEMED_RASA_URL`` is set; None (off) otherwise."""
    if not settings.rasa_url:
        return None
    return RasaChannel(
        settings.rasa_url, token=settings.rasa_token, timeout=settings.send_timeout_seconds
    )
