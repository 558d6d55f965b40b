"""J1: pipeline's *send message* automations, carried out by messaging.

On ``pipeline.send_message.requested`` messaging renders the chat template for the job's
account (shortcodes, client tasks, reminder settings: the same ``TemplateService.fill``
as thread creation) and either creates a new thread linked to the job, or replies in the
account's most recently active thread (a new thread when it has none) and links that
thread to the job (``messaging.thread.linked_to_job``). A reply's client tasks travel on
its ``messaging.message.posted`` for the tasks service to add to the thread's list.

Exactly once per request: the new thread's id and the reply's id derive from the
request id (itself derived from the job's stage entry), so a redelivered request finds
what the first delivery stored and adds nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import NewClientTask, ThreadLinkedToJob
from threadline.contracts.events.pipeline import SendMessageRequested
from threadline.kit.auth import Principal
from threadline.kit.consumer import EventRouter
from threadline.kit.directory import MongoDirectory
from threadline.kit.failures import TransientError
from threadline.messaging.service.compose import EVENTS
from threadline.messaging.service.messages import MessageService
from threadline.messaging.service.templates import TemplateService, draft_of
from threadline.messaging.service.threads import NewThread, ThreadService
from threadline.messaging.store import MongoMessageStore, MongoThreadStore

__all__ = ["AUTOMATION_USER", "PipelineAutomations", "subscribe"]

AUTOMATION_USER = "automation"
"""Author of messages an automove (no staff member) sent."""
_NAMESPACE = uuid.UUID("0b6a3c52-7f0e-4d8a-9c41-5e2d7a9b1c03")
_log = structlog.get_logger(__name__)


def _derived(kind: str, request_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}/{request_id}"))


class PipelineAutomations:
    def __init__(
        self,
        *,
        threads: MongoThreadStore,
        messages: MongoMessageStore,
        thread_service: ThreadService,
        message_service: MessageService,
        templates: TemplateService,
        directory: MongoDirectory,
    ) -> None:
        self._threads = threads
        self._messages = messages
        self._thread_service = thread_service
        self._message_service = message_service
        self._templates = templates
        self._directory = directory

    async def send(self, event: Envelope[Any]) -> None:
        data: SendMessageRequested = event.data
        request_id = data.request_id or str(event.id)
        # The automation acts for the firm: as the staff member whose move fired it, or as
        # "automation" after an automove; with owner rights, as the firm configured it.
        sender = Principal(
            sub=data.requested_by or AUTOMATION_USER,
            firm=event.firm,
            kind="staff",
            role="owner",
            name="" if data.requested_by else "Automation",
        )
        if data.mode == "reply_to_latest":
            latest = await self._threads.latest_active(event.firm, data.account_id)
            if latest is not None:
                await self._reply(sender, latest, data, request_id)
                return
        await self._new_thread(sender, data, request_id)

    async def _new_thread(
        self, sender: Principal, data: SendMessageRequested, request_id: str
    ) -> None:
        thread_id = _derived("thread", request_id)
        if await self._threads.get(sender.firm, thread_id) is not None:
            return  # this request's thread exists: a redelivery
        request = NewThread(
            account_id=data.account_id,
            subject=None,
            first_message=None,
            template_id=data.template_id,
            job_ids=(data.job_id,),
        )
        try:
            await self._thread_service.create(sender, request, thread_id=thread_id)
        except DuplicateKeyError:
            return  # a concurrent delivery created it
        _log.info("automation created a thread", thread_id=thread_id, job_id=data.job_id)

    async def _reply(
        self,
        sender: Principal,
        thread: dict[str, Any],
        data: SendMessageRequested,
        request_id: str,
    ) -> None:
        thread_id = thread["_id"]
        message_id = _derived("message", request_id)
        if await self._messages.get(thread_id, message_id) is None:
            account = await self._directory.account(sender.firm, data.account_id)
            if account is None:
                raise TransientError(f"account {data.account_id} is not in the directory yet")
            rendered = await self._templates.fill(
                sender,
                template_id=data.template_id,
                subject=None,
                html=None,
                client_tasks=None,
                reminders=None,
                account=account,
                contact_ids=list(thread["to_contact_ids"]),
            )
            document, mentions = await self._message_service.prepare(
                sender, thread, draft_of(rendered, None)
            )
            document["_id"] = message_id
            tasks = [
                NewClientTask(task_id=_derived(f"task/{index}", request_id), text=text)
                for index, text in enumerate(rendered.client_tasks)
            ]
            with contextlib.suppress(DuplicateKeyError):  # a concurrent delivery stored it
                await self._message_service.store_prepared(
                    sender, thread, document, mentions, client_tasks=tasks
                )
        linked = EVENTS(
            ThreadLinkedToJob(
                thread_id=thread_id,
                account_id=data.account_id,
                job_id=data.job_id,
                linked_by=None,
            ),
            firm=sender.firm,
        )
        if await self._threads.link_job(thread_id, data.job_id, event=linked):
            _log.info("automation replied and linked", thread_id=thread_id, job_id=data.job_id)


def subscribe(events: EventRouter, automations: PipelineAutomations) -> None:
    events.on(SendMessageRequested, automations.send)
