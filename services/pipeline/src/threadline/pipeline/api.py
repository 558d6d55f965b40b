"""Pipeline routes: pipelines and stages, jobs, moves, thread links. Staff only; clients
and other firms get 404 for everything here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from threadline.kit.http import CurrentPrincipal
from threadline.pipeline.domain import (
    MAX_AUTOMATIONS_PER_STAGE,
    MAX_STAGES,
    HistoryEntry,
    Job,
    LinkedThread,
    Pipeline,
    Stage,
)
from threadline.pipeline.service import (
    AutomationSpec,
    JobService,
    JobView,
    PipelineService,
    StageSpec,
    StageUpdate,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["pipeline"])

Name = Annotated[str, Field(min_length=1, max_length=200)]
ResourceId = Annotated[str, Field(min_length=1, max_length=200)]
PathId = Annotated[str, Path(min_length=1, max_length=200)]


def _pipelines(request: Request) -> PipelineService:
    service: PipelineService = request.app.state.pipelines
    return service


def _jobs(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


PipelineServiceDep = Annotated[PipelineService, Depends(_pipelines)]
JobServiceDep = Annotated[JobService, Depends(_jobs)]


# -- request bodies -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AutomationIn(_Strict):
    """J1: send a chat template when a job enters the stage."""

    template_id: ResourceId
    mode: Literal["new_thread", "reply_to_latest"]


class StageIn(_Strict):
    name: Name
    automove: bool = False
    automations: list[AutomationIn] = Field(
        default_factory=list, max_length=MAX_AUTOMATIONS_PER_STAGE
    )

    def spec(self) -> StageSpec:
        return StageSpec(
            name=self.name,
            automove=self.automove,
            automations=tuple(AutomationSpec(a.template_id, a.mode) for a in self.automations),
        )


class NewPipelineIn(_Strict):
    name: Name
    stages: list[StageIn] = Field(min_length=1, max_length=MAX_STAGES)


class PipelinePatchIn(_Strict):
    name: Name


class NewStageIn(StageIn):
    position: int | None = Field(
        default=None, ge=0, le=MAX_STAGES, description="Index to insert at; default last."
    )


class StagePatchIn(_Strict):
    name: Name | None = None
    automove: bool | None = None
    automations: list[AutomationIn] | None = Field(
        default=None, max_length=MAX_AUTOMATIONS_PER_STAGE
    )


class StageOrderIn(_Strict):
    stage_ids: list[ResourceId] = Field(min_length=1, max_length=MAX_STAGES)


class NewJobIn(_Strict):
    account_id: ResourceId
    pipeline_id: ResourceId
    name: Name
    stage_id: ResourceId | None = Field(default=None, description="Default: the first stage.")


class MoveIn(_Strict):
    to_stage_id: ResourceId
    unfinished: Literal["leave", "unlink"] | None = Field(
        default=None,
        description="J4: what to do with linked threads whose client tasks are unfinished.",
    )


# -- responses ------------------------------------------------------------------------------


class AutomationOut(BaseModel):
    automation_id: str
    template_id: str
    mode: Literal["new_thread", "reply_to_latest"]


class StageOut(BaseModel):
    stage_id: str
    name: str
    automove: bool
    automations: list[AutomationOut]

    @classmethod
    def of(cls, stage: Stage) -> StageOut:
        return cls(
            stage_id=stage.stage_id,
            name=stage.name,
            automove=stage.automove,
            automations=[
                AutomationOut(automation_id=a.automation_id, template_id=a.template_id, mode=a.mode)
                for a in stage.automations
            ],
        )


class PipelineOut(BaseModel):
    pipeline_id: str
    name: str
    stages: list[StageOut]
    revision: int

    @classmethod
    def of(cls, pipeline: Pipeline) -> PipelineOut:
        return cls(
            pipeline_id=pipeline.pipeline_id,
            name=pipeline.name,
            stages=[StageOut.of(stage) for stage in pipeline.stages],
            revision=pipeline.revision,
        )


class PipelineListOut(BaseModel):
    pipelines: list[PipelineOut]


class HistoryEntryOut(BaseModel):
    entry_id: str
    stage_id: str
    from_stage_id: str | None
    entered_at: datetime
    reason: Literal["created", "manual", "automove"]
    by: str | None
    trigger_thread_id: str | None
    unfinished: Literal["leave", "unlink"] | None
    unfinished_thread_ids: list[str]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryEntryOut:
        return cls(
            entry_id=entry.entry_id,
            stage_id=entry.stage_id,
            from_stage_id=entry.from_stage_id,
            entered_at=entry.entered_at,
            reason=entry.reason,
            by=entry.by,
            trigger_thread_id=entry.trigger_thread_id,
            unfinished=entry.unfinished,
            unfinished_thread_ids=list(entry.unfinished_thread_ids),
        )


class ThreadOut(BaseModel):
    thread_id: str
    subject: str
    status: Literal["active", "archived"]
    last_activity_at: datetime
    tasks_done: int
    tasks_total: int

    @classmethod
    def of(cls, thread: LinkedThread) -> ThreadOut:
        return cls(
            thread_id=thread.thread_id,
            subject=thread.subject,
            status=thread.status,
            last_activity_at=thread.last_activity_at,
            tasks_done=thread.tasks_done,
            tasks_total=thread.tasks_total,
        )


class JobSummaryOut(BaseModel):
    job_id: str
    account_id: str
    pipeline_id: str
    name: str
    stage_id: str
    entered_at: datetime
    thread_ids: list[str]

    @classmethod
    def of(cls, job: Job) -> JobSummaryOut:
        return cls(
            job_id=job.job_id,
            account_id=job.account_id,
            pipeline_id=job.pipeline_id,
            name=job.name,
            stage_id=job.stage_id,
            entered_at=job.entered_at,
            thread_ids=list(job.thread_ids),
        )


class JobOut(JobSummaryOut):
    entry_id: str
    created_by: str | None
    created_at: datetime
    threads: list[ThreadOut] = Field(description="Linked threads pipeline knows of (J3).")
    history: list[HistoryEntryOut] = Field(description="Stage entries, oldest first (bounded).")

    @classmethod
    def of_view(cls, view: JobView) -> JobOut:
        job = view.job
        return cls(
            **JobSummaryOut.of(job).model_dump(),
            entry_id=job.entry_id,
            created_by=job.created_by,
            created_at=job.created_at,
            threads=[ThreadOut.of(thread) for thread in view.threads],
            history=[HistoryEntryOut.of(entry) for entry in job.history],
        )


class BoardStageOut(BaseModel):
    stage_id: str
    name: str
    jobs: list[JobSummaryOut]


class BoardOut(BaseModel):
    pipeline_id: str
    stages: list[BoardStageOut]


class JobListOut(BaseModel):
    jobs: list[JobSummaryOut]


class ThreadListOut(BaseModel):
    threads: list[ThreadOut]


# -- routes ---------------------------------------------------------------------------------

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="A retried creation with the same key returns the first job (200).",
    ),
]


@router.post("/pipelines", status_code=status.HTTP_201_CREATED)
async def create_pipeline(
    body: NewPipelineIn, principal: CurrentPrincipal, pipelines: PipelineServiceDep
) -> PipelineOut:
    created = await pipelines.create(
        principal, name=body.name, stages=[stage.spec() for stage in body.stages]
    )
    return PipelineOut.of(created)


@router.get("/pipelines")
async def list_pipelines(
    principal: CurrentPrincipal, pipelines: PipelineServiceDep
) -> PipelineListOut:
    return PipelineListOut(pipelines=[PipelineOut.of(p) for p in await pipelines.list(principal)])


@router.get("/pipelines/{pipeline_id}")
async def get_pipeline(
    pipeline_id: PathId, principal: CurrentPrincipal, pipelines: PipelineServiceDep
) -> PipelineOut:
    return PipelineOut.of(await pipelines.get(principal, pipeline_id))


@router.patch("/pipelines/{pipeline_id}")
async def rename_pipeline(
    pipeline_id: PathId,
    body: PipelinePatchIn,
    principal: CurrentPrincipal,
    pipelines: PipelineServiceDep,
) -> PipelineOut:
    return PipelineOut.of(await pipelines.rename(principal, pipeline_id, name=body.name))


@router.post("/pipelines/{pipeline_id}/stages", status_code=status.HTTP_201_CREATED)
async def add_stage(
    pipeline_id: PathId,
    body: NewStageIn,
    principal: CurrentPrincipal,
    pipelines: PipelineServiceDep,
) -> PipelineOut:
    return PipelineOut.of(
        await pipelines.add_stage(principal, pipeline_id, body.spec(), position=body.position)
    )


@router.patch("/pipelines/{pipeline_id}/stages/{stage_id}")
async def update_stage(
    pipeline_id: PathId,
    stage_id: PathId,
    body: StagePatchIn,
    principal: CurrentPrincipal,
    pipelines: PipelineServiceDep,
) -> PipelineOut:
    automations = (
        None
        if body.automations is None
        else tuple(AutomationSpec(a.template_id, a.mode) for a in body.automations)
    )
    update = StageUpdate(name=body.name, automove=body.automove, automations=automations)
    return PipelineOut.of(await pipelines.update_stage(principal, pipeline_id, stage_id, update))


@router.put("/pipelines/{pipeline_id}/stage-order")
async def reorder_stages(
    pipeline_id: PathId,
    body: StageOrderIn,
    principal: CurrentPrincipal,
    pipelines: PipelineServiceDep,
) -> PipelineOut:
    return PipelineOut.of(await pipelines.reorder(principal, pipeline_id, body.stage_ids))


@router.delete("/pipelines/{pipeline_id}/stages/{stage_id}")
async def remove_stage(
    pipeline_id: PathId,
    stage_id: PathId,
    principal: CurrentPrincipal,
    pipelines: PipelineServiceDep,
) -> PipelineOut:
    return PipelineOut.of(await pipelines.remove_stage(principal, pipeline_id, stage_id))


@router.get("/pipelines/{pipeline_id}/jobs")
async def pipeline_board(
    pipeline_id: PathId, principal: CurrentPrincipal, jobs: JobServiceDep
) -> BoardOut:
    """The pipeline's jobs by stage (only jobs of accounts the caller may see)."""
    pipeline, found = await jobs.in_pipeline(principal, pipeline_id)
    return BoardOut(
        pipeline_id=pipeline.pipeline_id,
        stages=[
            BoardStageOut(
                stage_id=stage.stage_id,
                name=stage.name,
                jobs=[JobSummaryOut.of(job) for job in found if job.stage_id == stage.stage_id],
            )
            for stage in pipeline.stages
        ],
    )


