"""``GET /metrics``: Prometheus text format, one exposition of two sources.

* The totals of ``core.metrics`` (reminders, answers, no-shows, waitlist,
  outbox depth and age), read from the database in one short transaction per
  scrape, so every process (web, worker, scheduler) reports the same values
  and nothing about them is kept in memory between scrapes.
* This process's own counters and histograms (``core.telemetry``: inbound
  messages, flow step time, sends, reminder lag), which differ per process.

The worker and scheduler roles have no web app; ``serve_metrics`` serves the
same exposition on ``TELEMED_METRICS_PORT`` (prometheus_client's WSGI server
in a daemon thread). No names, phone numbers or message text appear in any
metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core import metrics, telemetry
from core.clock import Clock
from core.db import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class TotalsCollector(Collector):
    """One snapshot of ``core.metrics.Totals`` as metric families."""

    def __init__(self, totals: metrics.Totals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        t = self.totals
        yield CounterMetricFamily(
            "telemed_reminders_sent",
            "Reminders put in the outbox.",
            value=t.reminders_sent,
        )
        answered = CounterMetricFamily(
            "telemed_reminders_answered",
            "Sent reminders the patient answered, by answer "
            "(confirm, reschedule, cancel; stale: the visit had already changed).",
            labels=["answer"],
        )
        for answer in sorted(set(metrics.REMINDER_ANSWERS) | set(t.reminders_answered)):
            answered.add_metric([answer], t.reminders_answered.get(answer, 0))
        yield answered
        yield CounterMetricFamily(
            "telemed_visits_due",
            "Appointments whose start has passed: completed, no-show, or still booked.",
            value=t.visits_due,
        )
        yield CounterMetricFamily(
            "telemed_no_shows",
            "Appointments marked no-show; the rate is this over telemed_visits_due_total.",
            value=t.no_shows,
        )
        yield CounterMetricFamily(
            "telemed_waitlist_offers_sent",
            "Waitlist offers put in the outbox.",
            value=t.waitlist_offers_sent,
        )
        yield CounterMetricFamily(
            "telemed_waitlist_fills",
            "Waitlist offers taken: a freed slot booked from the waitlist.",
            value=t.waitlist_fills,
        )
        yield GaugeMetricFamily(
            "telemed_outbox_pending",
            "Outbox messages not yet handed to a provider (pending or sending).",
            value=t.outbox_pending,
        )
        yield GaugeMetricFamily(
            "telemed_outbox_oldest_pending_seconds",
            "Age of the oldest outbox message not yet handed to a provider (0 when none).",
            value=t.outbox_oldest_pending_seconds,
        )


class DatabaseCollector(Collector):
    """The database totals, read afresh at each collection (each scrape)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        with self.db.transaction() as session:
            totals = metrics.totals(session, now=self.clock.now())
        yield from TotalsCollector(totals).collect()


def registry(db: Database, clock: Clock) -> CollectorRegistry:
    """What ``/metrics`` serves: the database totals and this process's telemetry."""
    combined = CollectorRegistry(auto_describe=False)
    combined.register(DatabaseCollector(db, clock))
    combined.register(telemetry.REGISTRY)
    return combined


def render(db: Database, clock: Clock) -> bytes:
    """The exposition text of the current numbers."""
    return generate_latest(registry(db, clock))


@dataclass
class MetricsServer:
    """``GET /metrics`` on its own port, for the roles without a web app."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(db: Database, clock: Clock, host: str, port: int) -> MetricsServer:
    """Serve the metrics on ``host:port`` (0: a free port) in a daemon thread."""
    server, thread = start_http_server(port, addr=host, registry=registry(db, clock))
    return MetricsServer(server, thread)


def metrics_router(db: Database, clock: Clock) -> APIRouter:
    """A router serving ``GET /metrics``; include it at the app's root."""
    router = APIRouter()
    exposed = registry(db, clock)

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
        tags=["health"],
    )
    def prometheus_metrics() -> Response:
        """Prometheus metrics: reminders, answers, no-shows, waitlist fills, outbox depth;
        this process's inbound messages, flow step time, sends and reminder lag."""
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE)

    return router
