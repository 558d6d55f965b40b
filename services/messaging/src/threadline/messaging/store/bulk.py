"""Bulk message jobs (P2): the job document, its account list in chunks, and one document
per batch with its per-account results.

The account list (up to 10,000 ids) is kept out of the job document: the job is updated
after every batch, and FerretDB rewrites a whole document on every update while holding
the server's write lock (0.6-3.7 s per progress update with the list inline, 10,000
accounts, on the shared test server).

A job is worked on by one replica at a time: the holder of its lease (``kit.leases``,
named ``bulk:<job id>``). Progress moves by batches: ``record_batch`` advances ``cursor``
only from the batch's start, so a batch redone after a crash or a takeover is counted once.

Each batch, once its threads are written and their events acknowledged by Kafka, gets ONE
document in ``bulk_batches`` (id ``<job>:<start>:<end>``) with the per-account results of
its accounts: one insert per batch instead of one result document per account (10,000
inserts, 5 s of the storage server in the benchmark). A batch redone with other bounds (a
resumed job sizes its batches afresh) overlaps an earlier document: ``results`` answers
each account once.

Batches never cross a page of ``RESULTS_PAGE`` accounts, and each batch document names its
page: a page of results is read by equality (``{job_id, page}``), which FerretDB passes to
PostgreSQL, where a range or a sort over the job's batches would make it read and decode
every one of them (FerretDB 1.24 pushes down equality only; in the benchmark, polling a
running job's status that way took a third of the storage server's CPU).

``status``: ``running`` → ``done``; or ``running`` → ``cancelling`` (asked, the worker
finishes its batch) → ``cancelled`` (the accounts from ``cursor`` on were not processed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.ids import Document
from threadline.kit.mongo import insert_new

__all__ = ["RESULTS_PAGE", "BatchRecord", "MongoBulkStore", "page_end"]

UNFINISHED = ("running", "cancelling")
CHUNK = 1000
"""Account ids per chunk document."""
RESULTS_PAGE = 100
"""Accounts per page of results: no batch crosses a page's end (see ``page_end``)."""


def page_end(start: int) -> int:
    """Where the page holding account ``start`` ends: a batch from ``start`` stops there."""
    return (start // RESULTS_PAGE + 1) * RESULTS_PAGE


class MongoBulkStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._jobs = database["bulk_jobs"]
        self._accounts = database["bulk_accounts"]
        self._batches = database["bulk_batches"]

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

    async def add_batches(self, job_id: str, batches: list[BatchRecord]) -> None:
        """Store written batches' results; a batch redone with the same bounds finds its
        document and adds nothing."""
        await insert_new(
            self._batches,
            [
                {
                    "_id": f"{job_id}:{batch.start}:{batch.end}",
                    "job_id": job_id,
                    "page": batch.start // RESULTS_PAGE,
                    "start": batch.start,
                    "end": batch.end,
                    "created_at": batch.at,
                    "results": batch.results,
                }
                for batch in batches
            ],
        )

    async def results(self, job_id: str, *, after: int, limit: int) -> list[Document]:
        """Up to ``limit`` + 1 results with index > ``after``, in request order (each index
        once, where redone batches overlap). Reads page by page from the one holding
        ``after + 1``; an empty page ends it (batches are stored in order)."""
        found: dict[int, Document] = {}
        page = (after + 1) // RESULTS_PAGE
        while len(found) <= limit:
            batches = await self._batches.find(
                {"job_id": job_id, "page": page}, {"results": 1}
            ).to_list()
            if not batches:
                break
            for batch in batches:
                for result in batch["results"]:
                    if result["index"] > after:
                        found.setdefault(result["index"], result)
            page += 1
        return [found[index] for index in sorted(found)[: limit + 1]]


@dataclass(frozen=True)
class BatchRecord:
    """A written batch ``[start, end)``: its per-account results and its threads' events
    (published before the results are stored, never stored themselves)."""

    start: int
    end: int
    at: datetime
    results: list[Document]
    events: list[Envelope[Any]]
