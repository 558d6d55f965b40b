"""Messages: one document per message, numbered per thread by ``seq``.

A deleted message (M11) keeps only a tombstone — ids, seq and the pending event — so its
``messaging.message.deleted`` event is written in the same single-document write that
erases the content.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase

from threadline.contracts import Envelope
from threadline.kit.ids import Document
from threadline.kit.mongo import insert_new
from threadline.kit.outbox import Outbox

__all__ = ["MongoMessageStore", "SeqField"]

SeqField = Literal["seq", "client_seq"]
"""Which numbering a reader pages by: ``seq`` counts every message, ``client_seq`` only
those a client sees."""
_HIDDEN = {"_outbox": 0}


class MongoMessageStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._messages = database["messages"]
        self._writes = outbox.writer(self._messages)

    async def insert(self, document: Document, *, event: Envelope[Any]) -> None:
        await self._writes.insert_one(document, events=[event])

    async def insert_many_new(self, documents: list[Document]) -> None:
        """Insert first messages whose events ride with their threads (bulk jobs); ids
        already present are left alone (a retried batch)."""
        if documents:
            await insert_new(self._messages, documents)

    async def get(self, thread_id: str, message_id: str) -> Document | None:
        return await self._messages.find_one(
            {"_id": message_id, "thread_id": thread_id, "deleted": False}, _HIDDEN
        )

    def _visible(self, thread_id: str, *, include_internal: bool) -> Document:
        query: Document = {"thread_id": thread_id, "deleted": False}
        if not include_internal:
            query["internal"] = False
        return query

    async def page(
        self,
        thread_id: str,
        *,
        include_internal: bool,
        direction: Literal["before", "after"],
        seq: int | None,
        limit: int,
        numbering: SeqField = "seq",
    ) -> tuple[list[Document], bool]:
        """Up to ``limit`` messages strictly before/after ``seq`` (latest page when None),
        ascending; the flag says whether more exist in that direction. ``numbering`` is the
        field ``seq`` refers to (clients page by ``client_seq``, which internal messages lack)."""
        query = self._visible(thread_id, include_internal=include_internal)
        if seq is not None:
            query[numbering] = {"$lt": seq} if direction == "before" else {"$gt": seq}
        order = -1 if direction == "before" else 1
        found = self._messages.find(query, _HIDDEN).sort(numbering, order).limit(limit + 1)
        documents = await found.to_list()
        more = len(documents) > limit
        documents = documents[:limit]
        documents.sort(key=lambda document: document[numbering])
        return documents, more

    async def carrying_document(
        self, firm: str, thread_id: str, document_id: str
    ) -> list[Document]:
        """The thread's messages that carry ``document_id`` as an attachment (M4)."""
        query = {
            "firm": firm,
            "thread_id": thread_id,
            "document_ids": document_id,
            "deleted": False,
        }
        return await self._messages.find(query, {"attachments": 1, "internal": 1}).to_list()

    async def seq_of_client_seq(self, thread_id: str, client_seq: int) -> int | None:
        """The thread-wide ``seq`` of the latest client-visible message numbered up to
        ``client_seq`` (deleted ones included: numbers never move)."""
        found = (
            await self._messages.find(
                {"thread_id": thread_id, "client_seq": {"$gte": 1, "$lte": client_seq}},
                {"seq": 1},
            )
            .sort("client_seq", -1)
            .limit(1)
            .to_list()
        )
        return int(found[0]["seq"]) if found else None

    async def client_seq_at(self, thread_id: str, seq: int) -> int:
        """The client numbering of a read position: the last client-visible message up to it."""
        found = (
            await self._messages.find(
                {"thread_id": thread_id, "seq": {"$lte": seq}, "client_seq": {"$gte": 1}},
                {"client_seq": 1},
            )
            .sort("seq", -1)
            .limit(1)
            .to_list()
        )
        return int(found[0]["client_seq"]) if found else 0

    async def pinned(self, thread_id: str, *, include_internal: bool) -> list[Document]:
        query = self._visible(thread_id, include_internal=include_internal) | {"pinned": True}
        return await self._messages.find(query, _HIDDEN).sort("pinned_at", -1).to_list()

    async def count_unread(
        self, read_up_to: dict[str, int], *, reader_id: str, include_internal: bool
    ) -> dict[str, int]:
        """Unread messages per thread (thread id → read position): one aggregation for the
        whole page — one ``$or`` branch per thread, each served by the (thread_id, seq) index."""
        if not read_up_to:
            return {}
        branches = [
            {"thread_id": thread_id, "seq": {"$gt": after_seq}}
            for thread_id, after_seq in read_up_to.items()
        ]
        match: Document = {"$or": branches, "deleted": False, "author.user_id": {"$ne": reader_id}}
        if not include_internal:
            match["internal"] = False
        pipeline = [{"$match": match}, {"$group": {"_id": "$thread_id", "unread": {"$sum": 1}}}]
        cursor = await self._messages.aggregate(pipeline)
        return {row["_id"]: row["unread"] async for row in cursor}

    async def update(
        self,
        message_id: str,
        *,
        expected: Document,
        changes: Document,
        event: Envelope[Any],
        push: Document | None = None,
    ) -> bool:
        """Apply ``changes`` if the message still matches ``expected``; False otherwise."""
        update: Document = {"$set": changes} | ({"$push": push} if push else {})
        return await self._writes.update_one(
            {"_id": message_id, **expected}, update, events=[event]
        )

    async def erase(self, message: Document, *, event: Envelope[Any]) -> bool:
        """M11: replace the message by a tombstone carrying its deletion event."""
        tombstone = {
            key: message.get(key)
            for key in ("_id", "firm", "thread_id", "account_id", "seq", "client_seq")
        } | {"deleted": True, "internal": message["internal"], "pinned": False}
        return await self._writes.replace_one(
            {"_id": message["_id"], "deleted": False}, tombstone, events=[event]
        )

    async def mark_read_by_client(
        self, thread_id: str, *, after_seq: int, up_to_seq: int, at: datetime
    ) -> None:
        """R1: stamp the first time any client user read each firm message numbered in
        (``after_seq``, ``up_to_seq``] — earlier ones were stamped by an earlier read.

        Internal messages are never stamped: no client can have read one (M3).
        """
        await self._messages.update_many(
            {
                "thread_id": thread_id,
                "seq": {"$gt": after_seq, "$lte": up_to_seq},
                "author.kind": "staff",
                "internal": False,
                "read_by_client_at": None,
            },
            {"$set": {"read_by_client_at": at}},
        )
