"""The patient asks for their video-visit link: "link", "send me the link",
"el enlace de la videollamada".

The link of their next video visit goes back at once, in any state of the
conversation. Before the link opens the reply says when it does (the page
says so too); a link the clinic withdrew is not revived here (staff send a
new one from the dashboard). The link is the one the 10-minutes-before
notification carries (``core.video``), so it is never shown to an identity
that is not the patient's, and a locked identity gets nothing.
"""

from __future__ import annotations

import re

from core import video
from core.messages import Reply
from flows import verify
from flows.context import Ctx, Outcome, fold
from flows.manage import upcoming

STEP = "video.link"

_ASKS = re.compile(
    r"\b(?:links?|enlaces?|vinculo"
    r"|(?:join|enter|start)\s+(?:the\s+|my\s+)?(?:video|call|video call|videocall)"
    r"|(?:unirme|entrar|conectarme)\s+(?:a\s+)?(?:la\s+)?(?:videollamada|llamada|video))\b"
)


_ABOUT_VIDEO = re.compile(r"\b(?:video|videos|videollamada|videoconsulta|call|llamada)\b")
SHORT = 6  # words: "send me the link please"; longer text must also name the video


def asks_for_video_link(text: str) -> bool:
    """A request for the link, not a sentence that happens to say "link"
    ("a question about the link between my pills and my headaches")."""
    folded = fold(text)
    if not _ASKS.search(folded):
        return False
    return len(folded.split()) <= SHORT or bool(_ABOUT_VIDEO.search(folded))


class SendLink:
    name = STEP

    def enter(self, ctx: Ctx) -> Outcome | None:
        if ctx.identity.locked_at is not None:
            return verify.locked(ctx)
        visits = [a for a in upcoming(ctx) if a.visit_type == "video"]
        if not visits:
            ctx.conversation.data = {}
            return Outcome.go("menu.main", ctx.t("video.link_none"))
        appointment = visits[0]
        link = video.link_for(ctx.session, appointment, "patient", ctx.now)
        if link.revoked_at is not None:
            return Outcome.end(
                ctx.t(
                    "video.link_withdrawn",
                    practitioner=appointment.practitioner.name,
                    phone=ctx.clinic.phone or "-",
                )
            )
        url = video.url_of(link, public_url=ctx.settings.public_url, secret=ctx.settings.secret_key)
        return Outcome.end(
            video.link_text(
                ctx.lang, ctx.tz, appointment, url, ctx.now, ctx.settings.video_early_minutes
            )
        )

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [Reply(notice or ctx.t("common.lost"))]  # never stays: enter always decides

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        return Outcome.end(ctx.t("common.lost"))
