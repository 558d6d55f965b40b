"""Chat templates (P1): one document per template, scoped by firm.

Templates cause no events: threads copy what they render from a template, so changing or
deleting one never touches a thread.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from threadline.kit.ids import Document

__all__ = ["MongoTemplateStore"]


class MongoTemplateStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._templates = database["templates"]

    async def get(self, firm: str, template_id: str) -> Document | None:
        return await self._templates.find_one({"_id": template_id, "firm": firm})

    async def count(self, firm: str) -> int:
        return await self._templates.count_documents({"firm": firm})

    async def insert(self, document: Document) -> None:
        await self._templates.insert_one(document)

    async def update(
        self, firm: str, template_id: str, *, revision: int, changes: Document
    ) -> bool:
        """Apply ``changes`` if the template is still at ``revision``; False otherwise."""
        result = await self._templates.update_one(
            {"_id": template_id, "firm": firm, "revision": revision},
            {"$set": changes, "$inc": {"revision": 1}},
        )
        return result.modified_count == 1

    async def delete(self, firm: str, template_id: str) -> bool:
        result = await self._templates.delete_one({"_id": template_id, "firm": firm})
        return result.deleted_count == 1

    async def page(self, firm: str, *, after: str | None, limit: int) -> list[Document]:
        """Up to ``limit`` + 1 templates in creation order (ids are UUIDv7) after ``after``."""
        query: Document = {"firm": firm}
        if after is not None:
            query["_id"] = {"$gt": after}
        return await self._templates.find(query).sort("_id", 1).limit(limit + 1).to_list()
