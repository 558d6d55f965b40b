"""Pipeline use cases on in-memory stores (SPEC J1-J4)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from threadline.kit.ids import utc_now
from threadline.pipeline.domain import (
    HISTORY_LIMIT,
    ActionForbidden,
    InvalidPipelineRequest,
    JobNotFound,
    LinkedThread,
    PipelineNotFound,
    StageNotEmpty,
    ThreadNotFound,
    UnfinishedTasks,
)
from threadline.pipeline.service import (
    AutomationSpec,
    JobService,
    PipelineService,
    StageSpec,
    StageUpdate,
)

from .pipeline_fakes import (
    FIRM,
    LEE,
    PATEL,
    InMemoryJobStore,
    InMemoryPipelineStore,
    InMemoryThreadStore,
    client,
    staff,
)

OWNER = staff()
ASSIGNED = staff("member", "st_mia", accounts=frozenset({LEE}))
UNASSIGNED = staff("member", "st_noah", accounts=frozenset({PATEL}))
SENT = "pipeline.send_message.requested"
MOVED = "pipeline.job.moved"


class World:
    def __init__(self) -> None:
        self.pipeline_store = InMemoryPipelineStore()
        self.job_store = InMemoryJobStore()
        self.thread_store = InMemoryThreadStore()
        self.pipelines = PipelineService(pipelines=self.pipeline_store, jobs=self.job_store)
        self.jobs = JobService(
            pipelines=self.pipeline_store,
            jobs=self.job_store,
            threads=self.thread_store,
        )

    async def tax_pipeline(self):  # type: ignore[no-untyped-def]
        """The journey's pipeline: Waiting for documents, Preparing, Review."""
        return await self.pipelines.create(
            OWNER,
            name="Individual 1040",
            stages=[
                StageSpec(
                    "Waiting for documents",
                    automove=True,
                    automations=(
                        AutomationSpec("tpl_docs", "reply_to_latest"),
                        AutomationSpec("tpl_welcome", "new_thread"),
                    ),
                ),
                StageSpec("Preparing", automove=True),
                StageSpec("Review", automations=(AutomationSpec("tpl_review", "new_thread"),)),
            ],
        )

    def thread(self, thread_id: str, *, done: int = 0, total: int = 0, account: str = LEE) -> None:
        self.thread_store.add(
            LinkedThread(
                thread_id, FIRM, account, f"subject {thread_id}", "active", utc_now(), done, total
            )
        )


@pytest.fixture
def world() -> World:
    return World()


async def test_pipelines_are_shaped_by_owners_and_admins_only(world: World) -> None:
    pipeline = await world.tax_pipeline()
    assert [s.name for s in pipeline.stages] == ["Waiting for documents", "Preparing", "Review"]
    with pytest.raises(ActionForbidden):
        await world.pipelines.rename(ASSIGNED, pipeline.pipeline_id, name="x")
    with pytest.raises(PipelineNotFound):
        await world.pipelines.get(client(), pipeline.pipeline_id)
    with pytest.raises(PipelineNotFound):
        await world.pipelines.get(staff(firm="other"), pipeline.pipeline_id)
    assert (await world.pipelines.get(ASSIGNED, pipeline.pipeline_id)).name == "Individual 1040"


async def test_stages_rename_reorder_add_and_remove(world: World) -> None:
    pipeline = await world.tax_pipeline()
    first, second, third = (s.stage_id for s in pipeline.stages)
    pipeline = await world.pipelines.update_stage(
        OWNER, pipeline.pipeline_id, second, StageUpdate(name="In preparation", automove=False)
    )
    assert pipeline.stage(second) is not None and pipeline.stage(second).name == "In preparation"  # type: ignore[union-attr]
    pipeline = await world.pipelines.reorder(OWNER, pipeline.pipeline_id, [third, first, second])
    assert [s.stage_id for s in pipeline.stages] == [third, first, second]
    with pytest.raises(InvalidPipelineRequest, match="exactly once"):
        await world.pipelines.reorder(OWNER, pipeline.pipeline_id, [third, first])
    pipeline = await world.pipelines.add_stage(
        OWNER, pipeline.pipeline_id, StageSpec("Filed"), position=1
    )
    assert [s.name for s in pipeline.stages][:2] == ["Review", "Filed"]
    pipeline = await world.pipelines.remove_stage(
        OWNER, pipeline.pipeline_id, pipeline.stages[1].stage_id
    )
    assert len(pipeline.stages) == 3 and pipeline.revision == 5


async def test_a_stage_holding_jobs_cannot_be_removed(world: World) -> None:
    pipeline = await world.tax_pipeline()
    await world.jobs.create(
        OWNER, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
    )
    with pytest.raises(StageNotEmpty):
        await world.pipelines.remove_stage(OWNER, pipeline.pipeline_id, pipeline.stages[0].stage_id)


