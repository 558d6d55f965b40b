"""Documents' Kafka subscriptions: contract event in → one service call."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.directory import AccountRemoved
from threadline.contracts.events.messaging import MessageDeleted
from threadline.documents.service import DocumentService
from threadline.kit.consumer import EventRouter
from threadline.kit.directory import MongoDirectory, subscribe_directory
from threadline.kit.threads import ThreadProjection, subscribe_threads

__all__ = ["subscribe"]


def subscribe(
    events: EventRouter,
    *,
    documents: DocumentService,
    directory: MongoDirectory,
    threads: ThreadProjection,
) -> None:
    """The kit's directory and thread projections (uploads and tabs check against them),
    then documents' own reactions."""
    subscribe_directory(events, directory)
    subscribe_threads(events, threads)

    async def on_message_deleted(event: Envelope[Any]) -> None:
        """M11: deleting a message removes its documents from the thread's documents tab."""
        data = event.data
        await documents.delete_for_message(
            event.firm,
            thread_id=data.thread_id,
            document_ids=list(data.document_ids),
            deleted_by=data.deleted_by,
        )

    async def on_account_removed(event: Envelope[Any]) -> None:
        """An account removed from the directory loses its documents (files and metadata);
        the directory projection's own handler records the removal."""
        await documents.delete_for_account(event.firm, event.data.account_id)

    events.on(AccountRemoved, on_account_removed)
    events.on(MessageDeleted, on_message_deleted)
