"""Tasks' MongoDB stores: one document per thread's list, one per client request.

Each change is ONE conditional single-document write — new state, ``revision + 1`` and the
pending events (the kit's ``OutboxWriter``) — filtered on the revision the change was
decided from. Whole task arrays are rewritten (no positional or arrayFilters updates,
which FerretDB lacks); a list holds at most ``MAX_TASKS`` tasks, so that stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.common import Actor
from threadline.kit.directory import DIRECTORY_INDEXES
from threadline.kit.ids import Document
from threadline.kit.mongo import IndexSpec
from threadline.kit.outbox import Outbox, OutboxWriter
from threadline.tasks.domain import (
    ClientRequest,
    RequestStatus,
    Task,
    TaskList,
    utc_now,
)

__all__ = ["TASKS_INDEXES", "MongoListStore", "MongoRequestStore", "MongoThreadSubjects"]

_HIDDEN = {"_outbox": 0}

TASKS_INDEXES = (
    *DIRECTORY_INDEXES,
    IndexSpec("task_lists", [("firm", 1), ("account_id", 1), ("changed_at", -1)]),
    IndexSpec("task_lists", [("_outbox.created_ms", 1)]),
    IndexSpec("client_requests", [("firm", 1), ("account_id", 1), ("created_at", -1)]),
    IndexSpec("client_requests", [("firm", 1), ("thread_ids", 1)]),
    IndexSpec("client_requests", [("_outbox.created_ms", 1)]),
)


def _actor(value: Document | None) -> Actor | None:
    return Actor.model_validate(value) if value else None


def _actor_doc(actor: Actor | None) -> Document | None:
    return actor.model_dump() if actor else None


async def _write(
    writes: OutboxWriter,
    document: Document,
    *,
    expected_revision: int,
    events: Sequence[Envelope[Any]],
) -> bool:
    """Insert (expected revision 0) or replace-if-still-at-revision, with the events."""
    if expected_revision == 0:
        try:
            await writes.insert_one(document, events=events)
        except DuplicateKeyError:
            return False
        return True
    fields = {key: value for key, value in document.items() if key != "_id"}
    return await writes.update_one(
        {"_id": document["_id"], "revision": expected_revision}, {"$set": fields}, events=events
    )


class MongoListStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._lists = database["task_lists"]
        self._writes = outbox.writer(self._lists)

    @staticmethod
    def _key(firm: str, thread_id: str) -> str:
        return f"{firm}:{thread_id}"

    @staticmethod
    def _from(document: Document) -> TaskList:
        return TaskList(
            firm=document["firm"],
            thread_id=document["thread_id"],
            account_id=document["account_id"],
            subject=document.get("subject", ""),
            tasks=tuple(
                Task(
                    task_id=item["task_id"],
                    text=item["text"],
                    created_at=item["created_at"],
                    done=item["done"],
                    done_at=item.get("done_at"),
                    done_by=_actor(item.get("done_by")),
                )
                for item in document.get("tasks", [])
            ),
            revision=int(document["revision"]),
            created_at=document.get("created_at"),
        )

    def _to(self, task_list: TaskList) -> Document:
        return {
            "_id": self._key(task_list.firm, task_list.thread_id),
            "firm": task_list.firm,
            "thread_id": task_list.thread_id,
            "account_id": task_list.account_id,
            "subject": task_list.subject,
            "revision": task_list.revision,
            "created_at": task_list.created_at,
            "changed_at": utc_now(),
            "progress": {"done": task_list.done, "total": task_list.total},
            "tasks": [
                {
                    "task_id": task.task_id,
                    "text": task.text,
                    "created_at": task.created_at,
                    "done": task.done,
                    "done_at": task.done_at,
                    "done_by": _actor_doc(task.done_by),
                }
                for task in task_list.tasks
            ],
        }

    async def get(self, firm: str, thread_id: str) -> TaskList | None:
        found = await self._lists.find_one({"_id": self._key(firm, thread_id)}, _HIDDEN)
        return self._from(found) if found else None

    async def save(
        self, task_list: TaskList, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        return await _write(
            self._writes,
            self._to(task_list),
            expected_revision=expected_revision,
            events=events,
        )

    async def events_only(self, task_list: TaskList, events: Sequence[Envelope[Any]]) -> bool:
        key = self._key(task_list.firm, task_list.thread_id)
        return await self._writes.update_one(
            {"_id": key, "revision": task_list.revision}, {}, events=events
        )

    async def visible(
        self, firm: str, *, accounts: frozenset[str] | None, limit: int
    ) -> list[TaskList]:
        query: Document = {"firm": firm}
        if accounts is not None:
            query["account_id"] = {"$in": sorted(accounts)}
        found = self._lists.find(query, _HIDDEN).sort("changed_at", DESCENDING).limit(limit)
        return [self._from(document) async for document in found]


class MongoRequestStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._requests = database["client_requests"]
        self._writes = outbox.writer(self._requests)

    @staticmethod
    def _from(document: Document) -> ClientRequest:
        due = document.get("due_date")
        return ClientRequest(
            request_id=document["_id"],
            firm=document["firm"],
            account_id=document["account_id"],
            title=document["title"],
            description=document.get("description", ""),
            due_date=date.fromisoformat(due) if due else None,
            status=document["status"],
            thread_ids=tuple(item["thread_id"] for item in document.get("threads", [])),
            subjects={item["thread_id"]: item["subject"] for item in document.get("threads", [])},
            created_by=Actor.model_validate(document["created_by"]),
            created_at=document["created_at"],
            completed_by=_actor(document.get("completed_by")),
            completed_at=document.get("completed_at"),
            revision=int(document["revision"]),
        )

    @staticmethod
    def _to(request: ClientRequest) -> Document:
        return {
            "_id": request.request_id,
            "firm": request.firm,
            "account_id": request.account_id,
            "title": request.title,
            "description": request.description,
            "due_date": request.due_date.isoformat() if request.due_date else None,
            "status": request.status,
            "thread_ids": list(request.thread_ids),
            "threads": [
                {"thread_id": thread_id, "subject": request.subjects.get(thread_id, "")}
                for thread_id in request.thread_ids
            ],
            "created_by": request.created_by.model_dump(),
            "created_at": request.created_at,
            "completed_by": _actor_doc(request.completed_by),
            "completed_at": request.completed_at,
            "revision": request.revision,
        }

    async def get(self, firm: str, request_id: str) -> ClientRequest | None:
        found = await self._requests.find_one({"_id": request_id, "firm": firm}, _HIDDEN)
        return self._from(found) if found else None

    async def save(
        self, request: ClientRequest, *, expected_revision: int, events: Sequence[Envelope[Any]]
    ) -> bool:
        return await _write(
            self._writes,
            self._to(request),
            expected_revision=expected_revision,
            events=events,
        )

    async def visible(
        self,
        firm: str,
        *,
        accounts: frozenset[str] | None,
        status: RequestStatus | None,
        limit: int,
    ) -> list[ClientRequest]:
        query: Document = {"firm": firm}
        if accounts is not None:
            query["account_id"] = {"$in": sorted(accounts)}
        if status is not None:
            query["status"] = status
        found = self._requests.find(query, _HIDDEN).sort("created_at", DESCENDING).limit(limit)
        return [self._from(document) async for document in found]

    async def attached_to(self, firm: str, thread_id: str) -> list[ClientRequest]:
        found = self._requests.find({"firm": firm, "thread_ids": thread_id}, _HIDDEN)
        return [self._from(document) async for document in found.sort("created_at", 1)]


class MongoThreadSubjects:
    """Each thread's subject, from ``messaging.thread.created``: the client's task page
    names the thread of each task (the kit's thread projection keeps access facts only)."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._subjects = database["thread_subjects"]

    async def subject(self, firm: str, thread_id: str) -> str | None:
        found = await self._subjects.find_one({"_id": f"{firm}:{thread_id}"})
        return str(found["subject"]) if found else None

    async def remember(self, firm: str, thread_id: str, subject: str) -> None:
        await self._subjects.update_one(
            {"_id": f"{firm}:{thread_id}"}, {"$set": {"subject": subject}}, upsert=True
        )
