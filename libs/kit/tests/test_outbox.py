"""Outbox: publish after the write, leave failures to the relay, keep the order."""

import asyncio
from typing import Any

import pytest
from pymongo.errors import AutoReconnect
from structlog.testing import capture_logs

from threadline.contracts import new_event
from threadline.contracts.events.directory import AccountRemoved
from threadline.kit.outbox import Outbox, outbox_entry, with_outbox

from .fakes import InMemoryOutboxCollection, RecordingPublisher


def entry(account: str) -> dict[str, Any]:
    event = new_event(AccountRemoved(account_id=account), firm="f", producer="test")
    return outbox_entry(event)


async def run_outbox(outbox: Outbox) -> asyncio.Task[None]:
    """Run the outbox, once its start-up relay pass is over (a pass with no grace period
    running beside a test's writes would also publish them: at-least-once, but not what
    the tests count)."""
    task = asyncio.create_task(outbox.run(relay_interval_seconds=3600, relay_grace_seconds=0))
    await asyncio.sleep(0.05)
    return task


async def test_scheduled_events_are_published_in_order_and_cleared() -> None:
    publisher, collection = RecordingPublisher(), InMemoryOutboxCollection()
    outbox = Outbox(publisher, collections=[collection])
    task = await run_outbox(outbox)
    entries = [entry("a1"), entry("a2")]
    await collection.insert_one(with_outbox({"_id": "doc"}, entries))
    outbox.schedule(collection, "doc", entries)
    await outbox.drain()
    task.cancel()
    assert [r["key"] for r in publisher.records] == ["a1", "a2"]
    assert publisher.records[0]["headers"]["event-type"] == "directory.account.removed"
    assert collection.documents["doc"]["_outbox"] == []


async def test_failed_publish_leaves_events_pending_until_the_relay_publishes_them_in_order() -> (
    None
):
    publisher, collection = RecordingPublisher(), InMemoryOutboxCollection()
    outbox = Outbox(publisher, collections=[collection])
    task = await run_outbox(outbox)
    publisher.failing = True
    first, second = entry("a1"), entry("a2")
    await collection.insert_one(with_outbox({"_id": "one"}, [first]))
    outbox.schedule(collection, "one", [first])
    await outbox.drain()
    assert outbox.degraded
    await collection.insert_one(with_outbox({"_id": "two"}, [second]))
    outbox.schedule(collection, "two", [second])  # skipped while degraded: relay keeps order
    await outbox.drain()
    assert publisher.records == []

    publisher.failing = False
    await outbox.relay_once(grace_seconds=0)
    assert [r["key"] for r in publisher.records] == ["a1", "a2"]
    assert await outbox.relay_once(grace_seconds=0) == 0
    assert not outbox.degraded
    task.cancel()
    assert all(doc["_outbox"] == [] for doc in collection.documents.values())


async def test_relay_leaves_young_entries_to_the_writer() -> None:
    publisher, collection = RecordingPublisher(), InMemoryOutboxCollection()
    outbox = Outbox(publisher, collections=[collection])
    young = entry("a1")
    await collection.insert_one(with_outbox({"_id": "doc"}, [young]))
    assert await outbox.relay_once(grace_seconds=60) == 0
    assert publisher.records == []


async def test_outbox_stays_degraded_until_a_relay_pass_finds_nothing_pending() -> None:
    publisher, collection = RecordingPublisher(), InMemoryOutboxCollection()
    outbox = Outbox(publisher, collections=[collection])
    publisher.failing = True
    await collection.insert_one(with_outbox({"_id": "doc"}, [entry("a1")]))
    assert await outbox.relay_once(grace_seconds=0) == 0
    assert outbox.degraded
    publisher.failing = False
    assert await outbox.relay_once(grace_seconds=0) == 1
    assert outbox.degraded, "the pass that published may have raced a new write"
    assert await outbox.relay_once(grace_seconds=0) == 0
    assert not outbox.degraded


