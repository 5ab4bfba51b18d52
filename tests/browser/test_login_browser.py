"""Logging in and out in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Live, shot
from tests.staff import PASSWORD


def test_anonymous_is_sent_to_login_and_back(
    page: Any, live: Live, request: pytest.FixtureRequest
) -> None:
    page.goto("/dashboard?x=1")
    assert "/login" in page.url
    page.fill("input[name=email]", "staff@clinic.test")
    page.fill("input[name=password]", "wrong password!!")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "That e-mail and password do not match."
    shot(page, request, "wrong-password")
    # The form that failed still knows where the user was going.
    page.fill("input[name=email]", "staff@clinic.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert page.url.endswith("/dashboard?x=1")
    cookie = next(c for c in page.context.cookies() if c["name"] == "telemed_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.click("text=Log out")
    page.wait_for_url("**/login")
    page.goto("/dashboard")
    assert "/login" in page.url
