"""Messaging's MongoDB store (the only module that knows its documents)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.kit.outbox import Outbox
from threadline.messaging.domain import FirmChatSettings

__all__ = ["MongoFirmSettingsStore"]


class MongoFirmSettingsStore:
    """Firm chat settings, one document per firm, with optimistic revisions."""

    def __init__(self, database: AsyncDatabase[dict[str, Any]], *, outbox: Outbox) -> None:
        self._collection = database["firm_settings"]
        self._writes = outbox.writer(self._collection)

    async def get(self, firm: str) -> FirmChatSettings:
        document = await self._collection.find_one({"_id": firm}, {"_outbox": 0})
        if document is None:
            return FirmChatSettings(firm=firm)
        return FirmChatSettings(
            firm=firm,
            clients_can_create_threads=document["clients_can_create_threads"],
            show_message_context_in_notifications=document["show_message_context_in_notifications"],
            revision=document["revision"],
        )

    async def save(
        self, settings: FirmChatSettings, *, expected_revision: int, event: Envelope[Any]
    ) -> bool:
        """Write the new revision and its event in one write; False if another write won."""
        fields = {
            "clients_can_create_threads": settings.clients_can_create_threads,
            "show_message_context_in_notifications": settings.show_message_context_in_notifications,
            "revision": settings.revision,
        }
        if expected_revision == 0:
            try:
                await self._writes.insert_one({"_id": settings.firm, **fields}, events=[event])
            except DuplicateKeyError:
                return False
            return True
        return await self._writes.update_one(
            {"_id": settings.firm, "revision": expected_revision},
            {"$set": fields},
            events=[event],
        )
