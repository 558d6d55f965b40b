"""Bulk message jobs (P2): the job document, its account list in chunks, and one result
document per account.

The account list (up to 10,000 ids) is kept out of the job document: the job is updated
after every batch, and FerretDB rewrites a whole document on every update while holding
the server's write lock (0.6-3.7 s per progress update with the list inline, 10,000
accounts, on the shared test server).

A job is worked on by one replica at a time: the holder of its lease (``kit.leases``,
named ``bulk:<job id>``). Progress moves by batches: ``record_batch`` advances ``cursor``
only from the batch's start, so a batch redone after a crash or a takeover is counted once.

The events of a batch's threads (``thread.created`` and the first ``message.posted`` of
each) are written after its threads, in ONE outbox document (``bulk_events``, id
``<job>:<start>:<end>``) instead of inside each thread: one small clear per batch after
publishing instead of rewriting 100 thread documents (on FerretDB a ``$pullAll`` over a
batch's threads cost 100 ms of the storage server, against 30 ms for the one document).

``status``: ``running`` → ``done``; or ``running`` → ``cancelling`` (asked, the worker
finishes its batch) → ``cancelled`` (the accounts from ``cursor`` on were not processed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.ids import Document
from threadline.kit.mongo import insert_new
from threadline.kit.outbox import Outbox

__all__ = ["MongoBulkStore"]

UNFINISHED = ("running", "cancelling")
CHUNK = 1000
"""Account ids per chunk document."""


class MongoBulkStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._jobs = database["bulk_jobs"]
        self._accounts = database["bulk_accounts"]
        self._results = database["bulk_results"]
        self._events = outbox.writer(database["bulk_events"])

    async def insert(self, job: Document) -> bool:
        """Store a new job (``account_ids`` go to their chunks, written first); False when a
        job with its id exists (an idempotent retry: its chunks are the same ids)."""
        accounts = job["account_ids"]
        await insert_new(
            self._accounts,
            [
                {"_id": f"{job['_id']}:{start // CHUNK}", "job_id": job["_id"], "start": start,
                 "account_ids": accounts[start : start + CHUNK]}
                for start in range(0, len(accounts), CHUNK)
            ],
        )  # fmt: skip
        try:
            await self._jobs.insert_one({k: v for k, v in job.items() if k != "account_ids"})
        except DuplicateKeyError:
            return False
        return True

    async def summary(self, firm: str, job_id: str) -> Document | None:
        """The job without its account list."""
        return await self._jobs.find_one({"_id": job_id, "firm": firm})

    async def unfinished(self, *, limit: int) -> list[str]:
        """Ids of jobs still to be worked on (running or being cancelled), oldest first."""
        found: list[tuple[Any, str]] = []
        for status in UNFINISHED:  # one equality each: FerretDB pushes no ``$in`` down
            cursor = self._jobs.find({"status": status}, {"_id": 1, "created_at": 1})
            found += [(document["created_at"], document["_id"]) async for document in cursor]
        return [job_id for _, job_id in sorted(found)[:limit]]

    async def job(self, job_id: str) -> Document | None:
        """The whole job (with its ``account_ids``), while it is unfinished."""
        found = await self._jobs.find_one({"_id": job_id})
        if found is None or found["status"] not in UNFINISHED:
            return None
        return found | {"account_ids": await self.account_ids(job_id)}

    async def mark_started(self, job_id: str) -> None:
        """A worker began on the job (a later cancel must first finish its batch)."""
        await self._jobs.update_one({"_id": job_id}, {"$set": {"started": True}})

    async def status(self, job_id: str) -> str | None:
        found = await self._jobs.find_one({"_id": job_id}, {"status": 1})
        return None if found is None else str(found["status"])

    async def request_cancel(self, firm: str, job_id: str, *, by: str, at: datetime) -> bool:
        """Ask the worker to stop after its batch; False when the job is not running."""
        result = await self._jobs.update_one(
            {"_id": job_id, "firm": firm, "status": "running"},
            {
                "$set": {
                    "status": "cancelling",
                    "cancel_requested_by": by,
                    "cancel_requested_at": at,
                }
            },
        )
        return result.modified_count == 1

    async def finish_cancelled(self, job_id: str, *, not_processed: int, at: datetime) -> None:
        await self._jobs.update_one(
            {"_id": job_id, "status": "cancelling"},
            {"$set": {"status": "cancelled", "cancelled": not_processed, "finished_at": at}},
        )

    async def account_ids(self, job_id: str) -> list[str]:
        chunks = await self._accounts.find({"job_id": job_id}).to_list()
        return [
            account_id
            for chunk in sorted(chunks, key=lambda chunk: chunk["start"])
            for account_id in chunk["account_ids"]
        ]

    async def record_batch(
        self, job_id: str, *, start: int, end: int, counts: dict[str, int]
    ) -> bool:
        """Move the job past the batch ``[start, end)`` and add its counts, once."""
        result = await self._jobs.update_one(
            {"_id": job_id, "cursor": start},
            {"$set": {"cursor": end}, "$inc": counts},
        )
        return result.modified_count == 1

    async def finish(self, job_id: str, *, at: datetime) -> None:
        await self._jobs.update_one(
            {"_id": job_id, "status": "running"}, {"$set": {"status": "done", "finished_at": at}}
        )

    async def add_batch_events(
        self,
        job_id: str,
        *,
        firm: str,
        start: int,
        end: int,
        events: list[Envelope[Any]],
        at: datetime,
    ) -> None:
        """The events of the batch ``[start, end)``'s threads, in one outbox document. A batch
        redone with the same bounds finds its document and adds nothing; with other bounds
        (a resumed job sizes its batches afresh) its events go out again under the same
        derived ids, which consumers deduplicate."""
        if events:
            document = {
                "_id": f"{job_id}:{start}:{end}",
                "job_id": job_id,
                "firm": firm,
                "created_at": at,
            }
            await self._events.insert_new([(document, events)])

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
