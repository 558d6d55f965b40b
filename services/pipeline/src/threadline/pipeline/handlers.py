"""Pipeline's Kafka subscriptions: the thread projection (messaging), task progress and
automove (tasks), and the links messaging makes (J1, J3)."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import (
    MessagePosted,
    ThreadArchived,
    ThreadCreated,
    ThreadLinkedToJob,
    ThreadReopened,
)
from threadline.contracts.events.tasks import TaskListAllCompleted, TaskListChanged
from threadline.kit.consumer import EventRouter
from threadline.pipeline.ports import ThreadStore
from threadline.pipeline.service import JobService

__all__ = ["subscribe"]


def subscribe(events: EventRouter, *, threads: ThreadStore, jobs: JobService) -> None:
    async def on_thread_created(event: Envelope[Any]) -> None:
        data: ThreadCreated = event.data
        await threads.created(
            event.firm,
            data.thread_id,
            account_id=data.account_id,
            subject=data.subject,
            at=event.occurred_at,
        )
        for job_id in data.job_ids:  # J3: linked at creation
            await jobs.record_link(
                event.firm, job_id, thread_id=data.thread_id, account_id=data.account_id
            )

    async def on_linked(event: Envelope[Any]) -> None:
        data: ThreadLinkedToJob = event.data
        await jobs.record_link(
            event.firm, data.job_id, thread_id=data.thread_id, account_id=data.account_id
        )

    async def on_archived(event: Envelope[Any]) -> None:
        await threads.status_changed(
            event.firm, event.data.thread_id, status="archived", at=event.occurred_at
        )

    async def on_reopened(event: Envelope[Any]) -> None:
        await threads.status_changed(
            event.firm, event.data.thread_id, status="active", at=event.occurred_at
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

    events.on(ThreadCreated, on_thread_created)
    events.on(ThreadLinkedToJob, on_linked)
    events.on(ThreadArchived, on_archived)
    events.on(ThreadReopened, on_reopened)
    events.on(MessagePosted, on_posted)
    events.on(TaskListChanged, on_tasks_changed)
    events.on(TaskListAllCompleted, on_all_completed)
