"""Threads: one document per thread with its activity, last-message previews and counters.

Clients and staff see different activity: an internal message bumps ``last_activity_at``
and ``last_message`` but never ``client_activity_at`` / ``last_client_message``, so neither
a client's thread order nor its preview reveals internal traffic (M3).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase

from threadline.contracts import Envelope
from threadline.kit.auth import Principal
from threadline.kit.ids import Document
from threadline.kit.mongo import insert_new
from threadline.kit.outbox import Outbox
from threadline.kit.policy import visible_account_filter
from threadline.messaging.domain import InvalidMessage, Thread

__all__ = ["MongoThreadStore", "ThreadPage"]

StatusFilter = Literal["active", "archived", "all"]
TasksFilter = Literal["incomplete", "completed", "all"]


@dataclass(frozen=True)
class ThreadPage:
    threads: list[Document]
    next_cursor: str | None


def thread_of(document: Document) -> Thread:
    return Thread(
        thread_id=document["_id"],
        firm=document["firm"],
        account_id=document["account_id"],
        subject=document["subject"],
        status=document["status"],
        mentioned_staff=tuple(document.get("mentioned_staff", ())),
    )


def _encode_cursor(at: datetime, thread_id: str) -> str:
    raw = json.dumps({"at": at.isoformat(), "id": thread_id}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(value["at"]), str(value["id"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidMessage("The cursor is not one this API returned.") from None


PENDING_FIRST = "pending_first_message"
"""A new thread carries its first message until that message is stored (see ThreadService)."""
FIRST_MESSAGE_PENDING = "first_message_pending"
"""``True`` beside ``PENDING_FIRST``: what the repair looks threads up by. An equality, which
FerretDB passes to PostgreSQL; ``$exists`` it does not, so each repair pass (every minute)
read and decoded every thread of the database."""
FIRST_MESSAGE_PENDING_INDEX = "first_message_pending_1"


async def flag_pending_first_messages(database: AsyncDatabase[Document]) -> None:
    """Before ``FIRST_MESSAGE_PENDING_INDEX`` exists: threads left pending by an earlier
    version (``PENDING_FIRST`` only) get the flag. Runs only while that index does not
    exist, so a migrated database is never scanned."""
    threads = database["threads"]
    if FIRST_MESSAGE_PENDING_INDEX in await threads.index_information():
        return
    await threads.update_many(
        {PENDING_FIRST: {"$exists": True}}, {"$set": {FIRST_MESSAGE_PENDING: True}}
    )


class MongoThreadStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._threads = database["threads"]
        self._writes = outbox.writer(self._threads)

    async def get(self, firm: str, thread_id: str) -> Document | None:
        return await self._threads.find_one({"_id": thread_id, "firm": firm}, {"_outbox": 0})

    async def insert_new(self, documents: list[Document]) -> None:
        """Insert new threads in one round trip, without events (a bulk job publishes its
        batches' events itself); ids already present are left alone (a redone bulk
        batch)."""
        await insert_new(self._threads, documents)

    async def ids_of_bulk_job(self, job_id: str) -> set[str]:
        """Ids of the threads a bulk job created (read when a cancelled job's dead worker
        may have written some beyond its recorded progress)."""
        cursor = self._threads.find({"bulk_job_id": job_id}, {"_id": 1})
        return {document["_id"] async for document in cursor}

    async def latest_active(self, firm: str, account_id: str) -> Document | None:
        """J1: the account's most recently active thread (not archived), if any."""
        cursor = (
            self._threads.find(
                {"firm": firm, "account_id": account_id, "status": "active"}, {"_outbox": 0}
            )
            .sort("last_activity_at", -1)
            .limit(1)
        )
        return next(iter(await cursor.to_list(1)), None)

    async def link_job(self, thread_id: str, job_id: str, *, event: Envelope[Any]) -> bool:
        """J1, J3: link a job to the thread with its event; False when already linked."""
        return await self._writes.update_one(
            {"_id": thread_id, "job_ids": {"$ne": job_id}},
            {"$addToSet": {"job_ids": job_id}},
            events=[event],
        )

    async def mentioned_staff(self, firm: str, thread_id: str) -> frozenset[str]:
        """Staff ids mentioned in the thread (access granted by a mention, T7)."""
        found = await self._threads.find_one(
            {"_id": thread_id, "firm": firm}, {"mentioned_staff": 1}
        )
        return frozenset(found.get("mentioned_staff", ())) if found else frozenset()

    async def create(self, document: Document, *, events: list[Envelope[Any]]) -> None:
        await self._writes.insert_one(document, events=events)

    async def record_posted(
        self,
        thread_id: str,
        *,
        seq: int,
        client_seq: int | None,
        at: datetime | None,
        preview: Document | None,
        mentions: list[str],
    ) -> None:
        """Bring the thread's counters, activity and previews up to a stored message.

        Idempotent and order-free: each part moves only forward (a message numbered below
        what the thread shows changes no preview), so concurrent posts, a retry, or the
        outbox relay finishing a post a crash cut short all end in the same state.
        ``client_seq`` is ``None`` for an internal message; ``at`` and ``preview`` are
        ``None`` for a message deleted meanwhile (its numbers still count).
        """
        staff: Document = {"seq": seq}
        client: Document = {"client_seq": client_seq}
        if at is not None:
            staff["last_activity_at"] = client["client_activity_at"] = at
        if preview is not None:
            staff["last_message"] = preview
            client["last_client_message"] = preview
        extra: Document = (
            {"$addToSet": {"mentioned_staff": {"$each": mentions}}} if mentions else {}
        )
        # Usually this message is the newest of both numberings: one write does it all.
        query: Document = {"_id": thread_id, "seq": {"$lt": seq}}
        fields = staff
        if client_seq is not None:
            query["client_seq"] = {"$lt": client_seq}
            fields = staff | client
        if (await self._threads.update_one(query, {"$set": fields} | extra)).matched_count:
            return
        # A newer message was recorded first (or this one already was): the staff part is
        # done (numbers are ordered: a newer client number has a newer seq too); the client
        # part only if the newer ones were all internal; mentions in any case.
        if client_seq is not None:
            client_update = {"$set": client} | extra
            query = {"_id": thread_id, "client_seq": {"$lt": client_seq}}
            if (await self._threads.update_one(query, client_update)).matched_count:
                return
        if extra:
            await self._threads.update_one({"_id": thread_id}, extra)

    async def records(self, thread_id: str, *, seq: int, client_seq: int | None) -> bool:
        """Whether the thread's counters already include these numbers."""
        found = await self._threads.find_one({"_id": thread_id}, {"seq": 1, "client_seq": 1})
        if found is None:
            return True  # nothing to record in
        return int(found.get("seq", 0)) >= seq and int(found.get("client_seq", 0)) >= (
            client_seq or 0
        )

    async def replace_preview(
        self, thread_id: str, message_id: str, *, staff: Document | None, client: Document | None
    ) -> None:
        """Swap the previews that still show ``message_id`` (edited or deleted) for fresh ones.

        Conditional on the preview still naming that message, so a message posted meanwhile
        keeps its place.
        """
        for field, replacement in (("last_message", staff), ("last_client_message", client)):
            await self._threads.update_one(
                {"_id": thread_id, f"{field}.message_id": message_id},
                {"$set": {field: replacement}},
            )

    async def clients_read_up_to(self, thread_id: str, seq: int) -> None:
        """Remember how far the account's clients have read (never moves back)."""
        await self._threads.update_one({"_id": thread_id}, {"$max": {"client_read_seq": seq}})

    async def first_message_stored(self, thread_id: str) -> None:
        await self._threads.update_one(
            {"_id": thread_id}, {"$unset": {PENDING_FIRST: "", FIRST_MESSAGE_PENDING: ""}}
        )

    async def with_pending_first_message(self, created_before: datetime) -> list[Document]:
        """Threads whose creation stopped between its two writes (the process died)."""
        query = {FIRST_MESSAGE_PENDING: True, "created_at": {"$lt": created_before}}
        return await self._threads.find(query, {"_outbox": 0}).to_list()

    async def set_status(
        self, thread_id: str, *, status: str, expected: str, event: Envelope[Any]
    ) -> bool:
        return await self._writes.update_one(
            {"_id": thread_id, "status": expected}, {"$set": {"status": status}}, events=[event]
        )

    async def set_task_progress(
        self, firm: str, thread_id: str, *, done: int, total: int, revision: int | None
    ) -> None:
        """K5: the list's progress, unless a newer snapshot was already applied (a
        redelivered or relayed older event never moves progress back)."""
        progress = {"done": done, "total": total, "open": total - done}
        if revision is None:  # a producer that does not number its snapshots
            await self._threads.update_one(
                {"_id": thread_id, "firm": firm}, {"$set": {"tasks_progress": progress}}
            )
            return
        update = {"$set": {"tasks_progress": progress, "tasks_revision": revision}}
        result = await self._threads.update_one(
            {"_id": thread_id, "firm": firm, "tasks_revision": {"$lt": revision}}, update
        )
        if result.matched_count == 0:  # threads created before revisions were kept
            await self._threads.update_one(
                {"_id": thread_id, "firm": firm, "tasks_revision": {"$exists": False}}, update
            )

    async def list_visible(
        self,
        principal: Principal,
        *,
        account_id: str | None,
        status: StatusFilter,
        tasks: TasksFilter,
        cursor: str | None,
        limit: int,
    ) -> ThreadPage:
        """T6: newest activity first, filtered, only what the caller may see (T7, M3)."""
        activity = "client_activity_at" if principal.is_client else "last_activity_at"
        # Flat: equality fields at the top level, so the server can filter on them in its
        # storage engine (FerretDB on PostgreSQL skips `$and`/`$or` wholesale).
        query: Document = {"firm": principal.firm}
        alternatives: list[Document] = []
        if account_id is not None:
            query["account_id"] = account_id
        accounts = visible_account_filter(principal)
        if accounts is not None:
            scope: list[Document] = [{"account_id": {"$in": sorted(accounts)}}]
            if principal.is_staff:
                scope.append({"mentioned_staff": principal.sub})
            alternatives.append({"$or": scope})
        if status != "all":
            query["status"] = status
        if tasks == "incomplete":
            query["tasks_progress.open"] = {"$gt": 0}
        elif tasks == "completed":
            query |= {"tasks_progress.total": {"$gt": 0}, "tasks_progress.open": 0}
        if cursor is not None:
            at, last_id = _decode_cursor(cursor)
            alternatives.append(
                {"$or": [{activity: {"$lt": at}}, {activity: at, "_id": {"$lt": last_id}}]}
            )
        if len(alternatives) == 1:
            query |= alternatives[0]
        elif alternatives:
            query["$and"] = alternatives
        documents = (
            await self._threads.find(query, {"_outbox": 0})
            .sort([(activity, -1), ("_id", -1)])
            .limit(limit + 1)
            .to_list()
        )
        page = documents[:limit]
        next_cursor = (
            _encode_cursor(page[-1][activity], page[-1]["_id"]) if len(documents) > limit else None
        )
        return ThreadPage(threads=page, next_cursor=next_cursor)
