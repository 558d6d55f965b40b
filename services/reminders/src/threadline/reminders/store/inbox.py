"""The staff inbox (N2, K5, K6): one document per item and recipient.

An item's id is ``<event id>:<recipient>``; event ids are UUIDv7, so id order is time order
(the page cursor) and a redelivered event inserts nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from threadline.kit.ids import Document

__all__ = ["MongoInbox"]

_DUPLICATE_KEY = 11000


class MongoInbox:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._items = database["inbox"]

    async def add(self, items: Sequence[Document]) -> None:
        if not items:
            return
        try:
            await self._items.insert_many(list(items), ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != _DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def page(
        self, firm: str, recipient: str, *, before: str | None, limit: int, unread_only: bool
    ) -> list[Document]:
        query: Document = {"firm": firm, "recipient": recipient}
        if before is not None:
            query["_id"] = {"$lt": before}
        if unread_only:
            query["read"] = False
        return await self._items.find(query).sort("_id", -1).limit(limit).to_list()

    async def unread_count(self, firm: str, recipient: str) -> int:
        return await self._items.count_documents(
            {"firm": firm, "recipient": recipient, "read": False}
        )

    async def mark_read(self, firm: str, recipient: str, item_id: str) -> bool:
        """False when the recipient has no such item."""
        result = await self._items.update_one(
            {"_id": item_id, "firm": firm, "recipient": recipient}, {"$set": {"read": True}}
        )
        return result.matched_count == 1

    async def mark_all_read(self, firm: str, recipient: str) -> int:
        result = await self._items.update_many(
            {"firm": firm, "recipient": recipient, "read": False}, {"$set": {"read": True}}
        )
        return result.modified_count
