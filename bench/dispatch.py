"""Outbox rows sent per second by one dispatcher, against the fake Twilio on loopback.

A temporary SQLite database is migrated and filled with --rows pending SMS rows
spread round-robin over --addresses patients; one ``Dispatcher`` (the real
``TwilioChannel`` and SDK, rate limits lifted to 10,000/s) drains it pass after
pass, first with no provider latency, then with --latency seconds added by the
fake to every answer. Prints rows/s against the targets; asserts nothing.

The fake runs in a child process (a provider is another machine: its CPU is
not the dispatcher's); ``--stock-fake`` serves it in this process, as the
tests do.

Sends run in threads (the Twilio SDK blocks), so the event loop's default
executor is sized to the dispatcher's concurrency, as a service with that
concurrency would need.

    .venv/bin/python bench/dispatch.py [--rows 2000] [--addresses 500] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests/ is not installed: the fakes come from the repo

from scratch import sqlite_database  # noqa: E402 (bench/ is on the path when a bench runs)

from bots.dispatcher import Dispatcher  # noqa: E402
from bots.ratelimit import RateLimits  # noqa: E402
from channels.twilio import TwilioChannel  # noqa: E402
from core import outbox  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.db import Database  # noqa: E402
from core.messages import Reply  # noqa: E402
from core.models import OutboxMessage  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.fakes.twilio_server import FakeTwilio, running_fake_twilio  # noqa: E402

TARGET_RATE = 500.0  # rows per second, no provider latency
TARGET_RATE_SLOW = 200.0  # rows per second with 200 ms provider latency
LIFTED = 10_000.0  # rate settings high enough not to matter
SMS_FROM = "+15005550006"


@contextlib.contextmanager
def child_fake_twilio(latency_s: float) -> Iterator[FakeTwilio]:
    """The fake Twilio in a child process; the handle only knows its URL."""
    argv = [sys.executable, __file__, "--serve-fake", str(latency_s)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout is not None
        fake = FakeTwilio()
        fake.base_url = child.stdout.readline().strip()
        if not fake.base_url:
            raise RuntimeError("the fake Twilio child did not start")
        yield fake
    finally:
        child.terminate()
        child.wait(timeout=10)


def serve_fake(latency_s: float) -> None:
    with running_fake_twilio() as fake:
        fake.latency_s = latency_s
        print(fake.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


def fill(db: Database, rows: int, addresses: int) -> None:
    numbers = [f"+1555555{n:04d}" for n in range(addresses)]
    clock = SystemClock()
    with db.transaction() as session:
        for n in range(rows):
            outbox.enqueue_many(
                session,
                channel="sms",
                address=numbers[n % addresses],
                replies=[Reply(f"Your visit is confirmed (#{n}).")],
                now=clock.now(),
            )


async def drain(dispatcher: Dispatcher, limit: int, concurrency: int) -> int:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=concurrency))
    total = 0
    while (claimed := await dispatcher.run_once(limit=limit)) > 0:
        total += claimed
    return total


def measure(fake: FakeTwilio, args: argparse.Namespace, latency_s: float) -> float:
    fake.clear()  # a no-op on a child's handle: the child was started with its latency
    fake.latency_s = latency_s
    settings = Settings(
        database_url="sqlite://",
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_api_base_url=fake.base_url,
        twilio_sms_from=SMS_FROM,
        sms_rate_per_second=LIFTED,
        whatsapp_rate_per_second=LIFTED,
        telegram_rate_per_second=LIFTED,
    )
    with sqlite_database() as db:
        fill(db, args.rows, args.addresses)
        dispatcher = Dispatcher(
            db,
            {"sms": TwilioChannel("sms", settings)},
            SystemClock(),
            concurrency=args.concurrency,
            rate_limits=RateLimits.from_settings(settings),
        )
        started = time.perf_counter()
        claimed = asyncio.run(drain(dispatcher, args.limit, args.concurrency))
        elapsed = time.perf_counter() - started
        with db.transaction() as session:
            sent = session.query(OutboxMessage).filter_by(status="sent").count()
    if claimed != args.rows or sent != args.rows:
        print(f"  warning: claimed {claimed}, sent {sent}, of {args.rows} rows")
    return sent / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--addresses", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--limit", type=int, default=256, help="rows claimed per pass")
    parser.add_argument("--latency", type=float, default=0.2, help="provider latency, seconds")
    parser.add_argument(
        "--stock-fake",
        action="store_true",
        help="serve the fake in this process, as the tests do",
    )
    parser.add_argument("--serve-fake", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake is not None:
        serve_fake(args.serve_fake)
        return
    print(
        f"dispatch bench: {args.rows} SMS rows over {args.addresses} addresses, "
        f"concurrency {args.concurrency}, {args.limit} rows a pass, SQLite, fake Twilio"
        + (" (stock server)" if args.stock_fake else " (child process)")
    )
    for latency_s in (0.0, args.latency):
        serve = running_fake_twilio() if args.stock_fake else child_fake_twilio(latency_s)
        with serve as fake:
            rate = measure(fake, args, latency_s)
        if not latency_s:
            print(f"  no latency:          {rate:8.1f} rows/s   (target >= {TARGET_RATE:g}/s)")
            continue
        print(
            f"  {latency_s * 1000:g} ms latency:      {rate:8.1f} rows/s   "
            f"(target >= {TARGET_RATE_SLOW:g}/s with 200 ms)"
        )


if __name__ == "__main__":
    main()
