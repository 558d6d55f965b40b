"""Read cursors: per user per thread, the highest message number they have read."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.ids import Document
from threadline.kit.outbox import Outbox

__all__ = ["MongoReadStore"]


def _cursor_id(thread_id: str, user_id: str) -> str:
    return f"{thread_id}:{user_id}"


class MongoReadStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._cursors = database["read_cursors"]
        self._writes = outbox.writer(self._cursors)

    async def last_read(self, thread_ids: list[str], user_id: str) -> dict[str, int]:
        ids = [_cursor_id(thread_id, user_id) for thread_id in thread_ids]
        cursor = self._cursors.find({"_id": {"$in": ids}}, {"thread_id": 1, "last_read_seq": 1})
        return {document["thread_id"]: document["last_read_seq"] async for document in cursor}

    async def advance(
        self, *, firm: str, thread_id: str, user_id: str, up_to_seq: int, event: Envelope[Any]
    ) -> bool:
        """Move the cursor forward (never back); False when it was already there."""
        key = _cursor_id(thread_id, user_id)
        try:
            return await self._writes.update_one(
                {"_id": key, "last_read_seq": {"$lt": up_to_seq}},
                {
                    "$set": {
                        "firm": firm,
                        "thread_id": thread_id,
                        "user_id": user_id,
                        "last_read_seq": up_to_seq,
                        "read_at": event.occurred_at,
                    },
                },
                events=[event],
                upsert=True,
            )
        except DuplicateKeyError:
            return False
