"""Plain-text rendering (SMS, WhatsApp, console) and the console channel."""

from __future__ import annotations

import asyncio

from channels.base import Channel, SendError
from channels.console import ConsoleChannel
from channels.render import render_text
from core.messages import Option, Reply


def test_text_alone() -> None:
    assert render_text(Reply("Hello")) == "Hello"


def test_options_are_numbered_lines_under_the_text() -> None:
    reply = Reply(
        "What would you like to do?",
        options=(Option("Book a visit", "book"), Option("My appointments", "list")),
    )
    assert render_text(reply) == "What would you like to do?\n1. Book a visit\n2. My appointments"


def test_options_without_text() -> None:
    reply = Reply("", options=(Option("Yes", "yes"), Option("No", "no")))
    assert render_text(reply) == "1. Yes\n2. No"


def test_trailing_whitespace_of_the_text_is_dropped() -> None:
    reply = Reply("Pick one:\n", options=(Option("Tuesday 10:00", "s1"),))
    assert render_text(reply) == "Pick one:\n1. Tuesday 10:00"


def test_ten_or_more_options_keep_counting() -> None:
    reply = Reply("Slots", options=tuple(Option(f"slot {i}", str(i)) for i in range(1, 12)))
    lines = render_text(reply).splitlines()
    assert lines[1] == "1. slot 1"
    assert lines[-1] == "11. slot 11"


def test_console_channel_writes_the_rendering_and_returns_an_id() -> None:
    written: list[str] = []
    channel = ConsoleChannel(written.append, name="sms")
    reply = Reply("Booked.", options=(Option("Menu", "menu"),))
    first = asyncio.run(channel.send("+15555550123", reply))
    second = asyncio.run(channel.send("+15555550123", Reply("Bye")))
    assert written == ["Booked.\n1. Menu", "Bye"]
    assert first and second and first != second
    assert channel.name == "sms"
    assert isinstance(channel, Channel)


def test_send_error_says_whether_to_retry() -> None:
    assert SendError("timeout").retryable is True
    assert SendError("invalid number", retryable=False).retryable is False
