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

__all__ = ["JobCreated", "JobMoved", "SendMessageRequested"]

_JobId = Annotated[Id, Field(description="Job id.", examples=["job_lee_1040_2025"])]
_PipelineId = Annotated[Id, Field(description="Pipeline id.", examples=["pl_individual_1040"])]


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


@register
class SendMessageRequested(EventData):
    """A stage's *send message* automation fired for a job entering it (J1).

    Messaging renders the template for the account, creates a thread or replies to the
    latest thread linked to the job, and links the thread to the job.
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
        description="Create a new thread, or reply to the latest thread linked to the job (J1).",
        examples=["new_thread"],
    )
    requested_by: Id | None = Field(
        default=None,
        description="Staff user id whose move fired the automation; null after automove.",
        examples=["st_mia"],
    )
