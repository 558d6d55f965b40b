"""The thread projection: the access facts of messaging's threads, for every other service.

Documents, tasks and pipeline check requests against threads they learn about from
messaging's events: each thread's account, its status (active/archived) and the staff
mentioned in it (T7). ``subscribe_threads`` feeds the projection; ``facts`` answers the
policy's ``ThreadFacts``.

A client creates a thread in messaging and may use it in another service at once (a
resource that got 201 must be usable everywhere), while the projection lags by the
event's trip through Kafka. So ``facts`` for an id the projection does not know yet WAITS,
up to ``wait_seconds`` (polling with growing pauses, and woken at once when this process
applies the thread), before answering "unknown". Known threads answer without waiting;
only ids that really do not exist pay the wait, which bounds the cost of a 404.

A service that needs more of a thread (pipeline: subject, activity, task progress)
subclasses the projection: ``initial_fields`` gives its own fields' starting values,
``created_update`` adds to the creation's one write, and ``upsert``/``set_if_newer`` let its
own handlers write the same documents. Every write is one conditional update against fields
that start at their lowest, so events from several topics, redelivered or late, converge.
A thread is *known* once its creation arrived (its document has ``account_id``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import (
    MessageEdited,
    MessagePosted,
    ThreadArchived,
    ThreadCreated,
    ThreadReopened,
)
from threadline.kit.consumer import EventRouter
from threadline.kit.ids import Document
from threadline.kit.policy import ThreadFacts

__all__ = ["THREAD_PROJECTION_COLLECTION", "ThreadProjection", "subscribe_threads"]

THREAD_PROJECTION_COLLECTION = "threads"

_FIRST_PAUSE_SECONDS = 0.05
_MAX_PAUSE_SECONDS = 0.5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ThreadProjection:
    """Threads keyed ``<firm>:<thread_id>`` with account, status and mentioned staff."""

    initial_fields: ClassVar[Mapping[str, Any]] = {}
    """A subclass's own fields at their lowest, in every thread document however it starts."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        wait_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.collection = database[THREAD_PROJECTION_COLLECTION]
        self._wait_seconds = wait_seconds
        self._clock = clock
        self._arrivals: dict[str, asyncio.Event] = {}

    @staticmethod
    def key(firm: str, thread_id: str) -> str:
        return f"{firm}:{thread_id}"

    async def facts(self, firm: str, thread_id: str) -> ThreadFacts | None:
        """The thread's access facts; for an unknown id, wait up to ``wait_seconds`` for it
        to arrive, then ``None``."""
        document = await self.document(firm, thread_id)
        if document is None:
            return None
        return ThreadFacts(
            firm=firm,
            account_id=str(document["account_id"]),
            mentioned_staff=frozenset(document.get("mentioned_staff", ())),
            archived=document.get("status") == "archived",
        )

    async def document(self, firm: str, thread_id: str, *, wait: bool = True) -> Document | None:
        """The known thread's document; for an unknown id, with ``wait``, wait up to
        ``wait_seconds`` for it to arrive, then ``None``."""
        key = self.key(firm, thread_id)
        deadline = self._clock() + (self._wait_seconds if wait else 0)
        pause = _FIRST_PAUSE_SECONDS
        while True:
            found = _known(await self.collection.find_one({"_id": key}))
            remaining = deadline - self._clock()
            if found is not None or remaining <= 0:
                return found
            arrival = self._arrivals.setdefault(key, asyncio.Event())
            try:
                async with asyncio.timeout(min(pause, remaining)):
                    await arrival.wait()
            except TimeoutError:
                pass
            pause = min(pause * 2, _MAX_PAUSE_SECONDS)

    async def documents(self, firm: str, thread_ids: Collection[str]) -> list[Document]:
        """The known threads among ``thread_ids``, in that order (no waiting)."""
        if not thread_ids:
            return []
        cursor = self.collection.find({"_id": {"$in": [self.key(firm, t) for t in thread_ids]}})
        found = {
            document["thread_id"]: document
            async for document in cursor
            if _known(document) is not None
        }
        return [found[t] for t in thread_ids if t in found]

    # -- writing -------------------------------------------------------------------------

    def created_update(self, event: Envelope[Any]) -> Document:
        """More update operators for a thread's creation, merged into its one write."""
        return {}

    async def apply_created(self, event: Envelope[Any]) -> None:
        data = event.data
        update: Document = {
            "$set": {
                "firm": event.firm,
                "thread_id": data.thread_id,
                "account_id": data.account_id,
            },
            "$setOnInsert": {"status": "active", "status_as_of": event.occurred_at},
        }
        for operator, fields in self.created_update(event).items():
            update[operator] = {**update.get(operator, {}), **fields}
        await self.upsert(event.firm, data.thread_id, update)
        key = self.key(event.firm, data.thread_id)
        if (arrival := self._arrivals.pop(key, None)) is not None:
            arrival.set()

    async def apply_status(self, event: Envelope[Any]) -> None:
        """Archived/reopened, guarded by the event time so an older event never wins."""
        status = "archived" if isinstance(event.data, ThreadArchived) else "active"
        await self.set_if_newer(
            event.firm,
            event.data.thread_id,
            {"status_as_of": {"$lt": event.occurred_at}},
            {"status": status, "status_as_of": event.occurred_at},
        )

    async def apply_mentions(self, event: Envelope[Any]) -> None:
        """T7: staff mentioned in a posted or edited message may read the thread."""
        mentions = list(event.data.mentions)
        if mentions:
            await self.collection.update_one(
                {"_id": self.key(event.firm, event.data.thread_id)},
                {"$addToSet": {"mentioned_staff": {"$each": mentions}}},
            )

    def _initial(self, firm: str, thread_id: str) -> Document:
        """A thread document's starting state: every ordering field at its lowest."""
        return {
            "firm": firm,
            "thread_id": thread_id,
            "status": "active",
            "status_as_of": _EPOCH,
            **self.initial_fields,
        }

    async def upsert(self, firm: str, thread_id: str, update: Document) -> None:
        """Apply ``update`` in one write, starting the thread's document if it has none
        (its initial fields, except those ``update`` writes)."""
        written = {field for fields in update.values() for field in fields}
        on_insert = {
            field: value
            for field, value in self._initial(firm, thread_id).items()
            if field not in written
        }
        on_insert.update(update.get("$setOnInsert", {}))
        await self.collection.update_one(
            {"_id": self.key(firm, thread_id)},
            {**update, "$setOnInsert": on_insert},
            upsert=True,
        )

    async def set_if_newer(
        self, firm: str, thread_id: str, guard: Document, fields: Document
    ) -> None:
        """Set ``fields`` unless ``guard`` (a flat filter on an ordering field) shows a
        newer state; one write when the document exists (the usual case), an insert of
        the thread's initial document with ``fields`` when it does not."""
        key = self.key(firm, thread_id)
        result = await self.collection.update_one({"_id": key, **guard}, {"$set": fields})
        if result.matched_count:
            return
        try:
            await self.collection.insert_one(
                {"_id": key, **self._initial(firm, thread_id), **fields}
            )
        except DuplicateKeyError:
            return  # it exists with a newer state than ``fields``


def subscribe_threads(events: EventRouter, threads: ThreadProjection) -> None:
    """Feed the projection from messaging's thread and message events."""
    events.on(ThreadCreated, threads.apply_created)
    events.on(ThreadArchived, threads.apply_status)
    events.on(ThreadReopened, threads.apply_status)
    events.on(MessagePosted, threads.apply_mentions)
    events.on(MessageEdited, threads.apply_mentions)


def _known(document: Document | None) -> Document | None:
    return document if document is not None and "account_id" in document else None
