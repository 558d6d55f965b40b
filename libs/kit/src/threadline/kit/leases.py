"""Leased claims, and periodic jobs that run once across a service's replicas.

A lease is one document per name in the service's ``leases`` collection: who holds it and
until when. FerretDB has no TTL indexes, so expiry lives in the queries: a claim takes the
lease when it is free or expired (``expires_at < now``), a holder renews it while it works,
releases it when done, and when a holder dies its lease simply runs out and another
replica takes it over. Clocks of replicas must agree to well within a lease's length.

``periodic`` builds on it: every replica runs the loop, only the lease holder runs the job,
and the lease document remembers when the job last ran, so a new holder keeps the cadence.

``ItemClaims`` is the same idea for many small work items (a mail to send, a reminder to
fire): the claim lives in the item's own document, and the item's due time doubles as the
claim's expiry, so one index on it serves both the due scan and the takeover.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.kit.ids import Document, new_id

__all__ = ["ItemClaims", "Leases", "instance_name", "periodic"]

_log = structlog.get_logger(__name__)
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def instance_name() -> str:
    """This process's holder name: host, pid and a random part (pids repeat in containers)."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"


class Leases:
    """Claims on named leases for one holder (this process)."""

    def __init__(
        self,
        database: AsyncDatabase[dict[str, Any]],
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._leases = database["leases"]
        self.holder = holder or instance_name()
        self._clock = clock

    async def claim(self, name: str, *, seconds: float) -> bool:
        """Take the lease if it is free or expired, or extend it if this holder has it."""
        now = self._clock()
        try:
            await self._leases.update_one(
                {"_id": name, "expires_at": {"$lt": now}},
                {"$set": {"holder": self.holder, "expires_at": now + timedelta(seconds=seconds)}},
                upsert=True,
            )
        except DuplicateKeyError:  # held and not expired: ours to renew, or someone else's
            return await self.renew(name, seconds=seconds)
        return True

    async def renew(self, name: str, *, seconds: float) -> bool:
        """Extend a lease this holder still has; False when it expired or was taken over."""
        now = self._clock()
        result = await self._leases.update_one(
            {"_id": name, "holder": self.holder, "expires_at": {"$gte": now}},
            {"$set": {"expires_at": now + timedelta(seconds=seconds)}},
        )
        return result.matched_count == 1

    async def release(self, name: str) -> None:
        """Give the lease up now (if still held), so another replica need not wait."""
        await self._leases.update_one(
            {"_id": name, "holder": self.holder}, {"$set": {"expires_at": _NEVER}}
        )

    async def holder_of(self, name: str) -> str | None:
        """Who holds the lease now (None when free or expired)."""
        found = await self._leases.find_one({"_id": name, "expires_at": {"$gte": self._clock()}})
        return None if found is None else str(found["holder"])

    async def last_run(self, name: str) -> datetime | None:
        found = await self._leases.find_one({"_id": name}, {"last_run_at": 1})
        return None if found is None else found.get("last_run_at")

    async def mark_run(self, name: str) -> None:
        await self._leases.update_one(
            {"_id": name, "holder": self.holder}, {"$set": {"last_run_at": self._clock()}}
        )

    @contextlib.asynccontextmanager
    async def kept(self, name: str, *, seconds: float) -> AsyncIterator[None]:
        """Renew the (already claimed) lease in the background while the block runs."""

        async def keep_renewing() -> None:
            while True:
                await asyncio.sleep(seconds / 3)
                try:
                    if not await self.renew(name, seconds=seconds):
                        _log.warning("lease lost while working", lease=name)
                        return
                except Exception:  # storage hiccup: try again before the lease runs out
                    _log.warning("renewing a lease failed", lease=name, exc_info=True)

        renewing = asyncio.create_task(keep_renewing())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    def now(self) -> datetime:
        return self._clock()


class ItemClaims:
    """Claims on work items kept in their own documents, for one collection.

    An item is claimable when it is due (``due_field`` ≤ now): never claimed, or claimed by
    a holder whose lease ran out. Claiming moves the due time forward by the lease and
    stores the claim's token in ``claim_field``; only that token can renew, finish, release
    or delete the item. A holder that dies simply lets its items come due again, and the
    next claim takes them over. Every write is one flat-filtered update (FerretDB).
    """

    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        due_field: str = "due_at",
        claim_field: str = "claim",
    ) -> None:
        self._items = collection
        self._due = due_field
        self._claim = claim_field

    async def due(self, query: Document, *, now: datetime, limit: int) -> list[Document]:
        """Ids and due times of up to ``limit`` claimable items matching ``query``, the
        longest due first."""
        cursor = self._items.find({**query, self._due: {"$lte": now}}, {"_id": 1, self._due: 1})
        return await cursor.sort(self._due, 1).limit(limit).to_list()

    async def claim(
        self,
        item_id: Any,
        *,
        token: str,
        now: datetime,
        lease: timedelta,
        due_at: datetime | None = None,
    ) -> bool:
        """Claim one item if it is claimable; with ``due_at`` (as read by ``due``), only if
        its due time is still that one, i.e. nobody claimed or rescheduled it since."""
        due: Any = {"$lte": now} if due_at is None else due_at
        result = await self._items.update_one(
            {"_id": item_id, self._due: due},
            {"$set": {self._due: now + lease, self._claim: token}},
        )
        return result.modified_count == 1

    async def claim_due(
        self,
        query: Document,
        *,
        token: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        also_set: Document | None = None,
    ) -> list[Document]:
        """Claim up to ``limit`` due items matching ``query`` (setting ``also_set`` too) in
        one update, and return the ones this claim won. Use a fresh ``token`` per call: the
        items still carrying it afterwards are exactly the ones won from other replicas."""
        due = await self.due(query, now=now, limit=limit)
        if not due:
            return []
        await self._items.update_many(
            {"_id": {"$in": [item["_id"] for item in due]}, **query, self._due: {"$lte": now}},
            {"$set": {**(also_set or {}), self._due: now + lease, self._claim: token}},
        )
        return await self._items.find({self._claim: token}).to_list()

    async def renew(self, item_id: Any, *, token: str, now: datetime, lease: timedelta) -> bool:
        """Extend a claim still held; False when it ran out or another holder took over."""
        result = await self._items.update_one(
            {"_id": item_id, self._claim: token, self._due: {"$gt": now}},
            {"$set": {self._due: now + lease}},
        )
        return result.matched_count == 1

    async def finish(self, item_id: Any, *, token: str, update: Document) -> bool:
        """Apply ``update`` (done, failed, or a new due time to retry) and drop the claim,
        only while ``token`` holds it; False when the claim was lost."""
        result = await self._items.update_one(
            {"_id": item_id, self._claim: token},
            {**update, "$set": {**update.get("$set", {}), self._claim: None}},
        )
        return result.modified_count == 1

    async def release(self, item_id: Any, *, token: str, now: datetime) -> bool:
        """Give the item back, due at once, so another replica need not wait for the lease."""
        return await self.finish(item_id, token=token, update={"$set": {self._due: now}})

    async def delete(self, item_id: Any, *, token: str) -> bool:
        """Remove the item, only while ``token`` holds it (a rescheduled item survives)."""
        result = await self._items.delete_one({"_id": item_id, self._claim: token})
        return result.deleted_count == 1


