"""Two web, two worker and two scheduler processes on one PostgreSQL database
under load: 10,000 inbound SMS from 1,000 patients at 64 concurrent
connections, each webhook delivered twice (the provider's retry, half of them
racing the first delivery on the other web process).

Every message is stored once, every reply is sent once (the fake Twilio
process counts what reached it), no request fails, no process dies, and
PostgreSQL reports no deadlock. The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.demo import seed_demo
from core.models import InboundLog, OutboxMessage
from tests.system.cluster import (
    TZ,
    Cluster,
    FakeTwilioProcess,
    Patients,
    counts,
    percentile,
    postgres_cpu_seconds,
    running_cluster,
    scaled,
    wait_drained,
)

PATIENTS = int(os.environ.get("SYSTEM_TEST_PATIENTS", scaled(1000)))
SCRIPT = ("hi", "book", "1", "menu", "my appointments", "help", "hola", "menu", "2", "menu")
CONCURRENCY = 64


def cluster_env(twilio: FakeTwilioProcess) -> dict[str, str]:
    return {
        **twilio.env(),
        # A long code's 1 SMS a second would make this a test of patience.
        "TELEMED_SMS_RATE_PER_SECOND": "10000",
        "TELEMED_SCHEDULER_TICK_SECONDS": "5",
        # A send that times out may still have reached Twilio (no idempotency key):
        # a timeout long enough that a busy machine never hits it by accident.
        "TELEMED_OUTBOX_LEASE_SECONDS": "25",
        "TELEMED_SEND_TIMEOUT_SECONDS": "10",
    }


@pytest.fixture
def twilio(tmp_path: Path) -> Iterator[FakeTwilioProcess]:
    fake = FakeTwilioProcess(tmp_path)
    yield fake
    fake.stop()


@pytest.fixture
def cluster(postgres_db: Database, twilio: FakeTwilioProcess, tmp_path: Path) -> Iterator[Cluster]:
    with postgres_db.transaction() as session:
        seed_demo(session, TZ)
    roles = {"web": 2, "worker": 2, "scheduler": 2}
    with running_cluster(postgres_db.url, tmp_path, cluster_env(twilio), roles) as running:
        yield running


def test_ten_thousand_messages_twice_each_every_reply_sent_once(
    postgres_db: Database, cluster: Cluster, twilio: FakeTwilioProcess
) -> None:
    db = postgres_db
    patients = Patients(cluster.web_urls, PATIENTS)
    pg_before, client_before = postgres_cpu_seconds(), time.process_time()
    delivery = asyncio.run(patients.converse(SCRIPT, concurrency=CONCURRENCY, twice=True))
    drain_s = wait_drained(db, timeout=180)
    print(
        f"\nCPU seconds by role: {cluster.cpu_by_role()}, PostgreSQL "
        f"{postgres_cpu_seconds() - pg_before:.1f}, load client "
        f"{time.process_time() - client_before:.1f}"
    )

    requests = sum(delivery.statuses.values())
    print(
        f"\n{delivery.sent} messages, {requests} webhooks in {delivery.seconds:.1f} s "
        f"({requests / delivery.seconds:.0f}/s), p50 {percentile(delivery.latencies_ms, 0.5):.0f} "
        f"ms, p99 {percentile(delivery.latencies_ms, 0.99):.0f} ms; outbox drained "
        f"{drain_s:.1f} s after the last webhook; answers {dict(delivery.statuses)}"
    )
    assert delivery.sent == PATIENTS * len(SCRIPT)
    assert not delivery.errors
    assert delivery.statuses == {200: 2 * delivery.sent}

    with db.transaction() as session:
        stored = session.scalar(select(func.count()).select_from(InboundLog))
        distinct = session.scalar(select(func.count(func.distinct(InboundLog.provider_message_id))))
        answered = session.scalar(select(func.count(func.distinct(OutboxMessage.inbound_id))))
        sent = {
            sid: address
            for sid, address in session.execute(
                select(OutboxMessage.provider_message_id, OutboxMessage.address)
            )
        }
    assert stored == distinct == delivery.sent  # each message stored once
    assert answered == delivery.sent  # and each answered
    assert counts(db) == {"inbound": delivery.sent, "sent": len(sent)}

    received = twilio.messages()
    # Once each: every row's message reached Twilio, and nothing else did.
    assert len(received) == len(sent)
    assert {m["sid"] for m in received} == set(sent)
    assert Counter(m["to"] for m in received) == Counter(sent.values())

    assert all(node.alive() for node in cluster.nodes)
    logs = cluster.logs()
    assert "deadlock" not in logs.lower()
    assert "Traceback" not in logs
