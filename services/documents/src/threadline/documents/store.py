"""Documents' MongoDB stores: document metadata (with the outbox) and the upload ledger.

A deleted document stays as a tombstone (``deleted: True`` plus its pending
``documents.document.deleted`` event), so the event is written in the same single-document
write as the deletion (``threadline.kit.outbox``); every query filters tombstones out.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from threadline.contracts import Envelope
from threadline.kit.directory import DIRECTORY_INDEXES
from threadline.kit.ids import Document
from threadline.kit.mongo import IndexSpec
from threadline.kit.outbox import Outbox

__all__ = ["DOCUMENTS_INDEXES", "MongoDocumentStore", "MongoUploadLedger"]

_HIDDEN = {"_outbox": 0}

DOCUMENTS_INDEXES = (
    *DIRECTORY_INDEXES,
    IndexSpec("documents", [("firm", 1), ("account_id", 1), ("folder", 1), ("deleted", 1)]),
    IndexSpec("documents", [("firm", 1), ("thread_id", 1), ("deleted", 1)]),
    IndexSpec("documents", [("_outbox.created_ms", 1)]),
    IndexSpec("documents", [("object_key", 1)]),
    IndexSpec("documents", [("firm", 1), ("upload", 1)]),
    IndexSpec("uploads_in_progress", [("started_at", 1)]),
)


class MongoUploadLedger:
    """Uploads whose objects are being stored: an entry is written before the first byte
    goes to MinIO and removed once the metadata is in (or the objects are gone). An entry
    that outlives its upload marks a crash, and its objects for the sweeper."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._uploads = database["uploads_in_progress"]

    async def begin(self, prefix: str, *, at: datetime) -> None:
        await self._uploads.insert_one({"_id": prefix, "started_at": at})

    async def finish(self, prefix: str) -> None:
        await self._uploads.delete_one({"_id": prefix})

    async def started_before(self, cutoff: datetime) -> list[str]:
        found = self._uploads.find({"started_at": {"$lt": cutoff}}, {"_id": 1})
        return [document["_id"] async for document in found]


class MongoDocumentStore:
    def __init__(self, database: AsyncDatabase[Document], *, outbox: Outbox) -> None:
        self._documents = database["documents"]
        self._writes = outbox.writer(self._documents)

    async def insert_all(self, documents: list[Document], events: list[Envelope[Any]]) -> None:
        """Insert documents, each with its own event. No multi-document transactions exist
        here, so a failure part-way removes what was inserted before re-raising."""
        await self._writes.insert_many(
            [(doc, [event]) for doc, event in zip(documents, events, strict=True)]
        )

    async def of_upload(self, firm: str, prefix: str) -> list[Document]:
        """The live documents one upload stored (a zip's files in their order)."""
        found = self._documents.find(
            {"firm": firm, "upload": prefix, "deleted": False}, _HIDDEN
        ).sort("object_key", 1)
        return [document async for document in found]

    async def any_under(self, prefix: str) -> bool:
        """Whether metadata (live or tombstone) names an object under ``prefix``."""
        found = await self._documents.find_one(
            {"object_key": {"$regex": f"^{re.escape(prefix)}"}}, {"_id": 1}
        )
        return found is not None

    async def get(self, firm: str, document_id: str) -> Document | None:
        return await self._documents.find_one(
            {"_id": document_id, "firm": firm, "deleted": False}, _HIDDEN
        )

    async def list_folder(
        self,
        firm: str,
        account_id: str,
        *,
        folder: str,
        recursive: bool,
        include_internal: bool,
    ) -> list[Document]:
        query: Document = {"firm": firm, "account_id": account_id, "deleted": False}
        if recursive and folder:
            query["folder"] = {"$regex": f"^{re.escape(folder)}(/|$)"}
        elif not recursive:
            query["folder"] = folder
        if not include_internal:
            query["internal"] = False
        cursor = self._documents.find(query, _HIDDEN).sort([("folder", 1), ("filename", 1)])
        return await cursor.to_list()

    async def folders(self, firm: str, account_id: str, *, include_internal: bool) -> list[str]:
        query: Document = {"firm": firm, "account_id": account_id, "deleted": False}
        if not include_internal:
            query["internal"] = False
        return sorted(await self._documents.distinct("folder", query))

    async def list_thread(
        self, firm: str, thread_id: str, *, include_internal: bool
    ) -> list[Document]:
        query: Document = {"firm": firm, "thread_id": thread_id, "deleted": False}
        if not include_internal:
            query["internal"] = False
        return await self._documents.find(query, _HIDDEN).sort("uploaded_at", 1).to_list()

    async def attached_to(
        self, firm: str, thread_id: str, document_ids: list[str]
    ) -> list[Document]:
        return await self._documents.find(
            {"firm": firm, "thread_id": thread_id, "_id": {"$in": document_ids}, "deleted": False},
            _HIDDEN,
        ).to_list()

    async def update(self, document: Document, changes: Document) -> bool:
        """Apply ``changes`` unless the document was deleted meanwhile."""
        result = await self._documents.update_one(
            {"_id": document["_id"], "deleted": False}, {"$set": changes}
        )
        return result.matched_count == 1

    async def mark_deleted(self, document: Document, *, event: Envelope[Any]) -> bool:
        """Replace the metadata by a tombstone carrying the deletion event; False if gone."""
        return await self._writes.update_one(
            {"_id": document["_id"], "deleted": False},
            {"$set": {"deleted": True, "object_removed": False}},
            events=[event],
        )

    async def mark_object_removed(self, document_id: str) -> None:
        await self._documents.update_one({"_id": document_id}, {"$set": {"object_removed": True}})

    async def tombstones_with_objects(self) -> list[Document]:
        """Deleted documents whose object a crash may have left in storage."""
        found = self._documents.find(
            {"deleted": True, "object_removed": False}, {"_id": 1, "object_key": 1}
        )
        return await found.to_list()
