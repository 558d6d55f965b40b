"""Tasks HTTP routes: parse (bounded, strict), authorise through the service, map to
typed responses. Errors are problem details from the domain's error tree."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from threadline.contracts.events.common import Actor
from threadline.kit.http import CurrentPrincipal, from_state
from threadline.kit.links import link_segments
from threadline.tasks.domain import (
    MAX_REQUEST_DESCRIPTION,
    MAX_REQUEST_TITLE,
    MAX_TASK_TEXT,
    MAX_TASKS,
    ClientRequest,
    Task,
    TaskList,
)
from threadline.tasks.service import MyTask, RequestFilter, StatusFilter, TaskService

__all__ = ["ROUTERS"]

router = APIRouter(prefix="/v1", tags=["tasks"])

MAX_ID = 200
ThreadIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
TaskIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
RequestIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
AccountIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID)]
AccountFilter = Annotated[str | None, Query(min_length=1, max_length=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=500)]


TaskServiceDep = Annotated[TaskService, Depends(from_state("tasks", TaskService))]


# --- request bodies --------------------------------------------------------------------

_Strict = ConfigDict(extra="forbid")
TaskText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TASK_TEXT)]


class NewTaskIn(BaseModel):
    model_config = _Strict

    text: TaskText = Field(description="Plain text; links (http, https, mailto) become clickable.")


class NewTasksIn(BaseModel):
    """K1: tasks to append to the thread's list."""

    model_config = _Strict

    tasks: list[NewTaskIn] = Field(min_length=1, max_length=MAX_TASKS)


class TaskEditIn(BaseModel):
    model_config = _Strict

    text: TaskText


class TaskOrderIn(BaseModel):
    """K2: the whole new order, naming exactly the current tasks."""

    model_config = _Strict

    task_ids: list[Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID)]] = Field(
        max_length=MAX_TASKS
    )


class NewRequestIn(BaseModel):
    """M12: a client request for the account."""

    model_config = _Strict

    title: Annotated[StrictStr, Field(min_length=1, max_length=MAX_REQUEST_TITLE)]
    description: Annotated[StrictStr, Field(max_length=MAX_REQUEST_DESCRIPTION)] = ""
    due_date: date | None = Field(default=None, description="Optional due date (YYYY-MM-DD).")


class RequestChangeIn(BaseModel):
    """Staff edit a request (fields given), cancel it or reopen it (`status`);
    `"due_date": null` clears the due date."""

    model_config = _Strict

    title: Annotated[StrictStr, Field(min_length=1, max_length=MAX_REQUEST_TITLE)] | None = None
    description: Annotated[StrictStr, Field(max_length=MAX_REQUEST_DESCRIPTION)] | None = None
    due_date: date | None = None
    status: Literal["open", "cancelled"] | None = None


# --- responses ----------------------------------------------------------------------------


class SegmentOut(BaseModel):
    text: str
    href: str | None = Field(default=None, description="Set when the run is a safe link.")


class TaskOut(BaseModel):
    task_id: str
    text: str = Field(description="The text as typed (raw).")
    segments: list[SegmentOut] = Field(
        description="The text cut into plain runs and clickable links (http, https, mailto)."
    )
    done: bool
    done_at: datetime | None
    done_by: Actor | None
    created_at: datetime

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            task_id=task.task_id,
            text=task.text,
            segments=[SegmentOut(text=s.text, href=s.href) for s in link_segments(task.text)],
            done=task.done,
            done_at=task.done_at,
            done_by=task.done_by,
            created_at=task.created_at,
        )


class ProgressOut(BaseModel):
    done: int
    total: int


