"""Tasks events: the client task checklist of a thread (K1-K6) and client requests (M12).

List events are keyed by thread id, request events by request id. Every event carries the
full list (or request) rather than a diff, so a consumer that missed or re-reads an event
still converges on the current state (snapshots make at-least-once delivery harmless);
``revision`` lets a consumer ignore a snapshot older than one it already applied.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from threadline.contracts.envelope import EventData
from threadline.contracts.events.common import AccountId, Actor, Id, ThreadId
from threadline.contracts.registry import register

__all__ = [
    "ClientRequest",
    "ClientRequestChanged",
    "Progress",
    "TaskItem",
    "TaskListAllCompleted",
    "TaskListChanged",
    "TaskListResent",
]

_STAFF_ACTOR = {"user_id": "st_mia", "kind": "staff", "name": "Mia Chen"}
_CLIENT_ACTOR = {"user_id": "ct_ann", "kind": "client", "name": "Ann Lee"}
_TASKS_EXAMPLE = [
    {
        "task_id": "task_upload_w2",
        "text": "Upload your W-2",
        "done": True,
        "done_at": "2026-03-03T08:00:00Z",
        "done_by": _CLIENT_ACTOR,
    },
    {"task_id": "task_sign_8879", "text": "Sign form 8879", "done": False},
]


class TaskItem(BaseModel):
    """One client task as it stands now, in display order."""

    model_config = ConfigDict(frozen=True)

    task_id: Id = Field(description="Task id.", examples=["task_upload_w2"])
    text: str = Field(
        description="Task text; may contain links (K1).", examples=["Upload your W-2"]
    )
    done: bool = Field(description="Ticked done (K2).", examples=[True])
    done_at: datetime | None = Field(
        default=None,
        description="When it was ticked; null while open.",
        examples=["2026-03-03T08:00:00Z"],
    )
    done_by: Actor | None = Field(
        default=None, description="Who ticked it; null while open.", examples=[_CLIENT_ACTOR]
    )


class Progress(BaseModel):
    """Task progress "done/total" as shown in the thread list (T6, K5)."""

    model_config = ConfigDict(frozen=True)

    done: int = Field(ge=0, description="Tasks ticked done.", examples=[1])
    total: int = Field(ge=0, description="All tasks of the thread.", examples=[2])


@register
class TaskListChanged(EventData):
    """A thread's task list changed (K2, K4, K5).

    Messaging posts an update into the thread; assigned staff get an inbox item.
    """

    event_type = "tasks.list.changed"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    change: Literal[
        "created", "added", "completed", "reopened", "reordered", "deleted", "edited"
    ] = Field(
        description="List created; tasks added, ticked, unticked, reordered, deleted or edited.",
        examples=["completed"],
    )
    changed_task_ids: list[Id] = Field(
        default_factory=list,
        description="Tasks the change was about, so the thread can name them; empty for a reorder.",
        examples=[["task_upload_w2"]],
    )
    tasks: list[TaskItem] = Field(
        description="The whole list after the change.", examples=[_TASKS_EXAMPLE]
    )
    progress: Progress = Field(
        description="Progress after the change.", examples=[{"done": 1, "total": 2}]
    )
    changed_by: Actor = Field(
        description="Who made the change: client or staff (K5).", examples=[_CLIENT_ACTOR]
    )
    revision: int | None = Field(
        default=None,
        ge=1,
        description="The list's revision after the change, increasing by one per change; "
        "apply a snapshot only when it is newer than the last one applied.",
        examples=[4],
    )


@register
class TaskListAllCompleted(EventData):
    """The last open task of a thread was ticked (K6): automove (J2) and reminder stops (Q3)."""

    event_type = "tasks.list.all_completed"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    total: int = Field(ge=1, description="Number of tasks, all done.", examples=[2])
    completed_by: Actor = Field(description="Who ticked the last task.", examples=[_CLIENT_ACTOR])
    completed_at: datetime = Field(
        description="When the last task was ticked (UTC).", examples=["2026-03-04T16:20:00Z"]
    )
    revision: int | None = Field(
        default=None,
        ge=1,
        description="The list's revision after the change, increasing by one per change; "
        "apply a snapshot only when it is newer than the last one applied.",
        examples=[4],
    )


@register
class TaskListResent(EventData):
    """Staff asked to post the current list into the thread again (K3); messaging posts it."""

    event_type = "tasks.list.resent"
    key_field = "thread_id"

    thread_id: ThreadId
    account_id: AccountId
    tasks: list[TaskItem] = Field(
        description="The list as it stands now.", examples=[_TASKS_EXAMPLE]
    )
    progress: Progress = Field(description="Current progress.", examples=[{"done": 1, "total": 2}])
    resent_by: Actor = Field(
        description="Staff member who resent the list.", examples=[_STAFF_ACTOR]
    )
    revision: int | None = Field(
        default=None,
        ge=1,
        description="The list's revision after the change, increasing by one per change; "
        "apply a snapshot only when it is newer than the last one applied.",
        examples=[4],
    )


_REQUEST_EXAMPLE = {
    "request_id": "req_organizer_2025",
    "account_id": "acc_lee_family",
    "title": "Fill in the 2025 tax organizer",
    "description": "Answer every section; skip what does not apply.",
    "due_date": "2026-04-01",
    "status": "open",
    "thread_ids": ["th_lee_2025_docs"],
    "created_by": _STAFF_ACTOR,
    "created_at": "2026-03-02T09:15:00Z",
}


class ClientRequest(BaseModel):
    """A client request as it stands now (M12)."""

    model_config = ConfigDict(frozen=True)

    request_id: Id = Field(description="Request id.", examples=["req_organizer_2025"])
    account_id: AccountId
    title: str = Field(description="Title shown to the client.", examples=["Fill in the organizer"])
    description: str = Field(
        default="", description="Plain-text description.", examples=["Answer every section."]
    )
    due_date: date | None = Field(
        default=None, description="Optional due date.", examples=["2026-04-01"]
    )
    status: Literal["open", "completed", "cancelled"] = Field(
        description="Open until the client (or staff for them) completes it, or staff cancel it.",
        examples=["open"],
    )
    thread_ids: list[Id] = Field(
        default_factory=list,
        description="Threads the request is attached to (M12).",
        examples=[["th_lee_2025_docs"]],
    )
    created_by: Actor = Field(description="Staff member who created it.", examples=[_STAFF_ACTOR])
    created_at: datetime = Field(
        description="When it was created (UTC).", examples=["2026-03-02T09:15:00Z"]
    )
    completed_by: Actor | None = Field(
        default=None, description="Who completed it; null unless completed.", examples=[None]
    )
    completed_at: datetime | None = Field(
        default=None, description="When it was completed (UTC).", examples=[None]
    )


@register
class ClientRequestChanged(EventData):
    """A client request was created, attached to a thread, edited, completed, cancelled or
    reopened (M12). Messaging shows a request attached to a thread in that thread."""

    event_type = "tasks.request.changed"
    key_field = "request_id"

    request_id: Id = Field(description="Request id.", examples=["req_organizer_2025"])
    account_id: AccountId
    change: Literal["created", "attached", "edited", "completed", "cancelled", "reopened"] = Field(
        description="What happened to the request.", examples=["attached"]
    )
    thread_id: Id | None = Field(
        default=None,
        description="The thread it was attached to, for `attached`.",
        examples=["th_lee_2025_docs"],
    )
    request: ClientRequest = Field(
        description="The whole request after the change.", examples=[_REQUEST_EXAMPLE]
    )
    changed_by: Actor = Field(description="Who made the change.", examples=[_STAFF_ACTOR])
    revision: int = Field(
        ge=1, description="The request's revision after the change.", examples=[2]
    )
