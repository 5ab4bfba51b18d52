"""The cluster (2 web, 2 workers, 2 schedulers, one PostgreSQL) through a
provider outage, a database restart and hostile traffic.

* Outage: the fake Twilio answers 503 for 15 s, then holds every request
  unanswered for 15 s, in the middle of a steady run of patients' messages.
  Nothing is lost, nothing is sent twice, each patient's replies arrive in
  the order they were written, and the backlog drains once Twilio is back.
* Database restart: every connection to PostgreSQL is dropped and refused
  for a few seconds (a TCP proxy between the cluster and the server).
  Readiness says 503, webhooks answer 503 (the provider retries), no
  process dies, and once it is back the retried messages are handled once.
* A flood from one number, oversized bodies and stalled clients leave the
  other patients' conversations working.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from core import outbox
from core.db import Database
from core.demo import seed_demo
from core.models import InboundLog, OutboxMessage
from tests.fakes.tcp_proxy import TcpProxy
from tests.system.cluster import (
    PUBLIC_URL,
    TZ,
    FakeTwilioProcess,
    Patients,
    counts,
    percentile,
    running_cluster,
    wait_drained,
)
from tests.system.test_cluster_load import cluster_env

ROLES = {"web": 2, "worker": 2, "scheduler": 2}


@pytest.fixture
def twilio(tmp_path: Path) -> Iterator[FakeTwilioProcess]:
    fake = FakeTwilioProcess(tmp_path)
    yield fake
    fake.stop()


@pytest.fixture
def seeded(postgres_db: Database) -> Database:
    with postgres_db.transaction() as session:
        seed_demo(session, TZ)
    return postgres_db


def waiting_since(db: Database, instant: datetime) -> int:
    """Outbox rows queued up to ``instant`` and not yet handed to the provider."""
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.status.in_(outbox.WAITING),
                    OutboxMessage.created_at <= instant,
                )
            )
            or 0
        )


def sent_rows(db: Database) -> dict[str, tuple[int, str]]:
    """provider message id -> (outbox id, address), for every sent row."""
    with db.transaction() as session:
        return {
            sid: (id_, address)
            for sid, id_, address in session.execute(
                select(
                    OutboxMessage.provider_message_id, OutboxMessage.id, OutboxMessage.address
                ).where(OutboxMessage.status == "sent")
            )
        }


def test_thirty_seconds_of_provider_outage_lose_and_repeat_nothing(
    seeded: Database, twilio: FakeTwilioProcess, tmp_path: Path
) -> None:
    db = seeded
    script = ("hi", "book", "menu", "my appointments", "help", "menu")
    with running_cluster(db.url, tmp_path, cluster_env(twilio), ROLES) as cluster:
        patients = Patients(cluster.web_urls, 300)
        timeline: dict[str, float] = {}

        def outage() -> None:
            time.sleep(3)
            timeline["down"] = time.monotonic()
            twilio.outage("503")
            time.sleep(15)
            twilio.outage("hang")
            time.sleep(15)
            twilio.outage("off")
            timeline["up"] = time.monotonic()
            up = datetime.now(UTC)
            # The backlog: what was queued before Twilio came back and is not sent yet.
            while backlog := waiting_since(db, up):
                timeline.setdefault("backlog", backlog)
                time.sleep(0.1)
            timeline["drained"] = time.monotonic()

        switch = threading.Thread(target=outage)
        switch.start()
        # About 50 messages a second for about 35 s, the outage (3 s to 33 s) across it.
        delivery = asyncio.run(patients.converse(script, twice=False, pause_s=5.5))
        switch.join(timeout=120)
        wait_drained(db, timeout=60)
        recovered_s = timeline["drained"] - timeline["up"]
        assert all(node.alive() for node in cluster.nodes)
        logs = cluster.logs()

    refused = twilio.stats()
    print(
        f"\n{delivery.sent} messages in {delivery.seconds:.0f} s with Twilio down "
        f"{timeline['up'] - timeline['down']:.0f} s: a backlog of "
        f"{timeline.get('backlog', 0):.0f} replies when it came back, sent "
        f"{recovered_s:.1f} s later; Twilio answers {refused}"
    )
    assert delivery.statuses == {200: delivery.sent}  # the webhooks never noticed
    assert refused.get("503", 0) > 0  # the outage was felt
    assert timeline.get("backlog", 0) > 0  # replies did wait out the outage
    assert recovered_s < 45  # at most the longest pause (30 s) and the sending

    sent = sent_rows(db)
    received = twilio.messages()
    assert counts(db) == {"inbound": delivery.sent, "sent": len(sent)}  # nothing failed
    assert len(received) == len(sent)  # nothing twice
    assert {m["sid"] for m in received} == set(sent)
    # In order per patient: Twilio got each patient's replies in outbox order.
    order: dict[str, list[int]] = defaultdict(list)
    for message in received:
        order[message["to"]].append(sent[message["sid"]][0])
    assert all(ids == sorted(ids) for ids in order.values())
    assert "provider_unavailable" in logs and "provider_recovered" in logs


def test_a_database_restart_answers_503_then_recovers_without_loss(
    seeded: Database, twilio: FakeTwilioProcess, tmp_path: Path
) -> None:
    db = seeded
    url = make_url(db.url)
    proxy = TcpProxy(url.port or 5432, url.host or "127.0.0.1")
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with running_cluster(through_proxy, tmp_path, cluster_env(twilio), ROLES) as cluster:
            web = cluster.web_urls
            patients = Patients(web, 50)
            before = asyncio.run(patients.converse(("hi",), twice=False))
            assert before.statuses == {200: 50}

            proxy.cut()
            time.sleep(1)
            ready = [httpx.get(u + "/readyz", timeout=10).status_code for u in web]
            forms = [patients.form(n, "book") for n in patients.numbers]
            during = [post_form(web[i % 2], form) for i, form in enumerate(forms)]
            time.sleep(5)  # workers and schedulers keep failing their passes meanwhile
            proxy.restore()

            def all_ready() -> bool:
                return all(httpx.get(u + "/readyz", timeout=10).status_code == 200 for u in web)

            deadline = time.monotonic() + 30
            while not all_ready():
                assert time.monotonic() < deadline, "not ready again after the database came back"
                time.sleep(0.2)
            # The provider retries what got a 503: the same MessageSids again.
            retried = [post_form(web[(i + 1) % 2], form) for i, form in enumerate(forms)]
            wait_drained(db, timeout=60)
            alive = [node.alive() for node in cluster.nodes]
            logs = cluster.logs()
    finally:
        proxy.close()

    print(f"\nreadiness while down {ready}; webhooks while down {sorted(set(during))}")
    assert ready == [503, 503]
    assert set(during) == {503}
    assert retried == [200] * len(forms)
    assert all(alive)
    assert "Traceback" not in logs
    with db.transaction() as session:
        stored = session.scalar(select(func.count()).select_from(InboundLog))
        answered = session.scalar(select(func.count(func.distinct(OutboxMessage.inbound_id))))
    assert stored == answered == 100  # 50 greetings, 50 retried bookings, once each
    assert set(counts(db)) == {"inbound", "sent"}


def post_form(base: str, form: dict[str, str]) -> int:
    from twilio.request_validator import RequestValidator

    from tests.fakes.twilio_server import AUTH_TOKEN

    path = "/webhooks/twilio/sms"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, form)
    answer = httpx.post(
        base + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=30
    )
    return answer.status_code


def test_a_flood_big_bodies_and_stalled_clients_leave_others_served(
    seeded: Database, twilio: FakeTwilioProcess, tmp_path: Path
) -> None:
    db = seeded
    with running_cluster(db.url, tmp_path, cluster_env(twilio), ROLES) as cluster:
        web = cluster.web_urls
        # 100 connections that send half a request and stall.
        stalled = [stall(u) for u in web for _ in range(50)]
        # 2 MB bodies: 413, never read whole.
        big = [
            httpx.post(u + "/webhooks/twilio/sms", content=b"x" * 2_000_000, timeout=30)
            for u in web
        ]
        flooder = Patients(web, 1, first=9_000)
        flood = asyncio.run(flooder.converse(["hi"] * 300, twice=False, concurrency=16))
        others = Patients(web, 100)
        normal = asyncio.run(others.converse(("hi", "book", "menu"), twice=False))
        wait_drained(db, timeout=60)
        assert all(node.alive() for node in cluster.nodes)
        for sock in stalled:
            sock.close()

    print(
        f"\nflood: {flood.sent} messages from one number in {flood.seconds:.1f} s, answers "
        f"{dict(flood.statuses)}; others p99 {percentile(normal.latencies_ms, 0.99):.0f} ms "
        f"with {len(stalled)} stalled connections open"
    )
    assert [r.status_code for r in big] == [413, 413]
    assert flood.statuses == {200: 300}
    assert normal.statuses == {200: 300}
    with db.transaction() as session:
        stored = session.scalar(select(func.count()).select_from(InboundLog))
        to_flooder = session.scalar(
            select(func.count()).where(OutboxMessage.address == flooder.numbers[0])
        )
        answered_others = session.scalar(
            select(func.count(func.distinct(OutboxMessage.inbound_id))).where(
                OutboxMessage.address != flooder.numbers[0]
            )
        )
    assert stored == 600  # every message kept, the flood's too
    assert to_flooder is not None and to_flooder <= 25  # the flood got the cooldown
    assert answered_others == 300  # everyone else was answered


def stall(base: str) -> socket.socket:
    host, _, port = base.removeprefix("http://").partition(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /webhooks/twilio/sms HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nFrom=%2B1"
    )
    return sock
