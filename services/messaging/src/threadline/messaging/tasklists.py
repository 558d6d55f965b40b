"""Client tasks and requests in the thread (K3, K4, K5, M12), from the tasks service's events.

- ``tasks.list.changed``: the thread's progress "done/total" for the list, its view and the
  T6 filter (K5), applied only if newer than the last applied snapshot; a ``created`` or
  ``added`` change posts the whole list as a task message (adding tasks shows the updated
  list, not a second one); ``completed`` ticks are batched into one "Ann Lee completed 2 of
  3 tasks" message: a batch closes ``window`` after its first tick happened (the event's
  time, so the batch does not depend on how fast this consumer keeps up).
- ``tasks.list.resent``: the current list, posted again (K3).
- ``tasks.request.changed`` with ``attached``: the request, shown in the thread (M12).

Task messages go through the ordinary posting path (seq, previews, outbox,
``messaging.message.posted``), so clients see them and they count as unread like any other
message. Their ids derive from the list revision (or event), so redelivery never posts twice.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.common import Actor
from threadline.contracts.events.tasks import (
    ClientRequestChanged,
    TaskItem,
    TaskListChanged,
    TaskListResent,
)
from threadline.kit.auth import Principal
from threadline.kit.consumer import EventRouter
from threadline.kit.ids import Document, utc_now
from threadline.kit.links import text_to_html
from threadline.messaging.domain import InvalidMessage
from threadline.messaging.service import MessageDraft, MessageService
from threadline.messaging.service.compose import Composer
from threadline.messaging.store import MongoMessageStore, MongoThreadStore
from threadline.messaging.store.taskdigests import MongoTaskDigests

__all__ = ["TaskMessages", "subscribe"]

_log = structlog.get_logger(__name__)
_NAMESPACE = uuid.UUID("a4f1c7d2-0b3e-4f59-9d8a-5e6b7c8d9e01")
TASK_TEXT_IN_MESSAGE = 200
"""Characters of a task's text shown in a message body (the full text is in ``tasks``)."""
DIGEST_LEASE = timedelta(seconds=30)


