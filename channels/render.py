"""Plain-text rendering of a reply: SMS, WhatsApp and the console.

Options are numbered lines (``1. label``) under the text, so a patient can
answer with the number, the label or free text.
"""

from __future__ import annotations

from core.messages import Reply


def render_options(reply: Reply) -> list[str]:
    return [f"{number}. {option.label}" for number, option in enumerate(reply.options, start=1)]


def render_text(reply: Reply) -> str:
    """The reply's text followed by its options, one numbered line each."""
    lines = [reply.text.rstrip()] if reply.text.strip() else []
    lines.extend(render_options(reply))
    return "\n".join(lines)