class WriteDuringScanCollection(InMemoryOutboxCollection):
    """A collection where a write lands just after the relay's cursor passed: the scan
    returns what was there before, then the write is stored and scheduled."""

    def __init__(self, outbox: Outbox | None = None) -> None:
        super().__init__()
        self.outbox = outbox
        self.late: list[dict[str, Any]] = []

    def find(self, query: dict[str, Any], projection: dict[str, Any]) -> Any:
        scanned = super().find(query, projection)

        async def iterate() -> Any:
            async for doc in scanned:
                yield doc
            for late in self.late:  # after the cursor: the scan does not see it
                self.documents[late["_id"]] = late
                assert self.outbox is not None
                self.outbox.schedule(self, late["_id"], late["_outbox"])  # type: ignore[arg-type]
            self.late = []

        return iterate()


async def test_a_write_landing_behind_the_last_degraded_scan_is_published_when_it_ends() -> None:
    """The full chaos run (kill -9 Kafka and MongoDB): posts written while Kafka came back
    were scheduled while the outbox was degraded (so not queued) and landed after the scan
    that found nothing and ended the degraded state: they waited for the 5-minute sweep."""
    publisher, collection = RecordingPublisher(), WriteDuringScanCollection()
    outbox = Outbox(publisher, collections=[collection])  # type: ignore[list-item]
    collection.outbox = outbox
    publisher.failing = True
    first = entry("a1")
    await collection.insert_one(with_outbox({"_id": "one"}, [first]))
    assert await outbox.relay_once(grace_seconds=0) == 0
    assert outbox.degraded
    publisher.failing = False
    assert await outbox.relay_once(grace_seconds=0) == 1  # publishes a1, stays degraded
    late = entry("a2")
    collection.late = [with_outbox({"_id": "two"}, [late])]
    assert await outbox.relay_once(grace_seconds=0) == 0  # finds nothing; a2 lands behind
    assert not outbox.degraded
    assert [r["key"] for r in publisher.records] == ["a1", "a2"]
    assert collection.documents["two"]["_outbox"] == []
    assert outbox.pending() == (0, 0.0)


class SlowFirstKeyPublisher(RecordingPublisher):
    """Acknowledges key ``a`` late, so other keys overtake it while its own order holds."""

    async def publish_record(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None:
        if key == "a":
            await asyncio.sleep(0.01)
        await super().publish_record(topic=topic, key=key, value=value, headers=headers)


async def test_queued_writes_publish_together_in_order_per_key() -> None:
    publisher, collection = SlowFirstKeyPublisher(), InMemoryOutboxCollection()
    outbox = Outbox(publisher, collections=[collection])
    writes = {f"doc{i}": [entry(key)] for i, key in enumerate(["a", "b", "a", "b", "a"])}
    for document_id, entries in writes.items():  # queued before the publisher runs
        await collection.insert_one(with_outbox({"_id": document_id}, entries))
        outbox.schedule(collection, document_id, entries)
    task = await run_outbox(outbox)
    await outbox.drain()
    task.cancel()
    published_ids = [r["headers"]["event-id"] for r in publisher.records]
    for key in ("a", "b"):
        written = [e["id"] for entries in writes.values() for e in entries if e["key"] == key]
        assert [i for i in published_ids if i in written] == written, f"order of key {key}"
    assert [r["key"] for r in publisher.records][:2] == ["b", "b"], "keys do not wait on each other"
    assert all(doc["_outbox"] == [] for doc in collection.documents.values())


class RecordingCollection(InMemoryOutboxCollection):
    """Also answers the writes an OutboxWriter makes (by ``_id``, $set and $push only)."""

    async def insert_one(self, document: dict[str, Any]) -> None:
        if document["_id"] in self.documents:
            raise KeyError(document["_id"])
        self.documents[document["_id"]] = document

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], **_: Any) -> Any:
        document = self.documents.get(query["_id"])
        matched = document is not None and all(
            document.get(key) == value for key, value in query.items()
        )
        if matched and ("$pull" in update or "$pullAll" in update):
            await super().update_one(query, update)
        elif matched:
            document.update(update.get("$set", {}))
            for field, pushed in update.get("$push", {}).items():
                items = pushed.get("$each", [pushed])
                document.setdefault(field, []).extend(items)

        class Result:
            modified_count = 1 if matched else 0
            upserted_id = None

        return Result()


