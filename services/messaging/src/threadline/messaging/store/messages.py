"""Messages: one document per message, numbered per thread by ``seq``.

Numbers are taken by the insert itself: a message is stored with the next free numbers
and the unique ``(thread_id, seq)`` and ``(thread_id, client_seq)`` indexes refuse a
number already stored, so a number exists only if its message does — a crash at any point
leaves no gap (M3). Internal messages carry ``client_seq = -seq``: unique, never ≥ 1, so
every client-side query (``client_seq >= 1`` or ``internal: false``) skips them.

A deleted message (M11) keeps only a tombstone — ids, seq and the pending event — so its
``messaging.message.deleted`` event is written in the same single-document write that
erases the content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.ids import Document
from threadline.kit.mongo import insert_new
from threadline.kit.outbox import Outbox

__all__ = [
    "CLIENT_SEQ_INDEX",
    "MongoMessageStore",
    "SeqField",
    "client_number",
    "number_internal_messages_for_clients",
]

SeqField = Literal["seq", "client_seq"]
"""Which numbering a reader pages by: ``seq`` counts every message, ``client_seq`` only
those a client sees."""
_HIDDEN = {"_outbox": 0}
CLIENT_SEQ_INDEX = "thread_client_seq_unique"
MAX_NUMBERING_ATTEMPTS = 1000
"""Numbers tried upward from the guess before giving up (each try is one taken number:
a concurrent poster's or a crashed one's; more than this means something is wrong)."""


def client_number(document: Document) -> int | None:
    """The client numbering of a message document: ``None`` for an internal one."""
    value = document.get("client_seq")
    return int(value) if value is not None and value >= 1 else None


OLD_CLIENT_SEQ_INDEX = "thread_id_1_client_seq_1"


async def number_internal_messages_for_clients(database: AsyncDatabase[Document]) -> None:
    """Before the unique client-numbering index exists: internal messages stored with
    ``client_seq: null`` (as before) get ``-seq``, then the old non-unique index goes.
    Runs only while that old index exists, so a migrated database is never scanned."""
    messages = database["messages"]
    if OLD_CLIENT_SEQ_INDEX not in await messages.index_information():
        return
    async for row in messages.find({"client_seq": None}, {"seq": 1}):
        await messages.update_one(
            {"_id": row["_id"], "client_seq": None}, {"$set": {"client_seq": -int(row["seq"])}}
        )
    await messages.drop_index(OLD_CLIENT_SEQ_INDEX)


class MongoMessageStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._messages = database["messages"]
        self._writes = outbox.writer(self._messages)

    async def insert_numbered(
        self,
        document: Document,
        *,
        after: tuple[int, int],
        event_of: Callable[[Document], Envelope[Any]],
        then: Callable[[Document], Awaitable[None]],
    ) -> None:
        """Store ``document`` as its thread's next message, numbering it on the way.

        ``after`` is the last (``seq``, ``client_seq``) the caller knows of (the thread's
        counters, which may lag behind a concurrent or a crashed post); the insert tries the
        numbers after them and, when the unique index says one is taken, the next one up.
        ``event_of`` builds the posted event of the numbered document (stored with it);
        ``then`` runs after the insert, before the event is published (the thread's
        counters). Raises ``DuplicateKeyError`` when a message with this ``_id`` exists.
        """
        seq, client_seq = after[0] + 1, after[1] + 1
        internal = bool(document["internal"])
        for _ in range(MAX_NUMBERING_ATTEMPTS):
            document["seq"] = seq
            document["client_seq"] = -seq if internal else client_seq
            try:
                await self._writes.insert_one(
                    document,
                    events=[event_of(document)],
                    before_publish=lambda: then(document),
                )
            except DuplicateKeyError as exc:
                taken = await self._taken(document, exc)
                if "_id" in taken:
                    raise
                seq += 1 if "seq" in taken or (internal and "client_seq" in taken) else 0
                client_seq += 1 if "client_seq" in taken and not internal else 0
            else:
                return
        raise RuntimeError(f"no free message number found in thread {document['thread_id']}")

    async def _taken(self, document: Document, error: DuplicateKeyError) -> set[str]:
        """Which of ``_id``, ``seq``, ``client_seq`` the refused insert collided on. MongoDB
        names the index in the error; FerretDB does not, so the numbers are looked up (by
        index, side by side), and the id only when neither number was the collision."""
        pattern = (error.details or {}).get("keyPattern")
        if isinstance(pattern, dict):
            return {key for key in pattern if key != "thread_id"}
        thread_id = document["thread_id"]
        found = await asyncio.gather(
            self._messages.find_one({"thread_id": thread_id, "seq": document["seq"]}, {"_id": 1}),
            self._messages.find_one(
                {"thread_id": thread_id, "client_seq": document["client_seq"]}, {"_id": 1}
            ),
        )
        taken = {name for name, row in zip(("seq", "client_seq"), found, strict=True) if row}
        if not taken and await self._messages.find_one({"_id": document["_id"]}, {"_id": 1}):
            taken.add("_id")
        return taken

    async def insert_many_new(self, documents: list[Document]) -> None:
        """Insert first messages without events (a bulk job publishes its batches' events
        itself); ids already present are left alone (a redone batch)."""
        if documents:
            await insert_new(self._messages, documents)

    async def by_id(self, message_id: str) -> Document | None:
        return await self._messages.find_one({"_id": message_id}, _HIDDEN)

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
