"""Thread attachments (M4, M6): documents uploaded into a thread become messages in it.

``documents.document.uploaded`` with a thread id → an attachment message authored by the
uploader, internal when the upload was internal, script-free raster images marked for inline display
(``threadline.contracts.media``). It goes
through the ordinary posting path (``MessageService.prepare`` / ``store_prepared``), so it
gets its seq, previews, outbox and ``messaging.message.posted`` (with ``document_ids``) like
any message; staff learn of client uploads from that event (N2).
``documents.document.deleted`` → the attachment stays in its message, shown as removed.

The message id is derived from the document id, so a redelivered upload event never posts
twice.
"""

from __future__ import annotations

import html
import uuid
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.documents import DocumentDeleted, DocumentUploaded
from threadline.contracts.events.messaging import AttachmentRemoved
from threadline.contracts.media import is_inline_safe
from threadline.kit.auth import Principal
from threadline.kit.consumer import EventRouter
from threadline.messaging.domain import InvalidMessage
from threadline.messaging.service import MessageDraft, MessageService
from threadline.messaging.service.compose import EVENTS
from threadline.messaging.store import MongoMessageStore, MongoThreadStore

__all__ = ["AttachmentPoster", "attachment_message_id", "subscribe"]

_log = structlog.get_logger(__name__)
_NAMESPACE = uuid.UUID("7c0f3a52-5d1e-4b8e-9a61-2f4d0c9e8b17")


def attachment_message_id(document_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"attachment:{document_id}"))


def _uploader(event: Envelope[Any]) -> Principal:
    """The uploader as a principal, for authoring only: documents already authorised the
    upload against the thread's account."""
    data: DocumentUploaded = event.data
    staff = data.uploaded_by.kind == "staff"
    return Principal(
        sub=data.uploaded_by.user_id,
        firm=event.firm,
        kind=data.uploaded_by.kind,
        role="member" if staff else None,
        accounts=frozenset({data.account_id}),
    )


class AttachmentPoster:
    def __init__(
        self,
        *,
        threads: MongoThreadStore,
        messages: MongoMessageStore,
        message_service: MessageService,
    ) -> None:
        self._threads = threads
        self._messages = messages
        self._service = message_service

    async def post(self, event: Envelope[Any]) -> None:
        data: DocumentUploaded = event.data
        if data.thread_id is None:
            return
        thread = await self._threads.get(event.firm, data.thread_id)
        if thread is None or thread["account_id"] != data.account_id:
            _log.warning("upload names a thread not of its account", thread_id=data.thread_id)
            return
        message_id = attachment_message_id(data.document_id)
        if await self._messages.get(data.thread_id, message_id) is not None:
            return
        principal = _uploader(event)
        draft = MessageDraft(html=f"<p>{html.escape(data.filename)}</p>", internal=data.internal)
        document, mentions = await self._service.prepare(principal, thread, draft)
        document |= {
            "_id": message_id,
            "document_ids": [data.document_id],
            "attachments": [
                {
                    "document_id": data.document_id,
                    "filename": data.filename,
                    "content_type": data.content_type,
                    "size": data.size,
                    "inline": is_inline_safe(data.content_type),
                    "removed": False,
                }
            ],
        }
        try:
            await self._service.store_prepared(principal, thread, document, mentions)
        except InvalidMessage as exc:  # archived thread: the document stays in the account
            _log.info("attachment not posted", thread_id=data.thread_id, reason=exc.detail)
        except DuplicateKeyError:  # redelivered after a crash between insert and ack
            return

    async def mark_removed(self, event: Envelope[Any]) -> None:
        data: DocumentDeleted = event.data
        if data.thread_id is None:
            return
        for message in await self._messages.carrying_document(
            event.firm, data.thread_id, data.document_id
        ):
            attachments = [
                item | {"removed": True} if item["document_id"] == data.document_id else item
                for item in message.get("attachments", [])
            ]
            removed = EVENTS(
                AttachmentRemoved(
                    thread_id=data.thread_id,
                    account_id=data.account_id,
                    message_id=message["_id"],
                    internal=message["internal"],
                    document_id=data.document_id,
                ),
                firm=event.firm,
                causation_id=str(event.id),
                correlation_id=event.correlation_id,
            )
            await self._messages.update(
                message["_id"],
                expected={"deleted": False},
                changes={"attachments": attachments},
                event=removed,
            )


def subscribe(
    events: EventRouter,
    *,
    threads: MongoThreadStore,
    messages: MongoMessageStore,
    message_service: MessageService,
) -> None:
    poster = AttachmentPoster(threads=threads, messages=messages, message_service=message_service)
    events.on(DocumentUploaded, poster.post)
    events.on(DocumentDeleted, poster.mark_removed)
