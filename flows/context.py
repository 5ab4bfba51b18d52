"""What a flow step sees, and what it returns.

A step is a named object with ``prompt`` (ask its question, offering numbered
options) and ``handle`` (take the patient's answer). ``handle`` returns an
``Outcome``: stay and re-ask, go to another step (whose prompt the engine
adds), or end the conversation. A ``notice`` is said before the next prompt,
in the same message, so a correction and the question travel together.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy.orm import Session

from core.clock import Clock
from core.i18n import t
from core.messages import InboundMessage, Option, Reply
from core.models import ChannelIdentity, Clinic
from core.settings import Settings
from flows.state import ConversationState

END = "end"
T = TypeVar("T")


@dataclass
class Outcome:
    next: str | None = None  # "flow.step", END, or None to stay on the current step
    notice: str | None = None  # said before the next step's prompt
    replies: list[Reply] = field(default_factory=list)  # said as they are, before all else
    reprompt: bool = True  # False: say only the replies/notice, without repeating the question

    @classmethod
    def stay(cls, notice: str | None = None) -> Outcome:
        return cls(next=None, notice=notice)

    @classmethod
    def go(cls, step: str, notice: str | None = None) -> Outcome:
        return cls(next=step, notice=notice)

    @classmethod
    def end(cls, *texts: str, options: tuple[Option, ...] = ()) -> Outcome:
        replies = [Reply(text) for text in texts[:-1]]
        if texts:
            replies.append(Reply(texts[-1], options))
        return cls(next=END, replies=replies)


@dataclass
class Ctx:
    session: Session
    settings: Settings
    clock: Clock
    now: datetime
    clinic: Clinic
    identity: ChannelIdentity
    conversation: ConversationState
    lang: str
    tz: str
    message: InboundMessage
    choice: str | None = None  # the value of the option the patient picked, if any
    # Readings of this message's text, kept so that the engine's routing and the
    # step it starts do not parse the same words twice.
    readings: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        return self.conversation.data

    def once(self, kind: str, text: str, read: Callable[[], T]) -> T:
        """``read()``, computed at most once per (kind, text) for this message."""
        key = (kind, text)
        if key not in self.readings:
            self.readings[key] = read()
        return cast(T, self.readings[key])

    def t(self, key: str, **values: object) -> str:
        return t(self.lang, key, **values)

    def ask(self, text: str, options: list[Option] | tuple[Option, ...] = ()) -> Reply:
        """A question with numbered options; remembers them so "2" can be read later."""
        self.data["options"] = [[o.label, o.value] for o in options]
        return Reply(text, tuple(options))


class Step(Protocol):
    name: str

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]: ...

    def handle(self, ctx: Ctx, text: str) -> Outcome: ...


def with_notice(notice: str | None, text: str) -> str:
    return f"{notice}\n{text}" if notice else text


_NUMBER = re.compile(r"^\s*(?:#|n[o°º]\.?\s*|option\s+|opci[oó]n\s+)?(\d{1,3})\s*[.)]?\s*$", re.I)


def fold(text: str) -> str:
    """Lower case without accents or punctuation: how typed answers are compared."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^\w\s:]", " ", stripped).strip()


def number_choice(text: str) -> int | None:
    match = _NUMBER.match(text)
    return int(match.group(1)) if match else None


def match_option(text: str, options: list[list[str]], button: str | None) -> str | None:
    """The value of the offered option the patient meant: a tapped button, a
    number, or the option's words typed closely enough."""
    values = [value for _label, value in options]
    if button and button in values:
        return button
    number = number_choice(text)
    if number is not None:
        return values[number - 1] if 1 <= number <= len(values) else None
    typed = fold(text)
    if len(typed) < 3:
        return None
    from rapidfuzz import fuzz, process

    labels = [fold(label) for label, _value in options]
    exact = [i for i, label in enumerate(labels) if typed == label]
    if exact:
        return values[exact[0]]
    best = process.extractOne(typed, labels, scorer=fuzz.WRatio, score_cutoff=88)
    if best is None:
        return None
    # Two options scoring alike ("Dr Ana Ruiz" / "Dr Ana Ramos") is no answer.
    runner_up = process.extract(typed, labels, scorer=fuzz.WRatio, limit=2)
    if len(runner_up) > 1 and runner_up[1][1] >= best[1] - 3:
        return None
    return values[best[2]]
