"""Outbox relay: scans storage only when something may be pending, so idle costs nothing."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from threadline.contracts import new_event
from threadline.contracts.events.directory import AccountRemoved
from threadline.kit.outbox import Outbox, outbox_entry, with_outbox

from .fakes import InMemoryOutboxCollection, RecordingPublisher

TICK = 0.005


class CountingCollection(InMemoryOutboxCollection):
    """Counts relay scans; its first ``failing_clears`` clears raise (a storage hiccup)."""

    def __init__(self, failing_clears: int = 0) -> None:
        super().__init__()
        self.scans = 0
        self.failing_clears = failing_clears

    def find(self, query: dict[str, Any], projection: dict[str, Any]) -> Any:
        self.scans += 1
        return super().find(query, projection)

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        if self.failing_clears:
            self.failing_clears -= 1
            raise ConnectionError("storage hiccup")
        await super().update_one(query, update)


def left_behind(account: str) -> dict[str, Any]:
    """An entry a stopped process wrote a minute ago and never published."""
    event = new_event(AccountRemoved(account_id=account), firm="f", producer="test")
    return outbox_entry(event) | {"created_ms": int((time.time() - 60) * 1000)}


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(TICK)


def start(outbox: Outbox, *, grace: float = 10 * TICK) -> asyncio.Task[None]:
    run: Awaitable[None] = outbox.run(
        relay_interval_seconds=TICK, relay_grace_seconds=grace, relay_sweep_seconds=3600
    )
    return asyncio.ensure_future(run)


async def test_relay_scans_at_start_up_and_after_the_grace_period_then_stays_idle() -> None:
    publisher, collection = RecordingPublisher(), CountingCollection()
    await collection.insert_one(with_outbox({"_id": "doc"}, [left_behind("a1")]))
    task = start(Outbox(publisher, collections=[collection]))
    await until(lambda: collection.scans >= 2)
    await asyncio.sleep(50 * TICK)  # fifty idle ticks
    task.cancel()
    assert [record["key"] for record in publisher.records] == ["a1"]
    assert collection.scans == 2, "an idle relay must not scan storage"


async def test_a_failed_clear_makes_the_relay_scan_again_at_the_next_tick() -> None:
    publisher, collection = RecordingPublisher(), CountingCollection(failing_clears=1)
    outbox = Outbox(publisher, collections=[collection])
    task = start(outbox)
    await until(lambda: collection.scans >= 2)
    entries = [left_behind("a1")]
    await collection.insert_one(with_outbox({"_id": "doc"}, entries))
    outbox.schedule(collection, "doc", entries)
    await until(lambda: collection.documents["doc"]["_outbox"] == [])
    task.cancel()
    assert collection.scans == 3
    assert [record["key"] for record in publisher.records] == ["a1", "a1"], "at least once"


async def test_a_failed_publish_makes_the_relay_scan_every_tick_until_caught_up() -> None:
    publisher, collection = RecordingPublisher(), CountingCollection()
    outbox = Outbox(publisher, collections=[collection])
    task = start(outbox)
    await until(lambda: collection.scans >= 2)
    publisher.failing = True
    entries = [left_behind("a1")]
    await collection.insert_one(with_outbox({"_id": "doc"}, entries))
    outbox.schedule(collection, "doc", entries)
    await until(lambda: outbox.degraded)
    scans = collection.scans
    await until(lambda: collection.scans >= scans + 3)
    publisher.failing = False
    await until(lambda: not outbox.degraded)
    caught_up = collection.scans
    await asyncio.sleep(50 * TICK)
    task.cancel()
    assert [record["key"] for record in publisher.records] == ["a1"]
    assert collection.scans == caught_up