@router.post("/jobs", status_code=status.HTTP_201_CREATED)
async def create_job(
    body: NewJobIn,
    principal: CurrentPrincipal,
    jobs: JobServiceDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    view, created = await jobs.create(
        principal,
        account_id=body.account_id,
        pipeline_id=body.pipeline_id,
        name=body.name,
        stage_id=body.stage_id,
        idempotency_key=idempotency_key,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return JobOut.of_view(view)


@router.get("/jobs/{job_id}")
async def get_job(job_id: PathId, principal: CurrentPrincipal, jobs: JobServiceDep) -> JobOut:
    return JobOut.of_view(await jobs.get(principal, job_id))


@router.get("/accounts/{account_id}/jobs")
async def account_jobs(
    account_id: PathId, principal: CurrentPrincipal, jobs: JobServiceDep
) -> JobListOut:
    return JobListOut(
        jobs=[JobSummaryOut.of(job) for job in await jobs.of_account(principal, account_id)]
    )


@router.post("/jobs/{job_id}/move")
async def move_job(
    job_id: PathId, body: MoveIn, principal: CurrentPrincipal, jobs: JobServiceDep
) -> JobOut:
    """Move by hand (J4: 409 listing linked threads with unfinished client tasks unless
    ``unfinished`` says what to do with them)."""
    view = await jobs.move(
        principal, job_id, to_stage_id=body.to_stage_id, unfinished=body.unfinished
    )
    return JobOut.of_view(view)


@router.get("/jobs/{job_id}/link-candidates")
async def link_candidates(
    job_id: PathId,
    principal: CurrentPrincipal,
    jobs: JobServiceDep,
    status_filter: Annotated[
        Literal["active", "archived", "all"], Query(alias="status")
    ] = "active",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ThreadListOut:
    """J3: the account's threads for the link picker, active by default."""
    found = await jobs.link_candidates(principal, job_id, status=status_filter, limit=limit)
    return ThreadListOut(threads=[ThreadOut.of(thread) for thread in found])


@router.put("/jobs/{job_id}/threads/{thread_id}")
async def link_thread(
    job_id: PathId, thread_id: PathId, principal: CurrentPrincipal, jobs: JobServiceDep
) -> JobOut:
    return JobOut.of_view(await jobs.link(principal, job_id, thread_id))


@router.delete("/jobs/{job_id}/threads/{thread_id}")
async def unlink_thread(
    job_id: PathId, thread_id: PathId, principal: CurrentPrincipal, jobs: JobServiceDep
) -> JobOut:
    return JobOut.of_view(await jobs.unlink(principal, job_id, thread_id))
