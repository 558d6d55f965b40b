"""Who hears about what (N1, N2, K5, K6): client e-mails, staff inbox items, staff e-mails.

Each use case turns one event into stored work: mails go to the outbound queue (delivered by
``delivery.MailDelivery``) and inbox items are inserted with ids derived from the event, so
a redelivered event adds nothing. Nobody gets an item for their own action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from threadline.contracts import Envelope
from threadline.contracts.events.common import Actor
from threadline.contracts.events.documents import DocumentUploaded
from threadline.contracts.events.messaging import MessagePosted
from threadline.contracts.events.tasks import TaskListAllCompleted, TaskListChanged
from threadline.kit.directory import MongoDirectory
from threadline.kit.ids import Document
from threadline.reminders.domain import (
    InboxItemType,
    client_mail_recipients,
    message_inbox_recipients,
)
from threadline.reminders.store import MongoInbox, MongoMailQueue
from threadline.reminders.store.directory import MongoStaffEmails

__all__ = ["Notifier"]

EXCERPT_CHARS = 280
_STAFF_MAIL_KINDS = {
    InboxItemType.MENTION: "staff_mention",
    InboxItemType.CLIENT_NEW_THREAD: "staff_message",
    InboxItemType.CLIENT_REPLY: "staff_message",
}


class Notifier:
    def __init__(
        self,
        *,
        mails: MongoMailQueue,
        inbox: MongoInbox,
        directory: MongoDirectory,
        staff_emails: MongoStaffEmails,
        coalesce_window: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._mails = mails
        self._inbox = inbox
        self._directory = directory
        self._staff_emails = staff_emails
        self._window = coalesce_window
        self._clock = clock

    async def message_posted(self, event: Envelope[MessagePosted], thread: Document) -> None:
        """N1 client e-mails for a firm message; N2/M2 inbox items and staff e-mails."""
        data = event.data
        firm = event.firm
        account = await self._directory.account(firm, data.account_id)
        if account is None:
            return  # an account the directory does not know (or removed): nobody to tell
        card = _thread_card(thread, account)
        message = {
            "message_id": data.message_id,
            "author_name": data.author.name,
            "author_kind": data.author.kind,
            "text": data.text[:10_000],
            "posted_at": data.posted_at,
        }
        if data.author.kind == "staff" and not data.internal and thread.get("to_contact_ids"):
            recipients = client_mail_recipients(
                to_contact_ids=thread.get("to_contact_ids") or [],
                contacts=account.get("contacts") or [],
                staff_emails=await self._staff_emails.of_firm(firm),
            )
            for recipient in recipients:
                await self._mails.add_to_batch(
                    {
                        "coalesce_key": f"client:{firm}:{data.thread_id}:{recipient['id']}",
                        "firm": firm,
                        "kind": "client_message",
                        "to": recipient,
                        "thread": card,
                    },
                    message=message,
                    now=self._clock(),
                    window=self._window,
                )
        creator = thread.get("created_by") or {}
        recipients_by_type = message_inbox_recipients(
            author_id=data.author.user_id,
            author_kind=data.author.kind,
            is_first_message=data.message_id == thread.get("first_message_id"),
            carries_documents=bool(data.document_ids),
            creator_id=creator.get("user_id"),
            creator_kind=creator.get("kind"),
            repliers=thread.get("repliers") or [],
            mentions=data.mentions,
            assigned_staff=account.get("assigned_staff") or [],
        )
        active = await self._directory.active_staff_ids(firm, list(recipients_by_type))
        recipients_by_type = {k: v for k, v in recipients_by_type.items() if k in active}
        await self._inbox.add(
            _items(
                event,
                recipients_by_type,
                card=card,
                actor={
                    "user_id": data.author.user_id,
                    "kind": data.author.kind,
                    "name": data.author.name,
                },
                at=data.posted_at,
                detail={
                    "message_id": data.message_id,
                    "internal": data.internal,
                    "excerpt": data.text[:EXCERPT_CHARS],
                },
            )
        )
        for user_id, item_type in recipients_by_type.items():
            kind = _STAFF_MAIL_KINDS.get(item_type)
            staff = await self._directory.staff_member(firm, user_id) if kind else None
            if kind is None or staff is None or "@" not in str(staff.get("email", "")):
                continue
            await self._mails.add_to_batch(
                {
                    "coalesce_key": f"{kind}:{firm}:{data.thread_id}:{user_id}",
                    "firm": firm,
                    "kind": kind,
                    "to": {"id": user_id, "name": staff.get("name", ""), "email": staff["email"]},
                    "thread": card,
                },
                message=message,
                now=self._clock(),
                window=self._window,
            )

    async def tasks_changed(self, event: Envelope[TaskListChanged], thread: Document) -> None:
        """K5: staff assigned to the account hear of every change, and who made it."""
        data = event.data
        account = await self._directory.account(event.firm, data.account_id) or {}
        changed = {task.task_id: task.text for task in data.tasks}
        await self._notify_staff(
            event,
            recipients=set(account.get("assigned_staff") or []),
            item_type=InboxItemType.TASK_CHANGE,
            actor=data.changed_by,
            card=_thread_card(thread, account),
            account=account,
            detail={
                "change": data.change,
                "tasks": [changed[i][:200] for i in data.changed_task_ids if i in changed][:20],
                "progress": data.progress.model_dump(),
            },
        )

    async def tasks_all_completed(
        self, event: Envelope[TaskListAllCompleted], thread: Document
    ) -> None:
        """K6: the thread's creator and the assigned staff hear that every task is done."""
        data = event.data
        account = await self._directory.account(event.firm, data.account_id) or {}
        recipients = set(account.get("assigned_staff") or [])
        creator = thread.get("created_by") or {}
        if creator.get("kind") == "staff":
            recipients.add(str(creator["user_id"]))
        await self._notify_staff(
            event,
            recipients=recipients,
            item_type=InboxItemType.TASKS_COMPLETED,
            actor=data.completed_by,
            card=_thread_card(thread, account),
            account=account,
            detail={"total": data.total},
        )

    async def document_uploaded(
        self, event: Envelope[DocumentUploaded], thread: Document | None
    ) -> None:
        """N2: a client's upload reaches the thread's staff (or the account's assigned staff)."""
        data = event.data
        if data.uploaded_by.kind != "client":
            return
        account = await self._directory.account(event.firm, data.account_id) or {}
        recipients: set[str] = set()
        if thread is not None:
            recipients = set(thread.get("repliers") or [])
            creator = thread.get("created_by") or {}
            if creator.get("kind") == "staff":
                recipients.add(str(creator["user_id"]))
        await self._notify_staff(
            event,
            recipients=recipients or set(account.get("assigned_staff") or []),
            item_type=InboxItemType.DOCUMENTS_UPLOADED,
            actor=data.uploaded_by,
            card=_thread_card(thread or {"thread_id": data.thread_id}, account),
            account=account,
            detail={"document_id": data.document_id, "filename": data.filename[:255]},
        )

    async def _notify_staff(
        self,
        event: Envelope[Any],
        *,
        recipients: set[str],
        item_type: InboxItemType,
        actor: Actor,
        card: Document,
        account: Mapping[str, Any],
        detail: Document,
    ) -> None:
        recipients.discard(actor.user_id)
        active = await self._directory.active_staff_ids(event.firm, sorted(recipients))
        actor_card = {
            "user_id": actor.user_id,
            "kind": actor.kind,
            "name": await self._actor_name(event.firm, actor, account),
        }
        await self._inbox.add(
            _items(
                event,
                dict.fromkeys(sorted(active), item_type),
                card=card,
                actor=actor_card,
                at=event.occurred_at,
                detail=detail,
            )
        )

    async def _actor_name(self, firm: str, actor: Actor, account: Mapping[str, Any]) -> str:
        if actor.kind == "client":
            for contact in account.get("contacts") or []:
                if contact.get("contact_id") == actor.user_id:
                    return str(contact.get("name", ""))
            return actor.name or ""
        staff = await self._directory.staff_member(firm, actor.user_id)
        return str((staff or {}).get("name") or actor.name or "")


def _thread_card(thread: Mapping[str, Any], account: Mapping[str, Any]) -> Document:
    return {
        "thread_id": thread.get("thread_id"),
        "account_id": thread.get("account_id") or account.get("account_id", ""),
        "subject": thread.get("subject", ""),
        "account_name": account.get("name", ""),
    }


def _items(
    event: Envelope[Any],
    recipients: Mapping[str, InboxItemType],
    *,
    card: Document,
    actor: Document,
    at: datetime,
    detail: Document,
) -> list[Document]:
    """One inbox item per recipient (of its item type) about ``event``."""
    return [
        {
            "_id": f"{event.id}:{recipient}",
            "firm": event.firm,
            "recipient": recipient,
            "type": item_type.value,
            "thread_id": card["thread_id"],
            "account_id": card["account_id"],
            "account_name": card["account_name"],
            "subject": card["subject"],
            "actor": actor,
            "at": at,
            "read": False,
            "detail": detail,
        }
        for recipient, item_type in recipients.items()
    ]
