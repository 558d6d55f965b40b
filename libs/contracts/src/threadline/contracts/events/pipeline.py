"""Pipeline events: jobs moving through pipeline stages, and the messages stages ask for (J1-J4).

Keyed by job id so a job's creation, moves and the message requests its stages make are
seen in order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from threadline.contracts.envelope import EventData
from threadline.contracts.events.common import AccountId, Id
from threadline.contracts.extensible import Extensible
from threadline.contracts.registry import register

__all__ = [
    "JobCreated",
    "JobMoved",
    "JobThreadLinked",
    "JobThreadUnlinked",
    "SendMessageRequested",
]

_JobId = Annotated[Id, Field(description="Job id.", examples=["job_lee_1040_2025"])]
_PipelineId = Annotated[Id, Field(description="Pipeline id.", examples=["pl_individual_1040"])]
_EntryId = Annotated[
    Id | None,
    Field(
        default=None,
        description="The job's entry into its stage: one id per entry, the same on redelivery "
        "(absent from older producers).",
        examples=["ent_0f3c9a"],
    ),
]


@register
class JobCreated(EventData):
    """A job was created for a client account in a pipeline's first (or a chosen) stage."""

    event_type = "pipeline.job.created"
    key_field = "job_id"

    job_id: _JobId
    account_id: AccountId
    pipeline_id: _PipelineId
    stage_id: Id = Field(description="Stage the job starts in.", examples=["stg_request_docs"])
    name: str = Field(
        description="Job name, shown where threads list linked jobs.", examples=["2025 Form 1040"]
    )
    created_by: Id | None = Field(
        default=None,
        description="Staff user id who created it; null when created by the platform.",
        examples=["st_mia"],
    )
    entry_id: _EntryId


@register
class JobMoved(EventData):
    """A job moved to another stage, by hand or by automove (J2, J4)."""

    event_type = "pipeline.job.moved"
    key_field = "job_id"

    job_id: _JobId
    account_id: AccountId
    pipeline_id: _PipelineId
    from_stage_id: Id = Field(description="Stage the job left.", examples=["stg_request_docs"])
    to_stage_id: Id = Field(description="Stage the job entered.", examples=["stg_preparation"])
    reason: Annotated[Literal["manual", "automove"], Extensible] = Field(
        description="By staff, or by automove once a linked thread's tasks were all done (J2).",
        examples=["automove"],
    )
    moved_by: Id | None = Field(
        default=None,
        description="Staff user id for a manual move; null for automove.",
        examples=["st_mia"],
    )
    trigger_thread_id: Id | None = Field(
        default=None,
        description="For automove: the linked thread whose tasks were all completed (J2).",
        examples=["th_lee_2025_docs"],
    )
    entry_id: _EntryId
    unfinished: Annotated[Literal["leave", "unlink"] | None, Extensible] = Field(
        default=None,
        description="J4: what the mover chose for linked threads with unfinished client tasks "
        "(leave them linked, or unlink them); null when there were none.",
        examples=["unlink"],
    )
    unfinished_thread_ids: list[Id] = Field(
        default_factory=list,
        description="J4: the linked threads that had unfinished client tasks at the move.",
        examples=[["th_lee_2025_docs"]],
    )


@register
class SendMessageRequested(EventData):
    """A stage's *send message* automation fired for a job entering it (J1).

    Messaging renders the template for the account, creates a thread or replies to the
    account's most recently active thread, and links the thread to the job.
    """

    event_type = "pipeline.send_message.requested"
    key_field = "job_id"

    job_id: _JobId
    account_id: AccountId
    pipeline_id: _PipelineId
    stage_id: Id = Field(description="Stage whose automation fired.", examples=["stg_request_docs"])
    automation_id: Id = Field(
        description="The automation that fired.", examples=["auto_request_docs"]
    )
    template_id: Id = Field(
        description="Chat template to send (P1).", examples=["tpl_request_docs"]
    )
    mode: Annotated[Literal["new_thread", "reply_to_latest"], Extensible] = Field(
        description="Create a new thread, or reply to the account's most recently active "
        "thread (a new thread when it has none) (J1).",
        examples=["new_thread"],
    )
    requested_by: Id | None = Field(
        default=None,
        description="Staff user id whose move fired the automation; null after automove.",
        examples=["st_mia"],
    )
    request_id: Id | None = Field(
        default=None,
        description="Derived from the stage entry and the automation: the same on redelivery, "
        "so the consumer derives its thread and message ids from it (exactly once per entry).",
        examples=["smr_5b1d0c"],
    )
    entry_id: _EntryId
    job_name: str | None = Field(
        default=None,
        description="The job's name, for templates that mention it.",
        examples=["2025 Form 1040"],
    )


@register
class JobThreadLinked(EventData):
    """Staff linked a thread to a job through the pipeline (J3).

    Links made by messaging (at thread creation, or by an automation) travel as messaging
    events instead; pipeline records those without re-announcing them.
    """

    event_type = "pipeline.job.thread_linked"
    key_field = "job_id"

    job_id: _JobId
    account_id: AccountId
    thread_id: Id = Field(description="The linked thread.", examples=["th_lee_2025_docs"])
    linked_by: Id = Field(description="Staff user id who linked it.", examples=["st_mia"])


@register
class JobThreadUnlinked(EventData):
    """A thread was unlinked from a job, by hand or as a J4 move's choice (J3, J4)."""

    event_type = "pipeline.job.thread_unlinked"
    key_field = "job_id"

    job_id: _JobId
    account_id: AccountId
    thread_id: Id = Field(description="The unlinked thread.", examples=["th_lee_2025_docs"])
    unlinked_by: Id = Field(description="Staff user id who unlinked it.", examples=["st_mia"])
