"""Messaging events: threads, messages, read receipts, pins and the firm's chat settings.

Keyed by thread id so every consumer sees one thread's history in order; the firm-wide
settings event is keyed by firm id. Events about messages carry ``internal`` so that
consumers which serve clients (e-mails, counts, previews) can drop them without a lookup (M3).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from threadline.contracts.envelope import EventData
from threadline.contracts.events.common import AccountId, Actor, Id, ThreadId, UserKind
from threadline.contracts.extensible import Extensible
from threadline.contracts.registry import register

__all__ = [
    "AttachmentRemoved",
    "Author",
    "Embed",
    "FirmChatSettingsChanged",
    "MessageDeleted",
    "MessageEdited",
    "MessagePinned",
    "MessagePosted",
    "MessageUnpinned",
    "MessagesRead",
    "NewClientTask",
    "ReminderSettings",
    "ThreadArchived",
    "ThreadCreated",
    "ThreadLinkedToJob",
    "ThreadReopened",
]


_MessageId = Annotated[Id, Field(description="Message id.", examples=["msg_0001"])]
_Internal = Annotated[
    bool,
    Field(
        description="Internal (staff-only) message: never shown to clients (M3).", examples=[False]
    ),
]
_STAFF_ACTOR = {"user_id": "st_mia", "kind": "staff"}
_CLIENT_ACTOR = {"user_id": "ct_ann", "kind": "client"}


class Author(BaseModel):
    """The author of a message as shown in the thread (R3: clients show as the contact)."""

    model_config = ConfigDict(frozen=True)

    user_id: Id = Field(description="User id of the author.", examples=["st_mia"])
    kind: UserKind = Field(description="Staff or client author.", examples=["staff"])
    name: str = Field(description="Display name at the time of posting.", examples=["Mia Chen"])
    account_name: str | None = Field(
        default=None,
        description=(
            "R3: for a client author, the name of the account (the client) they write for, "
            "shown with the contact's name; null for staff and in events written before it "
            "existed."
        ),
        examples=["Lee family"],
    )


class NewClientTask(BaseModel):
    """A client task to create with a thread; the tasks service owns it from then on (K1)."""

    model_config = ConfigDict(frozen=True)

    task_id: Id | None = Field(
        default=None,
        description="Id chosen by messaging, if any; the tasks service assigns one otherwise.",
        examples=["task_upload_w2"],
    )
    text: str = Field(
        min_length=1, description="Task text; may contain links.", examples=["Upload your W-2"]
    )


class ReminderSettings(BaseModel):
    """Per-thread reminder settings (Q1)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(description="Reminders on or off.", examples=[True])
    days_between: int = Field(
        default=3, ge=1, description="Days until the next reminder (Q1).", examples=[3]
    )
    max_reminders: int = Field(
        default=1, ge=1, description="How many reminders to send at most (Q1).", examples=[1]
    )


