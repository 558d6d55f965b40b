"""Pipeline use cases: pipelines and stages, jobs, moves (by hand and automove), thread
links, and the effects of task progress. No web or database framework here.

Every change of a job is one conditional single-document write (on the job's revision)
that carries its events (outbox): a concurrent change makes the write miss and the use
case re-reads and decides again, so nothing is lost and nothing moves twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import structlog

from threadline.contracts import Envelope, EventData, new_event
from threadline.contracts.events.pipeline import (
    JobCreated,
    JobMoved,
    JobThreadLinked,
    JobThreadUnlinked,
    SendMessageRequested,
)
from threadline.kit.auth import Principal
from threadline.kit.ids import utc_now
from threadline.kit.policy import visible_account_filter
from threadline.pipeline.domain import (
    MAX_AUTOMATIONS_PER_STAGE,
    MAX_LINKED_THREADS,
    MAX_STAGES,
    Automation,
    AutomationMode,
    EditConflict,
    HistoryEntry,
    InvalidPipelineRequest,
    Job,
    JobNotFound,
    LinkedThread,
    Pipeline,
    PipelineNotFound,
    Stage,
    StageNotEmpty,
    ThreadNotFound,
    UnfinishedChoice,
    UnfinishedTasks,
    automove_target,
    check_can_manage_pipelines,
    check_can_use_account,
    check_staff,
    derived_id,
    new_id,
)
from threadline.pipeline.ports import JobStore, PipelineStore, ThreadStatusFilter, ThreadStore

__all__ = [
    "AutomationSpec",
    "JobService",
    "JobView",
    "PipelineService",
    "StageSpec",
    "StageUpdate",
]

PRODUCER = "pipeline"
MAX_ATTEMPTS = 8
"""Conditional writes retried this often against concurrent changes before giving up."""
LIST_LIMIT = 1000
_log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class AutomationSpec:
    template_id: str
    mode: AutomationMode


@dataclass(frozen=True)
class StageSpec:
    name: str
    automove: bool = False
    automations: tuple[AutomationSpec, ...] = ()


@dataclass(frozen=True)
class StageUpdate:
    name: str | None = None
    automove: bool | None = None
    automations: tuple[AutomationSpec, ...] | None = None


@dataclass(frozen=True)
class JobView:
    """A job with what pipeline knows of its linked threads."""

    job: Job
    threads: list[LinkedThread]


def _stage(spec: StageSpec) -> Stage:
    name = spec.name.strip()
    if not name:
        raise InvalidPipelineRequest("A stage needs a name.")
    if len(spec.automations) > MAX_AUTOMATIONS_PER_STAGE:
        raise InvalidPipelineRequest(
            f"A stage has at most {MAX_AUTOMATIONS_PER_STAGE} automations."
        )
    return Stage(
        stage_id=new_id("stg"),
        name=name,
        automove=spec.automove,
        automations=tuple(_automation(a) for a in spec.automations),
    )


def _automation(spec: AutomationSpec) -> Automation:
    return Automation(automation_id=new_id("auto"), template_id=spec.template_id, mode=spec.mode)


def _event(data: EventData, firm: str, causation_id: str | None = None) -> Envelope[Any]:
    return new_event(data, firm=firm, producer=PRODUCER, causation_id=causation_id)


async def _retrying(attempt: Callable[[], Awaitable[T | None]]) -> T:
    """Run ``attempt`` until it returns a value (None = a concurrent change won; re-read)."""
    for _ in range(MAX_ATTEMPTS):
        result = await attempt()
        if result is not None:
            return result
    raise EditConflict("The resource kept changing while this request ran; retry it.")


class PipelineService:
    """Owners and admins shape pipelines; every staff member of the firm reads them."""

    def __init__(self, *, pipelines: PipelineStore, jobs: JobStore) -> None:
        self._pipelines = pipelines
        self._jobs = jobs

    async def create(
        self, principal: Principal, *, name: str, stages: Sequence[StageSpec]
    ) -> Pipeline:
        check_staff(principal, firm=principal.firm)
        check_can_manage_pipelines(principal)
        if not name.strip():
            raise InvalidPipelineRequest("A pipeline needs a name.")
        if not 1 <= len(stages) <= MAX_STAGES:
            raise InvalidPipelineRequest(f"A pipeline has 1 to {MAX_STAGES} stages.")
        pipeline = Pipeline(
            pipeline_id=new_id("pl"),
            firm=principal.firm,
            name=name.strip(),
            stages=tuple(_stage(spec) for spec in stages),
        )
        await self._pipelines.insert(pipeline)
        return pipeline

    async def get(self, principal: Principal, pipeline_id: str) -> Pipeline:
        check_staff(principal, firm=principal.firm)
        pipeline = await self._pipelines.get(principal.firm, pipeline_id)
        if pipeline is None:
            raise PipelineNotFound(f"Pipeline {pipeline_id} does not exist.")
        return pipeline

    async def list(self, principal: Principal) -> list[Pipeline]:
        check_staff(principal, firm=principal.firm)
        return await self._pipelines.list(principal.firm, limit=LIST_LIMIT)

    async def _change(
        self,
        principal: Principal,
        pipeline_id: str,
        change: Callable[[Pipeline], Awaitable[Pipeline]],
    ) -> Pipeline:
        check_staff(principal, firm=principal.firm)
        check_can_manage_pipelines(principal)

        async def attempt() -> Pipeline | None:
            current = await self.get(principal, pipeline_id)
            changed = replace(await change(current), revision=current.revision + 1)
            stored = await self._pipelines.replace(changed, expected_revision=current.revision)
            return changed if stored else None

        return await _retrying(attempt)

    async def rename(self, principal: Principal, pipeline_id: str, *, name: str) -> Pipeline:
        if not name.strip():
            raise InvalidPipelineRequest("A pipeline needs a name.")

        async def rename(pipeline: Pipeline) -> Pipeline:
            return replace(pipeline, name=name.strip())

        return await self._change(principal, pipeline_id, rename)

    async def add_stage(
        self, principal: Principal, pipeline_id: str, spec: StageSpec, *, position: int | None
    ) -> Pipeline:
        stage = _stage(spec)

        async def add(pipeline: Pipeline) -> Pipeline:
            if len(pipeline.stages) >= MAX_STAGES:
                raise InvalidPipelineRequest(f"A pipeline has at most {MAX_STAGES} stages.")
            stages = list(pipeline.stages)
            stages.insert(len(stages) if position is None else min(position, len(stages)), stage)
            return replace(pipeline, stages=tuple(stages))

        return await self._change(principal, pipeline_id, add)

    async def update_stage(
        self, principal: Principal, pipeline_id: str, stage_id: str, update: StageUpdate
    ) -> Pipeline:
        if update.name is not None and not update.name.strip():
            raise InvalidPipelineRequest("A stage needs a name.")
        if update.automations is not None and len(update.automations) > MAX_AUTOMATIONS_PER_STAGE:
            raise InvalidPipelineRequest(
                f"A stage has at most {MAX_AUTOMATIONS_PER_STAGE} automations."
            )

        async def edit(pipeline: Pipeline) -> Pipeline:
            stage = _existing_stage(pipeline, stage_id)
            edited = replace(
                stage,
                name=stage.name if update.name is None else update.name.strip(),
                automove=stage.automove if update.automove is None else update.automove,
                automations=stage.automations
                if update.automations is None
                else tuple(_automation(a) for a in update.automations),
            )
            return replace(
                pipeline,
                stages=tuple(edited if s.stage_id == stage_id else s for s in pipeline.stages),
            )

        return await self._change(principal, pipeline_id, edit)

    async def reorder(
        self, principal: Principal, pipeline_id: str, stage_ids: Sequence[str]
    ) -> Pipeline:
        async def reorder(pipeline: Pipeline) -> Pipeline:
            current = [stage.stage_id for stage in pipeline.stages]
            if sorted(stage_ids) != sorted(current):
                raise InvalidPipelineRequest(
                    "The new order must name every stage of the pipeline exactly once: "
                    f"{', '.join(current)}."
                )
            by_id = {stage.stage_id: stage for stage in pipeline.stages}
            return replace(pipeline, stages=tuple(by_id[stage_id] for stage_id in stage_ids))

        return await self._change(principal, pipeline_id, reorder)

    async def remove_stage(self, principal: Principal, pipeline_id: str, stage_id: str) -> Pipeline:
        async def remove(pipeline: Pipeline) -> Pipeline:
            _existing_stage(pipeline, stage_id)
            if len(pipeline.stages) == 1:
                raise InvalidPipelineRequest("A pipeline keeps at least one stage.")
            held = await self._jobs.count_in_stage(pipeline.firm, pipeline.pipeline_id, stage_id)
            if held:
                raise StageNotEmpty(
                    f"Stage {stage_id} holds {held} job(s); move them out before removing it.",
                    jobs=held,
                )
            return replace(
                pipeline, stages=tuple(s for s in pipeline.stages if s.stage_id != stage_id)
            )

        return await self._change(principal, pipeline_id, remove)


def _existing_stage(pipeline: Pipeline, stage_id: str) -> Stage:
    stage = pipeline.stage(stage_id)
    if stage is None:
        raise PipelineNotFound(f"Pipeline {pipeline.pipeline_id} has no stage {stage_id}.")
    return stage


class JobService:
    """Jobs: create, move (J2, J4), link threads (J3), and the automations of each entry (J1)."""

    def __init__(
        self,
        *,
        pipelines: PipelineStore,
        jobs: JobStore,
        threads: ThreadStore,
    ) -> None:
        self._pipelines = pipelines
        self._jobs = jobs
        self._threads = threads

    # -- reading -------------------------------------------------------------------------

    async def _visible(self, principal: Principal, job_id: str) -> Job:
        check_staff(principal, firm=principal.firm)
        job = await self._jobs.get(principal.firm, job_id)
        if job is None or not check_can_use_account(
            principal, firm=job.firm, account_id=job.account_id
        ):
            raise JobNotFound(f"Job {job_id} does not exist.")
        return job

    async def _pipeline(self, firm: str, pipeline_id: str) -> Pipeline:
        pipeline = await self._pipelines.get(firm, pipeline_id)
        if pipeline is None:
            raise PipelineNotFound(f"Pipeline {pipeline_id} does not exist.")
        return pipeline

    async def view(self, job: Job) -> JobView:
        return JobView(job=job, threads=await self._threads.many(job.firm, job.thread_ids))

    async def get(self, principal: Principal, job_id: str) -> JobView:
        return await self.view(await self._visible(principal, job_id))

    async def in_pipeline(
        self, principal: Principal, pipeline_id: str
    ) -> tuple[Pipeline, list[Job]]:
        """Jobs of a pipeline the caller may see (their accounts), for a board by stage."""
        check_staff(principal, firm=principal.firm)
        pipeline = await self._pipeline(principal.firm, pipeline_id)
        jobs = await self._jobs.in_pipeline(
            principal.firm,
            pipeline_id,
            accounts=visible_account_filter(principal),
            limit=LIST_LIMIT,
        )
        return pipeline, jobs

    async def of_account(self, principal: Principal, account_id: str) -> list[Job]:
        check_staff(principal, firm=principal.firm)
        if not check_can_use_account(principal, firm=principal.firm, account_id=account_id):
            raise JobNotFound(f"Account {account_id} has no jobs you can see.")
        return await self._jobs.of_account(principal.firm, account_id, limit=LIST_LIMIT)

    async def link_candidates(
        self, principal: Principal, job_id: str, *, status: ThreadStatusFilter, limit: int
    ) -> list[LinkedThread]:
        """J3: the link picker lists the account's threads, most recently active first."""
        job = await self._visible(principal, job_id)
        return await self._threads.of_account(job.firm, job.account_id, status=status, limit=limit)

    # -- creating and moving -------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        *,
        account_id: str,
        pipeline_id: str,
        name: str,
        stage_id: str | None,
        idempotency_key: str | None = None,
    ) -> tuple[JobView, bool]:
        """Create a job in ``stage_id`` (default: the first stage); its entry fires the
        stage's automations (J1). With an idempotency key, a retried request returns the
        job the first one created. Returns the job and whether it was created now."""
        check_staff(principal, firm=principal.firm)
        if not check_can_use_account(principal, firm=principal.firm, account_id=account_id):
            raise JobNotFound(f"Account {account_id} does not exist or is not yours to work.")
        pipeline = await self._pipeline(principal.firm, pipeline_id)
        stage = pipeline.stages[0] if stage_id is None else pipeline.stage(stage_id)
        if stage is None:
            raise InvalidPipelineRequest(f"Pipeline {pipeline_id} has no stage {stage_id}.")
        if not name.strip():
            raise InvalidPipelineRequest("A job needs a name.")
        job_id = (
            derived_id("job", principal.firm, principal.sub, idempotency_key)
            if idempotency_key
            else new_id("job")
        )
        now = utc_now()
        entry = HistoryEntry(
            entry_id=derived_id("ent", job_id, "created"),
            stage_id=stage.stage_id,
            from_stage_id=None,
            entered_at=now,
            reason="created",
            by=principal.sub,
        )
        job = Job(
            job_id=job_id,
            firm=principal.firm,
            account_id=account_id,
            pipeline_id=pipeline_id,
            name=name.strip(),
            stage_id=stage.stage_id,
            entry_id=entry.entry_id,
            entered_at=now,
            revision=1,
            history=(entry,),
            created_by=principal.sub,
            created_at=now,
        )
        created = _event(
            JobCreated(
                job_id=job_id,
                account_id=account_id,
                pipeline_id=pipeline_id,
                stage_id=stage.stage_id,
                name=job.name,
                created_by=principal.sub,
                entry_id=entry.entry_id,
            ),
            principal.firm,
        )
        events = [created, *_automation_events(job, stage, requested_by=principal.sub)]
        if not await self._jobs.insert(job, events=events):
            existing = await self._visible(principal, job_id)
            return await self.view(existing), False
        return await self.view(job), True

    async def move(
        self,
        principal: Principal,
        job_id: str,
        *,
        to_stage_id: str,
        unfinished: UnfinishedChoice | None,
    ) -> JobView:
        """Move a job by hand. J4: while linked threads have unfinished client tasks the
        mover must choose to leave or unlink them (else 409 listing them). Moving a job to
        the stage it is in changes nothing (a retried move enters the stage once)."""

        async def attempt() -> Job | None:
            job = await self._visible(principal, job_id)
            pipeline = await self._pipeline(job.firm, job.pipeline_id)
            target = pipeline.stage(to_stage_id)
            if target is None:
                raise InvalidPipelineRequest(
                    f"Pipeline {pipeline.pipeline_id} has no stage {to_stage_id}."
                )
            if target.stage_id == job.stage_id:
                return job
            pending = [
                thread
                for thread in await self._threads.many(job.firm, job.thread_ids)
                if thread.has_unfinished_tasks
            ]
            if pending and unfinished is None:
                raise UnfinishedTasks(
                    f"{len(pending)} linked thread(s) have unfinished client tasks; repeat the "
                    'move with "unfinished": "leave" to keep them linked or "unlink" to '
                    "unlink them.",
                    unfinished_threads=[
                        {
                            "thread_id": t.thread_id,
                            "subject": t.subject,
                            "done": t.tasks_done,
                            "total": t.tasks_total,
                        }
                        for t in pending
                    ],
                )
            pending_ids = tuple(thread.thread_id for thread in pending)
            entry = HistoryEntry(
                entry_id=new_id("ent"),
                stage_id=target.stage_id,
                from_stage_id=job.stage_id,
                entered_at=utc_now(),
                reason="manual",
                by=principal.sub,
                unfinished=unfinished if pending else None,
                unfinished_thread_ids=pending_ids,
            )
            unlinked = pending_ids if unfinished == "unlink" else ()
            moved = job.entered(entry, drop_threads=unlinked)
            events = [
                _moved_event(job, entry),
                *(
                    _event(
                        JobThreadUnlinked(
                            job_id=job.job_id,
                            account_id=job.account_id,
                            thread_id=thread_id,
                            unlinked_by=principal.sub,
                        ),
                        job.firm,
                    )
                    for thread_id in unlinked
                ),
                *_automation_events(moved, target, requested_by=principal.sub),
            ]
            return await self._store(job, moved, events)

        return await self.view(await _retrying(attempt))

    async def _store(self, before: Job, after: Job, events: Sequence[Envelope[Any]]) -> Job | None:
        changed = replace(after, revision=before.revision + 1)
        stored = await self._jobs.replace(changed, expected_revision=before.revision, events=events)
        return changed if stored else None

    async def tasks_completed(
        self, firm: str, thread_id: str, *, completed_at: datetime, cause_event_id: str
    ) -> list[Job]:
        """J2: the client completed every task of ``thread_id``: each job linked to it whose
        stage has automove on moves to the next stage, once. Returns the jobs moved."""
        moved: list[Job] = []
        for linked in await self._jobs.linked_to(firm, thread_id, limit=MAX_LINKED_THREADS):
            result = await self._automove(
                firm, linked.job_id, thread_id, completed_at=completed_at, cause=cause_event_id
            )
            if result is not None:
                moved.append(result)
        return moved

    async def _automove(
        self, firm: str, job_id: str, thread_id: str, *, completed_at: datetime, cause: str
    ) -> Job | None:
        entry_id = derived_id("ent", job_id, cause)

        async def attempt() -> tuple[Job | None] | None:
            job = await self._jobs.get(firm, job_id)
            if job is None or thread_id not in job.thread_ids or job.has_entry(entry_id):
                return (None,)  # gone, unlinked meanwhile, or this completion moved it already
            pipeline = await self._pipelines.get(firm, job.pipeline_id)
            target = (
                None
                if pipeline is None
                else automove_target(job, pipeline, completed_at=completed_at)
            )
            if target is None:
                return (None,)
            entry = HistoryEntry(
                entry_id=entry_id,
                stage_id=target.stage_id,
                from_stage_id=job.stage_id,
                entered_at=utc_now(),
                reason="automove",
                trigger_thread_id=thread_id,
            )
            moved = job.entered(entry)
            events = [
                _moved_event(job, entry, causation_id=cause),
                *_automation_events(moved, target, requested_by=None, causation_id=cause),
            ]
            stored = await self._store(job, moved, events)
            return None if stored is None else (stored,)

        (result,) = await _retrying(attempt)
        if result is not None:
            _log.info("job automoved", job_id=job_id, thread_id=thread_id, stage=result.stage_id)
        return result

    # -- links (J3) ----------------------------------------------------------------------

    async def link(self, principal: Principal, job_id: str, thread_id: str) -> JobView:
        job = await self._visible(principal, job_id)
        thread = await self._threads.arriving(job.firm, thread_id)
        if thread is None or thread.account_id != job.account_id:
            raise ThreadNotFound(f"Thread {thread_id} does not exist in account {job.account_id}.")

        async def attempt() -> Job | None:
            current = await self._visible(principal, job_id)
            if thread_id in current.thread_ids:
                return current
            if len(current.thread_ids) >= MAX_LINKED_THREADS:
                raise InvalidPipelineRequest(
                    f"A job links at most {MAX_LINKED_THREADS} threads; unlink one first."
                )
            linked = replace(current, thread_ids=(*current.thread_ids, thread_id))
            event = JobThreadLinked(
                job_id=job_id,
                account_id=job.account_id,
                thread_id=thread_id,
                linked_by=principal.sub,
            )
            return await self._store(current, linked, [_event(event, job.firm)])

        stored = await _retrying(attempt)
        moved = await self._automove_if_completed(job.firm, job_id, thread_id)
        return await self.view(moved or stored)

    async def _automove_if_completed(self, firm: str, job_id: str, thread_id: str) -> Job | None:
        """J2 for a link recorded after the client completed the thread's tasks (the link
        and the completion travel on different topics): the completion moves the job if
        it happened while the job was in its current stage, exactly as if it came later."""
        thread = await self._threads.get(firm, thread_id)
        if thread is None or thread.completed_at is None or thread.has_unfinished_tasks:
            return None
        cause = f"completed/{thread_id}/{thread.completed_at.isoformat()}"
        return await self._automove(
            firm, job_id, thread_id, completed_at=thread.completed_at, cause=cause
        )

    async def unlink(self, principal: Principal, job_id: str, thread_id: str) -> JobView:
        async def attempt() -> Job | None:
            current = await self._visible(principal, job_id)
            if thread_id not in current.thread_ids:
                return current
            unlinked = replace(
                current, thread_ids=tuple(t for t in current.thread_ids if t != thread_id)
            )
            event = JobThreadUnlinked(
                job_id=job_id,
                account_id=current.account_id,
                thread_id=thread_id,
                unlinked_by=principal.sub,
            )
            return await self._store(current, unlinked, [_event(event, current.firm)])

        return await self.view(await _retrying(attempt))

    async def record_link(self, firm: str, job_id: str, *, thread_id: str, account_id: str) -> bool:
        """A link messaging made (thread created with ``job_ids``, or an automation): no
        event of our own, messaging announced it. Returns whether it was recorded."""

        async def attempt() -> tuple[bool] | None:
            job = await self._jobs.get(firm, job_id)
            if job is None or job.account_id != account_id:
                _log.warning("link to an unknown job ignored", job_id=job_id, thread_id=thread_id)
                return (False,)
            if thread_id in job.thread_ids:
                return (True,)
            if len(job.thread_ids) >= MAX_LINKED_THREADS:
                _log.warning("link beyond the job's limit ignored", job_id=job_id)
                return (False,)
            linked = replace(job, thread_ids=(*job.thread_ids, thread_id))
            return None if await self._store(job, linked, []) is None else (True,)

        (recorded,) = await _retrying(attempt)
        if recorded:
            await self._automove_if_completed(firm, job_id, thread_id)
        return recorded


