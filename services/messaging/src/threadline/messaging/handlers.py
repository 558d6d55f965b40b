"""Messaging's Kafka subscriptions: contract event in → one store or service call."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.tasks import TaskListChanged
from threadline.kit.consumer import EventRouter
from threadline.kit.directory import MongoDirectory, subscribe_directory
from threadline.messaging.store import MongoThreadStore

__all__ = ["subscribe"]


def subscribe(events: EventRouter, *, directory: MongoDirectory, threads: MongoThreadStore) -> None:
    subscribe_directory(events, directory)

    async def on_task_list_changed(event: Envelope[Any]) -> None:
        """T6: keep each thread's task progress "done/total" for the list and its filters."""
        data = event.data
        await threads.set_task_progress(
            event.firm, data.thread_id, done=data.progress.done, total=data.progress.total
        )

    events.on(TaskListChanged, on_task_list_changed)
