"""Stopping the scheduler while a tick is under way: the tick finishes, and
APScheduler has nothing to cancel (it would log a CancelledError traceback)."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from bots.scheduler import create_scheduler, stop_scheduler
from core.clock import FixedClock
from core.db import Database


def test_stop_waits_for_the_tick_under_way(
    sqlite_db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    started, finished = threading.Event(), threading.Event()

    def slow_job(session: Session, now: datetime) -> object:
        started.set()
        threading.Event().wait(0.5)
        finished.set()
        return 1

    async def scenario() -> None:
        scheduler = create_scheduler(sqlite_db, clock, tick_seconds=3600, jobs=[("slow", slow_job)])
        scheduler.start()
        assert await asyncio.to_thread(started.wait, 10)
        await stop_scheduler(scheduler)
        assert finished.is_set()  # stopped after the tick, not in its middle

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert "CancelledError" not in caplog.text
