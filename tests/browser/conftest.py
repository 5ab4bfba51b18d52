"""Browser tests: Playwright driving Debian's Chromium (/usr/bin/chromium)
against the real app served on a loopback port, with the real Twilio SDK
sending to the fake Twilio server.

Chromium is installed with apt where missing (CI runs as root on Debian); if
it cannot be installed the tests fail, they do not skip. Screenshots go to
``test-artifacts/screenshots/`` (or ``$TELEMED_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bots.app import build_senders, create_app
from bots.dispatcher import Dispatcher
from core.clock import FixedClock
from core.db import Database
from tests.fakes import twilio_server
from tests.fakes.server import LoopbackServer
from tests.fakes.twilio_server import FakeTwilio
from tests.staff import PASSWORD, StaffSite

CHROMIUM = "/usr/bin/chromium"
# Flags from the machine notes: the closed network refuses Chromium's own
# background connections, and root needs --no-sandbox.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(os.environ.get("TELEMED_TEST_ARTIFACTS", "test-artifacts")) / "screenshots"
SMS_FROM = "+15005550006"

fake_twilio = twilio_server.fake_twilio


def _install_chromium() -> None:
    """apt-get install chromium, once; a failure says what to do."""
    if Path(CHROMIUM).exists():
        return
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail(f"{CHROMIUM} is missing and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "install", "-y", "-q", "chromium"], [apt, "update", "-q"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if Path(CHROMIUM).exists():
            return
        if command[1] == "update" and done.returncode == 0:
            subprocess.run(
                [apt, "install", "-y", "-q", "chromium"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"could not install Debian's chromium ({CHROMIUM}); run: apt-get install chromium"
        )


# Package scope: while open, Playwright keeps an event loop running in this thread,
# which would break every later test of the process that calls asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    _install_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Live:
    """The running app, its staff users, and the fake the patients' SMS go to."""

    site: StaffSite
    base_url: str
    fake: FakeTwilio
    dispatcher: Dispatcher

    @property
    def db(self) -> Database:
        return self.site.db

    @property
    def clock(self) -> FixedClock:
        return self.site.clock

    def dispatch(self) -> int:
        """Send what is queued; in a thread of its own, since Playwright's sync
        API keeps an event loop running in this one."""

        def drain() -> int:
            total = 0
            while claimed := asyncio.run(self.dispatcher.run_once(limit=500)):
                total += claimed
            return total

        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(drain).result(timeout=60)

    def sms_to(self, number: str) -> list[str]:
        return [m["Body"] for m in self.fake.messages if m.get("To") == number]

    def login(self, page: Any, email: str) -> None:
        page.goto(self.base_url + "/login")
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard**")


@pytest.fixture
def live(db: Database, clock: FixedClock, fake_twilio: FakeTwilio) -> Iterator[Live]:
    site = StaffSite.open(
        db,
        clock,
        twilio_account_sid=fake_twilio.account_sid,
        twilio_auth_token=fake_twilio.auth_token,
        twilio_api_base_url=fake_twilio.base_url,
        twilio_sms_from=SMS_FROM,
        sms_rate_per_second=100,
    )
    # The server's port is known once it is bound; links in messages must point
    # at it, so the app is made after, behind a forwarding ASGI callable.
    holder: dict[str, Any] = {}

    async def forward(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    server = LoopbackServer(forward, "telemed")
    settings = site.clinic.settings.model_copy(update={"public_url": server.base_url})
    site.clinic.settings = settings
    holder["app"] = site.app = create_app(settings, db=db, clock=clock, role="web")
    server.start()
    dispatcher = Dispatcher(db, build_senders(settings), clock)
    try:
        yield Live(site, server.base_url, fake_twilio, dispatcher)
    finally:
        server.stop()


@pytest.fixture
def page(browser: Any, live: Live, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    try:
        yield tab
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
        tab.screenshot(path=str(ARTIFACTS / f"{name}-last.png"), full_page=True)
        context.close()


def shot(page: Any, request: pytest.FixtureRequest, step: str) -> Path:
    """A named screenshot of this step, kept as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    path = ARTIFACTS / f"{name}-{step}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
