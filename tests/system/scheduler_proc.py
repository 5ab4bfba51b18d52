"""One scheduler process for the system tests: run the service's tick a few
times against a database at a fixed instant, and say what it did.

    python -m tests.system.scheduler_proc DATABASE_URL ISO_INSTANT ROUNDS

It connects first, prints ``ready``, and waits for a line on stdin before the
first tick, so the test can start several of them together. Its last line is
``result {"enqueued": ..., "planned": ..., "errors": [...]}``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from bots.scheduler import run_tick, tick_jobs
from core.clock import FixedClock
from core.db import Database
from core.settings import Settings

TZ = "America/New_York"


def main(argv: list[str]) -> int:
    url, instant, rounds = argv[0], datetime.fromisoformat(argv[1]), int(argv[2])
    db = Database(url)
    settings = Settings(database_url=url, clinic_timezone=TZ)
    clock = FixedClock(instant)
    jobs = tick_jobs(settings)
    # Connecting and importing take longer than a tick: done before the start line.
    db.ping()
    print("ready", flush=True)
    sys.stdin.readline()
    enqueued = planned = 0
    errors: list[str] = []
    for _ in range(rounds):
        results = run_tick(db, clock, jobs)
        for name, value in results.items():
            if isinstance(value, Exception):
                errors.append(f"{name}: {type(value).__name__}")
        enqueued += int(results["enqueue_due"]) if isinstance(results["enqueue_due"], int) else 0
        planned += (
            int(results["plan_reminders"]) if isinstance(results["plan_reminders"], int) else 0
        )
    db.dispose()
    print("result " + json.dumps({"enqueued": enqueued, "planned": planned, "errors": errors}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
