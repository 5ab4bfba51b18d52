"""kill -9 a worker at random moments while two workers dispatch 5,000
messages, three times, restarting it each time.

Every message reaches the fake Twilio at least once, in order per patient
(first copies). A killed worker's claims come back after the lease; what it
had already handed to Twilio is sent again, so duplicates are possible, but
never more than the rows it held at the moment it died: the test freezes the
worker (SIGSTOP), counts its claims in the database, then kills it. The
figures are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from core.db import Database
from core.messages import Reply
from core.models import OutboxMessage, table_of
from core.outbox import WAITING
from tests.system.cluster import (
    Cluster,
    FakeTwilioProcess,
    phone,
    running_cluster,
    scaled,
    wait_drained,
)

MESSAGES = scaled(5_000)
PATIENTS = 1_000
KILLS = 3
LEASE_S = 10
STOP_MESSAGES = 1_500  # enough to be mid-dispatch when SIGTERM comes
TOP_UP = 1_000  # queued again if everything was sent before a kill could land


@pytest.fixture
def twilio(tmp_path: Path) -> Iterator[FakeTwilioProcess]:
    # Twilio answering in 20 ms keeps sends in flight when the kill comes.
    fake = FakeTwilioProcess(tmp_path, latency_ms=20)
    yield fake
    fake.stop()


def worker_env(twilio: FakeTwilioProcess, *, lease_s: int = LEASE_S) -> dict[str, str]:
    # The lease is short so a killed worker's rows come back quickly; a send
    # timeout (one more way to send twice) gets the rest of it.
    return {
        **twilio.env(),
        "TELEMED_SMS_RATE_PER_SECOND": "10000",
        "TELEMED_OUTBOX_LEASE_SECONDS": str(lease_s),
        "TELEMED_SEND_TIMEOUT_SECONDS": str((lease_s - 5) / 2),
    }


def queue_messages(
    db: Database, count: int = MESSAGES, *, first: int = 0
) -> list[tuple[int, str, str]]:
    """Queue ``count`` messages ("crash test <n>" from ``first``); (id, address, body) each."""
    now = datetime.now(UTC)
    rows = []
    for i in range(first, first + count):
        rows.append(
            {
                "channel": "sms",
                "address": phone(i % PATIENTS),
                "payload": Reply(f"crash test {i}").to_json(),
                "purpose": "reply",
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    table = table_of(OutboxMessage)
    with db.transaction() as session:
        ids = session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        ).scalars()
        return [
            (id_, row["address"], f"crash test {i}")
            for i, (id_, row) in enumerate(zip(ids, rows, strict=True), start=first)
        ]


def waiting(db: Database) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(select(func.count()).where(OutboxMessage.status.in_(WAITING))) or 0
        )


def held_by(db: Database, pid: int) -> int:
    """Rows claimed and not yet recorded by the worker process ``pid``."""
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.status == "sending",
                    OutboxMessage.claimed_by.like(f"%:{pid}:%"),
                )
            )
            or 0
        )


def test_killed_workers_lose_nothing_and_resend_at_most_what_they_held(
    postgres_db: Database, twilio: FakeTwilioProcess, tmp_path: Path
) -> None:
    db = postgres_db
    env = worker_env(twilio)
    rng = random.Random(int(os.environ.get("SYSTEM_TEST_SEED", "8")))
    with running_cluster(db.url, tmp_path, env, {"worker": 2}) as cluster:
        started = time.monotonic()
        queued = queue_messages(db)
        in_flight: list[int] = []
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            # A worker in the middle of a pass (a restarted one may still be
            # starting): the kill must land while sends are in flight.
            # Restarted workers start slowly on a loaded machine: wait for one
            # that holds claims rather than kill an idle one.
            deadline = time.monotonic() + 120
            busy = []
            while not busy and time.monotonic() < deadline:
                if not waiting(db):
                    # A loaded machine restarts workers slowly: the others sent
                    # everything first. More work, so this kill too lands mid-pass.
                    queued += queue_messages(db, TOP_UP, first=len(queued))
                busy = [w for w in cluster.of("worker") if held_by(db, w.pid)]
                time.sleep(0 if busy else 0.02)
            victim = rng.choice(busy or cluster.of("worker"))
            os.kill(victim.pid, signal.SIGSTOP)  # frozen: its claims cannot change now
            held = held_by(db, victim.pid)
            cluster.kill(victim)
            in_flight.append(held)
            cluster.start("worker")
        drain_s = wait_drained(db, timeout=120)
        elapsed = time.monotonic() - started
        assert_all_alive(cluster)

    received = twilio.messages()
    bodies = Counter(m["body"] for m in received)
    duplicates = len(received) - len(queued)
    print(
        f"\n{len(queued)} messages through 2 workers, {KILLS} kill -9s holding {in_flight} "
        f"rows: {len(received)} sends, {duplicates} duplicates, all sent in {elapsed:.1f} s "
        f"(drained {drain_s:.1f} s after the last kill)"
    )
    assert set(bodies) == {body for _, _, body in queued}  # nothing lost
    assert 0 <= duplicates <= sum(in_flight)
    assert min(in_flight) > 0  # every kill landed mid-dispatch

    # In order per patient: the first copy of each message came after the first
    # copy of the one queued before it.
    order = {body: i for i, (_, _, body) in enumerate(queued)}
    firsts: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message in received:
        if message["body"] not in seen:
            seen.add(message["body"])
            firsts[message["to"]].append(order[message["body"]])
    assert all(sequence == sorted(sequence) for sequence in firsts.values())

    with db.transaction() as session:
        statuses = dict(
            session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            ).all()
        )
    assert statuses == {"sent": len(queued)}


def assert_all_alive(cluster: Cluster) -> None:
    assert len(cluster.of("worker")) == 2  # the two restarted or spared, still up
    assert "Traceback" not in cluster.logs()


def test_a_worker_stopped_with_sigterm_finishes_and_hands_back_its_claims(
    postgres_db: Database, twilio: FakeTwilioProcess, tmp_path: Path
) -> None:
    db = postgres_db
    env = worker_env(twilio, lease_s=25)  # nothing may time out and go twice here
    with running_cluster(db.url, tmp_path, env, {"worker": 2}) as cluster:
        queue_messages(db, STOP_MESSAGES)
        time.sleep(0.8)
        leaving = cluster.of("worker")[0]
        leaving.proc.send_signal(signal.SIGTERM)
        code = leaving.proc.wait(timeout=30)
        left_behind = held_by(db, leaving.pid)
        drain_s = wait_drained(db, timeout=120)

    received = twilio.messages()
    print(
        f"\nSIGTERM mid-dispatch: exit {code}, {left_behind} rows left claimed, "
        f"{len(received) - STOP_MESSAGES} duplicates; the rest drained in {drain_s:.1f} s"
    )
    assert code == 0
    assert left_behind == 0  # finished its pass or handed the rows back
    assert len(received) == STOP_MESSAGES  # so nothing went twice
    assert {m["body"] for m in received} == {f"crash test {i}" for i in range(STOP_MESSAGES)}
