"""Drafts: one per user per thread (D2), private (D3), expiring after 90 days.

Expiry is enforced in every query (FerretDB has no TTL indexes) and by ``purge_expired``.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from threadline.kit.ids import Document

__all__ = ["MongoDraftStore"]


def _draft_id(thread_id: str, user_id: str) -> str:
    return f"{thread_id}:{user_id}"


class MongoDraftStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._drafts = database["drafts"]

    async def get(
        self, *, firm: str, thread_id: str, user_id: str, now: datetime
    ) -> Document | None:
        return await self._drafts.find_one(
            {"_id": _draft_id(thread_id, user_id), "firm": firm, "expires_at": {"$gt": now}}
        )

    async def save(self, document: Document) -> None:
        key = _draft_id(document["thread_id"], document["user_id"])
        await self._drafts.replace_one({"_id": key}, {"_id": key, **document}, upsert=True)

    async def delete(self, *, firm: str, thread_id: str, user_id: str) -> None:
        await self._drafts.delete_one({"_id": _draft_id(thread_id, user_id), "firm": firm})

    async def threads_with_draft(
        self, *, firm: str, user_id: str, thread_ids: list[str], now: datetime
    ) -> set[str]:
        ids = [_draft_id(thread_id, user_id) for thread_id in thread_ids]
        cursor = self._drafts.find(
            {"_id": {"$in": ids}, "firm": firm, "expires_at": {"$gt": now}}, {"thread_id": 1}
        )
        return {document["thread_id"] async for document in cursor}

    async def purge_expired(self, *, now: datetime) -> int:
        result = await self._drafts.delete_many({"expires_at": {"$lte": now}})
        return result.deleted_count
