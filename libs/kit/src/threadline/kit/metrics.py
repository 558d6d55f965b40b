"""Prometheus metrics of a service, on ``GET /metrics`` (text exposition format).

Each app owns its ``CollectorRegistry`` (tests build many apps in one process). The kit
records HTTP latency per route template and status, consumed events by type and outcome,
retries and dead-letters by type; at scrape time it reads consumer lag per partition and
the outbox's pending count and oldest age (the outbox tracks them in memory: a scrape
costs no database work). Services add their own metrics to
``runtime.metrics.registry`` (messaging: stream subscribers and dropped subscribers).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["PendingEvents", "ServiceMetrics", "metrics_router"]


class PendingEvents(Protocol):
    def pending(self) -> tuple[int, float]:
        """Events waiting to be published and the oldest one's age in seconds."""
        ...


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.http_latency = Histogram(
            "threadline_http_request_duration_seconds",
            "HTTP request latency by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "threadline_events_consumed_total",
            "Consumed events by type and outcome (handled, duplicate, ignored, dead_lettered).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "threadline_events_retried_total",
            "Handler retries by event type and failure kind (transient, unknown).",
            ["type", "failure"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "threadline_events_dead_lettered_total",
            "Events parked on the dead-letter topic, by type.",
            ["type"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "threadline_consumer_lag",
            "Records not yet consumed, per assigned partition (read at scrape time).",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "threadline_outbox_pending_events",
            "Events written but not yet published, as this replica knows them (no query).",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "threadline_outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished event this replica knows, 0 when none.",
            registry=self.registry,
        )
        self._refreshers: list[Callable[[], Awaitable[None]]] = []

    def on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run ``refresh`` before each scrape (gauges read from live state)."""
        self._refreshers.append(refresh)

    def track_outbox(self, outbox: PendingEvents) -> None:
        """The outbox gauges read ``outbox.pending()`` (memory only) at each scrape."""
        self.outbox_pending.set_function(lambda: outbox.pending()[0])
        self.outbox_oldest_age.set_function(lambda: outbox.pending()[1])

    def event_outcome(self, event_type: str, outcome: str) -> None:
        """The consumer's hook: one call per event outcome or retry."""
        if outcome.startswith("retried:"):
            self.retries.labels(event_type, outcome.removeprefix("retried:")).inc()
            return
        self.events.labels(event_type, outcome).inc()
        if outcome == "dead_lettered":
            self.dead_lettered.labels(event_type).inc()

    async def http_middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route: Any = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.http_latency.labels(request.method, template, str(status)).observe(
                time.perf_counter() - started
            )

    async def exposition(self) -> bytes:
        for refresh in self._refreshers:
            await refresh()
        return generate_latest(self.registry)


def metrics_router(metrics: ServiceMetrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format).",
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def scrape() -> Response:
        return PlainTextResponse(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
