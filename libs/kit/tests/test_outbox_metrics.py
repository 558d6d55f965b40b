"""The outbox gauges come from what the outbox tracks in memory: a scrape queries nothing,
and the figures follow writes, failed publishes and relay passes."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from threadline.contracts import new_event
from threadline.contracts.events.directory import AccountRemoved
from threadline.kit.metrics import ServiceMetrics
from threadline.kit.outbox import Outbox, outbox_entry, with_outbox

from .fakes import InMemoryOutboxCollection, RecordingPublisher


class CountingCollection(InMemoryOutboxCollection):
    """Counts every database call made on it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __getattribute__(self, name: str) -> Any:
        if name in {"insert_one", "update_one", "update_many", "find", "aggregate"}:
            object.__setattr__(self, "calls", object.__getattribute__(self, "calls") + 1)
        return object.__getattribute__(self, name)


async def scrape(metrics: ServiceMetrics) -> tuple[float, float]:
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families((await metrics.exposition()).decode())
        for sample in family.samples
    }
    return (
        values["threadline_outbox_pending_events"],
        values["threadline_outbox_oldest_pending_age_seconds"],
    )


async def test_a_scrape_queries_nothing_and_the_gauges_follow_the_outbox() -> None:
    publisher, collection = RecordingPublisher(), CountingCollection()
    outbox = Outbox(publisher, collections=[collection])
    metrics = ServiceMetrics("test")
    metrics.track_outbox(outbox)
    task = asyncio.create_task(outbox.run(relay_interval_seconds=3600, relay_grace_seconds=0))
    await asyncio.sleep(0)
    publisher.failing = True
    entries = [
        outbox_entry(new_event(AccountRemoved(account_id=a), firm="f", producer="test"))
        for a in ("a1", "a2")
    ]
    await collection.insert_one(with_outbox({"_id": "doc"}, entries))
    outbox.schedule(collection, "doc", entries)
    await outbox.drain()
    await asyncio.sleep(0.01)

    calls = collection.calls
    pending, age = await scrape(metrics)
    assert collection.calls == calls, "a scrape made no database call"
    assert pending == 2 and age > 0

    publisher.failing = False
    assert await outbox.relay_once(grace_seconds=0) == 2
    assert await scrape(metrics) == (0, 0)
    task.cancel()


async def test_a_relay_pass_counts_what_another_process_left_and_forgets_what_it_published() -> (
    None
):
    publisher, collection = RecordingPublisher(), CountingCollection()
    outbox = Outbox(publisher, collections=[collection])
    publisher.failing = True
    left = outbox_entry(new_event(AccountRemoved(account_id="a1"), firm="f", producer="test"))
    left["created_ms"] -= 60_000  # written a minute ago
    await collection.insert_one(with_outbox({"_id": "doc"}, [left]))  # a dead writer's event
    assert outbox.pending()[0] == 0, "not seen yet"
    assert await outbox.relay_once(grace_seconds=0) == 0  # publishing fails: still pending
    assert outbox.pending()[0] == 1
    assert outbox.pending()[1] >= 60
    collection.documents["doc"]["_outbox"] = []  # another replica published and cleared it
    assert await outbox.relay_once(grace_seconds=0) == 0
    assert outbox.pending() == (0, 0.0)
