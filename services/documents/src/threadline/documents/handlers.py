"""Documents' Kafka subscriptions: contract event in → one service call."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.directory import AccountRemoved
from threadline.contracts.events.messaging import (
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    ThreadCreated,
)
from threadline.documents.service import DocumentService
from threadline.kit.consumer import EventRouter
from threadline.kit.directory import MongoDirectory, subscribe_directory

__all__ = ["subscribe"]


def subscribe(
    events: EventRouter, *, documents: DocumentService, directory: MongoDirectory
) -> None:
    subscribe_directory(events, directory)

    async def on_thread_created(event: Envelope[Any]) -> None:
        """Know each thread's account, to check uploads into threads and list their tabs."""
        await documents.remember_thread(event.firm, event.data.thread_id, event.data.account_id)

    async def on_message_deleted(event: Envelope[Any]) -> None:
        """M11: deleting a message removes its documents from the thread's documents tab."""
        data = event.data
        await documents.delete_for_message(
            event.firm,
            thread_id=data.thread_id,
            document_ids=list(data.document_ids),
            deleted_by=data.deleted_by,
        )

    async def on_mentions(event: Envelope[Any]) -> None:
        """T7: a mentioned staff member may read the thread's documents."""
        data = event.data
        await documents.add_thread_mentions(event.firm, data.thread_id, list(data.mentions))

    async def on_account_removed(event: Envelope[Any]) -> None:
        """An account removed from the directory loses its documents (files and metadata);
        the directory projection's own handler records the removal."""
        await documents.delete_for_account(event.firm, event.data.account_id)

    events.on(ThreadCreated, on_thread_created)
    events.on(AccountRemoved, on_account_removed)
    events.on(MessagePosted, on_mentions)
    events.on(MessageEdited, on_mentions)
    events.on(MessageDeleted, on_message_deleted)
