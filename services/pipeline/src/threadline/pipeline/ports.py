"""The storage ports the pipeline use cases depend on (Mongo in ``store``, fakes in tests)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal, Protocol

from threadline.contracts import Envelope
from threadline.pipeline.domain import Job, LinkedThread, Pipeline

__all__ = ["JobStore", "PipelineStore", "ThreadStatusFilter", "ThreadStore"]

ThreadStatusFilter = Literal["active", "archived", "all"]


class PipelineStore(Protocol):
    async def insert(self, pipeline: Pipeline) -> None: ...

    async def get(self, firm: str, pipeline_id: str) -> Pipeline | None: ...

    async def list(self, firm: str, *, limit: int) -> list[Pipeline]: ...

    async def replace(self, pipeline: Pipeline, *, expected_revision: int) -> bool:
        """Store ``pipeline`` (revision already bumped) if nobody changed it meanwhile."""
        ...


class JobStore(Protocol):
    async def insert(self, job: Job, *, events: Sequence[Envelope[Any]]) -> bool:
        """Store a new job with its events; False when the id exists already."""
        ...

    async def get(self, firm: str, job_id: str) -> Job | None: ...

    async def replace(
        self, job: Job, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        """Store ``job`` and its events in one write if its revision is still
        ``expected_revision``; False when someone else changed it first."""
        ...

    async def linked_to(self, firm: str, thread_id: str, *, limit: int) -> list[Job]: ...

    async def in_pipeline(
        self, firm: str, pipeline_id: str, *, accounts: Collection[str] | None, limit: int
    ) -> list[Job]: ...

    async def of_account(self, firm: str, account_id: str, *, limit: int) -> list[Job]: ...

    async def count_in_stage(self, firm: str, pipeline_id: str, stage_id: str) -> int: ...


class ThreadStore(Protocol):
    """The projection of messaging's threads and tasks' progress (the kit's, extended)."""

    async def get(self, firm: str, thread_id: str) -> LinkedThread | None: ...

    async def arriving(self, firm: str, thread_id: str) -> LinkedThread | None:
        """Like ``get``, but waits briefly for a thread messaging just created (its event
        may still be on its way), so a thread that got 201 can be used at once."""
        ...

    async def many(self, firm: str, thread_ids: Collection[str]) -> list[LinkedThread]: ...

    async def of_account(
        self, firm: str, account_id: str, *, status: ThreadStatusFilter, limit: int
    ) -> list[LinkedThread]: ...
