"""Reminder schedule, stop rules, e-mail recipients and inbox recipients: pure rules, no I/O.

Everything here takes plain values (a clock reading is an argument, never read here), so
the unit tests can walk a thread through its life with a fake clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from threadline.contracts.events.reminders import StopReason

__all__ = [
    "InboxItemType",
    "ReminderPolicy",
    "Schedule",
    "ThreadState",
    "client_mail_recipients",
    "message_inbox_recipients",
    "retry_delay",
    "stop_reason",
]


class InboxItemType(StrEnum):
    """What a staff inbox item is about (N2, K5, K6)."""

    CLIENT_NEW_THREAD = "client_new_thread"
    CLIENT_REPLY = "client_reply"
    STAFF_REPLY = "staff_reply"
    MENTION = "mention"
    TASK_CHANGE = "task_change"
    TASKS_COMPLETED = "tasks_completed"
    DOCUMENTS_UPLOADED = "documents_uploaded"


@dataclass(frozen=True)
class ReminderPolicy:
    """Per-thread reminder settings (Q1) and the length of a day (shortened in tests)."""

    enabled: bool = True
    days_between: int = 3
    max_reminders: int = 1

    def interval(self, day_seconds: float) -> timedelta:
        return timedelta(seconds=self.days_between * day_seconds)


@dataclass(frozen=True)
class Schedule:
    """The next reminder about ``message_id``: number ``number``, due at ``due_at``,
    counted from ``from_at`` (the notification, the previous reminder or the reopen)."""

    message_id: str
    number: int
    from_at: datetime
    due_at: datetime

    @classmethod
    def starting(
        cls,
        message_id: str,
        *,
        number: int,
        from_at: datetime,
        policy: ReminderPolicy,
        day_seconds: float,
    ) -> Schedule:
        return cls(
            message_id=message_id,
            number=number,
            from_at=from_at,
            due_at=from_at + policy.interval(day_seconds),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "number": self.number,
            "from_at": self.from_at,
            "due_at": self.due_at,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> Schedule | None:
        if not document:
            return None
        return cls(
            message_id=str(document["message_id"]),
            number=int(document["number"]),
            from_at=document["from_at"],
            due_at=document["due_at"],
        )


@dataclass(frozen=True)
class ThreadState:
    """What the stop rules look at (Q3): the thread as reminders knows it."""

    archived: bool = False
    policy: ReminderPolicy = ReminderPolicy()
    tasks_total: int = 0
    tasks_done: int = 0
    last_firm_seq: int | None = None
    last_client_seq: int = 0
    client_read_seq: int = 0
    reminders_sent: int = 0
    tasks_complete_when_armed: bool = False

    @property
    def tasks_complete(self) -> bool:
        return self.tasks_total > 0 and self.tasks_done >= self.tasks_total

    @property
    def all_read(self) -> bool:
        return self.last_firm_seq is not None and self.client_read_seq >= self.last_firm_seq


def stop_reason(state: ThreadState) -> StopReason | None:
    """Why reminders about the last firm message must stop now, or None (Q3).

    Always: archived, turned off, the number of reminders reached. With client tasks: all
    tasks complete and every message read (reported as ``all_read`` when the tasks were
    already complete when the reminders were armed). Without tasks: the client replied
    after the last firm message.
    """
    if state.archived:
        return StopReason.THREAD_ARCHIVED
    if not state.policy.enabled:
        return StopReason.TURNED_OFF
    if state.last_firm_seq is not None:
        if state.tasks_total > 0:
            if state.tasks_complete and state.all_read:
                return (
                    StopReason.ALL_READ
                    if state.tasks_complete_when_armed
                    else StopReason.ALL_TASKS_COMPLETED_AND_READ
                )
        elif state.last_client_seq > state.last_firm_seq:
            return StopReason.CLIENT_REPLIED
    if state.reminders_sent >= state.policy.max_reminders:
        return StopReason.LIMIT_REACHED
    return None


def client_mail_recipients(
    *,
    to_contact_ids: Collection[str],
    contacts: Iterable[Mapping[str, Any]],
    staff_emails: Collection[str],
) -> list[dict[str, str]]:
    """N1: the addressed contacts of the account with Notify on and an activated portal.

    Contacts are taken from the account's own contact list (never from thread participants),
    and an address that belongs to a staff member of the firm is never used for a client
    e-mail, whatever the directory says about the contact.
    """
    staff = {email.strip().lower() for email in staff_emails}
    chosen: list[dict[str, str]] = []
    for contact in contacts:
        email = str(contact.get("email") or "").strip()
        if (
            contact.get("contact_id") in to_contact_ids
            and contact.get("notify")
            and contact.get("portal_activated")
            and "@" in email
            and email.lower() not in staff
        ):
            chosen.append(
                {"id": str(contact["contact_id"]), "name": str(contact["name"]), "email": email}
            )
    return chosen


def message_inbox_recipients(
    *,
    author_id: str,
    author_kind: str,
    is_first_message: bool,
    carries_documents: bool,
    creator_id: str | None,
    creator_kind: str | None,
    repliers: Collection[str],
    mentions: Collection[str],
    assigned_staff: Collection[str],
) -> dict[str, InboxItemType]:
    """N2 and M2: which staff get an inbox item for a posted message, and of which type.

    A client's message goes to the thread's creator and the staff who replied in it (when a
    client started the thread and no staff replied yet: the staff assigned to the account);
    a staff reply goes to the other staff in the thread; a mention goes to the mentioned
    member. Nobody gets an item for their own message. A client message that carries
    documents is messaging's post of a client upload: its ``documents_uploaded`` item
    already tells the same people, so it adds no second item.
    """
    participants = set(repliers)
    if creator_kind == "staff" and creator_id:
        participants.add(creator_id)
    recipients: dict[str, InboxItemType] = {}
    if author_kind == "client" and carries_documents:
        pass
    elif author_kind == "client":
        kind = InboxItemType.CLIENT_NEW_THREAD if is_first_message else InboxItemType.CLIENT_REPLY
        for user_id in participants or set(assigned_staff):
            recipients[user_id] = kind
    else:
        for user_id in participants:
            recipients[user_id] = InboxItemType.STAFF_REPLY
    for user_id in mentions:
        recipients[user_id] = InboxItemType.MENTION
    recipients.pop(author_id, None)
    return recipients


def retry_delay(attempts: int, *, max_seconds: float) -> float:
    """Backoff before SMTP attempt ``attempts + 1``: 1 s, 2 s, 4 s … capped at ``max_seconds``."""
    return float(min(max_seconds, 2.0 ** max(0, attempts - 1)))
