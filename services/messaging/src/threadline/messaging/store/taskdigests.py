"""Pending "tasks completed" messages, one document per thread (K4).

Rapid ticks are batched: the first completion of a batch sets ``due_at`` (its tick's time
+ the window), later ones only add their task ids and actor, and every change keeps the
newest snapshot (``snapshot_revision`` guards against an older one overwriting it). The
periodic flush claims a due batch — moving it to ``claimed`` under a lease in one
conditional write, so later ticks open the next batch — posts one message and forgets the
batch; a crash between claim and post leaves the claimed batch to be taken over when the
lease expires, and the message id (derived from the snapshot revision) makes a second post
a no-op. Nothing lives in a process's memory.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from threadline.kit.ids import Document

__all__ = ["MongoTaskDigests"]

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
        """Take one batch whose window has passed: its ticks, actors and snapshot move to
        ``claimed`` in one conditional write (ticks arriving from now on open the next
        batch), ``posted_revision`` moves past it (a redelivered tick is not announced
        again) and a lease marks it as being posted. A batch claimed by a replica that
        died before posting it (lease expired) is taken over as it is."""
        abandoned = await self._digests.find_one_and_update(
            {"claimed_revision": {"$gt": 0}, "lease_until": {"$lt": now}},
            {"$set": {"lease_until": now + lease}},
            return_document=ReturnDocument.AFTER,
        )
        if abandoned is not None:
            return dict(abandoned["claimed"]) | {"_id": abandoned["_id"]}
        for _ in range(10):  # a tick landing between the read and the write: read again
            due = await self._digests.find_one(
                {"due_at": {"$lte": now}, "lease_until": {"$lt": now}}
            )
            if due is None:
                return None
            batch = {
                "firm": due["firm"],
                "account_id": due["account_id"],
                "task_ids": due.get("pending_task_ids", []),
                "actors": due.get("actors", []),
                "snapshot": due.get("snapshot") or {},
                "revision": due.get("snapshot_revision", 0),
            }
            result = await self._digests.update_one(
                {
                    "_id": due["_id"],
                    "due_at": due["due_at"],
                    "snapshot_revision": batch["revision"],
                },
                {
                    "$set": {
                        "claimed": batch,
                        "claimed_revision": max(batch["revision"], 1),
                        "lease_until": now + lease,
                    },
                    "$max": {"posted_revision": batch["revision"]},
                    "$unset": {"pending_task_ids": "", "actors": "", "due_at": ""},
                },
            )
            if result.modified_count == 1:
                return batch | {"_id": due["_id"]}
        return None

    async def posted(self, batch: Document) -> None:
        """The claimed batch's message is stored: forget the batch."""
        await self._digests.update_one(
            {"_id": batch["_id"], "claimed_revision": max(batch["revision"], 1)},
            {
                "$unset": {"claimed": "", "claimed_revision": ""},
                "$set": {"lease_until": _NEVER},
            },
        )
