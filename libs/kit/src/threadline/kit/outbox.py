"""The transactional outbox, without multi-document transactions.

A state change and the events it causes are written in ONE single-document write: the
events ride along in the document's ``_outbox`` array. Stores write through an
``OutboxWriter`` (``outbox.writer(collection)``): its ``insert_one`` / ``insert_many`` /
``update_one`` / ``replace_one`` / ``find_one_and_update`` take the events beside the write,
add them to the document and, once the write succeeded, hand them to ``Outbox.schedule``
(the lower-level ``outbox_entry`` / ``with_outbox`` / ``outbox_push`` remain for tests and
tools). A background publisher
publishes them in order and pulls each one off the document, so a request never waits for
Kafka. If the process dies or Kafka is down in between, the entries stay pending and the
relay (``relay_once``, run periodically) republishes everything older than a grace period,
oldest first. Delivery is therefore at-least-once; consumers deduplicate on the event id.

The relay scans storage only when something may be pending: at start-up (what a stopped
process left behind, again once its grace period has passed), on every tick while degraded
or after a failed pass or clear, and otherwise in a slow safety sweep (a replica that died
for good). Idle, it costs nothing however much data is stored.

What is pending is tracked in memory from what the outbox itself sees — the entries its
writers scheduled and the entries its relay passes found, each dropped once published and
cleared — so ``pending()`` (the metrics gauges) costs no database work. It is this
replica's view: a dead replica's leftovers count from the pass that finds them.

Entries hold no sub-millisecond datetimes, so the exact element written can be ``$pull``-ed
back (FerretDB supports ``$pull`` of an exact element, not of a query); a publishing round
clears what it published with one ``$pullAll`` of exact elements per document.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.bounded import finish_within
from threadline.kit.diagnostics import await_chain
from threadline.kit.ids import Document
from threadline.kit.kafka import RecordPublisher, envelope_record
from threadline.kit.logs import correlation_id

__all__ = [
    "OUTBOX_FIELD",
    "Outbox",
    "OutboxWriter",
    "outbox_entry",
    "outbox_push",
    "with_outbox",
]

OUTBOX_FIELD = "_outbox"
_CREATED = f"{OUTBOX_FIELD}.created_ms"
_log = structlog.get_logger(__name__)

BeforeRelay = Callable[[Any], Awaitable[None]]
"""Finishes the write of one document (by ``_id``) before the relay publishes its events."""
_Batch = tuple[AsyncCollection[Document], Any, list[Document]]
"""A collection, the ``_id`` of the document holding the entries, and the entries."""


def outbox_entry(envelope: Envelope[Any]) -> Document:
    """The pending record stored with the state change (correlation id filled from context)."""
    if envelope.correlation_id is None and (bound := correlation_id()):
        envelope = envelope.model_copy(update={"correlation_id": bound})
    record = envelope_record(envelope)
    return {
        "id": str(envelope.id),
        "topic": record["topic"],
        "key": record["key"],
        "value": record["value"].decode(),
        "headers": record["headers"],
        "created_ms": int(time.time() * 1000),
    }


def with_outbox(document: Document, entries: Sequence[Document]) -> Document:
    """A new document to insert, carrying its pending events."""
    return {**document, OUTBOX_FIELD: list(entries)}


def outbox_push(entries: Sequence[Document]) -> Document:
    """The ``$push`` clause that adds pending events to an update of existing state."""
    if len(entries) == 1:
        return {OUTBOX_FIELD: entries[0]}
    return {OUTBOX_FIELD: {"$each": list(entries)}}


MAX_BATCHES_PER_ROUND = 256
"""Scheduled writes published together in one round of the background publisher."""

CLEAR_CONCURRENCY = 4
"""Clearing writes of one round in flight at once."""

PUBLISHING_TASK_PREFIX = "outbox publishing: "
"""Names the publishing rounds' task and each publish's own task (in task dumps)."""

LOCK_WAIT_WARNING_SECONDS = 60.0
"""A relay pass that waited this long for the publishing round logs where that round waits."""

RELAY_SWEEP_SECONDS = 300.0
"""Safety sweep: how often the relay scans for what a process that never came back left."""


class Outbox:
    """Publishes pending events right after their write, and relays what was left behind.

    After a failed publish the outbox stops publishing directly and leaves everything to
    the relay until it has caught up, so one aggregate's events keep their order.
    ``run`` drives both the publisher and the relay; it runs for the app's lifetime.
    """

    def __init__(
        self,
        publisher: RecordPublisher,
        *,
        collections: Iterable[AsyncCollection[Document]] = (),
        publish_timeout_seconds: float = 15.0,
    ) -> None:
        self._publisher = publisher
        self._collections = list(collections)
        self._timeout = publish_timeout_seconds
        self._degraded = False
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self._rescan = False  # something may have been left pending: relay at the next tick
        self._relay_soon: list[float] = []  # monotonic times of extra relay passes
        self._before_relay: dict[str, BeforeRelay] = {}
        self._pending: dict[str, int] = {}  # known pending entries: event id → created_ms
        # Written while degraded since the current relay scan began: their inserts may have
        # landed after the scan's cursor passed them (see ``relay_once``).
        self._written_while_degraded: list[_Batch] = []

    def watch(self, collection: AsyncCollection[Document]) -> None:
        """Include a collection in relay passes (every collection that writes outbox events)."""
        if collection not in self._collections:
            self._collections.append(collection)

    def before_relay(self, collection: AsyncCollection[Document], finish: BeforeRelay) -> None:
        """Have the relay call ``finish(document_id)`` before it publishes the pending events
        of a document of ``collection``: a write whose follow-up step (run between the write
        and the publish, see ``OutboxWriter.insert_one``'s ``before_publish``) may have been
        cut short by a crash gets it done first. It must be idempotent."""
        self.watch(collection)
        self._before_relay[collection.name] = finish

    def left_pending(self, entries: Sequence[Document]) -> None:
        """Entries written but not scheduled (their write's follow-up step failed): count
        them as pending and relay them once their grace period is over."""
        self._pending.update((entry["id"], entry["created_ms"]) for entry in entries)
        self._relay_soon.append(time.monotonic())

    def writer(self, collection: AsyncCollection[Document]) -> OutboxWriter:
        """Writes to ``collection`` that carry their events (and the relay watches it)."""
        self.watch(collection)
        return OutboxWriter(collection, self)

    @property
    def degraded(self) -> bool:
        return self._degraded

    def schedule(
        self, collection: AsyncCollection[Document], document_id: Any, entries: Sequence[Document]
    ) -> None:
        """Queue entries just written with ``document_id`` for publishing, in write order.

        While degraded nothing is queued: the relay publishes everything pending in order.
        """
        self._pending.update((entry["id"], entry["created_ms"]) for entry in entries)
        if not entries:
            return
        if self._degraded:
            self._written_while_degraded.append((collection, document_id, list(entries)))
        else:
            self._queue.put_nowait((collection, document_id, list(entries)))

    def pending(self) -> tuple[int, float]:
        """How many events this replica knows to wait for publishing, and the oldest one's
        age in seconds (from memory: no database work)."""
        oldest_ms = min(self._pending.values(), default=None)
        age = 0.0 if oldest_ms is None else max(time.time() - oldest_ms / 1000, 0.0)
        return len(self._pending), age

    async def drain(self) -> None:
        """Wait until everything scheduled so far was published or left to the relay."""
        await self._queue.join()

    async def _publish_scheduled(self) -> None:
        while True:
            batches = [await self._queue.get()]
            while not self._queue.empty() and len(batches) < MAX_BATCHES_PER_ROUND:
                batches.append(self._queue.get_nowait())
            try:
                if not self._degraded:
                    async with self._lock:
                        await self._publish_round(batches)
            except Exception:  # storage hiccup while clearing: the relay republishes
                self._rescan = True
                # The rescan skips entries younger than the grace, as these are: relay them
                # again once they are past it, not only at the next safety sweep.
                self._relay_soon.append(time.monotonic())
                _log.warning("publishing scheduled events failed", exc_info=True)
            finally:
                for _ in batches:
                    self._queue.task_done()

    async def _publish_round(self, batches: Sequence[_Batch]) -> None:
        """Publish what is queued: one key's events in write order, different keys at the
        same time (Kafka orders per key only); then clear everything that was published."""
        by_key: dict[str, list[tuple[AsyncCollection[Document], Any, Document]]] = {}
        for collection, document_id, entries in batches:
            for entry in entries:
                by_key.setdefault(entry["key"], []).append((collection, document_id, entry))
        published = await asyncio.gather(*(self._publish_in_order(run) for run in by_key.values()))
        # One write per document clears the round (``$pullAll`` of its published entries).
        cleared: dict[tuple[str, Any], tuple[AsyncCollection[Document], Any, list[Any]]] = {}
        for run in published:
            for collection, document_id, entry in run:
                key = (collection.name, document_id)
                cleared.setdefault(key, (collection, document_id, []))[2].append(entry)
        slots = asyncio.Semaphore(CLEAR_CONCURRENCY)

        async def clear(
            collection: AsyncCollection[Document], document_id: Any, entries: list[Document]
        ) -> None:
            async with slots:
                await collection.update_one(
                    {"_id": document_id}, {"$pullAll": {OUTBOX_FIELD: entries}}
                )

        await asyncio.gather(
            *(
                clear(collection, document_id, entries)
                for collection, document_id, entries in cleared.values()
            )
        )
        for _, _, entries in cleared.values():
            self._forget(entries)

    def _forget(self, entries: Iterable[Document]) -> None:
        """Published and cleared: no longer pending."""
        for entry in entries:
            self._pending.pop(entry["id"], None)

    async def _publish_in_order(
        self, run: list[tuple[AsyncCollection[Document], Any, Document]]
    ) -> list[tuple[AsyncCollection[Document], Any, Document]]:
        """Publish ``run`` one by one; stop at the first failure (the relay takes over)."""
        for index, (_, _, entry) in enumerate(run):
            if self._degraded or not await self._publish(entry):
                return run[:index]
        return run

    async def _publish(self, entry: Document) -> bool:
        """Publish one entry within the publish timeout. ``finish_within``, not
        ``asyncio.wait_for``: wait_for waits for the cancelled publish to end, so a client
        that absorbed the cancel would hold the outbox lock, and every event, forever."""
        try:
            published = await finish_within(
                self._publisher.publish_record(
                    topic=entry["topic"],
                    key=entry["key"],
                    value=entry["value"].encode(),
                    headers=entry["headers"],
                ),
                self._timeout,
                name=f"{PUBLISHING_TASK_PREFIX}{entry['id']}",
            )
        except Exception:  # broker down: the relay will retry from storage
            published = False
        if not published:  # failed, or slower than the timeout
            self._degraded = True
            _log.warning("publish failed; event left to the outbox relay", event_id=entry["id"])
        return published

    async def _publish_and_clear(
        self, collection: AsyncCollection[Document], document_id: Any, entries: Sequence[Document]
    ) -> bool:
        for entry in entries:
            if not await self._publish(entry):
                return False
            await collection.update_one({"_id": document_id}, {"$pull": {OUTBOX_FIELD: entry}})
            self._forget([entry])
        return True

    async def _leave_degraded(self) -> None:
        """Publish directly again. Writes made while this last scan ran may have landed
        after its cursor (the chaos run: 42 posts written as Kafka came back stayed pending
        until the 5-minute sweep): they are published first, in write order, while the lock
        holds back the newer writes now queued for direct publishing. If the broker fails
        again meanwhile, the outbox is degraded again and the relay has them."""
        self._degraded = False
        while self._written_while_degraded and not self._degraded:
            backlog, self._written_while_degraded = self._written_while_degraded, []
            await self._publish_round(backlog)
        if not self._degraded:
            _log.info("outbox relay caught up; publishing directly again")

    async def relay_once(self, *, grace_seconds: float) -> int:
        """Publish pending entries older than ``grace_seconds`` (all when ≤ 0), oldest first.

        Returns how many were published.

        Clears the degraded state only when a pass finds nothing pending at all, so events
        written while degraded are relayed before direct publishing resumes.
        """
        if grace_seconds > 0:
            cutoff = int((time.time() - grace_seconds) * 1000)
            query: Document = {_CREATED: {"$lt": cutoff}}
        else:  # everything pending, however young: "nothing found" must mean nothing left
            cutoff = int(time.time() * 1000)
            query = {f"{OUTBOX_FIELD}.0": {"$exists": True}}
        published = 0
        async with self._lock_held():  # scan and publish under it: no write slips in between
            self._written_while_degraded.clear()  # written before the scan: it sees them
            pending: list[tuple[str, AsyncCollection[Document], Any, Document]] = []
            for collection in self._collections:
                async for document in collection.find(query, {OUTBOX_FIELD: 1}):
                    pending.extend(
                        (entry["id"], collection, document["_id"], entry)
                        for entry in document.get(OUTBOX_FIELD, [])
                    )
            pending.sort(key=lambda item: item[0])  # UUIDv7: id order is creation order
            self._track_scan(cutoff, [entry for *_, entry in pending])
            finished: set[tuple[str, Any]] = set()
            for _, collection, document_id, entry in pending:
                finish = self._before_relay.get(collection.name)
                if finish is not None and (collection.name, document_id) not in finished:
                    await finish(document_id)
                    finished.add((collection.name, document_id))
                if not await self._publish_and_clear(collection, document_id, [entry]):
                    return published
                published += 1
            if self._degraded and not pending:
                await self._leave_degraded()
        if published:
            _log.info("outbox relay published pending events", count=published)
        return published

    @contextlib.asynccontextmanager
    async def _lock_held(self) -> AsyncIterator[None]:
        """The lock, for a relay pass. While the publishing round holds it for longer than
        ``LOCK_WAIT_WARNING_SECONDS``, say so, with where that round waits: a stall here
        stops every event of the service, and must not be silent."""
        waited = 0.0
        while True:
            if not self._lock.locked():
                await self._lock.acquire()  # free: taken at once, without a turn of the loop
                break
            try:
                async with asyncio.timeout(LOCK_WAIT_WARNING_SECONDS):
                    await self._lock.acquire()
                break
            except TimeoutError:
                waited += LOCK_WAIT_WARNING_SECONDS
                _log.warning(
                    "outbox relay still waits for the publishing round",
                    waited_seconds=waited,
                    awaits={
                        task.get_name(): await_chain(task)
                        for task in asyncio.all_tasks()
                        if task.get_name().startswith(PUBLISHING_TASK_PREFIX)
                    },
                )
        try:
            yield
        finally:
            self._lock.release()

    def _track_scan(self, cutoff_ms: int, found: Sequence[Document]) -> None:
        """A relay pass saw everything pending created before ``cutoff_ms``: known entries
        that old it did not find were published meanwhile (by another replica)."""
        found_ids = {entry["id"] for entry in found}
        for event_id, created_ms in list(self._pending.items()):
            if created_ms < cutoff_ms and event_id not in found_ids:
                del self._pending[event_id]
        self._pending.update((entry["id"], entry["created_ms"]) for entry in found)

    async def run(
        self,
        *,
        relay_interval_seconds: float,
        relay_grace_seconds: float,
        relay_sweep_seconds: float = RELAY_SWEEP_SECONDS,
    ) -> None:
        """Publish scheduled events and relay left-behind ones until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._publish_scheduled(), name=f"{PUBLISHING_TASK_PREFIX}rounds")
            tasks.create_task(
                self._relay_forever(
                    interval_seconds=relay_interval_seconds,
                    grace_seconds=relay_grace_seconds,
                    sweep_seconds=relay_sweep_seconds,
                )
            )

    async def _relay_forever(
        self, *, interval_seconds: float, grace_seconds: float, sweep_seconds: float
    ) -> None:
        """Relay when something may be pending (see the module doc); while degraded,
        everything pending (no grace) to catch up."""
        started = time.monotonic()
        # start-up: at once, and again when what the last process wrote is past its grace
        due = [started, started + grace_seconds + interval_seconds]
        while True:
            now = time.monotonic()
            due = sorted(
                [*due, *(at + grace_seconds + interval_seconds for at in self._relay_soon)]
            )
            self._relay_soon.clear()
            if self._degraded or self._rescan or (due and now >= due[0]):
                self._rescan = False
                due = [at for at in due if at > now] or [now + sweep_seconds]
                try:
                    await self.relay_once(grace_seconds=0 if self._degraded else grace_seconds)
                except Exception:  # storage hiccup: log and try again next tick
                    self._rescan = True
                    _log.warning("outbox relay pass failed", exc_info=True)
            await asyncio.sleep(interval_seconds)


_Events = Sequence[Envelope[Any]]


class OutboxWriter:
    """One collection's writes, each with the events it causes, as single calls.

    Every method writes the state and its events in ONE single-document write and, only
    when that write took effect, schedules the events for publishing. Filters of updates
    must name the document by ``_id`` (the outbox clears entries by it).
    """

    def __init__(self, collection: AsyncCollection[Document], outbox: Outbox) -> None:
        self.collection = collection
        self._outbox = outbox

    @contextlib.contextmanager
    def _maybe_applied(self, entries: Sequence[Document]) -> Iterator[None]:
        """A write that raised may still have been applied (the connection died after the
        server wrote it): its events would then wait, unscheduled, for the relay's slow
        sweep. Have the relay look once they are past the grace (a pass that finds nothing
        only forgets them). A duplicate key means the write was refused: nothing to do."""
        try:
            yield
        except DuplicateKeyError:
            raise
        except Exception:
            if entries:
                self._outbox.left_pending(entries)
            raise

    async def insert_one(
        self,
        document: Document,
        *,
        events: _Events,
        before_publish: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Insert ``document`` with its events. ``before_publish`` (a follow-up write, e.g.
        a counter on another document) runs after the insert and before the events are
        handed to the publisher, so no event is out before it is done; if it fails or the
        process dies first, the events stay pending and the relay calls the collection's
        ``Outbox.before_relay`` step before publishing them."""
        entries = [outbox_entry(event) for event in events]
        with self._maybe_applied(entries):
            await self.collection.insert_one(with_outbox(document, entries))
        if before_publish is not None:
            try:
                await before_publish()
            except BaseException:
                self._outbox.left_pending(entries)
                raise
        self._outbox.schedule(self.collection, document["_id"], entries)

    async def insert_many(self, documents: Sequence[tuple[Document, _Events]]) -> None:
        """Insert each document with its own events, all or none: no multi-document
        transactions exist here, so a failure part-way removes what was inserted, then
        re-raises."""
        rows = [
            (document, [outbox_entry(event) for event in events]) for document, events in documents
        ]
        try:
            with self._maybe_applied([entry for _, entries in rows for entry in entries]):
                await self.collection.insert_many(
                    [with_outbox(document, entries) for document, entries in rows], ordered=True
                )
        except BulkWriteError:
            await self.collection.delete_many({"_id": {"$in": [doc["_id"] for doc, _ in rows]}})
            raise
        for document, entries in rows:
            self._outbox.schedule(self.collection, document["_id"], entries)

    async def update_one(
        self, filter: Document, update: Document, *, events: _Events, upsert: bool = False
    ) -> bool:
        """Apply ``update`` plus the events; True when a document was modified or upserted.
        (An upsert racing a concurrent insert raises ``DuplicateKeyError`` as usual.)"""
        document_id = _document_id(filter)
        entries = [outbox_entry(event) for event in events]
        with self._maybe_applied(entries):
            result = await self.collection.update_one(
                filter, _with_push(update, entries), upsert=upsert
            )
        if result.modified_count != 1 and result.upserted_id is None:
            return False
        self._outbox.schedule(self.collection, document_id, entries)
        return True

    async def replace_one(
        self, filter: Document, replacement: Document, *, events: _Events
    ) -> bool:
        """Replace the matching document by ``replacement`` carrying the events; False when
        nothing matched."""
        document_id = _document_id(filter)
        entries = [outbox_entry(event) for event in events]
        with self._maybe_applied(entries):
            result = await self.collection.replace_one(filter, with_outbox(replacement, entries))
        if result.modified_count != 1:
            return False
        self._outbox.schedule(self.collection, document_id, entries)
        return True

    async def find_one_and_update(
        self, filter: Document, update: Document, *, events: _Events
    ) -> Document | None:
        """Apply ``update`` plus the events and return the document after it (without its
        pending events), or None when nothing matched."""
        entries = [outbox_entry(event) for event in events]
        with self._maybe_applied(entries):
            document = await self.collection.find_one_and_update(
                filter, _with_push(update, entries), return_document=ReturnDocument.AFTER
            )
        if document is None:
            return None
        self._outbox.schedule(self.collection, document["_id"], entries)
        document.pop(OUTBOX_FIELD, None)
        return document


def _with_push(update: Document, entries: Sequence[Document]) -> Document:
    if not entries:
        return update
    if OUTBOX_FIELD in update.get("$push", {}):
        raise ValueError("the update already pushes to the outbox field")
    return {**update, "$push": {**update.get("$push", {}), **outbox_push(entries)}}


def _document_id(filter: Document) -> Any:
    document_id = filter.get("_id")
    if document_id is None or isinstance(document_id, dict):
        raise ValueError("an outbox write's filter must name its document by _id")
    return document_id
