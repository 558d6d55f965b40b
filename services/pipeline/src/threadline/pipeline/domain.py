"""Pipeline domain: pipelines of ordered stages, jobs moving through them, the rules of
J1 (send-message automations fire once per stage entry), J2 (automove), J4 (moving with
unfinished client tasks), and the service's error tree. No I/O here.

::

    PipelineError (kit ThreadlineError)
    ├── PipelineNotFound / JobNotFound / ThreadNotFound   404 — also when the caller may
    │                                                       not see it (clients: always)
    ├── ActionForbidden                                   403 — sees it, may not change it
    ├── StageNotEmpty / UnfinishedTasks / EditConflict    409
    └── InvalidPipelineRequest                            422
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from threadline.kit.auth import Principal
from threadline.kit.errors import Conflict, Forbidden, InvalidRequest, NotFound, ThreadlineError
from threadline.kit.ids import utc_now
from threadline.kit.policy import can_access_account

__all__ = [
    "HISTORY_LIMIT",
    "MAX_AUTOMATIONS_PER_STAGE",
    "MAX_LINKED_THREADS",
    "MAX_STAGES",
    "ActionForbidden",
    "Automation",
    "AutomationMode",
    "EditConflict",
    "HistoryEntry",
    "InvalidPipelineRequest",
    "Job",
    "JobNotFound",
    "LinkedThread",
    "MoveReason",
    "Pipeline",
    "PipelineError",
    "PipelineNotFound",
    "Stage",
    "StageNotEmpty",
    "ThreadNotFound",
    "UnfinishedChoice",
    "UnfinishedTasks",
    "automove_target",
    "check_can_manage_pipelines",
    "check_can_use_account",
    "check_staff",
    "derived_id",
    "new_id",
]

MAX_STAGES = 50
MAX_AUTOMATIONS_PER_STAGE = 10
MAX_LINKED_THREADS = 200
HISTORY_LIMIT = 100
"""A job keeps its last HISTORY_LIMIT stage entries (the first one, its creation, included
while it fits); older entries drop off so a job's document stays bounded."""

AutomationMode = Literal["new_thread", "reply_to_latest"]
MoveReason = Literal["created", "manual", "automove"]
UnfinishedChoice = Literal["leave", "unlink"]

_NAMESPACE = uuid.UUID("6f1c2a4e-8d3b-4f5e-9a70-1b2c3d4e5f60")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def derived_id(prefix: str, *parts: str) -> str:
    """An id that is the same every time it is derived from the same parts (idempotency)."""
    return f"{prefix}_{uuid.uuid5(_NAMESPACE, '/'.join(parts)).hex}"


class PipelineError(ThreadlineError):
    """Root of the pipeline service's expected errors."""


class PipelineNotFound(PipelineError, NotFound):
    pass


class JobNotFound(PipelineError, NotFound):
    pass


class ThreadNotFound(PipelineError, NotFound):
    pass


class ActionForbidden(PipelineError, Forbidden):
    pass


class StageNotEmpty(PipelineError, Conflict):
    pass


class EditConflict(PipelineError, Conflict):
    """Someone else changed the same pipeline or job at the same moment; retry."""


class UnfinishedTasks(PipelineError, Conflict):
    """J4: linked threads still have open client tasks; the mover must say what to do."""

    title = "Linked threads have unfinished client tasks"


class InvalidPipelineRequest(PipelineError, InvalidRequest):
    pass


@dataclass(frozen=True)
class Automation:
    """J1: a stage's *send message* automation."""

    automation_id: str
    template_id: str
    mode: AutomationMode


@dataclass(frozen=True)
class Stage:
    stage_id: str
    name: str
    automove: bool = False
    automations: tuple[Automation, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    pipeline_id: str
    firm: str
    name: str
    stages: tuple[Stage, ...]
    revision: int = 1

    def stage(self, stage_id: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.stage_id == stage_id), None)

    def next_stage(self, stage_id: str) -> Stage | None:
        """The stage after ``stage_id``; None from the last stage (or an unknown one)."""
        ids = [stage.stage_id for stage in self.stages]
        if stage_id not in ids:
            return None
        position = ids.index(stage_id)
        return self.stages[position + 1] if position + 1 < len(self.stages) else None


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of a job into a stage: who or what moved it there, when and why."""

    entry_id: str
    stage_id: str
    from_stage_id: str | None
    entered_at: datetime
    reason: MoveReason
    by: str | None = None
    trigger_thread_id: str | None = None
    unfinished: UnfinishedChoice | None = None
    unfinished_thread_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    job_id: str
    firm: str
    account_id: str
    pipeline_id: str
    name: str
    stage_id: str
    entry_id: str
    entered_at: datetime
    revision: int
    thread_ids: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    created_by: str | None = None
    created_at: datetime = field(default_factory=utc_now)

    def entered(self, entry: HistoryEntry, *, drop_threads: Sequence[str] = ()) -> Job:
        """The job after ``entry``: in its stage, with the entry at the end of its history."""
        history = (*self.history, entry)[-HISTORY_LIMIT:]
        return replace(
            self,
            stage_id=entry.stage_id,
            entry_id=entry.entry_id,
            entered_at=entry.entered_at,
            history=history,
            thread_ids=tuple(t for t in self.thread_ids if t not in set(drop_threads)),
        )

    def has_entry(self, entry_id: str) -> bool:
        return any(entry.entry_id == entry_id for entry in self.history)


@dataclass(frozen=True)
class LinkedThread:
    """What pipeline knows of a thread (from messaging and tasks events)."""

    thread_id: str
    firm: str
    account_id: str
    subject: str
    status: Literal["active", "archived"]
    last_activity_at: datetime
    tasks_done: int = 0
    tasks_total: int = 0
    completed_at: datetime | None = None
    """When the client completed every task (``tasks.list.all_completed``); None while open."""

    @property
    def has_unfinished_tasks(self) -> bool:
        """Threads without tasks never block a move (J2: they need no client action)."""
        return self.tasks_total > 0 and self.tasks_done < self.tasks_total


def automove_target(job: Job, pipeline: Pipeline, *, completed_at: datetime) -> Stage | None:
    """J2: the stage a job moves to when a linked thread's tasks were all completed at
    ``completed_at``; None when it stays.

    It moves only out of a stage with automove on, never from the last stage, and only when
    the completion happened while the job was in its current stage: a completion from
    before the job entered that stage (e.g. a second thread finished at the same moment as
    the one that already moved it) moves nothing, so one completion moves a job at most one
    stage and two simultaneous completions move it once.
    """
    stage = pipeline.stage(job.stage_id)
    if stage is None or not stage.automove:
        return None
    if completed_at < job.entered_at:
        return None
    return pipeline.next_stage(job.stage_id)


def check_staff(principal: Principal, *, firm: str) -> None:
    """Clients see nothing of pipelines and jobs; other firms neither (404 both)."""
    if principal.firm != firm or not principal.is_staff:
        raise PipelineNotFound("No such pipeline resource.")


def check_can_manage_pipelines(principal: Principal) -> None:
    """Owners and admins create and edit pipelines (members read them)."""
    if not principal.is_owner_or_admin:
        raise ActionForbidden("Only firm owners and admins can create or change pipelines.")


def check_can_use_account(principal: Principal, *, firm: str, account_id: str) -> bool:
    """Staff with access to the account (owner, admin, view-all, assigned) work its jobs."""
    return principal.is_staff and can_access_account(principal, firm=firm, account_id=account_id)
