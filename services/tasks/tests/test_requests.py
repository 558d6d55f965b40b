"""Client requests (M12) through the service, over fakes at the store boundary."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from threadline.tasks.domain import (
    ActionForbidden,
    InvalidTasks,
    ListConflict,
    RequestNotFound,
)

PATEL = "acc_patel_llc"


async def new_request(w: Any, account: str = "acc_lee_family") -> str:
    request = await w.service.create_request(
        w.staff(role="owner"),
        account,
        title="Fill in the organizer",
        description="Every section",
        due_date=date(2026, 4, 1),
    )
    return request.request_id


async def test_m12_staff_create_a_request_clients_cannot(w: Any) -> None:
    request_id = await new_request(w)
    seen = await w.service.request(w.client(), request_id)
    assert (seen.title, seen.status, seen.due_date) == (
        "Fill in the organizer",
        "open",
        date(2026, 4, 1),
    )
    with pytest.raises(ActionForbidden):
        await w.service.create_request(
            w.client(), "acc_lee_family", title="x", description="", due_date=None
        )
    with pytest.raises(RequestNotFound):
        await w.service.create_request(
            w.staff("st_noah", accounts=[PATEL]),
            "acc_lee_family",
            title="x",
            description="",
            due_date=None,
        )
    with pytest.raises(RequestNotFound):
        await w.service.create_request(
            w.staff(role="owner"), "acc_unknown", title="x", description="", due_date=None
        )
    assert [event.data.change for event in w.requests.events] == ["created"]


async def test_m12_the_client_completes_it_once(w: Any) -> None:
    request_id = await new_request(w)
    done = await w.service.complete_request(w.client(), request_id)
    again = await w.service.complete_request(w.client("ct_ben_lee"), request_id)
    assert done.status == again.status == "completed"
    assert again.completed_by is not None and again.completed_by.user_id == "ct_ann_lee"
    assert [event.data.change for event in w.requests.events] == ["created", "completed"]


async def test_m12_staff_cancel_and_reopen_and_a_cancelled_request_cannot_be_completed(
    w: Any,
) -> None:
    request_id = await new_request(w)
    cancelled = await w.service.update_request(w.staff(), request_id, status="cancelled")
    assert cancelled.status == "cancelled"
    with pytest.raises(ListConflict):
        await w.service.complete_request(w.client(), request_id)
    with pytest.raises(ActionForbidden):
        await w.service.update_request(w.client(), request_id, status="open")
    reopened = await w.service.update_request(w.staff(), request_id, status="open", title="New")
    assert (reopened.status, reopened.title) == ("open", "New")
    changes = [event.data.change for event in w.requests.events]
    assert changes == ["created", "cancelled", "reopened"]


async def test_m12_attach_to_a_thread_of_its_account_only(w: Any) -> None:
    request_id = await new_request(w)
    attached = await w.service.attach_request(w.staff(), "th_1", request_id)
    again = await w.service.attach_request(w.staff(), "th_1", request_id)
    assert attached.thread_ids == again.thread_ids == ("th_1",)
    _, requests = await w.service.thread_tasks(w.client(), "th_1")
    assert [request.request_id for request in requests] == [request_id]
    w.threads.add("th_patel", PATEL)
    with pytest.raises(InvalidTasks):
        await w.service.attach_request(w.staff(role="owner"), "th_patel", request_id)
    with pytest.raises(ActionForbidden):
        await w.service.attach_request(w.client(), "th_1", request_id)
    (event,) = [e.data for e in w.requests.events if e.data.change == "attached"]
    assert event.thread_id == "th_1"


async def test_m12_clients_see_their_accounts_requests_in_requests_and_task_page(
    w: Any,
) -> None:
    ours = await new_request(w)
    theirs = await new_request(w, PATEL)
    listed = await w.service.requests(w.client(), status="all", account_id=None, limit=50)
    assert [request.request_id for request in listed] == [ours]
    with pytest.raises(RequestNotFound):
        await w.service.request(w.client(), theirs)
    with pytest.raises(RequestNotFound):
        await w.service.complete_request(w.client(), theirs)
    page = await w.service.my_tasks(w.client(), status="open", account_id=None, limit=50)
    assert [(row.kind, row.task.request_id) for row in page] == [("request", ours)]
    await w.service.complete_request(w.client(), ours)
    done = await w.service.my_tasks(w.client(), status="done", account_id=None, limit=50)
    assert [row.kind for row in done] == ["request"]