class RequestOut(BaseModel):
    request_id: str
    account_id: str
    title: str
    description: str
    due_date: date | None
    status: Literal["open", "completed", "cancelled"]
    thread_ids: list[str]
    created_by: Actor
    created_at: datetime
    completed_by: Actor | None
    completed_at: datetime | None
    revision: int

    @classmethod
    def of(cls, request: ClientRequest) -> RequestOut:
        return cls(
            request_id=request.request_id,
            account_id=request.account_id,
            title=request.title,
            description=request.description,
            due_date=request.due_date,
            status=request.status,
            thread_ids=list(request.thread_ids),
            created_by=request.created_by,
            created_at=request.created_at,
            completed_by=request.completed_by,
            completed_at=request.completed_at,
            revision=request.revision,
        )


class TaskListOut(BaseModel):
    thread_id: str
    account_id: str
    revision: int = Field(description="Increases by one with every change of the list.")
    progress: ProgressOut
    all_completed: bool = Field(description="K6: every task done (never for an empty list).")
    tasks: list[TaskOut]

    @classmethod
    def of(cls, task_list: TaskList) -> TaskListOut:
        return cls(
            thread_id=task_list.thread_id,
            account_id=task_list.account_id,
            revision=task_list.revision,
            progress=ProgressOut(done=task_list.done, total=task_list.total),
            all_completed=task_list.all_completed,
            tasks=[TaskOut.of(task) for task in task_list.tasks],
        )


class ThreadTasksOut(TaskListOut):
    subject: str
    requests: list[RequestOut] = Field(description="Client requests attached to the thread (M12).")


class MyTaskOut(BaseModel):
    kind: Literal["task", "request"]
    account_id: str
    thread_id: str | None
    thread_subject: str | None
    task: TaskOut | None = None
    request: RequestOut | None = None

    @classmethod
    def of(cls, row: MyTask) -> MyTaskOut:
        return cls(
            kind=row.kind,
            account_id=row.account_id,
            thread_id=row.thread_id,
            thread_subject=row.thread_subject,
            task=TaskOut.of(row.task) if row.kind == "task" else None,
            request=RequestOut.of(row.task) if row.kind == "request" else None,
        )


class MyTasksOut(BaseModel):
    items: list[MyTaskOut]


class RequestsOut(BaseModel):
    requests: list[RequestOut]


# --- routes ---------------------------------------------------------------------------------


@router.get("/threads/{thread_id}/tasks", summary="A thread's task list and requests (K1, M12).")
async def thread_tasks(
    thread_id: ThreadIdPath, principal: CurrentPrincipal, tasks: TaskServiceDep
) -> ThreadTasksOut:
    task_list, requests = await tasks.thread_tasks(principal, thread_id)
    return ThreadTasksOut(
        **TaskListOut.of(task_list).model_dump(),
        subject=task_list.subject,
        requests=[RequestOut.of(request) for request in requests],
    )


@router.post(
    "/threads/{thread_id}/tasks",
    status_code=status.HTTP_201_CREATED,
    summary="Staff add tasks to the thread's list (K1).",
)
async def add_tasks(
    thread_id: ThreadIdPath, body: NewTasksIn, principal: CurrentPrincipal, tasks: TaskServiceDep
) -> TaskListOut:
    added = await tasks.add(principal, thread_id, [task.text for task in body.tasks])
    return TaskListOut.of(added)


@router.put("/threads/{thread_id}/tasks/order", summary="Staff reorder the whole list (K2).")
async def reorder_tasks(
    thread_id: ThreadIdPath, body: TaskOrderIn, principal: CurrentPrincipal, tasks: TaskServiceDep
) -> TaskListOut:
    return TaskListOut.of(await tasks.reorder(principal, thread_id, body.task_ids))


@router.post("/threads/{thread_id}/tasks/resend", summary="Post the list into the thread (K3).")
async def resend_tasks(
    thread_id: ThreadIdPath, principal: CurrentPrincipal, tasks: TaskServiceDep
) -> TaskListOut:
    return TaskListOut.of(await tasks.resend(principal, thread_id))


@router.put("/threads/{thread_id}/tasks/{task_id}/done", summary="Tick a task done (K2).")
async def tick_task(
    thread_id: ThreadIdPath,
    task_id: TaskIdPath,
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
) -> TaskListOut:
    return TaskListOut.of(await tasks.set_done(principal, thread_id, task_id, done=True))


