"""What each caller sees of threads and messages: the M3/R2 filters applied in one place."""

from __future__ import annotations

from typing import Literal, NotRequired

from pydantic import with_config
from typing_extensions import TypedDict

from threadline.kit.auth import Principal
from threadline.kit.ids import Document
from threadline.kit.responses import RESPONSE_CONFIG, Timestamp
from threadline.messaging.store.messages import SeqField

__all__ = [
    "DraftView",
    "EditHistory",
    "MessageContext",
    "MessagePage",
    "MessageView",
    "PinnedMessages",
    "ReadPosition",
    "ThreadPage",
    "ThreadView",
    "message_view",
    "permalink",
    "seq_field",
    "thread_view",
]


@with_config(RESPONSE_CONFIG)
class AuthorView(TypedDict):
    user_id: str
    kind: Literal["staff", "client"]
    name: str
    account_name: NotRequired[str | None]
    """R3: a client author's account, shown with the contact's name; null for staff."""


@with_config(RESPONSE_CONFIG)
class EmbedView(TypedDict):
    """M5: a video link and the player URL the app embeds."""

    provider: str
    url: str
    embed_url: str


@with_config(RESPONSE_CONFIG)
class AttachmentView(TypedDict):
    """M4: a document attached to the message; ``removed`` once the document is deleted."""

    document_id: str
    filename: str
    content_type: str
    size: int
    inline: bool
    removed: bool


@with_config(RESPONSE_CONFIG)
class TaskProgress(TypedDict):
    done: int
    total: int


@with_config(RESPONSE_CONFIG)
class ActorView(TypedDict):
    user_id: str
    kind: Literal["staff", "client"]
    name: NotRequired[str | None]


@with_config(RESPONSE_CONFIG)
class TaskItemView(TypedDict):
    """One client task as the message shows it (K4)."""

    task_id: str
    text: str
    done: bool
    done_at: str | None
    done_by: ActorView | None


@with_config(RESPONSE_CONFIG)
class TaskListSnapshot(TypedDict):
    """The whole list when the message was posted, and its progress (K4, K5)."""

    tasks: list[TaskItemView]
    progress: TaskProgress


@with_config(RESPONSE_CONFIG)
class RequestSnapshot(TypedDict):
    """A client request attached to the thread (M12), as it was when attached."""

    request_id: str
    account_id: str
    title: str
    description: str
    due_date: str | None
    status: str
    thread_ids: list[str]
    created_by: ActorView
    created_at: str
    completed_by: ActorView | None
    completed_at: str | None


@with_config(RESPONSE_CONFIG)
class NewClientTaskView(TypedDict):
    task_id: str | None
    text: str


MessageKind = Literal["message", "task_list", "tasks_completed", "request"]


@with_config(RESPONSE_CONFIG)
class MessageView(TypedDict):
    """A message as its reader sees it; ``status``/``read_at`` only for staff, on staff
    messages (R1/R2)."""

    id: str
    thread_id: str
    seq: int
    author: AuthorView
    internal: bool
    html: str
    text: str
    mentions: list[str]
    reply_to: str | None
    embeds: list[EmbedView]
    document_ids: list[str]
    attachments: list[AttachmentView]
    posted_at: Timestamp
    edited: bool
    edited_at: Timestamp | None
    pinned: bool
    permalink: str
    kind: MessageKind
    tasks: NotRequired[TaskListSnapshot]
    request: NotRequired[RequestSnapshot]
    completed_task_ids: NotRequired[list[str]]
    status: NotRequired[Literal["sent", "read"]]
    read_at: NotRequired[Timestamp | None]


@with_config(RESPONSE_CONFIG)
class MessagePage(TypedDict):
    messages: list[MessageView]
    older_cursor: int | None
    newer_cursor: int | None


@with_config(RESPONSE_CONFIG)
class MessageContext(TypedDict):
    """M9: the messages around ``message_id``."""

    message_id: str
    messages: list[MessageView]
    older_cursor: int | None
    newer_cursor: int | None


@with_config(RESPONSE_CONFIG)
class EditVersion(TypedDict):
    html: str
    text: str
    replaced_at: Timestamp


@with_config(RESPONSE_CONFIG)
class EditHistory(TypedDict):
    """M8: earlier versions of a message, oldest first."""

    versions: list[EditVersion]


