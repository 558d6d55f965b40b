"""Pending "tasks completed" messages, one document per thread (K4).

Rapid ticks are batched: the first completion of a batch sets ``due_at`` (now + the
window), later ones only add their task ids and actor, and every change keeps the newest
snapshot (``snapshot_revision`` guards against an older one overwriting it). Any replica's
periodic flush claims a due batch with a lease (``lease_until``), posts one message and
clears the batch; a crash between claim and clear leaves the batch to be claimed again
when the lease expires, and the message id (derived from the snapshot revision) makes
that second post a no-op. Nothing lives in a process's memory.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["MongoTaskDigests"]

Document = dict[str, Any]
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class MongoTaskDigests:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._digests = database["task_digests"]

    async def record_completion(
        self,
        *,
        firm: str,
        thread_id: str,
        account_id: str,
        revision: int,
        task_ids: list[str],
        actor: Document,
        due_at: datetime,
    ) -> None:
        """Add ticked tasks to the thread's open batch (opening one if none is open).
        Completions already posted (revision ≤ ``posted_revision``) are ignored, so a
        redelivered event never announces a tick twice."""
        await self._digests.update_one(
            {"_id": thread_id},
            {
                "$setOnInsert": {
                    "firm": firm,
                    "account_id": account_id,
                    "posted_revision": 0,
                    "snapshot_revision": 0,
                    "lease_until": _NEVER,
                }
            },
            upsert=True,
        )
        await self._digests.update_one(
            {"_id": thread_id, "posted_revision": {"$lt": revision}},
            {
                "$addToSet": {"pending_task_ids": {"$each": task_ids}, "actors": actor},
                "$min": {"due_at": due_at},
            },
        )

    async def keep_snapshot(self, thread_id: str, *, revision: int, snapshot: Document) -> None:
        """Remember the newest list for the batch's message (no-op without a batch)."""
        await self._digests.update_one(
            {"_id": thread_id, "snapshot_revision": {"$lt": revision}},
            {"$set": {"snapshot": snapshot, "snapshot_revision": revision}},
        )

    async def claim_due(self, *, now: datetime, lease: timedelta) -> Document | None:
        """Lease one batch whose window has passed (and is not leased by a live replica)."""
        return await self._digests.find_one_and_update(
            {"due_at": {"$lte": now}, "lease_until": {"$lt": now}},
            {"$set": {"lease_until": now + lease}},
            return_document=ReturnDocument.AFTER,
        )

    async def posted(self, digest: Document) -> bool:
        """Close the batch just posted. False when ticks arrived after the claim: they stay
        pending (their window already passed, so the next flush posts them)."""
        revision = digest.get("snapshot_revision", 0)
        result = await self._digests.update_one(
            {"_id": digest["_id"], "snapshot_revision": revision},
            {
                "$unset": {"pending_task_ids": "", "actors": "", "due_at": ""},
                "$set": {"posted_revision": revision, "lease_until": _NEVER},
            },
        )
        if result.modified_count == 1:
            return True
        await self._digests.update_one(
            {"_id": digest["_id"]},
            {"$max": {"posted_revision": revision}, "$set": {"lease_until": _NEVER}},
        )
        return False
