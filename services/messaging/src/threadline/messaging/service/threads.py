"""Thread use cases: create (T1-T4), list (T6), show, archive and reopen (T5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.common import Actor
from threadline.contracts.events.messaging import (
    NewClientTask,
    ReminderSettings,
    ThreadArchived,
    ThreadCreated,
    ThreadReopened,
)
from threadline.kit.auth import Principal
from threadline.kit.directory import MongoDirectory
from threadline.kit.ids import Document, new_id, utc_now
from threadline.messaging.domain import (
    ActionForbidden,
    InvalidMessage,
    check_can_create_thread,
    check_can_manage_thread,
)
from threadline.messaging.service.compose import EVENTS, MessageDraft
from threadline.messaging.service.idempotency import IdempotencyConflict, derived_id
from threadline.messaging.service.messages import MessageService
from threadline.messaging.service.templates import (
    DEFAULT_REMINDERS,
    TemplateService,
    addressed_contacts,
    draft_of,
)
from threadline.messaging.service.views import ThreadPage, ThreadView, thread_view
from threadline.messaging.store import (
    MongoDraftStore,
    MongoFirmSettingsStore,
    MongoMessageStore,
    MongoReadStore,
    MongoThreadStore,
)
from threadline.messaging.store.threads import (
    FIRST_MESSAGE_PENDING,
    PENDING_FIRST,
    StatusFilter,
    TasksFilter,
    thread_of,
)

__all__ = ["NewThread", "ThreadService", "new_thread_document", "thread_created_event"]

SUMMARY_MAX_THREADS = 1000
"""Threads the client summary (N3) counts at most, newest activity first."""

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class NewThread:
    """A thread to create. With ``template_id`` (P1) every field left ``None`` comes from the
    template and everything is rendered for the addressed contacts; without one, subject
    and first message are required and used as given."""

    account_id: str
    subject: str | None
    first_message: MessageDraft | None
    to_contact_ids: tuple[str, ...] = ()
    client_tasks: tuple[str, ...] | None = None
    reminders: ReminderSettings | None = None
    job_ids: tuple[str, ...] = ()
    template_id: str | None = None


def new_thread_document(
    *,
    thread_id: str,
    principal: Principal,
    account_id: str,
    subject: str,
    to_contacts: list[str],
    job_ids: list[str],
    reminders: ReminderSettings,
    template_id: str | None,
    now: datetime,
) -> Document:
    """A new thread's document, before its first message (shared with bulk jobs)."""
    return {
        "_id": thread_id,
        "firm": principal.firm,
        "account_id": account_id,
        "subject": subject,
        "status": "active",
        "created_by": {"user_id": principal.sub, "kind": principal.kind},
        "created_at": now,
        "to_contact_ids": to_contacts,
        "job_ids": job_ids,
        "template_id": template_id,
        "mentioned_staff": [],
        "seq": 0,
        "client_seq": 0,
        "last_activity_at": now,
        "client_activity_at": now,
        "last_message": None,
        "last_client_message": None,
        "tasks_progress": {"done": 0, "total": 0, "open": 0},
        "tasks_revision": 0,
        "reminders": reminders.model_dump(),
    }


def thread_created_event(
    document: Document,
    *,
    first_message_id: str,
    client_tasks: tuple[str, ...],
    event_id: UUID | None = None,
) -> Envelope[ThreadCreated]:
    """``messaging.thread.created`` of ``document``: rendered tasks and reminders included."""
    return EVENTS(
        ThreadCreated(
            thread_id=document["_id"],
            account_id=document["account_id"],
            subject=document["subject"],
            created_by=Actor(**document["created_by"]),
            to_contact_ids=document["to_contact_ids"],
            first_message_id=first_message_id,
            # K1: task ids chosen here, so the creator can tick a task at once (tasks service).
            client_tasks=[NewClientTask(task_id=new_id(), text=text) for text in client_tasks],
            reminders=ReminderSettings(**document["reminders"]),
            job_ids=document["job_ids"],
            template_id=document["template_id"],
        ),
        firm=document["firm"],
        event_id=event_id,
    )


