"""Pipeline's MongoDB collections: ``pipelines``, ``jobs`` (with their outbox) and
``threads`` (the kit's projection of messaging's threads, plus tasks' progress).

Every filter is flat (top-level equality), so FerretDB can push it down. A job is changed
only by a conditional replace of its fields on ``revision``; its events ride in the same
write (``_outbox``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, ClassVar

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.ids import Document, utc_now
from threadline.kit.mongo import IndexSpec
from threadline.kit.outbox import Outbox
from threadline.kit.threads import THREAD_PROJECTION_COLLECTION, ThreadProjection
from threadline.pipeline.domain import (
    Automation,
    HistoryEntry,
    Job,
    LinkedThread,
    Pipeline,
    Stage,
)
from threadline.pipeline.ports import ThreadStatusFilter

__all__ = [
    "PIPELINE_INDEXES",
    "MongoJobStore",
    "MongoPipelineStore",
    "PipelineThreads",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PIPELINE_INDEXES = (
    IndexSpec("pipelines", [("firm", 1), ("created_at", 1)]),
    IndexSpec("jobs", [("firm", 1), ("pipeline_id", 1), ("stage_id", 1)]),
    IndexSpec("jobs", [("firm", 1), ("account_id", 1)]),
    IndexSpec("jobs", [("firm", 1), ("thread_ids", 1)]),
    IndexSpec(
        THREAD_PROJECTION_COLLECTION, [("firm", 1), ("account_id", 1), ("last_activity_at", -1)]
    ),
)


def _pipeline_document(pipeline: Pipeline, *, created_at: datetime | None = None) -> Document:
    document = {
        "_id": pipeline.pipeline_id,
        "firm": pipeline.firm,
        "name": pipeline.name,
        "stages": [asdict(stage) for stage in pipeline.stages],
        "revision": pipeline.revision,
    }
    if created_at is not None:
        document["created_at"] = created_at
    return document


def _pipeline(document: Document) -> Pipeline:
    return Pipeline(
        pipeline_id=document["_id"],
        firm=document["firm"],
        name=document["name"],
        revision=document["revision"],
        stages=tuple(
            Stage(
                stage_id=stage["stage_id"],
                name=stage["name"],
                automove=stage["automove"],
                automations=tuple(Automation(**a) for a in stage["automations"]),
            )
            for stage in document["stages"]
        ),
    )


class MongoPipelineStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._pipelines = database["pipelines"]

    async def insert(self, pipeline: Pipeline) -> None:
        await self._pipelines.insert_one(_pipeline_document(pipeline, created_at=utc_now()))

    async def get(self, firm: str, pipeline_id: str) -> Pipeline | None:
        document = await self._pipelines.find_one({"_id": pipeline_id, "firm": firm})
        return None if document is None else _pipeline(document)

    async def list(self, firm: str, *, limit: int) -> list[Pipeline]:
        cursor = self._pipelines.find({"firm": firm}).sort("created_at", 1).limit(limit)
        return [_pipeline(document) async for document in cursor]

    async def replace(self, pipeline: Pipeline, *, expected_revision: int) -> bool:
        fields = _pipeline_document(pipeline)
        del fields["_id"]
        result = await self._pipelines.update_one(
            {"_id": pipeline.pipeline_id, "revision": expected_revision}, {"$set": fields}
        )
        return result.matched_count == 1


def _job_fields(job: Job) -> Document:
    return {
        "firm": job.firm,
        "account_id": job.account_id,
        "pipeline_id": job.pipeline_id,
        "name": job.name,
        "stage_id": job.stage_id,
        "entry_id": job.entry_id,
        "entered_at": job.entered_at,
        "revision": job.revision,
        "thread_ids": list(job.thread_ids),
        "history": [
            asdict(entry) | {"unfinished_thread_ids": list(entry.unfinished_thread_ids)}
            for entry in job.history
        ],
        "created_by": job.created_by,
        "created_at": job.created_at,
    }


def _job(document: Document) -> Job:
    return Job(
        job_id=document["_id"],
        firm=document["firm"],
        account_id=document["account_id"],
        pipeline_id=document["pipeline_id"],
        name=document["name"],
        stage_id=document["stage_id"],
        entry_id=document["entry_id"],
        entered_at=document["entered_at"],
        revision=document["revision"],
        thread_ids=tuple(document["thread_ids"]),
        history=tuple(
            HistoryEntry(
                **{k: v for k, v in entry.items() if k != "unfinished_thread_ids"},
                unfinished_thread_ids=tuple(entry.get("unfinished_thread_ids", ())),
            )
            for entry in document["history"]
        ),
        created_by=document.get("created_by"),
        created_at=document["created_at"],
    )


_NO_OUTBOX = {"_outbox": 0}


class MongoJobStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._jobs = database["jobs"]
        self._writes = outbox.writer(self._jobs)

    async def insert(self, job: Job, *, events: Sequence[Envelope[Any]]) -> bool:
        try:
            await self._writes.insert_one({"_id": job.job_id, **_job_fields(job)}, events=events)
        except DuplicateKeyError:
            return False
        return True

    async def get(self, firm: str, job_id: str) -> Job | None:
        document = await self._jobs.find_one({"_id": job_id, "firm": firm}, _NO_OUTBOX)
        return None if document is None else _job(document)

    async def replace(
        self, job: Job, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        return await self._writes.update_one(
            {"_id": job.job_id, "revision": expected_revision},
            {"$set": _job_fields(job)},
            events=events,
        )

    async def _find(self, query: Document, *, limit: int) -> list[Job]:
        cursor = self._jobs.find(query, _NO_OUTBOX).sort("created_at", 1).limit(limit)
        return [_job(document) async for document in cursor]

    async def linked_to(self, firm: str, thread_id: str, *, limit: int) -> list[Job]:
        return await self._find({"firm": firm, "thread_ids": thread_id}, limit=limit)

    async def in_pipeline(
        self, firm: str, pipeline_id: str, *, accounts: Collection[str] | None, limit: int
    ) -> list[Job]:
        query: Document = {"firm": firm, "pipeline_id": pipeline_id}
        if accounts is not None:
            query["account_id"] = {"$in": sorted(accounts)}
        return await self._find(query, limit=limit)

    async def of_account(self, firm: str, account_id: str, *, limit: int) -> list[Job]:
        return await self._find({"firm": firm, "account_id": account_id}, limit=limit)

    async def count_in_stage(self, firm: str, pipeline_id: str, stage_id: str) -> int:
        return await self._jobs.count_documents(
            {"firm": firm, "pipeline_id": pipeline_id, "stage_id": stage_id}
        )


def _thread(document: Document) -> LinkedThread:
    return LinkedThread(
        thread_id=document["thread_id"],
        firm=document["firm"],
        account_id=document["account_id"],
        subject=document["subject"],
        status=document.get("status", "active"),
        last_activity_at=document["last_activity_at"],
        tasks_done=document.get("tasks_done", 0),
        tasks_total=document.get("tasks_total", 0),
        completed_at=document.get("completed_at"),
    )


class PipelineThreads(ThreadProjection):
    """The kit's thread projection plus what pipeline shows and decides on: the subject,
    the last activity and the task progress (from tasks' events, another topic). Each part
    is guarded by its own ordering field, so events redelivered or late converge on the
    newest state; each event costs one write."""

    initial_fields: ClassVar[Mapping[str, Any]] = {
        "last_activity_at": _EPOCH,
        "tasks_done": 0,
        "tasks_total": 0,
        "tasks_order": -1.0,
    }

    def created_update(self, event: Envelope[Any]) -> Document:
        return {
            "$set": {"subject": event.data.subject},
            "$max": {"last_activity_at": event.occurred_at},
        }

    async def get(self, firm: str, thread_id: str) -> LinkedThread | None:
        document = await self.document(firm, thread_id, wait=False)
        return None if document is None else _thread(document)

    async def arriving(self, firm: str, thread_id: str) -> LinkedThread | None:
        document = await self.document(firm, thread_id)
        return None if document is None else _thread(document)

    async def many(self, firm: str, thread_ids: Collection[str]) -> list[LinkedThread]:
        return [_thread(document) for document in await self.documents(firm, thread_ids)]

    async def of_account(
        self, firm: str, account_id: str, *, status: ThreadStatusFilter, limit: int
    ) -> list[LinkedThread]:
        query: Document = {"firm": firm, "account_id": account_id}
        if status != "all":
            query["status"] = status
        cursor = self.collection.find(query).sort("last_activity_at", DESCENDING).limit(limit)
        return [_thread(document) async for document in cursor]

    async def activity(self, firm: str, thread_id: str, *, at: datetime) -> None:
        await self.upsert(firm, thread_id, {"$max": {"last_activity_at": at}})

    async def progress(
        self,
        firm: str,
        thread_id: str,
        *,
        done: int,
        total: int,
        revision: int | None,
        at: datetime,
        completed_at: datetime | None = None,
    ) -> None:
        # Snapshots order by the list's revision; producers without one order by time. The
        # completion shares its revision with the list change it follows, so it applies
        # on an equal order too; a reopened task clears it.
        order = float(revision) if revision is not None else at.timestamp()
        fields: Document = {"tasks_done": done, "tasks_total": total, "tasks_order": order}
        if completed_at is not None:
            fields["completed_at"] = completed_at
        elif done < total:
            fields["completed_at"] = None
        guard = "$lte" if completed_at is not None else "$lt"
        await self.set_if_newer(firm, thread_id, {"tasks_order": {guard: order}}, fields)
