"""``GET /metrics`` in Prometheus format: HTTP latency per route template and status,
consumed events per type, consumer lag per partition, outbox pending, stream subscribers."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ServiceFactory, eventually, run_topic, seed_directory
from .messaging.conftest import Firm

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_are_scraped_from_a_service_in_prometheus_format(
    start_service: ServiceFactory, run_id: str
) -> None:
    app, http = await start_service("messaging")
    await seed_directory([app], f"firm_{run_id}")
    firm = Firm(firm=f"firm_{run_id}", http=http, app=app)
    thread = await firm.new_thread()
    assert (await firm.post("assigned member", thread["id"], html="<p>x</p>")).status_code == 201

    async def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = await http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return samples(response.text)

    pending = ("threadline_outbox_pending_events", frozenset())
    oldest = ("threadline_outbox_oldest_pending_age_seconds", frozenset())
    # the post's events are published and cleared: the outbox's own tracking says nothing
    # is pending any more (a scrape reads it from memory)
    scraped = await eventually(scrape, until=lambda s: s.get(pending) == 0)
    assert scraped[oldest] == 0
    posted = frozenset(
        {("method", "POST"), ("route", "/v1/threads/{thread_id}/messages"), ("status", "201")}
    )
    assert scraped[("threadline_http_request_duration_seconds_count", posted)] == 1
    created = frozenset({("method", "POST"), ("route", "/v1/threads"), ("status", "201")})
    assert scraped[("threadline_http_request_duration_seconds_count", created)] == 1
    handled = frozenset({("type", "directory.account.upserted"), ("outcome", "handled")})
    assert scraped[("threadline_events_consumed_total", handled)] >= 4
    lags = [key for key in scraped if key[0] == "threadline_consumer_lag"]
    assert lags and all(
        dict(labels)["topic"].startswith(run_topic("threadline.")) for _, labels in lags
    )
    assert scraped[("threadline_stream_subscribers", frozenset())] == 0
    assert ("threadline_stream_dropped_subscribers_total", frozenset()) in scraped
