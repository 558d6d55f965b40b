"""Kafka handlers: a contract event in, one or two use-case calls, return."""

from __future__ import annotations

from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.documents import DocumentUploaded
from threadline.contracts.events.messaging import (
    FirmChatSettingsChanged,
    MessageEdited,
    MessagePosted,
    MessagesRead,
    ThreadArchived,
    ThreadCreated,
    ThreadReopened,
)
from threadline.contracts.events.tasks import TaskListAllCompleted, TaskListChanged
from threadline.kit.consumer import EventRouter
from threadline.reminders.notify import Notifier
from threadline.reminders.schedule import ReminderService
from threadline.reminders.store import MongoFirmSettingsProjection, MongoThreadStore

__all__ = ["subscribe"]


def subscribe(
    events: EventRouter,
    *,
    reminders: ReminderService,
    notifier: Notifier,
    threads: MongoThreadStore,
    firm_settings: MongoFirmSettingsProjection,
) -> None:
    async def on_thread_created(event: Envelope[Any]) -> None:
        await reminders.thread_created(event)

    async def on_message_posted(event: Envelope[Any]) -> None:
        thread = await reminders.message_posted(event)
        await notifier.message_posted(event, thread)

    async def on_message_edited(event: Envelope[Any]) -> None:
        data = event.data
        if not data.internal:
            await reminders.message_edited(event.firm, data.thread_id, data.message_id, data.text)

    async def on_messages_read(event: Envelope[Any]) -> None:
        data = event.data
        if data.reader.kind == "client":
            await reminders.client_read(event.firm, data.thread_id, data.up_to_seq)

    async def on_archived(event: Envelope[Any]) -> None:
        await reminders.archived(event.firm, event.data.thread_id)

    async def on_reopened(event: Envelope[Any]) -> None:
        await reminders.reopened(event.firm, event.data.thread_id)

    events.on(ThreadCreated, on_thread_created)
    events.on(MessagePosted, on_message_posted)
    events.on(MessageEdited, on_message_edited)
    events.on(MessagesRead, on_messages_read)
    events.on(ThreadArchived, on_archived)
    events.on(ThreadReopened, on_reopened)
    events.on(FirmChatSettingsChanged, firm_settings.apply)
    _subscribe_tasks_and_documents(events, reminders=reminders, notifier=notifier, threads=threads)


def _subscribe_tasks_and_documents(
    events: EventRouter,
    *,
    reminders: ReminderService,
    notifier: Notifier,
    threads: MongoThreadStore,
) -> None:
    async def on_tasks_changed(event: Envelope[Any]) -> None:
        await reminders.tasks_changed(event)
        thread = await threads.get(event.firm, event.data.thread_id) or {}
        await notifier.tasks_changed(event, thread)

    async def on_all_completed(event: Envelope[Any]) -> None:
        await reminders.tasks_all_completed(event)
        thread = await threads.get(event.firm, event.data.thread_id) or {}
        await notifier.tasks_all_completed(event, thread)

    async def on_document_uploaded(event: Envelope[Any]) -> None:
        thread_id = event.data.thread_id
        thread = await threads.get(event.firm, thread_id) if thread_id else None
        await notifier.document_uploaded(event, thread)

    events.on(TaskListChanged, on_tasks_changed)
    events.on(TaskListAllCompleted, on_all_completed)
    events.on(DocumentUploaded, on_document_uploaded)