def task_message_id(thread_id: str, what: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{thread_id}:{what}"))


def _principal(actor: Actor, firm: str, account_id: str) -> Principal:
    """The actor as a principal, for authoring only: the tasks service already checked
    that they may change the thread's tasks."""
    return Principal(
        sub=actor.user_id,
        firm=firm,
        kind=actor.kind,
        role="member" if actor.kind == "staff" else None,
        accounts=frozenset({account_id}),
        name=actor.name or "",
    )


def _checklist(tasks: Sequence[TaskItem | Document]) -> str:
    items = []
    for task in tasks:
        item = task if isinstance(task, dict) else task.model_dump()
        text = item["text"]
        if len(text) > TASK_TEXT_IN_MESSAGE:
            text = text[: TASK_TEXT_IN_MESSAGE - 1] + "…"
        items.append(f"<li>{'☑' if item['done'] else '☐'} {text_to_html(text)}</li>")
    return f"<ul>{''.join(items)}</ul>"


def _snapshot(tasks: Sequence[TaskItem], done: int, total: int) -> Document:
    return {
        "tasks": [task.model_dump(mode="json") for task in tasks],
        "progress": {"done": done, "total": total},
    }


class TaskMessages:
    def __init__(
        self,
        *,
        threads: MongoThreadStore,
        messages: MongoMessageStore,
        message_service: MessageService,
        composer: Composer,
        digests: MongoTaskDigests,
        window: timedelta,
    ) -> None:
        self._threads = threads
        self._messages = messages
        self._service = message_service
        self._composer = composer
        self._digests = digests
        self._window = window

    async def _post(
        self,
        firm: str,
        thread_id: str,
        *,
        message_id: str,
        author: Actor,
        html_body: str,
        extra: Document,
    ) -> None:
        thread = await self._threads.get(firm, thread_id)
        if thread is None:
            _log.warning("task event names an unknown thread", thread_id=thread_id)
            return
        if await self._messages.get(thread_id, message_id) is not None:
            return
        principal = _principal(author, firm, thread["account_id"])
        document, mentions = await self._service.prepare(
            principal, thread, MessageDraft(html=html_body)
        )
        document |= {"_id": message_id, **extra}
        try:
            await self._service.store_prepared(principal, thread, document, mentions)
        except InvalidMessage as exc:  # archived thread: the list stays in the tasks service
            _log.info("task message not posted", thread_id=thread_id, reason=exc.detail)
        except DuplicateKeyError:  # redelivered after a crash between insert and ack
            return

    async def _name(self, actor: Actor, firm: str, account_id: str) -> str:
        """R3: clients are named as the account's contact, staff as in the directory."""
        author = await self._composer.author(_principal(actor, firm, account_id), account_id)
        return author.name

    async def on_changed(self, event: Envelope[Any]) -> None:
        data: TaskListChanged = event.data
        await self._threads.set_task_progress(
            event.firm,
            data.thread_id,
            done=data.progress.done,
            total=data.progress.total,
            revision=data.revision,
        )
        snapshot = _snapshot(data.tasks, data.progress.done, data.progress.total)
        revision = data.revision or 0
        if data.change in {"created", "added"}:
            name = await self._name(data.changed_by, event.firm, data.account_id)
            verb = "added client tasks" if data.change == "created" else "updated the client tasks"
            await self._post(
                event.firm,
                data.thread_id,
                message_id=task_message_id(data.thread_id, f"list:{revision or event.id}"),
                author=data.changed_by,
                html_body=f"<p>{html.escape(name)} {verb}:</p>{_checklist(data.tasks)}",
                extra={"kind": "task_list", "tasks": snapshot},
            )
        if data.change == "completed" and data.revision is not None:
            await self._digests.record_completion(
                firm=event.firm,
                thread_id=data.thread_id,
                account_id=data.account_id,
                revision=data.revision,
                task_ids=list(data.changed_task_ids),
                actor=data.changed_by.model_dump(),
                due_at=event.occurred_at + self._window,
            )
        if data.revision is not None:
            await self._digests.keep_snapshot(
                data.thread_id, revision=data.revision, snapshot=snapshot
            )

    async def on_resent(self, event: Envelope[Any]) -> None:
        """K3: the current list, posted again."""
        data: TaskListResent = event.data
        name = await self._name(data.resent_by, event.firm, data.account_id)
        await self._post(
            event.firm,
            data.thread_id,
            message_id=task_message_id(data.thread_id, f"resent:{event.id}"),
            author=data.resent_by,
            html_body=f"<p>{html.escape(name)} resent the client tasks:</p>"
            + _checklist(data.tasks),
            extra={
                "kind": "task_list",
                "tasks": _snapshot(data.tasks, data.progress.done, data.progress.total),
            },
        )

    async def on_request_changed(self, event: Envelope[Any]) -> None:
        """M12: a request attached to a thread shows in it."""
        data: ClientRequestChanged = event.data
        if data.change != "attached" or data.thread_id is None:
            return
        request = data.request
        due = f" (due {request.due_date.isoformat()})" if request.due_date else ""
        name = await self._name(data.changed_by, event.firm, data.account_id)
        body = (
            f"<p>{html.escape(name)} sent a request: <b>{html.escape(request.title)}</b>"
            f"{html.escape(due)}</p>"
        )
        if request.description:
            body += f"<p>{text_to_html(request.description[:2000])}</p>"
        await self._post(
            event.firm,
            data.thread_id,
            message_id=task_message_id(data.thread_id, f"request:{data.request_id}"),
            author=data.changed_by,
            html_body=body,
            extra={"kind": "request", "request": request.model_dump(mode="json")},
        )

    async def flush_due(self) -> int:
        """K4: post one message per batch of ticks whose window has passed; returns how many
        batches were handled. Safe on any number of replicas (leased claims)."""
        handled = 0
        while batch := await self._digests.claim_due(now=utc_now(), lease=DIGEST_LEASE):
            await self._post_digest(batch)
            await self._digests.posted(batch)
            handled += 1
        return handled

    async def _post_digest(self, batch: Document) -> None:
        snapshot = batch["snapshot"]
        pending = set(batch["task_ids"])
        ticked = [task for task in snapshot.get("tasks", []) if task["task_id"] in pending]
        ticked = [task for task in ticked if task["done"]]
        if not ticked:  # every tick of the batch was undone (or its task deleted)
            return
        actors = [Actor.model_validate(actor) for actor in batch["actors"]]
        names = list(
            dict.fromkeys(
                [await self._name(actor, batch["firm"], batch["account_id"]) for actor in actors]
            )
        )
        who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        progress = snapshot["progress"]
        noun = "task" if progress["total"] == 1 else "tasks"
        await self._post(
            batch["firm"],
            batch["_id"],
            message_id=task_message_id(batch["_id"], f"done:{batch['revision']}"),
            author=actors[0],
            html_body=(
                f"<p>{html.escape(who)} completed {progress['done']} of {progress['total']} "
                f"{noun}</p>{_checklist(ticked)}"
            ),
            extra={
                "kind": "tasks_completed",
                "tasks": snapshot,
                "completed_task_ids": [task["task_id"] for task in ticked],
            },
        )


def subscribe(events: EventRouter, *, task_messages: TaskMessages) -> None:
    events.on(TaskListChanged, task_messages.on_changed)
    events.on(TaskListResent, task_messages.on_resent)
    events.on(ClientRequestChanged, task_messages.on_request_changed)
