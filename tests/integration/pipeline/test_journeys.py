"""Pipelines end to end on real servers: messaging, tasks and pipeline (SPEC J1-J4).

A firm sets up the pipeline exactly as the help centre describes it (reference 004):
"Waiting for documents" sends a template with two client tasks as a reply to the client's
latest thread and has automove on; "Preparing" and "Review" follow.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from threadline.contracts import Envelope

from .conftest import PipelineFirm, eventually, pipeline_events

pytestmark = pytest.mark.integration

STAFF, CLIENT = "assigned member", "client"
MOVED, REQUESTED = "pipeline.job.moved", "pipeline.send_message.requested"


def of_type(events: list[Envelope[Any]], event_type: str) -> list[Any]:
    return [event.data for event in events if event.type == event_type]


def stage_ids(pipeline: dict[str, Any]) -> list[str]:
    return [stage["stage_id"] for stage in pipeline["stages"]]


async def test_j1_j2_the_journey_reply_with_two_tasks_then_automove(firm: PipelineFirm) -> None:
    template = await firm.new_template(tasks=["Upload your W-2", "Upload your 1099s"])
    pipeline = await firm.new_pipeline(
        [
            {
                "name": "Waiting for documents",
                "automove": True,
                "automations": [{"template_id": template, "mode": "reply_to_latest"}],
            },
            {"name": "Preparing"},
            {"name": "Review"},
        ]
    )
    waiting, preparing, _ = stage_ids(pipeline)
    thread = await firm.new_thread(STAFF)  # the client's latest thread
    job = await firm.new_job(pipeline)
    assert job["stage_id"] == waiting

    # J1: the client's latest thread receives the rendered message with its two tasks, and
    # the thread is linked to the job.
    messages = await eventually(
        lambda: firm.messages(CLIENT, thread["id"]),
        until=lambda found: any("Lee Family" in m["text"] for m in found),
    )
    rendered = next(m for m in messages if "Lee Family" in m["text"])
    assert "[[" not in rendered["text"]
    tasks = await firm.wait_tasks(thread["id"], 2)
    assert [task["text"] for task in tasks] == ["Upload your W-2", "Upload your 1099s"]
    await firm.wait_linked_progress(job["job_id"], thread["id"], 0, 2)

    # J2: the client ticks both → the job moves to Preparing, by automove, once.
    for task in tasks:
        await firm.tick(CLIENT, thread["id"], task["task_id"])
    moved = await firm.wait_job(job["job_id"], lambda j: j["stage_id"] == preparing)
    last = moved["history"][-1]
    assert (last["reason"], last["trigger_thread_id"], last["by"]) == (
        "automove",
        thread["id"],
        None,
    )
    events = await pipeline_events(
        firm, job["job_id"], until=lambda found: len(of_type(found, MOVED)) >= 1
    )
    (move,) = of_type(events, MOVED)
    assert (move.from_stage_id, move.to_stage_id, move.reason) == (waiting, preparing, "automove")
    assert len(of_type(events, REQUESTED)) == 1  # once for the one entry into the stage


async def test_j2_a_template_without_tasks_posts_and_leaves_the_job(firm: PipelineFirm) -> None:
    template = await firm.new_template(tasks=[], subject="Your return is in review")
    pipeline = await firm.new_pipeline(
        [
            {
                "name": "Review",
                "automove": True,
                "automations": [{"template_id": template, "mode": "reply_to_latest"}],
            },
            {"name": "Filed"},
        ]
    )
    thread = await firm.new_thread(STAFF)
    job = await firm.new_job(pipeline)
    await eventually(
        lambda: firm.messages(CLIENT, thread["id"]),
        until=lambda found: any("Lee Family" in m["text"] for m in found),
    )
    linked = await firm.wait_job(job["job_id"], lambda j: thread["id"] in j["thread_ids"])
    assert linked["threads"][0]["tasks_total"] == 0
    events = await pipeline_events(
        firm, job["job_id"], until=lambda found: len(of_type(found, REQUESTED)) == 1
    )
    assert of_type(events, MOVED) == []
    assert (await firm.job(job["job_id"]))["stage_id"] == pipeline["stages"][0]["stage_id"]


async def test_j1_a_new_thread_automation_creates_a_thread_linked_to_the_job(
    firm: PipelineFirm,
) -> None:
    template = await firm.new_template(tasks=["Sign the engagement letter"], subject="Welcome")
    pipeline = await firm.new_pipeline(
        [
            {
                "name": "Onboarding",
                "automove": True,
                "automations": [{"template_id": template, "mode": "new_thread"}],
            },
            {"name": "Waiting for documents"},
        ]
    )
    before = await firm.thread_row("owner", "none")  # warm the list
    assert before is None
    job = await firm.new_job(pipeline)
    linked = await firm.wait_job(job["job_id"], lambda j: len(j["thread_ids"]) == 1)
    (thread_id,) = linked["thread_ids"]
    seen = await firm.ok(await firm.call(CLIENT, "GET", f"/v1/threads/{thread_id}"))
    assert seen["subject"] == "Welcome"
    tasks = await firm.wait_tasks(thread_id, 1)
    # Hand-made or automatic, a linked thread automoves the same way (J2, J3).
    await firm.wait_linked_progress(job["job_id"], thread_id, 0, 1)
    await firm.tick(CLIENT, thread_id, tasks[0]["task_id"])
    await firm.wait_job(job["job_id"], lambda j: j["stage_id"] == pipeline["stages"][1]["stage_id"])


async def test_j4_unfinished_tasks_answer_409_then_leave_or_unlink(firm: PipelineFirm) -> None:
    pipeline = await firm.new_pipeline([{"name": "Waiting"}, {"name": "Preparing"}])
    _, preparing = stage_ids(pipeline)
    first = await firm.new_job(pipeline)
    second = await firm.new_job(pipeline)
    # J3: one thread linked at creation (messaging's job_ids), one linked later by hand.
    at_creation = await firm.new_thread(STAFF, tasks=["Sign form 8879"], job_ids=[first["job_id"]])
    later = await firm.new_thread(STAFF, tasks=["Upload your W-2", "Upload your 1099s"])
    await eventually(  # J3: the picker lists the account's threads (once projected)
        lambda: firm.pipe(STAFF, "GET", f"/v1/jobs/{second['job_id']}/link-candidates"),
        until=lambda r: later["id"] in [t["thread_id"] for t in r.json()["threads"]],
    )
    await firm.ok(
        await firm.pipe(STAFF, "PUT", f"/v1/jobs/{second['job_id']}/threads/{later['id']}")
    )
    await firm.wait_linked_progress(first["job_id"], at_creation["id"], 0, 1)
    await firm.wait_linked_progress(second["job_id"], later["id"], 0, 2)

    refused = await firm.pipe(
        STAFF, "POST", f"/v1/jobs/{first['job_id']}/move", json={"to_stage_id": preparing}
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["unfinished_threads"] == [
        {"thread_id": at_creation["id"], "subject": "2025 tax documents", "done": 0, "total": 1}
    ]

    left = await firm.ok(
        await firm.pipe(
            STAFF,
            "POST",
            f"/v1/jobs/{first['job_id']}/move",
            json={"to_stage_id": preparing, "unfinished": "leave"},
        )
    )
    assert left["stage_id"] == preparing and left["thread_ids"] == [at_creation["id"]]
    assert left["history"][-1]["unfinished"] == "leave"

    unlinked = await firm.ok(
        await firm.pipe(
            STAFF,
            "POST",
            f"/v1/jobs/{second['job_id']}/move",
            json={"to_stage_id": preparing, "unfinished": "unlink"},
        )
    )
    assert unlinked["stage_id"] == preparing and unlinked["thread_ids"] == []
    events = await pipeline_events(
        firm, second["job_id"], until=lambda found: len(of_type(found, MOVED)) == 1
    )
    (move,) = of_type(events, MOVED)
    assert (move.unfinished, move.unfinished_thread_ids) == ("unlink", [later["id"]])


async def test_j2_two_threads_completing_at_once_move_the_job_once(firm: PipelineFirm) -> None:
    # Both of the first two stages automove: a second move would show.
    pipeline = await firm.new_pipeline(
        [{"name": "Docs", "automove": True}, {"name": "Forms", "automove": True}, {"name": "Done"}]
    )
    job = await firm.new_job(pipeline)
    threads = [
        await firm.new_thread(STAFF, tasks=[text], job_ids=[job["job_id"]])
        for text in ("Upload your W-2", "Upload your 1099s")
    ]
    task_ids = []
    for thread in threads:
        (task,) = await firm.wait_tasks(thread["id"], 1)
        task_ids.append(task["task_id"])
        await firm.wait_linked_progress(job["job_id"], thread["id"], 0, 1)

    await asyncio.gather(
        *(firm.tick(CLIENT, t["id"], task_id) for t, task_id in zip(threads, task_ids, strict=True))
    )
    await firm.wait_job(job["job_id"], lambda j: j["stage_id"] == pipeline["stages"][1]["stage_id"])
    events = await pipeline_events(
        firm, job["job_id"], until=lambda found: len(of_type(found, MOVED)) >= 1, linger=4.0
    )
    assert len(of_type(events, MOVED)) == 1
    assert (await firm.job(job["job_id"]))["stage_id"] == pipeline["stages"][1]["stage_id"]


async def test_j2_a_pipeline_restart_between_the_tick_and_the_move_moves_once(
    firm: PipelineFirm,
) -> None:
    pipeline = await firm.new_pipeline([{"name": "Docs", "automove": True}, {"name": "Preparing"}])
    job = await firm.new_job(pipeline)
    thread = await firm.new_thread(STAFF, tasks=["Upload your W-2"], job_ids=[job["job_id"]])
    (task,) = await firm.wait_tasks(thread["id"], 1)
    await firm.wait_linked_progress(job["job_id"], thread["id"], 0, 1)

    await firm.pipeline.stop()
    await firm.tick(CLIENT, thread["id"], task["task_id"])
    await firm.pipeline.start()

    await firm.wait_job(job["job_id"], lambda j: j["stage_id"] == pipeline["stages"][1]["stage_id"])
    events = await pipeline_events(
        firm, job["job_id"], until=lambda found: len(of_type(found, MOVED)) >= 1, linger=3.0
    )
    assert len(of_type(events, MOVED)) == 1