async def test_j1_creating_a_job_fires_each_automation_of_its_stage_once(world: World) -> None:
    pipeline = await world.tax_pipeline()
    view, created = await world.jobs.create(
        ASSIGNED, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="2025 1040", stage_id=None
    )
    assert created and view.job.stage_id == pipeline.stages[0].stage_id
    requests = world.job_store.of_type(SENT)
    assert [(r.template_id, r.mode) for r in requests] == [
        ("tpl_docs", "reply_to_latest"),
        ("tpl_welcome", "new_thread"),
    ]
    assert {r.entry_id for r in requests} == {view.job.entry_id}
    assert len({r.request_id for r in requests}) == 2
    assert world.job_store.of_type("pipeline.job.created")[0].entry_id == view.job.entry_id


async def test_j1_a_retried_creation_with_its_key_creates_nothing_more(world: World) -> None:
    pipeline = await world.tax_pipeline()
    first, created = await world.jobs.create(
        OWNER,
        account_id=LEE,
        pipeline_id=pipeline.pipeline_id,
        name="1040",
        stage_id=None,
        idempotency_key="k1",
    )
    again, created_again = await world.jobs.create(
        OWNER,
        account_id=LEE,
        pipeline_id=pipeline.pipeline_id,
        name="1040",
        stage_id=None,
        idempotency_key="k1",
    )
    assert created and not created_again and again.job.job_id == first.job.job_id
    assert len(world.job_store.of_type(SENT)) == 2


async def test_jobs_are_for_staff_with_access_to_the_account(world: World) -> None:
    pipeline = await world.tax_pipeline()
    for who in (UNASSIGNED, client(), staff(firm="other")):
        with pytest.raises((JobNotFound, PipelineNotFound)):
            await world.jobs.create(
                who, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
            )
    view, _ = await world.jobs.create(
        OWNER, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
    )
    with pytest.raises(JobNotFound):
        await world.jobs.get(UNASSIGNED, view.job.job_id)
    _, board = await world.jobs.in_pipeline(UNASSIGNED, pipeline.pipeline_id)
    assert board == []
    assert [j.job_id for j in await world.jobs.of_account(ASSIGNED, LEE)] == [view.job.job_id]


async def test_j1_a_manual_move_fires_the_target_stage_once_even_when_retried(world: World) -> None:
    pipeline = await world.tax_pipeline()
    view, _ = await world.jobs.create(
        OWNER, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
    )
    review = pipeline.stages[2].stage_id
    for _ in range(2):  # a retried move
        moved = await world.jobs.move(OWNER, view.job.job_id, to_stage_id=review, unfinished=None)
    assert moved.job.stage_id == review
    assert [r.template_id for r in world.job_store.of_type(SENT)][2:] == ["tpl_review"]
    (event,) = world.job_store.of_type(MOVED)
    assert (event.reason, event.moved_by, event.to_stage_id) == ("manual", "st_olivia", review)
    assert [e.reason for e in moved.job.history] == ["created", "manual"]


async def _job_with_thread(world: World, *, done: int = 0, total: int = 2):  # type: ignore[no-untyped-def]
    pipeline = await world.tax_pipeline()
    view, _ = await world.jobs.create(
        OWNER, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
    )
    world.thread("th_docs", done=done, total=total)
    await world.jobs.link(OWNER, view.job.job_id, "th_docs")
    return pipeline, view.job


async def test_j2_completing_a_linked_threads_tasks_moves_the_job_once(world: World) -> None:
    pipeline, job = await _job_with_thread(world)
    later = utc_now() + timedelta(seconds=1)
    for _ in range(2):  # the same event redelivered
        await world.jobs.tasks_completed(FIRM, "th_docs", completed_at=later, cause_event_id="ev1")
    current = world.job_store.jobs[job.job_id]
    assert current.stage_id == pipeline.stages[1].stage_id
    (event,) = world.job_store.of_type(MOVED)
    assert (event.reason, event.trigger_thread_id, event.moved_by) == ("automove", "th_docs", None)


async def test_j2_two_threads_completing_at_once_move_the_job_one_stage(world: World) -> None:
    pipeline, job = await _job_with_thread(world)
    world.thread("th_other", total=1)
    await world.jobs.link(OWNER, job.job_id, "th_other")
    both_done = utc_now()
    await world.jobs.tasks_completed(FIRM, "th_docs", completed_at=both_done, cause_event_id="ev1")
    # "Preparing" has automove on too: the second completion happened before the job
    # entered it, so it does not carry the job another stage.
    await world.jobs.tasks_completed(FIRM, "th_other", completed_at=both_done, cause_event_id="ev2")
    assert world.job_store.jobs[job.job_id].stage_id == pipeline.stages[1].stage_id
    assert len(world.job_store.of_type(MOVED)) == 1


