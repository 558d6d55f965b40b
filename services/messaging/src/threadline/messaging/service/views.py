"""What each caller sees of threads and messages: the M3/R2 filters applied in one place."""

from __future__ import annotations

from typing import Any

from threadline.kit.auth import Principal
from threadline.messaging.store.messages import SeqField

__all__ = ["message_view", "permalink", "seq_field", "thread_view"]

Document = dict[str, Any]


def seq_field(principal: Principal) -> SeqField:
    """Staff number every message; clients number only what they can see (M3)."""
    return "seq" if principal.is_staff else "client_seq"


def permalink(thread_id: str, message_id: str) -> str:
    """M9: the stable link of a message (the app resolves it with the context endpoint)."""
    return f"/threads/{thread_id}/messages/{message_id}"


def message_view(document: Document, principal: Principal) -> Document:
    """A message for ``principal``. Clients never see read receipts (R2) or edit history."""
    view: Document = {
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
    for extra in ("tasks", "request", "completed_task_ids"):  # task messages (K4, M12)
        if extra in document:
            view[extra] = document[extra]
    if principal.is_staff and document["author"]["kind"] == "staff":
        read_at = document.get("read_by_client_at")
        view["status"] = "read" if read_at else "sent"  # R1
        view["read_at"] = read_at
    return view


def thread_view(
    document: Document, principal: Principal, *, unread: int, has_draft: bool
) -> Document:
    """A thread list row or header for ``principal`` (T6): no internal preview for clients."""
    if principal.is_client:
        activity, last = document.get("client_activity_at"), document.get("last_client_message")
    else:
        activity, last = document.get("last_activity_at"), document.get("last_message")
    progress = document.get("tasks_progress") or {"done": 0, "total": 0}
    view: Document = {
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
