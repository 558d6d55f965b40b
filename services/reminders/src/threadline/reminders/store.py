"""Reminders' MongoDB store: its projection of each firm's chat settings.

Client e-mails (K7) show message content only when the firm allows it, so reminders keeps
the latest settings per firm, applying a change only when its revision is newer.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.contracts import Envelope
from threadline.contracts.events.messaging import FirmChatSettingsChanged

__all__ = ["MongoFirmSettingsProjection"]


class MongoFirmSettingsProjection:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._collection = database["firm_settings"]

    async def get(self, firm: str) -> dict[str, Any] | None:
        return await self._collection.find_one({"_id": firm})

    async def apply(self, event: Envelope[FirmChatSettingsChanged]) -> None:
        data = event.data
        try:
            await self._collection.update_one(
                {"_id": event.firm, "revision": {"$lt": data.revision}},
                {
                    "$set": {
                        "clients_can_create_threads": data.clients_can_create_threads,
                        "show_message_context_in_notifications": (
                            data.show_message_context_in_notifications
                        ),
                        "revision": data.revision,
                    },
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return  # the projection already holds this revision or a newer one
