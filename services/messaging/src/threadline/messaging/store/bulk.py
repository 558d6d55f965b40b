"""Bulk message jobs (P2): the job document and one result document per account.

A job is worked on by one replica at a time: the replica holding its lease
(``lease_owner`` until ``lease_until``). Progress moves by batches: ``record_batch``
advances ``cursor`` only from the batch's start and only for the lease holder, so a batch
redone after a crash or a takeover is counted once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.messaging.store.threads import insert_new

__all__ = ["MongoBulkStore"]

Document = dict[str, Any]
_SUMMARY = {"account_ids": 0}


class MongoBulkStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._jobs = database["bulk_jobs"]
        self._results = database["bulk_results"]

    async def insert(self, job: Document) -> bool:
        """Store a new job; False when a job with its id exists (an idempotent retry)."""
        try:
            await self._jobs.insert_one(job)
        except DuplicateKeyError:
            return False
        return True

    async def summary(self, firm: str, job_id: str) -> Document | None:
        """The job without its account list."""
        return await self._jobs.find_one({"_id": job_id, "firm": firm}, _SUMMARY)

    async def claimable(self, now: datetime, *, limit: int) -> list[str]:
        """Unfinished jobs whose lease expired (or that never had one), oldest first."""
        cursor = (
            self._jobs.find({"status": "running", "lease_until": {"$lt": now}}, {"_id": 1})
            .sort("created_at", 1)
            .limit(limit)
        )
        return [document["_id"] async for document in cursor]

    async def claim(
        self, job_id: str, *, owner: str, now: datetime, until: datetime
    ) -> Document | None:
        """Take the job's lease if it expired; the whole job, or None if someone holds it."""
        return await self._jobs.find_one_and_update(
            {"_id": job_id, "status": "running", "lease_until": {"$lt": now}},
            {"$set": {"lease_owner": owner, "lease_until": until}},
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, job_id: str, *, owner: str, until: datetime) -> bool:
        """Extend the lease; False when it was lost (another replica took the job over)."""
        result = await self._jobs.update_one(
            {"_id": job_id, "lease_owner": owner, "status": "running"},
            {"$set": {"lease_until": until}},
        )
        return result.matched_count == 1

    async def record_batch(
        self, job_id: str, *, owner: str, start: int, end: int, counts: dict[str, int]
    ) -> bool:
        """Move the job past the batch ``[start, end)`` and add its counts, once."""
        result = await self._jobs.update_one(
            {"_id": job_id, "lease_owner": owner, "cursor": start},
            {"$set": {"cursor": end}, "$inc": counts},
        )
        return result.modified_count == 1

    async def finish(self, job_id: str, *, owner: str, at: datetime, released: datetime) -> None:
        await self._jobs.update_one(
            {"_id": job_id, "lease_owner": owner, "status": "running"},
            {"$set": {"status": "done", "finished_at": at, "lease_until": released}},
        )

    async def add_results(self, results: list[Document]) -> None:
        """Per-account results; ids already present (a redone batch) are kept as they are."""
        if results:
            await insert_new(self._results, results)

    async def results(self, job_id: str, *, after: int, limit: int) -> list[Document]:
        """Up to ``limit`` + 1 results with index > ``after``, in request order."""
        return (
            await self._results.find({"job_id": job_id, "index": {"$gt": after}})
            .sort("index", 1)
            .limit(limit + 1)
            .to_list()
        )
