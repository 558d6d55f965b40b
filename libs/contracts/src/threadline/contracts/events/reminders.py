"""Reminders events: reminder e-mails sent about a thread's last message, and why they stopped.

Keyed by thread id. Messaging shows reminder state from them; nothing else is needed to
reconstruct a thread's reminder history (Q1-Q4).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from threadline.contracts.envelope import EventData
from threadline.contracts.events.common import AccountId, Id, ThreadId
from threadline.contracts.registry import register

__all__ = ["ReminderSent", "RemindersStopped", "StopReason"]


class StopReason(StrEnum):
    """Why a thread's reminders stopped: the stop rules of SPEC Q3."""

    ALL_TASKS_COMPLETED_AND_READ = "all_tasks_completed_and_read"
    ALL_READ = "all_read"
    CLIENT_REPLIED = "client_replied"
    THREAD_ARCHIVED = "thread_archived"
    TURNED_OFF = "turned_off"
    LIMIT_REACHED = "limit_reached"


@register
class ReminderSent(EventData):
    """A reminder e-mail about the thread's last message went out (Q2)."""

    event_type = "reminders.reminder.sent"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    message_id: Id = Field(
        description="The message the reminder is about (Q2).", examples=["msg_0001"]
    )
    reminder_number: int = Field(
        ge=1, description="1 for the first reminder about this message, then 2, ...", examples=[1]
    )
    sent_to: list[Id] = Field(
        description="Contact ids e-mailed (contacts with Notify on, N1).", examples=[["ct_ann"]]
    )
    sent_at: datetime = Field(
        description="When it was sent (UTC).", examples=["2026-03-05T09:15:00Z"]
    )


@register
class RemindersStopped(EventData):
    """A thread's reminders stopped (Q3) until a new message or a reopen re-arms them (Q4)."""

    event_type = "reminders.reminders.stopped"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    reason: StopReason = Field(
        description="Which stop rule applied (Q3).", examples=["client_replied"]
    )
    reminders_sent: int = Field(
        default=0,
        ge=0,
        description="Reminders sent about the last message before stopping.",
        examples=[1],
    )
