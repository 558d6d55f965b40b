"""Checklist rules (K1-K6, T7) through the service, over fakes at the store boundary."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from threadline.contracts import new_event
from threadline.contracts.events.common import Actor
from threadline.contracts.events.messaging import NewClientTask, ReminderSettings, ThreadCreated
from threadline.kit.links import link_segments, text_to_html
from threadline.tasks.domain import (
    MAX_TASKS,
    ActionForbidden,
    InvalidTasks,
    ListConflict,
    TaskNotFound,
    ThreadNotFound,
)

FIRM, LEE, PATEL = "firm_acme", "acc_lee_family", "acc_patel_llc"
CHANGED, ALL_DONE, RESENT = "tasks.list.changed", "tasks.list.all_completed", "tasks.list.resent"


def thread_created(w: Any, *texts: str) -> Any:
    return new_event(
        ThreadCreated(
            thread_id="th_new",
            account_id=LEE,
            subject="2025 documents",
            created_by=Actor(user_id="st_mia", kind="staff", name="Mia Chen"),
            to_contact_ids=["ct_ann_lee"],
            first_message_id="msg_1",
            client_tasks=[NewClientTask(text=text) for text in texts],
            reminders=ReminderSettings(enabled=False),
        ),
        firm=FIRM,
        producer="messaging",
    )


async def test_k1_thread_creation_tasks_become_one_list_even_when_redelivered(w: Any) -> None:
    event = thread_created(w, "Upload your W-2", "Sign form 8879")
    w.threads.add("th_new", subject="2025 documents")
    await w.service.create_from_thread(event)
    await w.service.create_from_thread(event)  # redelivered
    task_list, _ = await w.service.thread_tasks(w.client(), "th_new")
    assert [task.text for task in task_list.tasks] == ["Upload your W-2", "Sign form 8879"]
    changes = w.lists.of_type(CHANGED)
    assert [change.change for change in changes] == ["created"]
    assert changes[0].changed_by.user_id == "st_mia"


async def test_k1_a_thread_without_tasks_gets_no_list_and_no_event(w: Any) -> None:
    await w.service.create_from_thread(thread_created(w))
    assert w.lists.events == []


async def test_k1_staff_additions_extend_the_one_list(w: Any) -> None:
    await w.with_tasks("Upload your W-2")
    after = await w.with_tasks("Sign form 8879", "Send your 1099s")
    assert after.total == 3
    assert [change.change for change in w.lists.of_type(CHANGED)] == ["created", "added"]
    assert w.lists.of_type(CHANGED)[1].changed_task_ids == [t.task_id for t in after.tasks[1:]]


async def test_k1_thread_creation_extends_a_list_staff_started_first(w: Any) -> None:
    w.threads.add("th_new")
    await w.service.add(w.staff(), "th_new", ["Added by staff at once"])
    await w.service.create_from_thread(thread_created(w, "From creation"))
    task_list, _ = await w.service.thread_tasks(w.staff(), "th_new")
    assert [task.text for task in task_list.tasks] == ["Added by staff at once", "From creation"]


@pytest.mark.parametrize("text", ["", "   ", "a" * 2001, "bell\x07"])
async def test_k1_task_text_is_bounded_plain_text(w: Any, text: str) -> None:
    with pytest.raises(InvalidTasks):
        await w.with_tasks(text)


async def test_k1_a_list_holds_a_bounded_number_of_tasks(w: Any) -> None:
    await w.with_tasks(*[f"task {i}" for i in range(MAX_TASKS)])
    with pytest.raises(InvalidTasks):
        await w.with_tasks("one too many")


def test_k1_links_are_safe_and_the_raw_text_is_kept() -> None:
    text = (
        "See https://irs.gov/w2. (or http://x.example/a_(b)) mail mailto:a@b.co javascript:alert(1)"
    )
    segments = link_segments(text)
    assert "".join(segment.text for segment in segments) == text
    assert [s.href for s in segments if s.href] == [
        "https://irs.gov/w2",
        "http://x.example/a_(b)",
        "mailto:a@b.co",
    ]
    html = text_to_html('<b>x</b> https://e.example/?a=1&b="2"')
    assert html.startswith("&lt;b&gt;x&lt;/b&gt; ")
    assert 'href="https://e.example/?a=1&amp;b=&quot;2&quot;"' not in html  # quote ends the link
    assert 'href="https://e.example/?a=1&amp;b="' in html


async def test_k2_a_client_ticks_and_the_tick_records_who_and_when(w: Any) -> None:
    task_list = await w.with_tasks("Upload your W-2")
    ticked = await w.service.set_done(w.client(), "th_1", task_list.tasks[0].task_id, done=True)
    task = ticked.tasks[0]
    assert task.done and task.done_at is not None
    assert task.done_by == Actor(user_id="ct_ann_lee", kind="client", name="Ann Lee")
    undone = await w.service.set_done(w.staff(), "th_1", task.task_id, done=False)
    assert undone.tasks[0].done is False and undone.tasks[0].done_by is None


async def test_k2_a_retried_tick_changes_nothing_and_emits_nothing(w: Any) -> None:
    task_list = await w.with_tasks("Upload your W-2", "Sign")
    task_id = task_list.tasks[0].task_id
    first = await w.service.set_done(w.client(), "th_1", task_id, done=True)
    again = await w.service.set_done(w.client(), "th_1", task_id, done=True)
    assert again.revision == first.revision
    assert len(w.lists.of_type(CHANGED)) == 2  # created + one completion


@pytest.mark.parametrize(
    "action",
    ["add", "edit", "reorder", "delete", "resend"],
)
async def test_k2_k3_clients_cannot_change_the_list(w: Any, action: str) -> None:
    task_list = await w.with_tasks("Upload your W-2")
    task_id = task_list.tasks[0].task_id
    calls = {
        "add": lambda: w.service.add(w.client(), "th_1", ["mine"]),
        "edit": lambda: w.service.edit(w.client(), "th_1", task_id, "changed"),
        "reorder": lambda: w.service.reorder(w.client(), "th_1", [task_id]),
        "delete": lambda: w.service.delete(w.client(), "th_1", task_id),
        "resend": lambda: w.service.resend(w.client(), "th_1"),
    }
    with pytest.raises(ActionForbidden):
        await calls[action]()
    assert (await w.lists.get(FIRM, "th_1")) == task_list


async def test_k2_archived_threads_are_read_only_for_clients_not_staff(w: Any) -> None:
    task_list = await w.with_tasks("Upload your W-2")
    w.threads.add("th_1", archived=True)
    task_id = task_list.tasks[0].task_id
    with pytest.raises(ActionForbidden):
        await w.service.set_done(w.client(), "th_1", task_id, done=True)
    ticked = await w.service.set_done(w.staff(), "th_1", task_id, done=True)
    assert ticked.done == 1


async def test_k2_reorder_must_name_exactly_the_current_tasks(w: Any) -> None:
    task_list = await w.with_tasks("a", "b", "c")
    a, b, c = (task.task_id for task in task_list.tasks)
    reordered = await w.service.reorder(w.staff(), "th_1", [c, a, b])
    assert [task.text for task in reordered.tasks] == ["c", "a", "b"]
    with pytest.raises(ListConflict):
        await w.service.reorder(w.staff(), "th_1", [a, b])
    with pytest.raises(ListConflict):
        await w.service.reorder(w.staff(), "th_1", [a, b, c, "unknown"])
    with pytest.raises(InvalidTasks):
        await w.service.reorder(w.staff(), "th_1", [a, a, b])
    assert w.lists.of_type(CHANGED)[-1].change == "reordered"


async def test_k2_staff_edit_and_delete(w: Any) -> None:
    task_list = await w.with_tasks("a", "b")
    a, b = (task.task_id for task in task_list.tasks)
    edited = await w.service.edit(w.staff(), "th_1", a, "A, reworded")
    assert edited.tasks[0].text == "A, reworded"
    deleted = await w.service.delete(w.staff(), "th_1", b)
    assert [task.task_id for task in deleted.tasks] == [a]
    with pytest.raises(TaskNotFound):
        await w.service.set_done(w.client(), "th_1", b, done=True)
    assert [c.change for c in w.lists.of_type(CHANGED)] == ["created", "edited", "deleted"]


async def test_k3_resend_posts_the_current_list(w: Any) -> None:
    with pytest.raises(InvalidTasks):
        await w.service.resend(w.staff(), "th_1")
    task_list = await w.with_tasks("a", "b")
    await w.service.resend(w.staff(), "th_1")
    (resent,) = w.lists.of_type(RESENT)
    assert [task.task_id for task in resent.tasks] == [t.task_id for t in task_list.tasks]
    assert resent.resent_by.user_id == "st_mia"


async def test_k5_every_change_carries_the_snapshot_progress_and_actor(w: Any) -> None:
    task_list = await w.with_tasks("a", "b", "c")
    await w.service.set_done(w.client(), "th_1", task_list.tasks[1].task_id, done=True)
    change = w.lists.of_type(CHANGED)[-1]
    assert (change.progress.done, change.progress.total) == (1, 3)
    assert [task.done for task in change.tasks] == [False, True, False]
    assert change.changed_by.kind == "client"
    assert change.changed_task_ids == [task_list.tasks[1].task_id]
    assert change.revision == 2


async def test_k6_all_completed_once_per_transition_and_again_after_undo(w: Any) -> None:
    task_list = await w.with_tasks("a", "b")
    a, b = (task.task_id for task in task_list.tasks)
    await w.service.set_done(w.client(), "th_1", a, done=True)
    assert w.lists.of_type(ALL_DONE) == []
    await w.service.set_done(w.client(), "th_1", b, done=True)
    await w.service.set_done(w.client(), "th_1", b, done=True)  # retried
    assert len(w.lists.of_type(ALL_DONE)) == 1
    await w.service.set_done(w.client(), "th_1", b, done=False)
    await w.service.set_done(w.staff(), "th_1", b, done=True)  # a new transition
    completions = w.lists.of_type(ALL_DONE)
    assert len(completions) == 2
    assert completions[1].completed_by.kind == "staff" and completions[1].total == 2


async def test_k6_concurrent_ticks_of_every_task_complete_the_list_exactly_once(
    w: Any,
) -> None:
    task_list = await w.with_tasks(*[f"task {i}" for i in range(10)])
    ann, ben = w.client(), w.client("ct_ben_lee", name="Ben Lee")
    ticks = [
        w.service.set_done(who, "th_1", task.task_id, done=True)
        for task in task_list.tasks
        for who in (ann, ben)
    ]
    await asyncio.gather(*ticks)
    final = await w.lists.get(FIRM, "th_1")
    assert final is not None and final.done == 10
    assert w.lists.lost_races > 0, "the fake must really interleave the ticks"
    assert len(w.lists.of_type(ALL_DONE)) == 1
    assert final.revision == 1 + 10  # created + one stored change per task


async def test_k6_an_empty_list_is_never_completed(w: Any) -> None:
    task_list = await w.with_tasks("a")
    await w.service.delete(w.staff(), "th_1", task_list.tasks[0].task_id)
    assert w.lists.of_type(ALL_DONE) == []


async def test_k6_deleting_the_last_open_task_completes_the_list(w: Any) -> None:
    task_list = await w.with_tasks("a", "b")
    a, b = (task.task_id for task in task_list.tasks)
    await w.service.set_done(w.client(), "th_1", a, done=True)
    await w.service.delete(w.staff(), "th_1", b)
    (done,) = w.lists.of_type(ALL_DONE)
    assert done.total == 1 and done.completed_by.kind == "staff"


OUTSIDERS = {
    "other client": lambda w: w.client("ct_raj_patel", accounts=[PATEL]),
    "unassigned member": lambda w: w.staff("st_noah", accounts=[PATEL]),
    "other firm owner": lambda w: w.staff(role="owner", firm="firm_other"),
    "other firm client": lambda w: w.client(firm="firm_other"),
}


@pytest.mark.parametrize("outsider", list(OUTSIDERS))
async def test_t7_who_cannot_see_the_thread_finds_no_tasks(w: Any, outsider: str) -> None:
    who = OUTSIDERS[outsider](w)
    task_list = await w.with_tasks("a")
    with pytest.raises(ThreadNotFound):
        await w.service.thread_tasks(who, "th_1")
    with pytest.raises(ThreadNotFound):
        await w.service.set_done(who, "th_1", task_list.tasks[0].task_id, done=True)
    assert await w.service.my_tasks(who, status="all", account_id=None, limit=50) == []


async def test_t7_mentioned_staff_tick_and_manage(w: Any) -> None:
    w.threads.add("th_1", mentioned_staff=frozenset({"st_liam"}))
    liam = w.staff("st_liam", accounts=[PATEL], name="Liam")
    task_list = await w.service.add(liam, "th_1", ["from Liam"])
    ticked = await w.service.set_done(liam, "th_1", task_list.tasks[0].task_id, done=True)
    assert ticked.all_completed


async def test_k1_client_task_page_filters_by_status(w: Any) -> None:
    task_list = await w.with_tasks("a", "b")
    await w.service.set_done(w.client(), "th_1", task_list.tasks[0].task_id, done=True)
    rows = {
        status: await w.service.my_tasks(w.client(), status=status, account_id=None, limit=50)
        for status in ("open", "done", "all")
    }
    assert [row.task.text for row in rows["open"]] == ["b"]
    assert [row.task.text for row in rows["done"]] == ["a"]
    assert len(rows["all"]) == 2
    assert rows["all"][0].thread_subject == "Subject of th_1"
    assert rows["all"][0].account_id == LEE
