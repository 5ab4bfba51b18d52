"""Whole conversations as tables of (patient says, bot must answer), after
zulip_bots' verify_dialog: each expected fragment must appear in the reply."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.messages import InboundMessage, Reply
from flows.engine import FlowEngine, HandleResult

Expect = str | Sequence[str]


def render(replies: Sequence[Reply]) -> str:
    """As an SMS patient would read them: text, then options as numbered lines."""
    parts = []
    for reply in replies:
        lines = [reply.text] + [f"{i}. {o.label}" for i, o in enumerate(reply.options, 1)]
        parts.append("\n".join(lines))
    return "\n---\n".join(parts)


@dataclass
class Chat:
    engine: FlowEngine
    address: str = "+15555550123"
    channel: str = "sms"
    transcript: list[str] = field(default_factory=list)
    last: HandleResult | None = None

    def say(self, text: str, *, message_id: str | None = None, button: str | None = None) -> str:
        msg = InboundMessage(
            channel=self.channel,
            address=self.address,
            text=text,
            provider_message_id=message_id or uuid.uuid4().hex,
            button_payload=button,
        )
        self.last = self.engine.handle(msg)
        answer = render(self.last.replies)
        self.transcript.append(f"> {text}\n{answer}")
        return answer

    def option_number(self, pattern: str) -> str:
        """The number of the last offered option whose label matches ``pattern``."""
        assert self.last is not None and self.last.replies
        options = self.last.replies[-1].options
        for i, option in enumerate(options, 1):
            if re.search(pattern, option.label, re.I):
                return str(i)
        raise AssertionError(f"no option matching {pattern!r} in {[o.label for o in options]}")


def verify_dialog(chat: Chat, steps: Sequence[tuple[str, Expect]]) -> None:
    for says, expected in steps:
        answer = chat.say(says)
        fragments = [expected] if isinstance(expected, str) else list(expected)
        for fragment in fragments:
            if fragment.startswith("!"):
                assert fragment[1:].lower() not in answer.lower(), _fail(
                    chat, says, fragment, answer
                )
            else:
                assert fragment.lower() in answer.lower(), _fail(chat, says, fragment, answer)


def _fail(chat: Chat, says: str, fragment: str, answer: str) -> str:
    history = "\n".join(chat.transcript)
    return f"after {says!r} expected {fragment!r} in:\n{answer}\n\nconversation so far:\n{history}"