async def test_j2_a_lost_race_rereads_and_does_not_move_twice(world: World) -> None:
    pipeline, created = await _job_with_thread(world)
    job = world.job_store.jobs[created.job_id]
    # Another replica automoved the job between our read and our write.
    world.job_store.interfere.append(
        replace(
            job,
            stage_id=pipeline.stages[1].stage_id,
            entry_id="ent_other",
            entered_at=utc_now() + timedelta(seconds=5),
            revision=job.revision + 1,
        )
    )
    moved = await world.jobs.tasks_completed(
        FIRM, "th_docs", completed_at=utc_now() + timedelta(seconds=1), cause_event_id="ev1"
    )
    assert moved == [] and world.job_store.of_type(MOVED) == []


async def test_j2_no_automove_from_the_last_stage_or_a_stage_without_it(world: World) -> None:
    pipeline, job = await _job_with_thread(world)
    await world.pipelines.update_stage(
        OWNER, pipeline.pipeline_id, pipeline.stages[0].stage_id, StageUpdate(automove=False)
    )
    later = utc_now() + timedelta(seconds=1)
    assert (
        await world.jobs.tasks_completed(FIRM, "th_docs", completed_at=later, cause_event_id="a")
        == []
    )
    await world.jobs.move(
        OWNER, job.job_id, to_stage_id=pipeline.stages[2].stage_id, unfinished="leave"
    )
    await world.pipelines.update_stage(
        OWNER, pipeline.pipeline_id, pipeline.stages[2].stage_id, StageUpdate(automove=True)
    )
    even_later = utc_now() + timedelta(seconds=2)
    assert (
        await world.jobs.tasks_completed(
            FIRM, "th_docs", completed_at=even_later, cause_event_id="b"
        )
        == []
    )


async def test_j2_an_unlinked_thread_moves_nothing(world: World) -> None:
    _, job = await _job_with_thread(world)
    await world.jobs.unlink(OWNER, job.job_id, "th_docs")
    later = utc_now() + timedelta(seconds=1)
    assert (
        await world.jobs.tasks_completed(FIRM, "th_docs", completed_at=later, cause_event_id="a")
        == []
    )


async def test_j4_unfinished_tasks_answer_409_listing_the_threads(world: World) -> None:
    pipeline, job = await _job_with_thread(world, done=1, total=2)
    world.thread("th_no_tasks")
    await world.jobs.link(OWNER, job.job_id, "th_no_tasks")
    with pytest.raises(UnfinishedTasks) as raised:
        await world.jobs.move(
            OWNER, job.job_id, to_stage_id=pipeline.stages[1].stage_id, unfinished=None
        )
    assert raised.value.extensions["unfinished_threads"] == [
        {"thread_id": "th_docs", "subject": "subject th_docs", "done": 1, "total": 2}
    ]
    assert world.job_store.jobs[job.job_id].stage_id == pipeline.stages[0].stage_id


async def test_j4_leave_keeps_the_threads_and_records_the_choice(world: World) -> None:
    pipeline, job = await _job_with_thread(world, done=1, total=2)
    moved = await world.jobs.move(
        OWNER, job.job_id, to_stage_id=pipeline.stages[1].stage_id, unfinished="leave"
    )
    assert moved.job.thread_ids == ("th_docs",)
    (event,) = world.job_store.of_type(MOVED)
    assert (event.unfinished, event.unfinished_thread_ids) == ("leave", ["th_docs"])


async def test_j4_unlink_unlinks_the_unfinished_threads(world: World) -> None:
    pipeline, job = await _job_with_thread(world, done=0, total=2)
    moved = await world.jobs.move(
        OWNER, job.job_id, to_stage_id=pipeline.stages[1].stage_id, unfinished="unlink"
    )
    assert moved.job.thread_ids == ()
    (event,) = world.job_store.of_type(MOVED)
    assert (event.unfinished, event.unfinished_thread_ids) == ("unlink", ["th_docs"])
    assert [e.thread_id for e in world.job_store.of_type("pipeline.job.thread_unlinked")] == [
        "th_docs"
    ]
    assert moved.job.history[-1].unfinished == "unlink"


async def test_j4_threads_without_tasks_or_finished_ones_do_not_ask(world: World) -> None:
    pipeline, job = await _job_with_thread(world, done=2, total=2)
    moved = await world.jobs.move(
        OWNER, job.job_id, to_stage_id=pipeline.stages[1].stage_id, unfinished=None
    )
    assert world.job_store.of_type(MOVED)[0].unfinished is None and moved.job.thread_ids == (
        "th_docs",
    )


