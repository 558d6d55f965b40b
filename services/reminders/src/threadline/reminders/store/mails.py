"""The outbound mail queue: every e-mail is a stored document before any SMTP traffic.

A mail is due at ``due_at`` while ``pending``. Coalescing (N1): a new message to a recipient
in a thread joins the recipient's *open* mail for that thread (``coalesce_key``) if there is
one, else opens a new mail due one window later; a mail stops accepting messages the moment
a sender claims it. Claims are the kit's per-item claims (``ItemClaims``): a claim moves
``due_at`` forward by the lease (another replica takes over a crashed sender's mail once it
passes) and stores a claim token; only the holder of the token can mark the mail sent, retry
it later or give it up, each in one atomic update.

Ids are derived from what caused the mail (message, reminder number, recipient), and a
message already queued for a recipient is never queued again, so redelivered events send
nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from threadline.kit.ids import Document
from threadline.kit.leases import ItemClaims

__all__ = ["MongoMailQueue"]

_PENDING: Document = {"pending": True}


class MongoMailQueue:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._mails = database["mails"]
        self._claims = ItemClaims(self._mails)

    async def add_to_batch(
        self, mail: Document, *, message: Document, now: datetime, window: timedelta
    ) -> None:
        """Queue ``message`` for the recipient of ``mail`` (which names ``coalesce_key``):
        into their open mail for the thread, or a new one due after ``window``."""
        key = mail["coalesce_key"]
        message_id = message["message_id"]
        if await self._mails.find_one({"coalesce_key": key, "message_ids": message_id}, {"_id": 1}):
            return  # already queued (a redelivered event)
        joined = await self._mails.update_one(
            {"coalesce_key": key, "open": True},
            {"$push": {"messages": message}, "$addToSet": {"message_ids": message_id}},
        )
        if joined.matched_count:
            return
        await self.enqueue(
            {
                **mail,
                "_id": f"{key}:{message_id}",
                "open": True,
                "messages": [message],
                "message_ids": [message_id],
            },
            due_at=now + window,
            now=now,
        )

    async def enqueue(self, mail: Document, *, due_at: datetime, now: datetime) -> bool:
        """Store ``mail`` (its ``_id`` set by the caller); False if it was already queued."""
        document = {
            "open": False,
            "pending": True,
            "status": "queued",
            "attempts": 0,
            "claim": None,
            "created_at": now,
            **mail,
            "due_at": due_at,
        }
        try:
            await self._mails.insert_one(document)
        except DuplicateKeyError:
            return False
        return True

    async def due(self, now: datetime, *, limit: int) -> list[Document]:
        return await self._claims.due(_PENDING, now=now, limit=limit)

    async def claim_due(
        self, now: datetime, *, limit: int, lease: timedelta, token: str
    ) -> list[Document]:
        """Own up to ``limit`` due mails until ``now + lease`` and close them to coalescing;
        the mails this claim (``token``, unique per call) won, as claimed. Two round trips
        for the whole batch: a claim races other replicas per mail, and only the mails
        carrying this token afterwards are this caller's."""
        return await self._claims.claim_due(
            _PENDING, token=token, now=now, lease=lease, limit=limit, also_set={"open": False}
        )

    async def mark_sent(self, mail_id: str, *, token: str, now: datetime) -> bool:
        """Mark one mail sent, by id, only while ``token``'s claim holds."""
        return await self._claims.finish(
            mail_id,
            token=token,
            update={"$set": {"pending": False, "status": "sent", "sent_at": now}},
        )

    async def retry_later(
        self, mail_id: str, *, token: str, due_at: datetime, error: str, first_failure: datetime
    ) -> None:
        await self._claims.finish(
            mail_id,
            token=token,
            update={
                "$set": {
                    "due_at": due_at,
                    "last_error": error[:500],
                    "first_failure_at": first_failure,
                },
                "$inc": {"attempts": 1},
            },
        )

    async def give_up(self, mail_id: str, *, token: str, error: str, now: datetime) -> None:
        await self._claims.finish(
            mail_id,
            token=token,
            update={
                "$set": {
                    "pending": False,
                    "status": "failed",
                    "failed_at": now,
                    "last_error": error[:500],
                },
                "$inc": {"attempts": 1},
            },
        )

    async def sent_to(self, firm: str, thread_id: str) -> list[Document]:
        """Mails of a thread, for tests and support: who got what, and its state."""
        cursor = self._mails.find({"firm": firm, "thread.thread_id": thread_id})
        return await cursor.sort("created_at", 1).to_list()
