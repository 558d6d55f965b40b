"""Tasks' Kafka subscriptions: contract event in → one service or projection call."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import (
    MessageEdited,
    MessagePosted,
    ThreadArchived,
    ThreadCreated,
    ThreadReopened,
)
from threadline.kit.consumer import EventRouter
from threadline.tasks.service import TaskService
from threadline.tasks.store import MongoThreadProjection

__all__ = ["subscribe"]


def subscribe(events: EventRouter, *, tasks: TaskService, threads: MongoThreadProjection) -> None:
    async def on_thread_created(event: Envelope[Any]) -> None:
        """K1: the thread's client tasks become its list — before the thread is known here,
        so whoever finds the thread also finds its tasks."""
        data = event.data
        await tasks.create_from_thread(event)
        await threads.remember(
            event.firm, data.thread_id, account_id=data.account_id, subject=data.subject
        )

    async def on_archived(event: Envelope[Any]) -> None:
        """K2: archived threads are read-only for clients."""
        await threads.set_status(event.firm, event.data.thread_id, "archived")

    async def on_reopened(event: Envelope[Any]) -> None:
        await threads.set_status(event.firm, event.data.thread_id, "active")

    async def on_mentions(event: Envelope[Any]) -> None:
        """T7: a mentioned staff member sees the thread, and so its tasks."""
        await threads.add_mentions(event.firm, event.data.thread_id, list(event.data.mentions))

    events.on(ThreadCreated, on_thread_created)
    events.on(ThreadArchived, on_archived)
    events.on(ThreadReopened, on_reopened)
    events.on(MessagePosted, on_mentions)
    events.on(MessagePosted, tasks.add_from_message)  # J1: a template's tasks in a reply
    events.on(MessageEdited, on_mentions)