class Embed(BaseModel):
    """A video link embedded in a message (M5)."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(
        description="Link as pasted by the author.", examples=["https://www.loom.com/share/abc123"]
    )
    provider: Annotated[Literal["loom", "youtube", "vimeo", "google_drive"], Extensible] = Field(
        description="Video host the link was recognised as.", examples=["loom"]
    )
    embed_url: str | None = Field(
        default=None,
        description="Canonical player URL to put in an iframe (absent from older producers).",
        examples=["https://www.loom.com/embed/abc123"],
    )


@register
class ThreadCreated(EventData):
    """A thread was created for an account, by staff, a client, a template or an automation (T4)."""

    event_type = "messaging.thread.created"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    subject: str = Field(
        description="Subject shown in the thread list (T1).", examples=["2025 tax documents"]
    )
    created_by: Actor = Field(description="Who created the thread.", examples=[_STAFF_ACTOR])
    to_contact_ids: list[Id] = Field(
        description='Contacts addressed in "To" (T2); all have portal access activated.',
        examples=[["ct_ann"]],
    )
    first_message_id: Id = Field(
        description="The thread's first message; its `messaging.message.posted` follows.",
        examples=["msg_0001"],
    )
    client_tasks: list[NewClientTask] = Field(
        default_factory=list,
        description="Client tasks the tasks service should create on the thread (T4, K1).",
        examples=[[{"task_id": "task_upload_w2", "text": "Upload your W-2"}]],
    )
    reminders: ReminderSettings = Field(
        description="Reminder settings chosen at creation (Q1).",
        examples=[{"enabled": True, "days_between": 3, "max_reminders": 1}],
    )
    job_ids: list[Id] = Field(
        default_factory=list,
        description="Pipeline jobs the thread is linked to at creation (J1, J3).",
        examples=[["job_lee_1040_2025"]],
    )
    template_id: Id | None = Field(
        default=None, description="Chat template used, if any (P1).", examples=["tpl_request_docs"]
    )


@register
class ThreadArchived(EventData):
    """A thread was archived as resolved (T5); reminders stop (Q3)."""

    event_type = "messaging.thread.archived"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    archived_by: Actor = Field(description="Who archived the thread.", examples=[_STAFF_ACTOR])


@register
class ThreadReopened(EventData):
    """An archived thread was reopened (T5); reminders re-arm as for a new message (Q4)."""

    event_type = "messaging.thread.reopened"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    reopened_by: Actor = Field(description="Who reopened the thread.", examples=[_STAFF_ACTOR])


@register
class ThreadLinkedToJob(EventData):
    """A thread was linked to a pipeline job after creation, by hand or by automation (J1, J3).

    Links made at creation travel in ``messaging.thread.created`` ``job_ids`` instead.
    """

    event_type = "messaging.thread.linked_to_job"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    job_id: Id = Field(description="The linked job.", examples=["job_lee_1040_2025"])
    linked_by: Id | None = Field(
        default=None,
        description="Staff user id who linked it by hand; null when an automation did (J1).",
        examples=["st_mia"],
    )


@register
class MessagePosted(EventData):
    """A message was posted in a thread; drives the stream, e-mails, inbox and reminders."""

    event_type = "messaging.message.posted"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    message_id: _MessageId
    seq: int = Field(
        ge=1, description="Per-thread sequence number, from 1, gap-free.", examples=[1]
    )
    client_seq: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Number among the thread's client-visible messages (what clients see as `seq`); "
            "null for an internal message or from older producers (M3)."
        ),
        examples=[1],
    )
    author: Author = Field(
        description="Who wrote the message.",
        examples=[{"user_id": "st_mia", "kind": "staff", "name": "Mia Chen"}],
    )
    internal: _Internal
    html: str = Field(
        description="Sanitized rich-text body (M1); shortcodes already resolved.",
        examples=["<p>Hi Ann, please upload your <b>W-2</b>.</p>"],
    )
    text: str = Field(
        description="Plain-text rendering of the body, for e-mails and previews.",
        examples=["Hi Ann, please upload your W-2."],
    )
    mentions: list[Id] = Field(
        default_factory=list,
        description="Staff user ids @mentioned; they are notified and gain access (M2, T7).",
        examples=[["st_leo"]],
    )
    reply_to: Id | None = Field(
        default=None, description="Message id this one replies to (M7).", examples=["msg_0000"]
    )
    document_ids: list[Id] = Field(
        default_factory=list,
        description="Documents attached to the message (M4).",
        examples=[["doc_w2_2025"]],
    )
    embeds: list[Embed] = Field(
        default_factory=list,
        description="Embedded videos (M5).",
        examples=[[{"url": "https://www.loom.com/share/abc123", "provider": "loom"}]],
    )
    posted_at: datetime = Field(
        description="When the message was stored (UTC).", examples=["2026-03-02T09:15:00Z"]
    )
    client_tasks: list[NewClientTask] = Field(
        default_factory=list,
        description="Client tasks the message adds to the thread's list: a template with tasks "
        "sent as a reply (J1); the tasks service adds them to the existing list (K4).",
        examples=[[{"task_id": "task_sign_8879", "text": "Sign form 8879"}]],
    )


@register
class MessageEdited(EventData):
    """Staff edited their own message within 24 hours (M8); carries the new body."""

    event_type = "messaging.message.edited"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    message_id: _MessageId
    internal: _Internal
    html: str = Field(
        description="New sanitized rich-text body.",
        examples=["<p>Hi Ann, please upload your <b>W-2s</b>.</p>"],
    )
    text: str = Field(
        description="New plain-text body.", examples=["Hi Ann, please upload your W-2s."]
    )
    mentions: list[Id] = Field(
        default_factory=list,
        description="Staff user ids @mentioned in the new body.",
        examples=[["st_leo"]],
    )
    edited_by: Id = Field(
        description="Staff user id of the editor (always the author).", examples=["st_mia"]
    )
    edited_at: datetime = Field(
        description="When the edit was stored (UTC).", examples=["2026-03-02T10:00:00Z"]
    )


@register
class MessageDeleted(EventData):
    """A message was deleted for good by its author (M11); its documents leave the thread."""

    event_type = "messaging.message.deleted"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    message_id: _MessageId
    internal: _Internal
    deleted_by: Actor = Field(
        description="Who deleted it (always the author).", examples=[_STAFF_ACTOR]
    )
    document_ids: list[Id] = Field(
        default_factory=list,
        description="Documents that were attached; the documents service deletes them (M11).",
        examples=[["doc_w2_2025"]],
    )


@register
class MessagePinned(EventData):
    """A message was pinned to the top of its thread (M10)."""

    event_type = "messaging.message.pinned"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    message_id: _MessageId
    internal: _Internal
    pinned_by: Actor = Field(description="Who pinned it.", examples=[_STAFF_ACTOR])


@register
class MessageUnpinned(EventData):
    """A pinned message was unpinned (M10)."""

    event_type = "messaging.message.unpinned"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    message_id: _MessageId
    internal: _Internal
    unpinned_by: Actor = Field(description="Who unpinned it.", examples=[_STAFF_ACTOR])


@register
class AttachmentRemoved(EventData):
    """A document attached to a message was deleted; the message now shows it as removed (M4)."""

    event_type = "messaging.message.attachment_removed"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    message_id: _MessageId
    internal: _Internal
    document_id: Id = Field(description="The removed document.", examples=["doc_w2_2025"])


@register
class MessagesRead(EventData):
    """A user read a thread up to a sequence number (R1); feeds read marks and reminder stops."""

    event_type = "messaging.messages.read"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    reader: Actor = Field(description="Who read the messages.", examples=[_CLIENT_ACTOR])
    up_to_seq: int = Field(
        ge=1, description="Every message with `seq` up to this one is read.", examples=[3]
    )
    read_at: datetime = Field(
        description="When they were read (UTC).", examples=["2026-03-02T11:30:00Z"]
    )


@register
class FirmChatSettingsChanged(EventData):
    """The firm's chat settings changed (T3, K7); consumers keep only the highest revision."""

    event_type = "messaging.firm_chat_settings.changed"
    key_field = None

    clients_can_create_threads: bool = Field(
        description="Clients may start threads (T3).", examples=[True]
    )
    show_message_context_in_notifications: bool = Field(
        description="Client e-mails include message and task content (K7).", examples=[False]
    )
    revision: int = Field(
        ge=1, description="Settings revision, increasing by firm; ignore lower ones.", examples=[2]
    )
    changed_by: Id = Field(
        description="Staff user id who changed the settings.", examples=["st_mia"]
    )