async def test_j3_links_only_threads_of_the_jobs_account(world: World) -> None:
    _, job = await _job_with_thread(world)
    world.thread("th_patel", account=PATEL)
    with pytest.raises(ThreadNotFound):
        await world.jobs.link(OWNER, job.job_id, "th_patel")
    with pytest.raises(ThreadNotFound):
        await world.jobs.link(OWNER, job.job_id, "th_unknown")
    with pytest.raises(JobNotFound):
        await world.jobs.link(UNASSIGNED, job.job_id, "th_docs")
    again = await world.jobs.link(ASSIGNED, job.job_id, "th_docs")
    assert again.job.thread_ids == ("th_docs",)
    assert len(world.job_store.of_type("pipeline.job.thread_linked")) == 1


async def test_j3_links_made_by_messaging_are_recorded_for_the_same_account_only(
    world: World,
) -> None:
    _, job = await _job_with_thread(world)
    assert await world.jobs.record_link(FIRM, job.job_id, thread_id="th_new", account_id=LEE)
    assert not await world.jobs.record_link(FIRM, job.job_id, thread_id="th_x", account_id=PATEL)
    assert not await world.jobs.record_link("other", job.job_id, thread_id="th_y", account_id=LEE)
    assert world.job_store.jobs[job.job_id].thread_ids == ("th_docs", "th_new")


async def test_j3_link_picker_lists_active_threads_by_default(world: World) -> None:
    _, job = await _job_with_thread(world)
    world.thread("th_old")
    await world.thread_store.status_changed(FIRM, "th_old", status="archived", at=utc_now())
    active = await world.jobs.link_candidates(OWNER, job.job_id, status="active", limit=50)
    archived = await world.jobs.link_candidates(OWNER, job.job_id, status="archived", limit=50)
    every = await world.jobs.link_candidates(OWNER, job.job_id, status="all", limit=50)
    assert [t.thread_id for t in active] == ["th_docs"]
    assert [t.thread_id for t in archived] == ["th_old"]
    assert {t.thread_id for t in every} == {"th_docs", "th_old"}


async def test_history_is_bounded(world: World) -> None:
    pipeline = await world.tax_pipeline()
    view, _ = await world.jobs.create(
        OWNER, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
    )
    for index in range(HISTORY_LIMIT + 5):
        stage = pipeline.stages[1 + index % 2].stage_id
        view = await world.jobs.move(OWNER, view.job.job_id, to_stage_id=stage, unfinished=None)
    assert len(view.job.history) == HISTORY_LIMIT
    assert view.job.history[-1].entry_id == view.job.entry_id


async def test_j2_a_completion_seen_before_the_link_moves_the_job_once_linked(world: World) -> None:
    pipeline = await world.tax_pipeline()
    view, _ = await world.jobs.create(
        OWNER, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
    )
    world.thread("th_docs", total=2)
    done_at = utc_now() + timedelta(seconds=1)
    await world.thread_store.progress(
        FIRM, "th_docs", done=2, total=2, revision=3, at=done_at, completed_at=done_at
    )
    assert (
        await world.jobs.tasks_completed(FIRM, "th_docs", completed_at=done_at, cause_event_id="e")
        == []
    )
    # messaging's link arrives after the completion (another topic)
    assert await world.jobs.record_link(FIRM, view.job.job_id, thread_id="th_docs", account_id=LEE)
    job = world.job_store.jobs[view.job.job_id]
    assert job.stage_id == pipeline.stages[1].stage_id
    assert job.history[-1].trigger_thread_id == "th_docs"
    # a redelivered link changes nothing more
    await world.jobs.record_link(FIRM, view.job.job_id, thread_id="th_docs", account_id=LEE)
    assert len(world.job_store.of_type(MOVED)) == 1


async def test_j2_linking_a_thread_completed_before_the_stage_moves_nothing(world: World) -> None:
    world.thread("th_old", total=1)
    long_ago = utc_now() - timedelta(days=30)
    await world.thread_store.progress(
        FIRM, "th_old", done=1, total=1, revision=2, at=long_ago, completed_at=long_ago
    )
    pipeline = await world.tax_pipeline()
    view, _ = await world.jobs.create(
        OWNER, account_id=LEE, pipeline_id=pipeline.pipeline_id, name="1040", stage_id=None
    )
    linked = await world.jobs.link(OWNER, view.job.job_id, "th_old")
    assert linked.job.stage_id == pipeline.stages[0].stage_id
    assert world.job_store.of_type(MOVED) == []
