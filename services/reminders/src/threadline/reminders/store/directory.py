"""Staff addresses of a firm, read from the kit's directory projection (same database).

Client e-mails must never go to a staff address, whatever a contact record says (N1).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["MongoStaffEmails"]


class MongoStaffEmails:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._staff = database["directory_staff"]

    async def of_firm(self, firm: str) -> set[str]:
        cursor = self._staff.find({"firm": firm, "removed": False}, {"email": 1})
        return {str(doc["email"]).strip().lower() async for doc in cursor if doc.get("email")}
