"""Client tasks end to end on real servers: messaging creates threads with tasks, the tasks
service owns the lists, messaging shows them (K1-K6, T6)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..conftest import eventually
from .conftest import Platform, events_of

pytestmark = pytest.mark.integration

STAFF, ANN, BEN = "assigned member", "client", "second client"


def task_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["kind"] in {"task_list", "tasks_completed"}]


def of_type(events: list[Any], event_type: str) -> list[Any]:
    return [event for event in events if event.type == event_type]


async def test_k1_k6_the_client_journey(firm: Platform) -> None:
    thread = await firm.new_thread(
        STAFF, tasks=["Upload your W-2", "Sign form 8879", "See https://irs.gov"]
    )
    thread_id = thread["id"]
    ids = [task["task_id"] for task in thread["client_tasks"]]

    # K1: the client sees the three tasks, links made safe; the list shows 0/3 (T6, K5).
    seen = await firm.tasks(ANN, "GET", f"/v1/threads/{thread_id}/tasks")
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert [task["task_id"] for task in body["tasks"]] == ids
    assert body["progress"] == {"done": 0, "total": 3}
    assert body["subject"] == "2025 tax documents"
    assert [s["href"] for s in body["tasks"][2]["segments"] if s["href"]] == ["https://irs.gov"]
    await firm.wait_progress(thread_id, 0, 3)
    created = await eventually(
        lambda: firm.messages(ANN, thread_id), until=lambda m: len(task_messages(m)) == 1
    )
    assert task_messages(created)[0]["kind"] == "task_list"
    assert "☐ Upload your W-2" in task_messages(created)[0]["text"]

    # K2, K4: two ticks in a row → one message naming the client, progress 2/3.
    for task_id in ids[:2]:
        ticked = await firm.tasks(ANN, "PUT", f"/v1/threads/{thread_id}/tasks/{task_id}/done")
        assert ticked.status_code == 200, ticked.text
    assert ticked.json()["tasks"][1]["done_by"]["user_id"] == "ct_ann_lee"
    await firm.wait_progress(thread_id, 2, 3)
    after_ticks = await eventually(
        lambda: firm.messages(STAFF, thread_id), until=lambda m: len(task_messages(m)) == 2
    )
    completed = task_messages(after_ticks)[1]
    assert completed["kind"] == "tasks_completed"
    assert completed["text"].startswith("Ann Lee completed 2 of 3 tasks")
    assert completed["author"]["kind"] == "client"

    # K1, K4: staff add a task → the updated list in the same message style.
    added = await firm.tasks(
        STAFF, "POST", f"/v1/threads/{thread_id}/tasks", json={"tasks": [{"text": "Send 1099s"}]}
    )
    assert added.status_code == 201, added.text
    new_id = added.json()["tasks"][3]["task_id"]
    await firm.wait_progress(thread_id, 2, 4)
    updated = await eventually(
        lambda: firm.messages(ANN, thread_id), until=lambda m: len(task_messages(m)) == 3
    )
    update = task_messages(updated)[2]
    assert update["kind"] == "task_list"
    assert [task["text"] for task in update["tasks"]["tasks"]][-1] == "Send 1099s"
    assert update["tasks"]["progress"] == {"done": 2, "total": 4}

    # K6: the client finishes → exactly one all_completed; T6 filter lists the thread.
    for task_id in (ids[2], new_id):
        ticked = await firm.tasks(ANN, "PUT", f"/v1/threads/{thread_id}/tasks/{task_id}/done")
        assert ticked.status_code == 200, ticked.text
    again = await firm.tasks(ANN, "PUT", f"/v1/threads/{thread_id}/tasks/{new_id}/done")
    assert again.json()["revision"] == ticked.json()["revision"]  # a retry changes nothing
    final_revision = ticked.json()["revision"]
    events = await events_of(
        firm,
        thread_id,
        until=lambda found: any(
            e.type == "tasks.list.changed" and e.data.revision == final_revision for e in found
        ),
    )
    (done,) = of_type(events, "tasks.list.all_completed")
    assert done.data.total == 4 and done.data.completed_by.user_id == "ct_ann_lee"
    assert [e.data.change for e in of_type(events, "tasks.list.changed")] == [
        "created",
        "completed",
        "completed",
        "added",
        "completed",
        "completed",
    ]
    await firm.wait_progress(thread_id, 4, 4)
    assert await firm.thread_row(ANN, thread_id, tasks="completed") is not None
    assert await firm.thread_row(ANN, thread_id, tasks="incomplete") is None

    # The client's task page shows the done tasks with the thread's subject.
    page = await firm.tasks(ANN, "GET", "/v1/tasks", params={"status": "done"})
    rows = [row for row in page.json()["items"] if row["thread_id"] == thread_id]
    assert len(rows) == 4 and rows[0]["thread_subject"] == "2025 tax documents"


async def test_k6_twenty_concurrent_ticks_from_two_clients(firm: Platform) -> None:
    thread = await firm.new_thread(STAFF, tasks=[f"Task {i}" for i in range(10)])
    thread_id, ids = thread["id"], [task["task_id"] for task in thread["client_tasks"]]
    responses = await asyncio.gather(
        *(
            firm.tasks(who, "PUT", f"/v1/threads/{thread_id}/tasks/{task_id}/done")
            for task_id in ids
            for who in (ANN, BEN)
        )
    )
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    final = (await firm.tasks(STAFF, "GET", f"/v1/threads/{thread_id}/tasks")).json()
    assert final["progress"] == {"done": 10, "total": 10} and final["all_completed"]
    assert final["revision"] == 11  # created + one stored tick per task
    events = await events_of(
        firm,
        thread_id,
        until=lambda found: len(of_type(found, "tasks.list.changed")) == 11,
    )
    assert len(of_type(events, "tasks.list.all_completed")) == 1
    assert len(of_type(events, "tasks.list.changed")) == 11
    await firm.wait_progress(thread_id, 10, 10)


async def test_k1_a_thread_created_with_tasks_can_be_ticked_at_once(firm: Platform) -> None:
    thread = await firm.new_thread(STAFF, tasks=["Tick me at once"])
    task_id = thread["client_tasks"][0]["task_id"]
    ticked = await firm.tasks(ANN, "PUT", f"/v1/threads/{thread['id']}/tasks/{task_id}/done")
    assert ticked.status_code == 200, ticked.text
    assert ticked.json()["all_completed"] is True


async def test_k3_resend_and_m12_request_show_in_the_thread(firm: Platform) -> None:
    thread = await firm.new_thread(STAFF, tasks=["Upload your W-2"])
    thread_id = thread["id"]
    resent = await firm.tasks(STAFF, "POST", f"/v1/threads/{thread_id}/tasks/resend")
    assert resent.status_code == 200, resent.text
    created = await firm.tasks(
        STAFF,
        "POST",
        "/v1/accounts/acc_lee_family/requests",
        json={"title": "Fill in the organizer", "due_date": "2026-04-01"},
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["request_id"]
    attached = await firm.tasks(STAFF, "POST", f"/v1/threads/{thread_id}/requests/{request_id}")
    assert attached.status_code == 200 and attached.json()["thread_ids"] == [thread_id]
    messages = await eventually(
        lambda: firm.messages(ANN, thread_id),
        until=lambda m: [x["kind"] for x in m] == ["message", "task_list", "task_list", "request"],
    )
    assert "resent the client tasks" in messages[2]["text"]
    assert messages[3]["request"]["title"] == "Fill in the organizer"
    assert "due 2026-04-01" in messages[3]["text"]
    # The client sees it in the requests section and the task list, and completes it.
    listed = await firm.tasks(ANN, "GET", "/v1/requests")
    assert [r["request_id"] for r in listed.json()["requests"]] == [request_id]
    page = await firm.tasks(ANN, "GET", "/v1/tasks", params={"status": "open"})
    assert request_id in [
        row["request"]["request_id"] for row in page.json()["items"] if row["request"]
    ]
    done = await firm.tasks(ANN, "POST", f"/v1/requests/{request_id}/complete")
    assert done.status_code == 200 and done.json()["status"] == "completed"
    events = await events_of(firm, request_id, until=lambda found: len(found) == 3, linger=0.5)
    assert [e.data.change for e in events] == ["created", "attached", "completed"]
