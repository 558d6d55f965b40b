"""In-memory stores at the service's ports, and factories for the unit tests."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from threadline.contracts import Envelope
from threadline.kit.auth import Principal
from threadline.pipeline.domain import Job, LinkedThread, Pipeline
from threadline.pipeline.ports import ThreadStatusFilter

FIRM = "firm_demo"
LEE = "acc_lee_family"
PATEL = "acc_patel_llc"


def staff(role: str = "owner", sub: str = "st_olivia", **claims: Any) -> Principal:
    return Principal(sub=sub, firm=claims.pop("firm", FIRM), kind="staff", role=role, **claims)


def client(account: str = LEE) -> Principal:
    return Principal(sub="ct_ann_lee", firm=FIRM, kind="client", accounts=frozenset({account}))


class InMemoryPipelineStore:
    def __init__(self) -> None:
        self.pipelines: dict[str, Pipeline] = {}

    async def insert(self, pipeline: Pipeline) -> None:
        self.pipelines[pipeline.pipeline_id] = pipeline

    async def get(self, firm: str, pipeline_id: str) -> Pipeline | None:
        found = self.pipelines.get(pipeline_id)
        return found if found is not None and found.firm == firm else None

    async def list(self, firm: str, *, limit: int) -> list[Pipeline]:
        return [p for p in self.pipelines.values() if p.firm == firm][:limit]

    async def replace(self, pipeline: Pipeline, *, expected_revision: int) -> bool:
        if self.pipelines[pipeline.pipeline_id].revision != expected_revision:
            return False
        self.pipelines[pipeline.pipeline_id] = pipeline
        return True


class InMemoryJobStore:
    """Jobs plus every event written with them (the outbox), in write order."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.events: list[Envelope[Any]] = []
        self.interfere: list[Job] = []
        """Jobs written by "someone else" just before the next replace (a lost race)."""

    async def insert(self, job: Job, *, events: Sequence[Envelope[Any]]) -> bool:
        if job.job_id in self.jobs:
            return False
        self.jobs[job.job_id] = job
        self.events.extend(events)
        return True

    async def get(self, firm: str, job_id: str) -> Job | None:
        found = self.jobs.get(job_id)
        return found if found is not None and found.firm == firm else None

    async def replace(
        self, job: Job, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        if self.interfere:
            other = self.interfere.pop(0)
            self.jobs[other.job_id] = other
        if self.jobs[job.job_id].revision != expected_revision:
            return False
        self.jobs[job.job_id] = job
        self.events.extend(events)
        return True

    async def linked_to(self, firm: str, thread_id: str, *, limit: int) -> list[Job]:
        return [j for j in self.jobs.values() if j.firm == firm and thread_id in j.thread_ids]

    async def in_pipeline(
        self, firm: str, pipeline_id: str, *, accounts: Collection[str] | None, limit: int
    ) -> list[Job]:
        return [
            j
            for j in self.jobs.values()
            if j.firm == firm
            and j.pipeline_id == pipeline_id
            and (accounts is None or j.account_id in accounts)
        ]

    async def of_account(self, firm: str, account_id: str, *, limit: int) -> list[Job]:
        return [j for j in self.jobs.values() if j.firm == firm and j.account_id == account_id]

    async def count_in_stage(self, firm: str, pipeline_id: str, stage_id: str) -> int:
        return sum(
            1
            for j in self.jobs.values()
            if j.firm == firm and j.pipeline_id == pipeline_id and j.stage_id == stage_id
        )

    def of_type(self, event_type: str) -> list[Any]:
        return [e.data for e in self.events if e.type == event_type]


class InMemoryThreadStore:
    def __init__(self) -> None:
        self.threads: dict[tuple[str, str], LinkedThread] = {}

    def add(self, thread: LinkedThread) -> None:
        self.threads[(thread.firm, thread.thread_id)] = thread

    async def get(self, firm: str, thread_id: str) -> LinkedThread | None:
        return self.threads.get((firm, thread_id))

    async def arriving(self, firm: str, thread_id: str) -> LinkedThread | None:
        return self.threads.get((firm, thread_id))

    async def many(self, firm: str, thread_ids: Collection[str]) -> list[LinkedThread]:
        return [self.threads[(firm, t)] for t in thread_ids if (firm, t) in self.threads]

    async def of_account(
        self, firm: str, account_id: str, *, status: ThreadStatusFilter, limit: int
    ) -> list[LinkedThread]:
        found = [
            t
            for t in self.threads.values()
            if t.firm == firm and t.account_id == account_id and status in ("all", t.status)
        ]
        return sorted(found, key=lambda t: t.last_activity_at, reverse=True)[:limit]

    async def status_changed(
        self, firm: str, thread_id: str, *, status: Literal["active", "archived"], at: datetime
    ) -> None:
        self.threads[(firm, thread_id)] = replace(self.threads[(firm, thread_id)], status=status)

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
        current = self.threads[(firm, thread_id)]
        if completed_at is None and done == total:
            completed_at = current.completed_at
        self.threads[(firm, thread_id)] = replace(
            current, tasks_done=done, tasks_total=total, completed_at=completed_at
        )