@router.delete("/threads/{thread_id}/tasks/{task_id}/done", summary="Undo a tick (K2).")
async def untick_task(
    thread_id: ThreadIdPath,
    task_id: TaskIdPath,
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
) -> TaskListOut:
    return TaskListOut.of(await tasks.set_done(principal, thread_id, task_id, done=False))


@router.patch("/threads/{thread_id}/tasks/{task_id}", summary="Staff edit a task's text (K2).")
async def edit_task(
    thread_id: ThreadIdPath,
    task_id: TaskIdPath,
    body: TaskEditIn,
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
) -> TaskListOut:
    return TaskListOut.of(await tasks.edit(principal, thread_id, task_id, body.text))


@router.delete("/threads/{thread_id}/tasks/{task_id}", summary="Staff delete a task (K2).")
async def delete_task(
    thread_id: ThreadIdPath,
    task_id: TaskIdPath,
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
) -> TaskListOut:
    return TaskListOut.of(await tasks.delete(principal, thread_id, task_id))


@router.get("/tasks", summary="The caller's task page across threads and requests (K1, M12).")
async def my_tasks(
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
    status_filter: Annotated[StatusFilter, Query(alias="status")] = "open",
    account_id: AccountFilter = None,
    limit: Limit = 200,
) -> MyTasksOut:
    rows = await tasks.my_tasks(principal, status=status_filter, account_id=account_id, limit=limit)
    return MyTasksOut(items=[MyTaskOut.of(row) for row in rows])


@router.post(
    "/accounts/{account_id}/requests",
    status_code=status.HTTP_201_CREATED,
    summary="Staff create a client request (M12).",
)
async def create_request(
    account_id: AccountIdPath,
    body: NewRequestIn,
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
) -> RequestOut:
    created = await tasks.create_request(
        principal,
        account_id,
        title=body.title,
        description=body.description,
        due_date=body.due_date,
    )
    return RequestOut.of(created)


@router.get("/requests", summary="Client requests the caller sees (M12).")
async def list_requests(
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
    status_filter: Annotated[RequestFilter, Query(alias="status")] = "all",
    account_id: AccountFilter = None,
    limit: Limit = 200,
) -> RequestsOut:
    found = await tasks.requests(
        principal, status=status_filter, account_id=account_id, limit=limit
    )
    return RequestsOut(requests=[RequestOut.of(request) for request in found])


@router.get("/requests/{request_id}", summary="One client request (M12).")
async def get_request(
    request_id: RequestIdPath, principal: CurrentPrincipal, tasks: TaskServiceDep
) -> RequestOut:
    return RequestOut.of(await tasks.request(principal, request_id))


@router.patch("/requests/{request_id}", summary="Staff edit, cancel or reopen a request (M12).")
async def change_request(
    request_id: RequestIdPath,
    body: RequestChangeIn,
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
) -> RequestOut:
    changed = await tasks.update_request(
        principal,
        request_id,
        title=body.title,
        description=body.description,
        due_date=body.due_date,
        clear_due_date="due_date" in body.model_fields_set and body.due_date is None,
        status=body.status,
    )
    return RequestOut.of(changed)


@router.post("/requests/{request_id}/complete", summary="Complete a request (M12).")
async def complete_request(
    request_id: RequestIdPath, principal: CurrentPrincipal, tasks: TaskServiceDep
) -> RequestOut:
    return RequestOut.of(await tasks.complete_request(principal, request_id))


@router.post(
    "/threads/{thread_id}/requests/{request_id}",
    summary="Staff attach an existing request to a thread of its account (M12).",
)
async def attach_request(
    thread_id: ThreadIdPath,
    request_id: RequestIdPath,
    principal: CurrentPrincipal,
    tasks: TaskServiceDep,
) -> RequestOut:
    return RequestOut.of(await tasks.attach_request(principal, thread_id, request_id))


ROUTERS = (router,)
