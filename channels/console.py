"""A channel that writes rendered replies to a callable (``telemed chat``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from channels.render import render_text
from core.messages import Reply


class ConsoleChannel:
    """Implements ``channels.base.Channel`` by writing the plain-text rendering."""

    def __init__(self, write: Callable[[str], None], *, name: str = "console") -> None:
        self.name = name
        self._write = write
        self._ids = itertools.count(1)

    async def send(self, address: str, reply: Reply) -> str | None:
        self._write(render_text(reply))
        return f"console-{next(self._ids)}"