class ThreadService:
    def __init__(
        self,
        *,
        threads: MongoThreadStore,
        messages: MongoMessageStore,
        reads: MongoReadStore,
        drafts: MongoDraftStore,
        settings: MongoFirmSettingsStore,
        directory: MongoDirectory,
        message_service: MessageService,
        templates: TemplateService,
    ) -> None:
        self._threads = threads
        self._messages = messages
        self._reads = reads
        self._drafts = drafts
        self._settings = settings
        self._directory = directory
        self._message_service = message_service
        self._templates = templates

    async def create(
        self, principal: Principal, request: NewThread, *, thread_id: str | None = None
    ) -> ThreadView:
        settings = await self._settings.get(principal.firm)
        check_can_create_thread(
            principal,
            firm=principal.firm,
            account_id=request.account_id,
            clients_may_create=settings.clients_can_create_threads,
        )
        if principal.is_client and (request.client_tasks or request.job_ids):
            raise InvalidMessage("Clients cannot add client tasks or job links to a thread.")
        account = await self._directory.account(principal.firm, request.account_id)
        to_contacts = addressed_contacts(account, request.account_id, request.to_contact_ids)
        if request.template_id is not None:
            assert account is not None  # addressed_contacts raised otherwise
            rendered = await self._templates.fill(
                principal,
                template_id=request.template_id,
                subject=request.subject,
                html=request.first_message.html if request.first_message else None,
                client_tasks=request.client_tasks,
                reminders=request.reminders,
                account=account,
                contact_ids=to_contacts,
            )
            subject, client_tasks = rendered.subject, rendered.client_tasks
            first_message, reminders = draft_of(rendered, request.first_message), rendered.reminders
        else:
            if request.subject is None or request.first_message is None:
                raise InvalidMessage(
                    "A thread needs a subject and a message, or a template_id to take them from."
                )
            subject, first_message = request.subject.strip(), request.first_message
            client_tasks, reminders = (
                request.client_tasks or (),
                request.reminders or DEFAULT_REMINDERS,
            )
        if not subject:
            raise InvalidMessage("A thread needs a subject.")
        document = new_thread_document(
            thread_id=thread_id or new_id(),
            principal=principal,
            account_id=request.account_id,
            subject=subject,
            to_contacts=to_contacts,
            job_ids=list(dict.fromkeys(request.job_ids)),
            reminders=reminders,
            template_id=request.template_id,
            now=utc_now(),
        )
        # Validate the first message before anything is stored: no thread without it.
        first, mentions = await self._message_service.prepare(principal, document, first_message)
        created = thread_created_event(
            document, first_message_id=first["_id"], client_tasks=client_tasks
        )
        # Two writes without a transaction: the thread carries its first message until the
        # message is stored, so a crash between them is repaired (complete_interrupted).
        pending = {"message": first, "mentions": mentions, "author_role": principal.role}
        await self._threads.create(
            document | {PENDING_FIRST: pending, FIRST_MESSAGE_PENDING: True}, events=[created]
        )
        await self._message_service.store_prepared(principal, document, first, mentions)
        await self._threads.first_message_stored(document["_id"])
        view = await self.get(principal, document["_id"])
        view["client_tasks"] = [
            {"task_id": task.task_id or "", "text": task.text} for task in created.data.client_tasks
        ]
        return view

    async def create_once(
        self, principal: Principal, request: NewThread, *, key: str
    ) -> tuple[ThreadView, bool]:
        """Create with an ``Idempotency-Key``: the thread's id is derived from the firm, the
        creator and the key, so a retry (also after a 503 whose write was stored) finds the
        thread the first try created. Returns the thread and whether it existed (a replay,
        answered as the thread is now; its client tasks are in the tasks service). The same
        key for another account or subject is a conflict."""
        thread_id = derived_id("thread", principal.firm, principal.sub, key)
        stored = await self._threads.get(principal.firm, thread_id)
        if stored is None:
            try:
                return await self.create(principal, request, thread_id=thread_id), False
            except DuplicateKeyError:  # a concurrent retry created it first
                stored = await self._threads.get(principal.firm, thread_id)
                if stored is None:
                    raise
        same_subject = request.subject is None or stored["subject"] == request.subject.strip()
        if stored["account_id"] != request.account_id or not same_subject:
            raise IdempotencyConflict(
                "This Idempotency-Key was used for a different thread; use a new key for a "
                "new thread."
            )
        return await self.get(principal, thread_id), True

    async def complete_interrupted(self, *, older_than: timedelta) -> int:
        """Store the first message of threads whose creation a crash cut short; returns how
        many were completed. Idempotent: a message already stored is not stored again."""
        completed = 0
        for thread in await self._threads.with_pending_first_message(utc_now() - older_than):
            pending = thread[PENDING_FIRST]
            message = pending["message"]
            if await self._messages.get(thread["_id"], message["_id"]) is None:
                author = Principal(
                    sub=message["author"]["user_id"],
                    firm=thread["firm"],
                    kind=message["author"]["kind"],
                    role=pending["author_role"],
                    accounts=frozenset({thread["account_id"]}),
                )
                try:
                    await self._message_service.store_prepared(
                        author, thread, message, pending["mentions"]
                    )
                except InvalidMessage:  # archived meanwhile: it can take no message now
                    _log.warning("first message dropped", thread_id=thread["_id"])
                else:
                    completed += 1
            await self._threads.first_message_stored(thread["_id"])
        return completed

    async def get(self, principal: Principal, thread_id: str) -> ThreadView:
        document = await self._message_service.visible_thread(principal, thread_id)
        return (await self._views(principal, [document]))[0]

    async def page(
        self,
        principal: Principal,
        *,
        account_id: str | None,
        status: StatusFilter,
        tasks: TasksFilter,
        cursor: str | None,
        limit: int,
    ) -> ThreadPage:
        page = await self._threads.list_visible(
            principal,
            account_id=account_id,
            status=status,
            tasks=tasks,
            cursor=cursor,
            limit=limit,
        )
        return {
            "threads": await self._views(principal, page.threads),
            "next_cursor": page.next_cursor,
        }

    async def client_summary(self, principal: Principal) -> Document:
        """N3: what waits for a client — active threads with unread messages, open tasks.

        Counts at most ``SUMMARY_MAX_THREADS`` active threads (newest activity first)."""
        if not principal.is_client:
            raise ActionForbidden("The summary is for clients; staff have the inbox.")
        documents: list[Document] = []
        cursor: str | None = None
        while len(documents) < SUMMARY_MAX_THREADS:
            page = await self._threads.list_visible(
                principal, account_id=None, status="active", tasks="all", cursor=cursor, limit=100
            )
            documents += page.threads
            cursor = page.next_cursor
            if cursor is None:
                break
        last_read = await self._reads.last_read([d["_id"] for d in documents], principal.sub)
        behind = {
            d["_id"]: last_read.get(d["_id"], 0)
            for d in documents
            if last_read.get(d["_id"], 0) < d.get("seq", 0)
        }
        unread = await self._messages.count_unread(
            behind, reader_id=principal.sub, include_internal=False
        )
        open_tasks = [int((d.get("tasks_progress") or {}).get("open", 0)) for d in documents]
        return {
            "threads_with_unread": sum(1 for count in unread.values() if count > 0),
            "unread_messages": sum(unread.values()),
            "threads_with_open_tasks": sum(1 for count in open_tasks if count > 0),
            "open_tasks": sum(open_tasks),
        }

    async def _views(self, principal: Principal, documents: list[Document]) -> list[ThreadView]:
        ids = [document["_id"] for document in documents]
        last_read = await self._reads.last_read(ids, principal.sub)
        drafts = await self._drafts.threads_with_draft(
            firm=principal.firm, user_id=principal.sub, thread_ids=ids, now=utc_now()
        )
        # Threads read up to their latest message have nothing unread: no query for them.
        behind = {
            document["_id"]: last_read.get(document["_id"], 0)
            for document in documents
            if last_read.get(document["_id"], 0) < document.get("seq", 0)
        }
        unread = await self._messages.count_unread(
            behind, reader_id=principal.sub, include_internal=principal.is_staff
        )
        return [
            thread_view(
                document,
                principal,
                unread=unread.get(document["_id"], 0),
                has_draft=document["_id"] in drafts,
            )
            for document in documents
        ]

    async def set_archived(
        self, principal: Principal, thread_id: str, *, archived: bool
    ) -> ThreadView:
        document = await self._message_service.visible_thread(principal, thread_id)
        check_can_manage_thread(principal, thread_of(document))
        actor = Actor(user_id=principal.sub, kind=principal.kind)
        event: Envelope[Any]
        if archived:
            event = EVENTS(
                ThreadArchived(
                    thread_id=thread_id, account_id=document["account_id"], archived_by=actor
                ),
                firm=principal.firm,
            )
        else:
            event = EVENTS(
                ThreadReopened(
                    thread_id=thread_id, account_id=document["account_id"], reopened_by=actor
                ),
                firm=principal.firm,
            )
        wanted, expected = ("archived", "active") if archived else ("active", "archived")
        await self._threads.set_status(thread_id, status=wanted, expected=expected, event=event)
        return await self.get(principal, thread_id)
