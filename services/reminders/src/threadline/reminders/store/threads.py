"""Threads as reminders sees them: one document per thread, ``<firm>:<thread id>`` (access
facts — account, status, mentions — come from the kit's ``ThreadProjection`` beside it).

Built from messaging and tasks events: account, subject, addressees, creator and the staff
who replied, the last firm message, the client's reply and read positions, the
task checklist, the reminder settings (Q1) and the current schedule. Every event is applied
with an upsert guarded so that a redelivery or an older event changes nothing (``$max`` on
positions, ``as_of`` on task snapshots). Events about reminders (sent, stopped) are written
with the change that causes them, through the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.ids import Document
from threadline.kit.outbox import OUTBOX_FIELD, Outbox

__all__ = ["MongoThreadStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DEFAULTS: Document = {
    "account_id": "",
    "subject": "",
    "created_by": None,
    "to_contact_ids": [],
    "settings": {"enabled": False, "days_between": 3, "max_reminders": 1},
    "archived": False,
    "repliers": [],
    "tasks": {"total": 0, "done": 0, "items": [], "as_of": _EPOCH},
    "last_firm": None,
    "last_client_seq": 0,
    "client_read_seq": 0,
    "reminders_sent": 0,
    "tasks_complete_when_armed": False,
    "schedule": None,
    "stopped": None,
    "known": False,
}


def _on_insert(update: Document) -> Document:
    """``update`` plus ``$setOnInsert`` of every default it does not set itself."""
    touched = {
        field.split(".", 1)[0]
        for operator, fields in update.items()
        if operator != "$setOnInsert"
        for field in fields
    }
    defaults = {key: value for key, value in _DEFAULTS.items() if key not in touched}
    return {**update, "$setOnInsert": {**defaults, **update.get("$setOnInsert", {})}}


class MongoThreadStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._threads = database["reminder_threads"]
        self._writer = outbox.writer(self._threads)

    @staticmethod
    def key(firm: str, thread_id: str) -> str:
        return f"{firm}:{thread_id}"

    async def get(self, firm: str, thread_id: str) -> Document | None:
        return await self._threads.find_one({"_id": self.key(firm, thread_id)}, {OUTBOX_FIELD: 0})

    async def for_mails(self, keys: list[str]) -> dict[str, Document]:
        """Task checklists and schedules of several threads (by key), for a batch of mails."""
        cursor = self._threads.find({"_id": {"$in": keys}}, {"tasks.items": 1, "schedule": 1})
        return {doc["_id"]: doc async for doc in cursor}

    async def wait_for(self, firm: str, thread_id: str, *, seconds: float) -> Document | None:
        """The thread once ``messaging.thread.created`` reached reminders, waiting up to
        ``seconds`` for a thread created just now (None if it never arrives)."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            document = await self.get(firm, thread_id)
            if document is not None and document.get("known"):
                return document
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.1)

    async def upsert(self, firm: str, thread_id: str, update: Document) -> Document:
        """Apply ``update`` (creating the thread with defaults) and return it afterwards."""
        key = self.key(firm, thread_id)
        full = _on_insert(update)
        full["$setOnInsert"] |= {"firm": firm, "thread_id": thread_id}
        for attempt in range(2):
            try:
                document = await self._threads.find_one_and_update(
                    {"_id": key}, full, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:  # two first writers raced; the second one retries
                if attempt:
                    raise
                continue
            assert document is not None  # upsert=True always returns the document
            document.pop(OUTBOX_FIELD, None)
            return document
        raise AssertionError("unreachable")

    async def update_if(
        self,
        firm: str,
        thread_id: str,
        conditions: Document,
        update: Document,
        *,
        events: Sequence[Envelope[Any]] = (),
    ) -> Document | None:
        """Apply ``update`` and write ``events`` with it, only if the thread still matches
        ``conditions`` (flat equality fields); the thread afterwards, or None."""
        return await self._writer.find_one_and_update(
            {"_id": self.key(firm, thread_id), **conditions}, update, events=events
        )

    async def apply_tasks(
        self, firm: str, thread_id: str, account_id: str, snapshot: Document, *, inclusive: bool
    ) -> Document | None:
        """Replace the task snapshot unless a newer one is stored (``inclusive``: one of the
        same instant replaces it too); the thread afterwards, or None when it was older."""
        key = self.key(firm, thread_id)
        full = _on_insert({"$set": {"tasks": snapshot, "account_id": account_id}})
        full["$setOnInsert"] |= {"firm": firm, "thread_id": thread_id}
        newer = {"$lte" if inclusive else "$lt": snapshot["as_of"]}
        try:
            document = await self._threads.find_one_and_update(
                {"_id": key, "tasks.as_of": newer},
                full,
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None  # the stored snapshot is newer: this event is obsolete
        if document is not None:
            document.pop(OUTBOX_FIELD, None)
        return document
