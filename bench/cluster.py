"""Inbound-to-sent throughput of the service run as a cluster on PostgreSQL:
1, 2 and 4 web + worker pairs (``telemed serve --role web`` and
``--role worker`` processes), one scheduler, the fake Twilio in its own process.

For each size a fresh PostgreSQL database of our own is migrated and seeded
with the demo clinic; --patients patients each send the same short script of
messages over signed Twilio SMS webhooks, --concurrency requests in flight,
spread over the web processes. Printed per size:

* throughput: messages handled and answered (the reply accepted by the fake
  Twilio) per second, from the first webhook to the last reply sent;
* inbound-to-sent latency, p50 and p99: from a message's arrival to its
  reply's acceptance, from the database's own timestamps;
* messages per CPU-second: messages / CPU time of the web and worker
  processes (and, second figure, with PostgreSQL's CPU time added).

This machine has 2 cores: past one pair, wall-clock throughput cannot grow,
so the CPU figure is the one to compare. Target: >= 800 messages per
CPU-second, not falling as pairs are added. Asserts nothing.

    .venv/bin/python bench/cluster.py [--pairs 1,2,4] [--patients 300] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from scratch import postgres_database  # noqa: E402 (bench/ is on the path when a bench runs)

from core.demo import seed_demo  # noqa: E402
from core.models import InboundLog, OutboxMessage  # noqa: E402
from tests.system.cluster import (  # noqa: E402
    TZ,
    FakeTwilioProcess,
    Patients,
    percentile,
    postgres_cpu_seconds,
    running_cluster,
    wait_drained,
)

TARGET_PER_CPU_S = 800.0
SCRIPT = ("hi", "book", "menu", "my appointments", "help", "menu")


def one_size(pairs: int, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    with postgres_database(args.postgres, "bench_cluster") as db:
        with db.transaction() as session:
            seed_demo(session, TZ)
        twilio = FakeTwilioProcess(workdir, latency_ms=args.twilio_latency_ms)
        env = {
            **twilio.env(),
            "TELEMED_SMS_RATE_PER_SECOND": "10000",
            "TELEMED_LOG_LEVEL": "warning",
        }
        roles = {"web": pairs, "worker": pairs, "scheduler": 1}
        try:
            with running_cluster(db.url, workdir, env, roles) as cluster:
                cpu_before = cluster.cpu_by_role()
                pg_before = postgres_cpu_seconds()
                patients = Patients(cluster.web_urls, args.patients)
                delivery = asyncio.run(
                    patients.converse(SCRIPT, concurrency=args.concurrency, twice=False)
                )
                wait_drained(db, timeout=600)
                cpu_after = cluster.cpu_by_role()
                pg_used = postgres_cpu_seconds() - pg_before
        finally:
            twilio.stop()
        with db.transaction() as session:
            first_in = session.scalar(select(func.min(InboundLog.received_at)))
            last_out = session.scalar(select(func.max(OutboxMessage.sent_at)))
            pairs_of_times = session.execute(
                select(InboundLog.received_at, func.max(OutboxMessage.sent_at))
                .join(OutboxMessage, OutboxMessage.inbound_id == InboundLog.id)
                .group_by(InboundLog.id, InboundLog.received_at)
            ).all()
    latencies = [(sent - got).total_seconds() * 1000 for got, sent in pairs_of_times if sent]
    wall = (last_out - first_in).total_seconds() if first_in and last_out else delivery.seconds
    service_cpu = sum(cpu_after.get(r, 0) - cpu_before.get(r, 0) for r in ("web", "worker"))
    return {
        "messages": delivery.sent,
        "per_s": delivery.sent / wall,
        "p50": statistics.median(latencies) if latencies else 0.0,
        "p99": percentile(latencies, 0.99),
        "service_cpu": service_cpu,
        "per_cpu_s": delivery.sent / service_cpu if service_cpu else 0.0,
        "per_cpu_s_pg": delivery.sent / (service_cpu + pg_used) if service_cpu else 0.0,
        "errors": float(
            sum(delivery.errors.values())
            + sum(n for status, n in delivery.statuses.items() if status != 200)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--pairs", default="1,2,4", help="web+worker pairs to try, e.g. 1,2,4")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--twilio-latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (a database of our own is created on it and dropped)",
    )
    args = parser.parse_args()
    sizes = [int(p) for p in args.pairs.split(",") if p.strip()]
    server = make_url(args.postgres).render_as_string(hide_password=True)
    print(f"cluster on {server}: {args.patients} patients x {len(SCRIPT)} messages each")
    print("pairs  msgs   msg/s  p50 ms  p99 ms  CPU s  msg/CPU-s (with PostgreSQL)  errors")
    results = {}
    for pairs in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            r = one_size(pairs, args, Path(tmp))
        results[pairs] = r
        print(
            f"{pairs:>5}  {r['messages']:>5.0f}  {r['per_s']:>6.0f}  {r['p50']:>6.0f}  "
            f"{r['p99']:>6.0f}  {r['service_cpu']:>5.0f}  {r['per_cpu_s']:>9.0f} "
            f"({r['per_cpu_s_pg']:.0f})  {r['errors']:>17.0f}",
            flush=True,
        )
    best = max(r["per_cpu_s"] for r in results.values())
    met = best >= TARGET_PER_CPU_S
    falling = [
        f"{a}->{b}"
        for a, b in itertools.pairwise(sizes)
        if results[b]["per_cpu_s"] < 0.8 * results[a]["per_cpu_s"]
    ]
    print(
        f"target >= {TARGET_PER_CPU_S:.0f} messages per CPU-second: "
        f"{'MET' if met else 'NOT MET'} (best {best:.0f}); "
        + (
            f"falls as pairs are added: {', '.join(falling)}"
            if falling
            else "holds as pairs are added"
        )
    )


if __name__ == "__main__":
    main()