def _moved_event(job: Job, entry: HistoryEntry, causation_id: str | None = None) -> Envelope[Any]:
    return _event(
        JobMoved(
            job_id=job.job_id,
            account_id=job.account_id,
            pipeline_id=job.pipeline_id,
            from_stage_id=job.stage_id,
            to_stage_id=entry.stage_id,
            reason="automove" if entry.reason == "automove" else "manual",
            moved_by=entry.by,
            trigger_thread_id=entry.trigger_thread_id,
            entry_id=entry.entry_id,
            unfinished=entry.unfinished,
            unfinished_thread_ids=list(entry.unfinished_thread_ids),
        ),
        job.firm,
        causation_id,
    )


def _automation_events(
    job: Job, stage: Stage, *, requested_by: str | None, causation_id: str | None = None
) -> list[Envelope[Any]]:
    """J1: one request per automation of the stage the job just entered. The request id is
    derived from the entry, so however often this entry's events are delivered, messaging
    sends each automation's message once."""
    return [
        _event(
            SendMessageRequested(
                job_id=job.job_id,
                account_id=job.account_id,
                pipeline_id=job.pipeline_id,
                stage_id=stage.stage_id,
                automation_id=automation.automation_id,
                template_id=automation.template_id,
                mode=automation.mode,
                requested_by=requested_by,
                request_id=derived_id("smr", job.entry_id, automation.automation_id),
                entry_id=job.entry_id,
                job_name=job.name,
            ),
            job.firm,
            causation_id,
        )
        for automation in stage.automations
    ]
