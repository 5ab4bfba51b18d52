"""In-process throughput of FlowEngine.handle on SQLite.

A temporary database is migrated and seeded with the demo clinic; then
N messages spread over M conversations ("hi", "menu", "book", "1",
"my appointments", "help") are handled from a few threads. Prints messages/s
and p50/p99 latency against the targets; asserts nothing.

    .venv/bin/python bench/inbound.py [--messages 5000] [--conversations 500] [--threads 4]
    .venv/bin/python bench/inbound.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from uuid import uuid4

from core import migrate
from core.clock import SystemClock
from core.db import Database
from core.demo import seed_demo
from core.messages import InboundMessage
from core.settings import Settings
from flows.engine import FlowEngine

TARGET_RATE = 2000.0  # messages per second
TARGET_P99_MS = 20.0
MIX = ("hi", "menu", "book", "1", "my appointments", "help")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        migrate.upgrade(db.engine)
        with db.transaction() as session:
            seed_demo(session, "America/New_York", reset=True)
        engine = FlowEngine(db, Settings(database_url=url), SystemClock())

        # Conversation k gets messages k, k+M, k+2M...; each thread owns whole conversations,
        # so the messages of one conversation keep their order.
        per_thread: list[list[InboundMessage]] = [[] for _ in range(args.threads)]
        for n in range(args.messages):
            conversation = n % args.conversations
            message = InboundMessage(
                channel="sms",
                address=f"+1555{conversation:07d}",
                text=MIX[(n // args.conversations + conversation) % len(MIX)],
                provider_message_id=uuid4().hex,
            )
            per_thread[conversation % args.threads].append(message)

        latencies: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work(messages: list[InboundMessage]) -> None:
            mine: list[float] = []
            for message in messages:
                started = time.perf_counter()
                try:
                    engine.handle(message)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(exc)
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=work, args=(batch,)) for batch in per_thread]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        db.dispose()

    rate = len(latencies) / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    backend = "sqlite (temporary file)" if not args.database_url else db.dialect
    print(f"FlowEngine.handle on {backend}: {len(latencies)} messages, ")
    print(f"  {args.conversations} conversations, {args.threads} threads, {elapsed:.2f} s")
    print(f"  throughput  {rate:8.0f} msg/s   target >= {TARGET_RATE:.0f}  ", end="")
    print("ok" if rate >= TARGET_RATE else "BELOW TARGET")
    print(f"  latency p50 {p50:8.2f} ms")
    print(f"  latency p99 {p99:8.2f} ms      target <= {TARGET_P99_MS:.0f}    ", end="")
    print("ok" if p99 <= TARGET_P99_MS else "ABOVE TARGET")
    if errors:
        kinds = sorted({type(e).__name__ for e in errors})
        print(f"  errors      {len(errors)} ({', '.join(kinds)})")


if __name__ == "__main__":
    main()
