"""Armed reminder schedules: one small document per thread whose reminders are running.

Only armed threads live here, indexed on ``due_at``, so the due scan reads the due ones and
nothing else (see ``explain_due``). Claims are the kit's per-item claims (``ItemClaims``):
a claim moves ``due_at`` forward by the lease, the claimer owns the reminder until then, and
if it crashes the schedule simply becomes due again for another replica (takeover without a
separate lease field to index).

The thread document (``MongoThreadStore``) is the authority; this collection is an index of
it. Arming writes here first and disarming last, so a crash in between leaves at most a stale
entry, which the reminder run reconciles against the thread when it comes due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from threadline.kit.ids import Document
from threadline.kit.leases import ItemClaims
from threadline.reminders.domain import Schedule

__all__ = ["MongoArmedSchedules"]


class MongoArmedSchedules:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._armed = database["armed_schedules"]
        self._claims = ItemClaims(self._armed)

    @property
    def collection_name(self) -> str:
        return self._armed.name

    async def put(self, firm: str, thread_id: str, schedule: Schedule) -> None:
        await self._armed.update_one(
            {"_id": f"{firm}:{thread_id}"},
            {
                "$set": {
                    "firm": firm,
                    "thread_id": thread_id,
                    "message_id": schedule.message_id,
                    "number": schedule.number,
                    "due_at": schedule.due_at,
                    "claim": None,
                }
            },
            upsert=True,
        )

    async def remove(self, firm: str, thread_id: str, *, claimed_by: str | None = None) -> None:
        """Disarm; with ``claimed_by``, only while that claim holds (a concurrent re-arm,
        which clears the claim, survives)."""
        key = f"{firm}:{thread_id}"
        if claimed_by is None:
            await self._armed.delete_one({"_id": key})
        else:
            await self._claims.delete(key, token=claimed_by)

    def _due_query(self, now: datetime) -> Document:
        return {"due_at": {"$lte": now}}

    async def due(self, now: datetime, *, limit: int) -> list[Document]:
        cursor = self._armed.find(self._due_query(now)).sort("due_at", 1).limit(limit)
        return await cursor.to_list()

    async def claim(self, entry: Document, *, now: datetime, lease: timedelta, token: str) -> bool:
        """Own ``entry`` until ``now + lease``; False if another replica claimed it first or
        it was re-armed meanwhile."""
        return await self._claims.claim(
            entry["_id"], token=token, now=now, lease=lease, due_at=entry["due_at"]
        )

    async def explain_due(self, now: datetime, *, limit: int) -> Document:
        """The server's explain output of the due query (plan and documents examined)."""
        return await self._armed.database.command(
            {
                "explain": {
                    "find": self._armed.name,
                    "filter": self._due_query(now),
                    "sort": {"due_at": 1},
                    "limit": limit,
                },
                "verbosity": "executionStats",
            }
        )
