"""``GET /metrics``: Prometheus text format, read from the database per scrape.

The numbers come from ``core.metrics.totals`` in one short transaction and are
exposed through a per-request registry, so every process (web, worker,
scheduler) reports the same values and nothing is kept in memory between
scrapes. No names, phone numbers or message text appear in any metric.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core import metrics
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


def render(db: Database, clock: Clock) -> bytes:
    """The exposition text of the current numbers."""
    with db.transaction() as session:
        totals = metrics.totals(session, now=clock.now())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TotalsCollector(totals))
    return generate_latest(registry)


def metrics_router(db: Database, clock: Clock) -> APIRouter:
    """A router serving ``GET /metrics``; include it at the app's root."""
    router = APIRouter()

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
        tags=["health"],
    )
    def prometheus_metrics() -> Response:
        """Prometheus metrics: reminders, answers, no-shows, waitlist fills, outbox depth."""
        return Response(render(db, clock), media_type=CONTENT_TYPE)

    return router
