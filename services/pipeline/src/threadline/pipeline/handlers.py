"""Pipeline's Kafka subscriptions: the kit's thread projection (messaging) with activity,
task progress and automove (tasks), and the links messaging makes (J1, J3)."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import (
    MessagePosted,
    ThreadCreated,
    ThreadLinkedToJob,
)
from threadline.contracts.events.tasks import TaskListAllCompleted, TaskListChanged
from threadline.kit.consumer import EventRouter
from threadline.kit.threads import subscribe_threads
from threadline.pipeline.service import JobService
from threadline.pipeline.store import PipelineThreads

__all__ = ["subscribe"]


def subscribe(events: EventRouter, *, threads: PipelineThreads, jobs: JobService) -> None:
    async def on_thread_created(event: Envelope[Any]) -> None:
        """J3: jobs linked at creation (after the projection's own handler: known by then)."""
        data: ThreadCreated = event.data
        for job_id in data.job_ids:
            await jobs.record_link(
                event.firm, job_id, thread_id=data.thread_id, account_id=data.account_id
            )

    async def on_linked(event: Envelope[Any]) -> None:
        data: ThreadLinkedToJob = event.data
        await jobs.record_link(
            event.firm, data.job_id, thread_id=data.thread_id, account_id=data.account_id
        )

    async def on_posted(event: Envelope[Any]) -> None:
        data: MessagePosted = event.data
        await threads.activity(event.firm, data.thread_id, at=data.posted_at)

    async def on_tasks_changed(event: Envelope[Any]) -> None:
        data: TaskListChanged = event.data
        await threads.progress(
            event.firm,
            data.thread_id,
            done=data.progress.done,
            total=data.progress.total,
            revision=data.revision,
            at=event.occurred_at,
        )

    async def on_all_completed(event: Envelope[Any]) -> None:
        """J2: progress first (J4 reads it), then automove the linked jobs."""
        data: TaskListAllCompleted = event.data
        await threads.progress(
            event.firm,
            data.thread_id,
            done=data.total,
            total=data.total,
            revision=data.revision,
            at=event.occurred_at,
            completed_at=data.completed_at,
        )
        await jobs.tasks_completed(
            event.firm, data.thread_id, completed_at=data.completed_at, cause_event_id=str(event.id)
        )

    subscribe_threads(events, threads)
    events.on(ThreadCreated, on_thread_created)
    events.on(ThreadLinkedToJob, on_linked)
    events.on(MessagePosted, on_posted)
    events.on(TaskListChanged, on_tasks_changed)
    events.on(TaskListAllCompleted, on_all_completed)