async def test_writer_writes_state_and_events_in_one_write_then_publishes_them() -> None:
    publisher, collection = RecordingPublisher(), RecordingCollection()
    outbox = Outbox(publisher)
    writes = outbox.writer(collection)  # type: ignore[arg-type]
    task = await run_outbox(outbox)
    created = new_event(AccountRemoved(account_id="a1"), firm="f", producer="test")
    await writes.insert_one({"_id": "doc", "state": 1}, events=[created])
    assert collection.documents["doc"]["_outbox"][0]["id"] == str(created.id)
    await outbox.drain()
    changed = new_event(AccountRemoved(account_id="a2"), firm="f", producer="test")
    assert await writes.update_one(
        {"_id": "doc", "state": 1}, {"$set": {"state": 2}}, events=[changed]
    )
    missed = new_event(AccountRemoved(account_id="a3"), firm="f", producer="test")
    assert not await writes.update_one(
        {"_id": "doc", "state": 1}, {"$set": {"state": 3}}, events=[missed]
    )
    await outbox.drain()
    task.cancel()
    assert [r["key"] for r in publisher.records] == ["a1", "a2"]
    assert collection.documents["doc"] == {"_id": "doc", "state": 2, "_outbox": []}


async def test_writer_refuses_an_update_that_does_not_name_its_document() -> None:
    writes = Outbox(RecordingPublisher()).writer(RecordingCollection())  # type: ignore[arg-type]
    event = new_event(AccountRemoved(account_id="a1"), firm="f", producer="test")
    with pytest.raises(ValueError, match="_id"):
        await writes.update_one({"firm": "f"}, {"$set": {"x": 1}}, events=[event])


async def test_before_publish_runs_before_the_events_leave_and_the_relay_finishes_it() -> None:
    """A write with a follow-up step: the events wait for the step; when the step is cut
    short, the relay runs the collection's finishing step before publishing them."""
    publisher, collection = RecordingPublisher(), InMemoryOutboxCollection()
    outbox = Outbox(publisher)
    writes = outbox.writer(collection)  # type: ignore[arg-type]
    task = await run_outbox(outbox)
    steps: list[str] = []

    async def follow_up() -> None:
        steps.append(f"follow-up, {len(publisher.records)} published")

    first = new_event(AccountRemoved(account_id="a1"), firm="f", producer="test")
    await writes.insert_one({"_id": "one"}, events=[first], before_publish=follow_up)
    await outbox.drain()
    assert steps == ["follow-up, 0 published"]
    assert [r["key"] for r in publisher.records] == ["a1"]

    async def crash() -> None:
        raise RuntimeError("storage went away")

    second = new_event(AccountRemoved(account_id="a2"), firm="f", producer="test")
    with pytest.raises(RuntimeError):
        await writes.insert_one({"_id": "two"}, events=[second], before_publish=crash)
    await outbox.drain()
    assert [r["key"] for r in publisher.records] == ["a1"], "nothing out before the step"

    async def finish(document_id: Any) -> None:
        steps.append(f"finished {document_id}, {len(publisher.records)} published")

    outbox.before_relay(collection, finish)  # type: ignore[arg-type]
    assert await outbox.relay_once(grace_seconds=0) == 1
    task.cancel()
    assert steps[-1] == "finished two, 1 published"
    assert [r["key"] for r in publisher.records] == ["a1", "a2"]


