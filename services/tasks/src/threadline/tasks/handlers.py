"""Tasks' Kafka subscriptions: contract event in → one service or projection call."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import MessagePosted, ThreadCreated
from threadline.kit.consumer import EventRouter
from threadline.kit.threads import ThreadProjection, subscribe_threads
from threadline.tasks.service import TaskService

__all__ = ["subscribe"]


def subscribe(events: EventRouter, *, tasks: TaskService, threads: ThreadProjection) -> None:
    async def on_thread_created(event: Envelope[Any]) -> None:
        """K1: the thread's client tasks become its list."""
        await tasks.create_from_thread(event)

    # Registered before the projection's own handler (handlers run in order): whoever
    # finds the thread in the projection also finds its tasks.
    events.on(ThreadCreated, on_thread_created)
    subscribe_threads(events, threads)
    events.on(MessagePosted, tasks.add_from_message)  # J1: a template's tasks in a reply