@with_config(RESPONSE_CONFIG)
class PinnedMessages(TypedDict):
    messages: list[MessageView]


@with_config(RESPONSE_CONFIG)
class ReadPosition(TypedDict):
    thread_id: str
    last_read_seq: int


@with_config(RESPONSE_CONFIG)
class MessagePreview(TypedDict):
    """The thread list's snippet of the latest message the reader can see."""

    message_id: str
    author_name: str
    author_kind: Literal["staff", "client"]
    text: str
    at: Timestamp


@with_config(RESPONSE_CONFIG)
class ThreadView(TypedDict):
    """A thread list row or header (T6); ``mentioned_staff`` only for staff."""

    id: str
    account_id: str
    subject: str
    status: Literal["active", "archived"]
    created_at: Timestamp
    last_activity_at: Timestamp | None
    last_message: MessagePreview | None
    unread_count: int
    has_draft: bool
    tasks: TaskProgress
    to_contact_ids: list[str]
    job_ids: list[str]
    mentioned_staff: NotRequired[list[str]]
    client_tasks: NotRequired[list[NewClientTaskView]]


@with_config(RESPONSE_CONFIG)
class ThreadPage(TypedDict):
    threads: list[ThreadView]
    next_cursor: str | None


@with_config(RESPONSE_CONFIG)
class DraftView(TypedDict):
    """D4: the caller's unsent text in a thread."""

    thread_id: str
    html: str
    internal: bool
    updated_at: Timestamp
    expires_at: Timestamp


def seq_field(principal: Principal) -> SeqField:
    """Staff number every message; clients number only what they can see (M3)."""
    return "seq" if principal.is_staff else "client_seq"


def permalink(thread_id: str, message_id: str) -> str:
    """M9: the stable link of a message (the app resolves it with the context endpoint)."""
    return f"/threads/{thread_id}/messages/{message_id}"


def message_view(document: Document, principal: Principal) -> MessageView:
    """A message for ``principal``. Clients never see read receipts (R2) or edit history."""
    view: MessageView = {
        "id": document["_id"],
        "thread_id": document["thread_id"],
        "seq": document[seq_field(principal)],
        "author": document["author"],
        "internal": document["internal"],
        "html": document["html"],
        "text": document["text"],
        "mentions": document.get("mentions", []),
        "reply_to": document.get("reply_to"),
        "embeds": document.get("embeds", []),
        "document_ids": document.get("document_ids", []),
        "attachments": document.get("attachments", []),
        "posted_at": document["posted_at"],
        "edited": document.get("edited_at") is not None,
        "edited_at": document.get("edited_at"),
        "pinned": document.get("pinned", False),
        "permalink": permalink(document["thread_id"], document["_id"]),
        "kind": document.get("kind", "message"),
    }
    if "tasks" in document:  # task messages (K4, M12)
        view["tasks"] = document["tasks"]
    if "request" in document:
        view["request"] = document["request"]
    if "completed_task_ids" in document:
        view["completed_task_ids"] = document["completed_task_ids"]
    if principal.is_staff and document["author"]["kind"] == "staff":
        read_at = document.get("read_by_client_at")
        view["status"] = "read" if read_at else "sent"  # R1
        view["read_at"] = read_at
    return view


def thread_view(
    document: Document, principal: Principal, *, unread: int, has_draft: bool
) -> ThreadView:
    """A thread list row or header for ``principal`` (T6): no internal preview for clients."""
    if principal.is_client:
        activity, last = document.get("client_activity_at"), document.get("last_client_message")
    else:
        activity, last = document.get("last_activity_at"), document.get("last_message")
    progress = document.get("tasks_progress") or {"done": 0, "total": 0}
    view: ThreadView = {
        "id": document["_id"],
        "account_id": document["account_id"],
        "subject": document["subject"],
        "status": document["status"],
        "created_at": document["created_at"],
        "last_activity_at": activity,
        "last_message": last,
        "unread_count": unread,
        "has_draft": has_draft,
        "tasks": {"done": progress["done"], "total": progress["total"]},
        "to_contact_ids": document.get("to_contact_ids", []),
        "job_ids": document.get("job_ids", []),
    }
    if principal.is_staff:
        view["mentioned_staff"] = document.get("mentioned_staff", [])
    return view
