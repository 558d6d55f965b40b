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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import (
    MessageEdited,
    MessagePosted,
    ThreadArchived,
    ThreadCreated,
    ThreadReopened,
)
from threadline.kit.consumer import EventRouter
from threadline.kit.policy import ThreadFacts

__all__ = ["THREAD_PROJECTION_COLLECTION", "ThreadProjection", "subscribe_threads"]

THREAD_PROJECTION_COLLECTION = "threads"

_FIRST_PAUSE_SECONDS = 0.05
_MAX_PAUSE_SECONDS = 0.5


class ThreadProjection:
    """Threads keyed ``<firm>:<thread_id>`` with account, status and mentioned staff."""

    def __init__(
        self,
        database: AsyncDatabase[dict[str, Any]],
        *,
        wait_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threads = database[THREAD_PROJECTION_COLLECTION]
        self._wait_seconds = wait_seconds
        self._clock = clock
        self._arrivals: dict[str, asyncio.Event] = {}

    async def facts(self, firm: str, thread_id: str) -> ThreadFacts | None:
        """The thread's access facts; for an unknown id, wait up to ``wait_seconds`` for it
        to arrive, then ``None``."""
        key = _key(firm, thread_id)
        deadline = self._clock() + self._wait_seconds
        pause = _FIRST_PAUSE_SECONDS
        while True:
            found = await self._facts_now(firm, key)
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

    async def _facts_now(self, firm: str, key: str) -> ThreadFacts | None:
        document = await self._threads.find_one({"_id": key})
        if document is None or "account_id" not in document:
            return None
        return ThreadFacts(
            firm=firm,
            account_id=str(document["account_id"]),
            mentioned_staff=frozenset(document.get("mentioned_staff", ())),
            archived=document.get("status") == "archived",
        )

    async def apply_created(self, event: Envelope[Any]) -> None:
        data = event.data
        key = _key(event.firm, data.thread_id)
        await self._threads.update_one(
            {"_id": key},
            {
                "$set": {
                    "firm": event.firm,
                    "thread_id": data.thread_id,
                    "account_id": data.account_id,
                },
                "$setOnInsert": {"status": "active", "status_as_of": event.occurred_at},
            },
            upsert=True,
        )
        if (arrival := self._arrivals.pop(key, None)) is not None:
            arrival.set()

    async def apply_status(self, event: Envelope[Any]) -> None:
        """Archived/reopened, guarded by the event time so an older event never wins."""
        status = "archived" if isinstance(event.data, ThreadArchived) else "active"
        await self._threads.update_one(
            {
                "_id": _key(event.firm, event.data.thread_id),
                "status_as_of": {"$lt": event.occurred_at},
            },
            {"$set": {"status": status, "status_as_of": event.occurred_at}},
        )

    async def apply_mentions(self, event: Envelope[Any]) -> None:
        """T7: staff mentioned in a posted or edited message may read the thread."""
        mentions = list(event.data.mentions)
        if mentions:
            await self._threads.update_one(
                {"_id": _key(event.firm, event.data.thread_id)},
                {"$addToSet": {"mentioned_staff": {"$each": mentions}}},
            )


def subscribe_threads(events: EventRouter, threads: ThreadProjection) -> None:
    """Feed the projection from messaging's thread and message events."""
    events.on(ThreadCreated, threads.apply_created)
    events.on(ThreadArchived, threads.apply_status)
    events.on(ThreadReopened, threads.apply_status)
    events.on(MessagePosted, threads.apply_mentions)
    events.on(MessageEdited, threads.apply_mentions)


def _key(firm: str, thread_id: str) -> str:
    return f"{firm}:{thread_id}"