class FailingClearCollection(InMemoryOutboxCollection):
    """Storage that goes away once while a publishing round clears what it published."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("storage down while clearing")
        await super().update_one(query, update)


async def test_events_whose_clear_failed_are_relayed_once_past_the_grace_not_at_the_sweep() -> None:
    publisher, collection = RecordingPublisher(), FailingClearCollection()
    outbox = Outbox(publisher, collections=[collection])
    task = asyncio.create_task(
        outbox.run(relay_interval_seconds=0.05, relay_grace_seconds=0.2, relay_sweep_seconds=3600)
    )
    await asyncio.sleep(0.5)  # past the start-up passes: only the sweep would be left
    entries = [entry("a1")]
    await collection.insert_one(with_outbox({"_id": "doc"}, entries))
    outbox.schedule(collection, "doc", entries)
    await outbox.drain()
    assert collection.documents["doc"]["_outbox"] != [], "published, but the clear failed"
    for _ in range(200):
        if collection.documents["doc"]["_outbox"] == []:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    assert collection.documents["doc"]["_outbox"] == []
    assert [r["key"] for r in publisher.records] == ["a1", "a1"], "at least once: published again"


class AppliedThenLostCollection(InMemoryOutboxCollection):
    """The server writes the document, then the connection dies before the answer."""

    async def insert_one(self, document: dict[str, Any]) -> None:
        await super().insert_one(document)
        raise AutoReconnect("connection closed")


async def test_a_write_applied_but_answered_with_an_error_is_relayed_past_the_grace() -> None:
    """Found by the chaos run (kill -9 kafka + mongodb): such events waited for the 5-minute
    sweep; they go out once past the grace."""
    publisher, collection = RecordingPublisher(), AppliedThenLostCollection()
    outbox = Outbox(publisher, collections=[collection])
    writes = outbox.writer(collection)  # type: ignore[arg-type]
    task = asyncio.create_task(
        outbox.run(relay_interval_seconds=0.05, relay_grace_seconds=0.2, relay_sweep_seconds=3600)
    )
    await asyncio.sleep(0.5)  # past the start-up passes: only the sweep would be left
    event = new_event(AccountRemoved(account_id="a1"), firm="f", producer="test")
    with pytest.raises(AutoReconnect):
        await writes.insert_one({"_id": "doc"}, events=[event])
    for _ in range(200):
        if publisher.records:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    assert [r["key"] for r in publisher.records] == ["a1"]
    assert collection.documents["doc"]["_outbox"] == []


class CancelAbsorbingPublisher(RecordingPublisher):
    """A client that absorbs the cancel of a send to a dead broker and waits again."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def publish_record(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            await self.release.wait()
        await super().publish_record(topic=topic, key=key, value=value, headers=headers)


async def test_a_publish_that_absorbs_its_cancel_is_left_behind_after_the_timeout() -> None:
    """With ``asyncio.wait_for`` the round waited for the cancelled publish to end, holding
    the outbox lock: nothing was published or relayed again, and nothing said so."""
    publisher, collection = CancelAbsorbingPublisher(), InMemoryOutboxCollection()
    outbox = Outbox(publisher, collections=[collection], publish_timeout_seconds=0.1)
    task = await run_outbox(outbox)
    entries = [entry("a1")]
    await collection.insert_one(with_outbox({"_id": "doc"}, entries))
    outbox.schedule(collection, "doc", entries)
    await asyncio.wait_for(outbox.drain(), 5)
    assert outbox.degraded
    publisher.release.set()
    published = await asyncio.wait_for(outbox.relay_once(grace_seconds=0), 5)
    task.cancel()
    assert published == 1 and collection.documents["doc"]["_outbox"] == []


class HangingPublisher(RecordingPublisher):
    async def publish_record(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> None:
        await asyncio.Event().wait()


async def test_a_relay_pass_kept_waiting_by_the_publishing_round_says_where_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("threadline.kit.outbox.LOCK_WAIT_WARNING_SECONDS", 0.05)
    collection = InMemoryOutboxCollection()
    outbox = Outbox(HangingPublisher(), collections=[collection], publish_timeout_seconds=60)
    task = await run_outbox(outbox)
    entries = [entry("a1")]
    await collection.insert_one(with_outbox({"_id": "doc"}, entries))
    outbox.schedule(collection, "doc", entries)
    with capture_logs() as logs:
        relay = asyncio.create_task(outbox.relay_once(grace_seconds=0))
        await asyncio.sleep(0.3)
    assert not relay.done()
    relay.cancel()
    task.cancel()
    waiting = "outbox relay still waits for the publishing round"
    warnings = [e for e in logs if e["event"] == waiting]
    assert len(warnings) >= 2 and warnings[-1]["waited_seconds"] > warnings[0]["waited_seconds"]
    chains = warnings[0]["awaits"].values()
    assert any("in publish_record" in link for chain in chains for link in chain)