def periodic(
    job: Callable[[], Awaitable[int]],
    *,
    every_seconds: float,
    what: str,
    leases: Leases | None = None,
    name: str | None = None,
    lease_seconds: float = 30.0,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A ``background`` coroutine running ``job`` every ``every_seconds`` for the app's
    lifetime. ``job`` returns how many things it handled (logged when not zero); a failure
    is logged and the job runs again next time.

    With ``leases``, the job runs once across replicas: only the holder of the lease
    ``name`` (default: ``what``) runs it, renewing the lease while it works; when the holder
    dies, another replica takes over within ``lease_seconds``.
    """
    if leases is None:

        async def run_everywhere() -> None:
            while True:
                await _run_logged(job, what)
                await asyncio.sleep(every_seconds)

        run_everywhere.__qualname__ = f"periodic({what})"  # the task's name in shutdown logs
        return run_everywhere

    lease = name or what
    check_seconds = min(every_seconds, lease_seconds / 3)
    every = timedelta(seconds=every_seconds)

    async def run_once_across_replicas() -> None:
        while True:
            try:
                if await leases.claim(lease, seconds=lease_seconds):
                    last = await leases.last_run(lease)
                    if last is None or leases.now() - last >= every:
                        async with leases.kept(lease, seconds=lease_seconds):
                            await _run_logged(job, what)
                        await leases.mark_run(lease)
            except Exception:  # storage hiccup while claiming: try again at the next check
                _log.warning("claiming a periodic job's lease failed", lease=lease, exc_info=True)
            await asyncio.sleep(check_seconds)

    run_once_across_replicas.__qualname__ = f"periodic({what})"  # the task's name in logs
    return run_once_across_replicas


async def _run_logged(job: Callable[[], Awaitable[int]], what: str) -> None:
    try:
        count = await job()
        if count:
            _log.info(what, count=count)
    except Exception:  # storage hiccup: the next run tries again
        _log.warning(f"{what} failed", exc_info=True)
